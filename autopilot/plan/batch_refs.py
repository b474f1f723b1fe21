"""`--start-batch` / `--end-batch` values: a batch number as its heading writes it (`### Batch
31` is 31), or a task id (`3.1.1`, `31.2`): the batch that holds that task. A plan numbering
its batches per phase (`### Batch 1` under `## Phase 3`) is selected by the numbers as written,
or by the id of a task in the batch."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from autopilot.models import Plan
from autopilot.plan.parser import PlanError, PlanIssue, load_plan

__all__ = ["BatchRef", "batch_numbers", "batch_ref"]

BatchRef = int | str  # a batch number, or the id of a task in the batch
_TASK_ID_RE = re.compile(r"^\d+(?:\.\d+)+[a-z]?$", re.IGNORECASE | re.ASCII)


def batch_ref(text: str) -> BatchRef:
    """The argparse type of the flags: an int (its range is checked with the other numbers),
    or a dotted task id."""
    value = text.strip()
    try:
        return int(value)
    except ValueError:
        pass
    if _TASK_ID_RE.match(value):
        return value
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a batch number (31) nor a task id (3.1.1)"
    )


def batch_numbers(
    plan_path: Path, start: BatchRef | None, end: BatchRef | None
) -> tuple[int | None, int | None]:
    """The batch numbers the flags mean; a task id is looked up in the plan (`PlanError`
    when no batch that runs holds it)."""
    if not isinstance(start, str) and not isinstance(end, str):
        return start, end
    plan = load_plan(plan_path)
    return _number(plan, start, "--start-batch"), _number(plan, end, "--end-batch")


def _number(plan: Plan, ref: BatchRef | None, flag: str) -> int | None:
    if not isinstance(ref, str):
        return ref
    wanted = ref.lower()
    for batch in plan.batches:
        if any(task.id.lower() == wanted for task in batch.tasks):
            return batch.number
    done = next((task for task in plan.done_tasks if task.id.lower() == wanted), None)
    message = (
        f"{flag} {ref}: Task {ref} is marked done (line {done.line}), so no batch runs it;"
        " give a task or batch that is still to run"
        if done is not None
        else f"{flag} {ref}: no task {ref} in this plan; give a batch number or the id of a task"
        " in the batch"
    )
    raise PlanError(plan.path, [PlanIssue(line=0, message=message)])
