"""How an operator's control (an update) judges the session's state: after every event of the
workflow task that brought it, as a status query answered after that task does.

Why a wait is needed, and why it is a timer. The SDK applies an activation's jobs in sets:
updates and signals first, then everything else (a child's end, an activity's result, a timer),
running the workflow's coroutines after each set. An update's validator and handler therefore
run before the other events of their own workflow task are applied, and a condition wait
(`wait_condition(lambda: True)`) resolves in that same first pass, still before them. A status
query is answered in an activation of its own, after all of them, and a query with no workflow
cache replays the history up to its last event. So the status could show `paused` (a task's
end, the child workflow's completion, applied) while a `resume` that came in the same workflow
task as that completion found the session not paused. A timer fires in a later workflow task,
which the SDK applies only after this one: the handler that waits for it sees every event that
was in the history when the control was admitted.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from autopilot.error_types import CONTROL_REFUSED
    from autopilot.models import RetryRequest

# Patch ids (workflow.patched): controls recorded before these judged the state at once; then,
# after a condition wait that the SDK still ran before their workflow task's other events
# (CONTROLS_SEE_SETTLED_STATE); now in the next workflow task (CONTROLS_JUDGE_NEXT_TASK).
CONTROLS_SEE_SETTLED_STATE = "controls-see-settled-state"
CONTROLS_JUDGE_NEXT_TASK = "controls-judge-next-task"
# The shortest timer: what matters is that it fires in a later workflow task.
NEXT_TASK_TIMER = timedelta(milliseconds=1)


async def settled() -> None:
    """Return once every event of the current workflow task has been applied."""
    if workflow.patched(CONTROLS_JUDGE_NEXT_TASK):
        await workflow.sleep(NEXT_TASK_TIMER, summary="judge after this task's events")
    elif workflow.patched(CONTROLS_SEE_SETTLED_STATE):
        await workflow.wait_condition(lambda: True)
    else:
        return  # recorded before either: judged at once


def refused(reason: str) -> ApplicationError:
    """A control the session's state does not allow: the update fails with the reason."""
    return ApplicationError(reason, type=CONTROL_REFUSED, non_retryable=True)


def retry_request(request: str | RetryRequest) -> RetryRequest:
    """A bare task id is what `retry` was sent before `fresh` (recorded histories replay it)."""
    return RetryRequest(task_id=request) if isinstance(request, str) else request
