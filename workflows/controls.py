"""How an operator's control (an update) judges the session's state: after every event of the
workflow task that brought it, as a status query answered after that task does.

Why a wait is needed, and why it is a timer. The SDK applies an activation's jobs in sets:
updates and signals first, then everything else (a child's end, an activity's result, a timer),
running the workflow's coroutines after each set. An update's validator and handler therefore
run before the other events of their own workflow task are applied, and a condition wait
(`wait_condition(lambda: True)`) resolves in that same first pass, still before them. A status
query is answered in an activation of its own, after all of them. So the status could show
`paused` (a task's end, the child workflow's completion, applied) while a `resume` that came in
the same workflow task as that completion found the session not paused
(tests/test_control_race.py reproduces it). A timer fires in a later workflow task,
which the SDK applies only after this one: the handler that waits for it sees every event that
was in the history when the control was admitted.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from autopilot.error_types import CONTROL_REFUSED
    from autopilot.models import (
        ACTIVE_SESSION_STATES,
        FINISHED_TASK_STATES,
        RETRYABLE_TASK_STATES,
        ResumeRequest,
        RetryRequest,
        TaskState,
        TaskStatus,
    )
    from workflows.session_status import SessionBoard

# Patch id (workflow.patched): controls recorded before it judged the state at once; now in the
# next workflow task. (controls-see-settled-state, a condition wait in between, never shipped:
# removed, docs/VERSIONING.md.)
CONTROLS_JUDGE_NEXT_TASK = "controls-judge-next-task"
# The shortest timer: what matters is that it fires in a later workflow task.
NEXT_TASK_TIMER = timedelta(milliseconds=1)


async def settled() -> None:
    """Return once every event of the current workflow task has been applied."""
    if workflow.patched(CONTROLS_JUDGE_NEXT_TASK):
        await workflow.sleep(NEXT_TASK_TIMER, summary="judge after this task's events")
    else:
        return  # recorded before: judged at once


def refused(reason: str) -> ApplicationError:
    """A control the session's state does not allow: the update fails with the reason."""
    return ApplicationError(reason, type=CONTROL_REFUSED, non_retryable=True)


def retry_request(request: str | RetryRequest) -> RetryRequest:
    """A bare task id is what `retry` was sent before `fresh` (recorded histories replay it)."""
    return RetryRequest(task_id=request) if isinstance(request, str) else request


class ControlRules:
    """What each control requires of the session's state, and the reason it is refused with.
    Validators raise ValueError (the update is rejected, nothing in the history); handlers,
    once `settled`, raise `refused` (the update fails with the reason)."""

    def __init__(self, board: SessionBoard) -> None:
        self._board = board

    def require_active(self) -> None:
        status = self._board.status
        if status.status not in ACTIVE_SESSION_STATES:
            raise ValueError(f"the session has finished ({status.status.value})")

    def require_not_cancelling(self) -> None:
        if self._board.cancelling:
            raise ValueError("the session is being cancelled")

    def known_task(self, task_id: str) -> TaskStatus:
        try:
            return self._board.task(task_id)
        except KeyError:
            known = ", ".join(task.id for task in self._board.status.tasks) or "none yet"
            raise ValueError(f"no Task {task_id} in this session (tasks: {known})") from None

    def check_pausable(self) -> None:
        status = self._board.status
        if status.paused:
            raise refused(f"the session is already paused ({status.pause_reason})")

    def check_resumable(self, request: ResumeRequest) -> None:
        status = self._board.status
        if not status.paused:
            raise refused("the session is not paused")
        budget = request.max_cost_usd if request.max_cost_usd is not None else status.max_cost_usd
        if budget is not None and status.cost_usd >= budget:
            raise refused(
                f"the session has spent ${status.cost_usd:.2f} of its "
                f"${budget:.2f} budget; resume with a higher --max-cost-usd"
            )

    def check_skippable(self, task_id: str) -> None:
        entry = self._board.task(task_id)
        # A task on the forge may wait days for people: skipping it stops the watch of its
        # pull request (which stays open for them); a merge of the session's own is too late.
        merging = entry.state == TaskState.MERGING and entry.pull_request is None
        if entry.state in FINISHED_TASK_STATES or merging:
            raise refused(f"Task {task_id} is already {entry.state.value}")

    def check_retryable(self, task_id: str) -> None:
        entry = self._board.task(task_id)
        if entry.state not in RETRYABLE_TASK_STATES:
            allowed = ", ".join(sorted(state.value for state in RETRYABLE_TASK_STATES))
            raise refused(
                f"Task {task_id} is {entry.state.value}; only a task that is {allowed} "
                "can be retried"
            )

    def check_concurrency(self, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 (got {concurrency})")
