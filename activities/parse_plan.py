"""Activities: read and parse the plan file (or, in remote mode, the text the session carries),
and read a session's snapshot of it again.

The parse is the session's snapshot, which later edits of the file cannot change: it is kept
under the state dir by its hash, and the session gets its outline (autopilot/plan/snapshots.py).
"""

from __future__ import annotations

import asyncio
import hashlib

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import checked
from autopilot import error_types
from autopilot import git as gitops
from autopilot.infra.config import on_this_worker
from autopilot.infra.run_logs import PREVIOUS_RUNS, begin_run
from autopilot.models import ParsePlanInput, Plan
from autopilot.plan import snapshots as plan_snapshots
from autopilot.plan.parser import PlanError, decode_plan, read_plan_bytes, select_batches


def _parse(request: ParsePlanInput) -> Plan:
    if request.plan_text:
        # Remote mode: the plan came in the request, and the workers share no state dir to
        # keep a snapshot in: the session keeps the whole plan (the starter checked its size).
        raw = request.plan_text.encode("utf-8")
    else:
        raw = read_plan_bytes(request.plan_path)  # PlanError saying what is wrong with the file
    plan = decode_plan(raw, request.plan_path)
    plan.sha256 = hashlib.sha256(raw).hexdigest()
    if request.state_dir is None or request.plan_text:
        # The whole plan (also in sessions recorded before snapshots).
        return select_batches(plan, request.start_batch, request.end_batch)
    plan_snapshots.save(request.state_dir, plan)
    return plan_snapshots.outline(select_batches(plan, request.start_batch, request.end_batch))


def _load(request: ParsePlanInput) -> Plan:
    assert request.state_dir is not None
    plan = plan_snapshots.load(request.state_dir, request.sha256, request.plan_path)
    return plan_snapshots.outline(select_batches(plan, request.start_batch, request.end_batch))


def _begin_run(request: ParsePlanInput, session_id: str, run_id: str) -> None:
    """A new run of the session (parse_plan is its first step; a continued run loads its
    snapshot instead): an earlier run's logs on this worker go aside."""
    folder = gitops.safe_component(session_id)
    if folder != session_id:
        return  # not an id the starter makes: its logs are not in folders of that name
    state_dir = on_this_worker(request.state_dir or "")
    logs = {kind: state_dir / kind / folder for kind in ("checks", "transcripts")}
    begin_run(logs, state_dir / PREVIOUS_RUNS / folder, run_id)


@activity.defn
async def parse_plan(request: ParsePlanInput) -> Plan:
    request = checked(request)
    info = activity.info()
    if info.workflow_id and info.workflow_run_id:  # the session's (SessionWorkflow's id)
        await asyncio.to_thread(_begin_run, request, info.workflow_id, info.workflow_run_id)
    try:
        return await asyncio.to_thread(_parse, request)
    except PlanError as err:
        # A plan that does not parse will not parse on a retry either.
        raise ApplicationError(str(err), type=error_types.PLAN_INVALID, non_retryable=True) from err


@activity.defn
async def load_plan_snapshot(request: ParsePlanInput) -> Plan:
    """A continued session's plan outline, from the snapshot its first run made."""
    try:
        return await asyncio.to_thread(_load, checked(request))
    except (plan_snapshots.SnapshotMissing, PlanError) as err:
        raise ApplicationError(
            str(err), type=error_types.PLAN_SNAPSHOT_MISSING, non_retryable=True
        ) from err
