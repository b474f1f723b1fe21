"""Activity: read and parse the plan file. Its result lands in history: the session's snapshot,
which later edits of the file cannot change."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from autopilot.models import ParsePlanInput, Plan
from autopilot.plan_parser import PlanError, load_plan, select_batches
from autopilot.plan_parser import parse_plan as parse_text


def _parse(request: ParsePlanInput) -> Plan:
    try:
        raw = Path(request.plan_path).read_bytes()
        plan = parse_text(raw.decode("utf-8"), request.plan_path)
    except (OSError, UnicodeDecodeError):
        plan, raw = load_plan(request.plan_path), b""  # raises PlanError saying what is wrong
    plan.sha256 = hashlib.sha256(raw).hexdigest()
    return select_batches(plan, request.start_batch, request.end_batch)


@activity.defn
async def parse_plan(request: ParsePlanInput) -> Plan:
    try:
        return await asyncio.to_thread(_parse, request)
    except PlanError as err:
        # A plan that does not parse will not parse on a retry either.
        raise ApplicationError(str(err), type="PlanInvalid", non_retryable=True) from err
