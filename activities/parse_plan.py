"""Activity: read and parse the plan file. Its result lands in history: the session's snapshot."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from autopilot.models import ParsePlanInput, Plan
from autopilot.plan_parser import PlanError, load_plan, select_batches


def _parse(request: ParsePlanInput) -> Plan:
    return select_batches(load_plan(request.plan_path), request.start_batch, request.end_batch)


@activity.defn
async def parse_plan(request: ParsePlanInput) -> Plan:
    try:
        return await asyncio.to_thread(_parse, request)
    except PlanError as err:
        # A plan that does not parse will not parse on a retry either.
        raise ApplicationError(str(err), type="PlanInvalid", non_retryable=True) from err
