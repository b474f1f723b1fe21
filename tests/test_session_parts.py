"""The parts SessionWorkflow owns, read and tested on their own, without Temporal: the status
board (entries, revisions, totals, the budget), the scheduler's dependencies, and the rules
each control applies."""

from __future__ import annotations

from typing import get_args

import pytest
from temporalio.exceptions import ApplicationError

from autopilot.error_types import CONTROL_REFUSED
from autopilot.models import (
    AgentRun,
    ResumeRequest,
    TaskOutcome,
    TaskResult,
    TaskState,
)
from tests.workflow_stubs import make_batch, make_plan, make_task, session_request
from workflows.controls import ControlRules, retry_request
from workflows.scheduling import Scheduler
from workflows.session_status import SessionBoard, first_carry

HAND_OFFS = {"ready", "already_merged", "lost"}


def board_of(*, max_cost_usd: float | None = None) -> SessionBoard:
    plan = make_plan(
        make_batch(1, make_task("1"), make_task("2", depends_on=["1"])),
        make_batch(2, make_task("3", batch=2), dependencies=[1]),
    )
    request = session_request(max_cost_usd=max_cost_usd)
    board = SessionBoard(first_carry(request))
    board.track(plan, request)
    return board


def agent_run(attempt: int, *, cost_usd: float, turns: int) -> AgentRun:
    return AgentRun(
        session_id=f"claude-{attempt}",
        attempt=attempt,
        is_error=False,
        cost_usd=cost_usd,
        turns=turns,
    )


def test_a_task_workflow_ends_a_task_in_the_state_of_the_same_word() -> None:
    ended = set(get_args(TaskOutcome)) - HAND_OFFS
    assert {TaskState(outcome) for outcome in ended} <= {
        TaskState.NO_CHANGES,
        TaskState.REJECTED,
        TaskState.CONFLICT,
        TaskState.FAILED,
        TaskState.CANCELLED,
    }


def test_marking_an_entry_changed_gives_it_the_next_revision() -> None:
    board = board_of()
    assert [entry.revision for entry in board.status.tasks] == [1, 2, 3]
    entry = board.task("2")
    board.mark_changed(entry)
    assert entry.revision == board.status.revision == 4


def test_absorbed_runs_add_up_and_the_spent_budget_asks_for_a_pause() -> None:
    board = board_of(max_cost_usd=1.0)
    result = TaskResult(
        task_id="1",
        outcome="ready",
        agent_runs=[agent_run(1, cost_usd=0.75, turns=3), agent_run(2, cost_usd=0.5, turns=2)],
    )
    board.absorb(board.task("1"), result)
    board.recount()
    assert (board.task("1").attempts, board.task("1").turns) == (2, 5)
    assert board.status.cost_usd == 1.25 and board.over_budget()
    board.status.paused = True
    assert not board.over_budget()


def test_a_task_waits_for_its_dependencies_and_is_blocked_by_one_that_did_not_merge() -> None:
    board = board_of()
    scheduler = Scheduler(board)
    batch_1, task_2 = scheduler.find("2")
    assert not scheduler.may_start(task_2)
    board.task("1").state = TaskState.FAILED
    assert scheduler.may_start(task_2)
    assert scheduler.unmet_dependencies(batch_1, task_2) == "Task 1 did not merge"
    batch_2, task_3 = scheduler.find("3")
    assert scheduler.unmet_dependencies(batch_2, task_3) == "batch dependency not met: Batch 1"
    board.task("2").state = board.task("3").state = TaskState.BLOCKED
    assert sorted(scheduler.blocked_by("1")) == ["2", "3"]


def test_controls_are_refused_with_the_reason_the_state_gives() -> None:
    board = board_of()
    rules = ControlRules(board)
    with pytest.raises(ApplicationError, match="the session is not paused") as refused:
        rules.check_resumable(ResumeRequest())
    assert refused.value.type == CONTROL_REFUSED
    board.status.paused, board.status.pause_reason = True, "by hand"
    rules.check_resumable(ResumeRequest())
    with pytest.raises(ApplicationError, match=r"already paused \(by hand\)"):
        rules.check_pausable()
    with pytest.raises(ApplicationError, match="Task 1 is pending; only a task that is"):
        rules.check_retryable("1")
    with pytest.raises(ValueError, match=r"no Task 9 in this session \(tasks: 1, 2, 3\)"):
        rules.known_task("9")
    assert retry_request("2").task_id == "2"
