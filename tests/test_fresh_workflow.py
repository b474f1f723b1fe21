"""`retry --fresh` and `--fresh` in the session's logic, with stand-in activities
(tests/workflow_stubs.py): which of a task's runs prepare their workspace afresh, and what the
status says of the set-aside branch. The git steps: tests/test_fresh_start.py; the whole
pipeline: tests/test_fresh_e2e.py."""

from __future__ import annotations

import io

import pytest
from temporalio.client import Client

from autopilot.models import (
    MergeResult,
    ResumeRequest,
    RetryRequest,
    SessionState,
    SessionStatus,
    TaskState,
    TaskStatus,
    Workspace,
    WorkspaceInput,
)
from autopilot.operate.follow import report
from tests.test_workflows import status_until
from tests.workflow_stubs import (
    Stubs,
    make_batch,
    make_plan,
    make_task,
    review_settings,
    start_session,
    verdict,
    worker,
)
from workflows.session import SessionWorkflow

pytestmark = pytest.mark.timeout(60)

ASIDE = "autopilot/s/1--rejected-0123456789ab"
REJECTED = verdict("request_changes", "wrong", ["it is buggy"])


def fresh_flags(stubs: Stubs, task_id: str) -> list[bool]:
    prepared: list[WorkspaceInput] = stubs.inputs("prepare_workspace", task_id)
    return [request.fresh for request in prepared]


async def rejected_then_retried(
    client: Client, stubs: Stubs, retry: str | RetryRequest
) -> SessionStatus:
    """Task 1 rejected (task 2 blocked by it), retried with `retry`, then merged."""
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2", depends_on=["1"])))
    stubs.script("review_changes", "1", REJECTED)
    fresh_start = Workspace(path="/state/worktrees/1", branch="b", base_sha="head", set_aside=ASIDE)
    stubs.script("prepare_workspace", "1", Workspace(path="/w/1", branch="b", base_sha="base"))
    stubs.script("prepare_workspace", "1", fresh_start)
    review = review_settings("agent", rounds=1, on_failure="pause")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, review=review)
        paused = await status_until(handle, lambda s: s.paused, "the rejection to pause it")
        assert paused.task("1").state == TaskState.REJECTED
        assert paused.task("2").state == TaskState.BLOCKED

        retried = await handle.execute_update(SessionWorkflow.retry, retry)
        await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        status = await handle.result()

    assert status.status == SessionState.COMPLETED, status.error
    assert retried.task("2").retries == 1 and not retried.task("2").fresh_start
    return status


async def test_retry_fresh_prepares_only_that_run_afresh(client: Client, stubs: Stubs) -> None:
    status = await rejected_then_retried(client, stubs, RetryRequest(task_id="1", fresh=True))

    assert fresh_flags(stubs, "1") == [False, True]
    assert fresh_flags(stubs, "2") == [False]  # a blocked dependant has no branch to set aside
    assert status.task("1").set_aside == [ASIDE]
    assert not status.task("1").fresh_start  # used up by the run it was meant for


async def test_a_bare_task_id_retries_from_the_branch_as_before(
    client: Client, stubs: Stubs
) -> None:
    await rejected_then_retried(client, stubs, "1")  # the payload sent before `fresh`

    assert fresh_flags(stubs, "1") == [False, False]


async def test_a_fresh_session_starts_each_task_afresh_once(client: Client, stubs: Stubs) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    # Task 1's branch conflicts with the target: its conflict round goes on from its branch.
    stubs.script("merge_task", "1", MergeResult(merged=False, conflict=True, message="clash"))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, fresh=True)
        status = await handle.result()

    assert status.status == SessionState.COMPLETED, status.error
    assert fresh_flags(stubs, "1") == [True, False]
    assert fresh_flags(stubs, "2") == [True]


def test_the_report_of_a_rejection_offers_a_fresh_rerun() -> None:
    final = SessionStatus(
        id="s1",
        status=SessionState.INCOMPLETE,
        repo="/r",
        plan_path="/p.md",
        target_branch="main",
        concurrency=1,
        tasks=[TaskStatus(id="1", title="One", batch=1, state=TaskState.REJECTED)],
    )
    out = io.StringIO()
    report(final, "", out, rerun="python starter.py plan.md")
    assert "Add --fresh to start every unmerged task from main's head instead" in out.getvalue()

    out = io.StringIO()
    report(final, "", out, rerun="python starter.py plan.md --fresh")
    assert "--fresh to start" not in out.getvalue()
