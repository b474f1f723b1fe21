"""Workflow logic, fast: SessionWorkflow and TaskWorkflow on the real Temporal dev server with
stand-in activities (tests/workflow_stubs.py) that return scripted results.

The real activities are tested elsewhere with real git and the real CLI. Here every worker runs
without a workflow cache, so every workflow task replays its history so far; one test also
replays finished histories with the Replayer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Replayer

from activities.merge import merge_task as merge_activity
from autopilot.error_types import CHECKOUT_IN_THE_WAY, WORKSPACE_SETUP_FAILED
from autopilot.infra import search_attributes
from autopilot.models import (
    AgentInput,
    AgentProgress,
    AgentRun,
    AgentSettings,
    MergeInput,
    MergeResult,
    ResumeRequest,
    ReviewerInput,
    ReviewMode,
    SessionCarry,
    SessionRequest,
    SessionState,
    SessionStatus,
    SetupResult,
    TargetMergeResult,
    TaskRequest,
    TaskResult,
    TaskState,
    Workspace,
    WorkspaceSettings,
)
from autopilot.operate.task_details import with_details
from autopilot.plan import snapshots as plan_snapshots
from tests.gitutil import commit_file, git, head, isolate_git, make_repo, write
from tests.workflow_stubs import (
    CHECK,
    DEFAULT,
    RUN_TIMEOUT,
    STATE_DIR,
    TARGET,
    Stubs,
    check,
    commits,
    failed_run,
    make_batch,
    make_plan,
    make_task,
    review_settings,
    start_session,
    task_request,
    verdict,
    worker,
)
from workflows.session import SessionWorkflow
from workflows.task import AGENT_BACKOFF, TaskWorkflow

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")
DEADLINE_S = 15.0  # for any one wait on the workflows; a passing test never comes close


# -- helpers -------------------------------------------------------------------------------------


async def until(condition: Callable[[], T], what: str, timeout: float = DEADLINE_S) -> T:
    """Poll a condition on the stand-ins' records until it holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.02)


async def status_until(
    handle: WorkflowHandle[Any, SessionStatus],
    condition: Callable[[SessionStatus], bool],
    what: str,
    timeout: float = DEADLINE_S,
) -> SessionStatus:
    """Poll the session's `status` query until the condition holds; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: SessionStatus | None = None
    while True:
        try:
            last = await handle.query(SessionWorkflow.status)
            if condition(last):
                return last
        except WorkflowQueryFailedError:
            pass  # not started yet
        except KeyError:
            pass  # the plan is not parsed yet: no tasks
        if time.monotonic() > deadline:
            shown = last.model_dump_json(indent=1) if last else "no status"
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}:\n{shown}")
        await asyncio.sleep(0.05)


async def run_task(client: Client, stubs: Stubs, request: TaskRequest) -> TaskResult:
    async with worker(client, stubs) as queue:
        return await client.execute_workflow(
            TaskWorkflow.run,
            request,
            id=f"task-test-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=RUN_TIMEOUT,
        )


async def run_session(client: Client, stubs: Stubs, **request: Any) -> SessionStatus:
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, **request)
        return await handle.result()


async def update_error(call: Awaitable[object]) -> str:
    """The message of the update's rejection (from its validator)."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await call
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), repr(cause)
    return cause.message


def agents_active(stubs: Stubs, count: int) -> Callable[[], bool]:
    return lambda: stubs.active_agents == count


def agent_error(run: AgentRun, *, non_retryable: bool = False) -> ApplicationError:
    """What the real run_agent raises: the failed attempt in the details."""
    assert run.error is not None and run.error_type is not None
    return ApplicationError(run.error, run, type=run.error_type, non_retryable=non_retryable)


async def histories_of(client: Client, session_id: str) -> list[WorkflowHistory]:
    """The session's history and those of every child it started."""
    session = await client.get_workflow_handle(session_id).fetch_history()
    children = [
        event.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
        for event in session.events
        if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
    ]
    return [session] + [await client.get_workflow_handle(wid).fetch_history() for wid in children]


# -- TaskWorkflow: review modes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "called"),
    [
        ("none", []),
        ("checks", ["run_checks"]),
        ("agent", ["review_changes"]),
        ("both", ["run_checks", "review_changes"]),
    ],
)
async def test_review_mode_decides_what_reviews(
    client: Client, stubs: Stubs, mode: ReviewMode, called: list[str]
) -> None:
    stubs.script("run_checks", "1", [check(True, "all green")])
    result = await run_task(
        client, stubs, task_request(make_task("1"), review=review_settings(mode))
    )

    assert result.outcome == "ready", result.error
    # the agent's activity commits what it left: no commit step of its own
    assert stubs.names() == ["prepare_workspace", "run_agent", *called]
    (job,) = stubs.inputs("run_agent")
    assert job.commit is not None
    assert (job.commit.workspace_path, job.commit.base_sha) == ("/state/worktrees/1", "base")
    assert job.commit.message == "Task 1: Do 1"
    assert result.commits[0].sha == "c-1"
    assert [run.session_id for run in result.agent_runs] == ["claude-1-r1-a1"]
    (review,) = result.reviews
    assert review.approved and review.findings == []
    if mode == "none":
        # Nothing reviews: the round is recorded as approved with nothing checked.
        assert review.summary == "approved; no review configured"
        assert (review.checks, review.verdict, review.reviewer_cost_usd) == ([], None, 0.0)
        return
    if mode in ("agent", "both"):
        (given,) = stubs.inputs("review_changes")
        assert isinstance(given, ReviewerInput) and given.round == 1
        # the reviewer reads the round's check results, when there are any
        assert given.checks == ([check(True, "all green")] if mode == "both" else [])
        assert review.reviewer_cost_usd == 0.25


async def test_failed_check_sends_the_review_back_to_the_agents_session(
    client: Client, stubs: Stubs
) -> None:
    stubs.script("run_checks", "1", [check(False, "FAILED test_x")], [check(True)])
    result = await run_task(
        client, stubs, task_request(make_task("1"), review=review_settings("checks", rounds=3))
    )

    assert result.outcome == "ready", result.error
    assert [review.approved for review in result.reviews] == [False, True]
    first, second = stubs.inputs("run_agent")
    assert (first.purpose, first.round, first.resume_session) == ("task", 1, None)
    assert second.purpose == "fix" and second.round == 2
    assert second.review == result.reviews[0]
    assert "FAILED test_x" in second.review.findings[0].message
    assert second.resume_session == result.agent_runs[0].session_id == "claude-1-r1-a1"
    assert all(run.commit is not None for run in result.agent_runs)  # each round committed
    assert not stubs.inputs("commit_changes")


async def test_reviewer_requesting_changes_every_round_rejects(
    client: Client, stubs: Stubs
) -> None:
    asks = verdict("request_changes", "not yet", ["handle the empty list\nsee line 3"])
    stubs.script("review_changes", "1", asks, asks)
    result = await run_task(
        client, stubs, task_request(make_task("1"), review=review_settings("agent", rounds=2))
    )

    assert result.outcome == "rejected"
    assert result.error is not None
    assert "2 review round(s)" in result.error and "handle the empty list" in result.error
    assert "see line 3" not in result.error  # first line of each finding only
    assert len(result.reviews) == 2 and len(result.agent_runs) == 2
    assert [job.purpose for job in stubs.inputs("run_agent")] == ["task", "fix"]


async def test_no_changes_ends_without_review(client: Client, stubs: Stubs) -> None:
    stubs.script("commit_changes", "1", commits("1", no_changes=True))
    result = await run_task(
        client, stubs, task_request(make_task("1"), review=review_settings("both"))
    )

    assert result.outcome == "no_changes"
    assert result.reviews == [] and result.commits == []
    assert stubs.names() == ["prepare_workspace", "run_agent", "commit_changes"]


async def test_a_commit_that_failed_after_the_agent_is_done_by_the_commit_step(
    client: Client, stubs: Stubs
) -> None:
    # a scripted commit step: the stand-in run_agent leaves commit=None, as the real one
    # does when its commit fails (a lock, say)
    stubs.script("commit_changes", "1", DEFAULT)
    result = await run_task(
        client, stubs, task_request(make_task("1"), review=review_settings("none"))
    )

    assert result.outcome == "ready", result.error
    assert stubs.names() == ["prepare_workspace", "run_agent", "commit_changes"]
    assert result.commits[0].sha == "c-1"
    assert result.agent_runs[0].commit is None


# -- TaskWorkflow: the agent's attempts ----------------------------------------------------------


async def test_retryable_agent_error_is_recorded_and_retried_after_backoff(
    client: Client, stubs: Stubs
) -> None:
    """The one test that waits out AGENT_BACKOFF (5 s): the default backoff, no retry-after."""
    overloaded = failed_run("AgentApiError", "API overloaded (529)", cost=0.1)
    stubs.script("run_agent", "1", agent_error(overloaded))
    request = task_request(make_task("1"))
    async with worker(client, stubs) as queue:
        handle = await client.start_workflow(
            TaskWorkflow.run,
            request,
            id=f"task-test-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=RUN_TIMEOUT,
        )
        result = await handle.result()
    history = await handle.fetch_history()

    assert result.outcome == "ready", result.error
    assert result.agent_runs[0] == overloaded
    assert result.agent_runs[1].session_id == "claude-1-r1-a2"
    assert [job.attempt for job in stubs.inputs("run_agent")] == [1, 2]
    timers = [
        event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers == [AGENT_BACKOFF]


async def test_rate_limited_fix_attempt_waits_the_reset_and_starts_a_fresh_session(
    client: Client, stubs: Stubs
) -> None:
    limited = failed_run("AgentRateLimited", "rate limited", attempt=1, retry_after_s=0.5)
    stubs.script("run_checks", "1", [check(False, "boom")], [check(True)])
    stubs.script("run_agent", "1", DEFAULT, agent_error(limited))
    result = await run_task(
        client, stubs, task_request(make_task("1"), review=review_settings("checks"))
    )

    assert result.outcome == "ready", result.error
    task_job, fix_try, fix_retry = stubs.inputs("run_agent")
    assert (fix_try.purpose, fix_try.attempt, fix_try.resume_session) == (
        "fix",
        1,
        "claude-1-r1-a1",
    )
    # whatever went wrong, the retry starts afresh rather than resuming
    assert (fix_retry.purpose, fix_retry.attempt, fix_retry.resume_session) == ("fix", 2, None)
    assert task_job.purpose == "task"
    assert [run.is_error for run in result.agent_runs] == [False, True, False]


async def test_non_retryable_agent_error_fails_the_task_at_once(
    client: Client, stubs: Stubs
) -> None:
    auth = failed_run("AgentAuth", "Invalid API key · please run /login", cost=0.0)
    stubs.script("run_agent", "1", agent_error(auth, non_retryable=True))
    result = await run_task(client, stubs, task_request(make_task("1")))

    assert result.outcome == "failed"
    assert result.error == "agent: Invalid API key · please run /login"
    assert result.agent_runs == [auth]
    assert stubs.names() == ["prepare_workspace", "run_agent"]


async def test_lost_agent_is_recorded_from_its_last_heartbeat(client: Client, stubs: Stubs) -> None:
    async def hang(job: AgentInput) -> AgentRun:
        activity.heartbeat(
            AgentProgress(session_id="claude-lost", turns=7, transcript_path="/t/lost.jsonl")
        )
        await asyncio.Event().wait()  # until the worker shuts down and cancels it
        raise AssertionError("unreachable")

    stubs.script("run_agent", "1", hang)
    agent = AgentSettings(heartbeat_timeout_s=1, max_attempts=1)
    result = await run_task(client, stubs, task_request(make_task("1"), agent=agent))

    # Lost is not failed: with one attempt allowed, the run after the loss still finishes.
    assert result.outcome == "ready", result.error
    lost, done = result.agent_runs
    assert (lost.error_type, lost.session_id, lost.turns) == ("RunLost", "claude-lost", 7)
    assert lost.transcript_path == "/t/lost.jsonl" and lost.is_error and lost.lost
    assert result.lost_runs == 1 and not done.is_error
    # The CLI never announced that session: a fresh one in the same worktree, told so.
    first, second = stubs.inputs("run_agent")
    assert (first.lost_before, second.attempt, second.lost_before) == (0, 1, 1)
    assert second.resume_session is None and second.after_loss


# -- TaskWorkflow: the conflict round and an earlier merge ---------------------------------------


async def test_conflict_round_gives_the_agent_the_conflicting_files(
    client: Client, stubs: Stubs
) -> None:
    stubs.script(
        "merge_target", "1", TargetMergeResult(clean=False, conflict_files=["a.py", "b.py"])
    )
    request = task_request(make_task("1"), review=review_settings("checks"), resolve_conflict=True)
    result = await run_task(client, stubs, request)

    assert result.outcome == "ready", result.error
    (job,) = stubs.inputs("run_agent")
    assert (job.purpose, job.conflict_files) == ("conflict", ["a.py", "b.py"])
    assert stubs.names() == ["prepare_workspace", "merge_target", "run_agent", "run_checks"]
    assert stubs.inputs("merge_target")[0].target_branch == TARGET


async def test_conflict_round_leaving_conflicts_ends_in_conflict(
    client: Client, stubs: Stubs
) -> None:
    stubs.script("merge_target", "1", TargetMergeResult(clean=False, conflict_files=["a.py"]))
    stubs.script(
        "commit_changes",
        "1",
        ApplicationError(
            "conflict markers remain in a.py", type="ConflictsRemain", non_retryable=True
        ),
    )
    request = task_request(make_task("1"), review=review_settings("both"), resolve_conflict=True)
    result = await run_task(client, stubs, request)

    assert result.outcome == "conflict"
    assert result.error is not None and "conflict markers remain in a.py" in result.error
    assert result.reviews == []
    assert "run_checks" not in stubs.names() and "review_changes" not in stubs.names()


async def test_clean_conflict_round_goes_straight_to_review(client: Client, stubs: Stubs) -> None:
    request = task_request(make_task("1"), review=review_settings("agent"), resolve_conflict=True)
    result = await run_task(client, stubs, request)

    assert result.outcome == "ready", result.error
    assert result.agent_runs == []
    assert stubs.names() == [
        "prepare_workspace",
        "merge_target",
        "commit_changes",
        "review_changes",
    ]


async def test_already_merged_task_does_nothing_more(client: Client, stubs: Stubs) -> None:
    stubs.script(
        "prepare_workspace",
        "1",
        Workspace(
            path="", branch="autopilot/x/task-1", base_sha="b", already_merged=True, merge_sha="m9"
        ),
    )
    result = await run_task(
        client, stubs, task_request(make_task("1"), review=review_settings("both"))
    )

    assert (result.outcome, result.merge_sha, result.branch) == (
        "already_merged",
        "m9",
        "autopilot/x/task-1",
    )
    assert stubs.names() == ["prepare_workspace"]


# -- SessionWorkflow: order, dependencies, concurrency -------------------------------------------


async def test_batches_run_in_order_and_dependants_wait_for_the_merge(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(
        make_batch(1, make_task("1.1"), make_task("1.2"), make_task("1.3", depends_on=["1.1"])),
        make_batch(2, make_task("2.1", 2), make_task("2.2", 2, ["1.2"]), dependencies=[1]),
    )
    status = await run_session(client, stubs, concurrency=3)

    assert status.status == SessionState.COMPLETED, status.error
    merges = [tid for name, tid, _ in stubs.calls if name == "merge_task"]
    assert sorted(merges) == ["1.1", "1.2", "1.3", "2.1", "2.2"]
    assert merges.index("1.1") < merges.index("1.3")
    assert stubs.index("merge_task", "1.1") < stubs.index("run_agent", "1.3")
    last_batch_one = max(stubs.index("merge_task", tid) for tid in ("1.1", "1.2", "1.3"))
    assert last_batch_one < min(stubs.index("prepare_workspace", tid) for tid in ("2.1", "2.2"))
    assert stubs.inputs("parse_plan")[0].plan_path == "/plan.md"
    assert all(task.state == TaskState.MERGED for task in status.tasks)
    assert {task.id: task.merge_sha for task in status.tasks}["1.3"] == "m-1.3"
    # each worktree goes with its merge: no separate removal step
    worktrees = {request.task_id: request.workspace_path for request in stubs.inputs("merge_task")}
    assert worktrees == {
        tid: f"/state/worktrees/{tid}" for tid in ("1.1", "1.2", "1.3", "2.1", "2.2")
    }
    assert not stubs.inputs("remove_workspace")


async def test_at_most_concurrency_agents_run_at_once(client: Client, stubs: Stubs) -> None:
    ids = ["1", "2", "3", "4"]
    stubs.plan = make_plan(make_batch(1, *(make_task(tid) for tid in ids)))
    stubs.hold(*ids)
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=2)
        released: list[str] = []
        while len(released) < len(ids):
            expected = min(2, len(ids) - len(released))
            await until(
                lambda: (
                    len(stubs.inputs("run_agent")) >= len(released) + 2
                    or len(stubs.inputs("run_agent")) == len(ids)
                ),
                f"agents to start after {len(released)} finished",
            )
            # Once the released ones merged, the session has started whatever it will start.
            status = await status_until(
                handle,
                lambda s: all(s.task(tid).state == TaskState.MERGED for tid in released),
                f"{released} to merge",
            )
            running = [task.id for task in status.tasks if task.state == TaskState.RUNNING]
            assert len(running) == expected, f"running at once: {running}"
            await until(agents_active(stubs, expected), f"{expected} held agents")
            stubs.release(running[0])
            released.append(running[0])
        status = await handle.result()

    assert status.status == SessionState.COMPLETED
    assert stubs.peak_agents == 2
    assert status.tasks_completed == 4


# -- SessionWorkflow: failures -------------------------------------------------------------------


async def test_failed_dependency_blocks_its_dependant_and_the_next_batch(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(
        make_batch(1, make_task("1"), make_task("2", depends_on=["1"]), make_task("3")),
        make_batch(2, make_task("4", 2), dependencies=[1]),
    )
    broken = failed_run("AgentError", "not logged in")
    stubs.script("run_agent", "1", agent_error(broken))
    status = await run_session(client, stubs, concurrency=2, agent=AgentSettings(max_attempts=1))

    states = {task.id: task.state for task in status.tasks}
    assert states == {
        "1": TaskState.FAILED,
        "2": TaskState.BLOCKED,
        "3": TaskState.MERGED,
        "4": TaskState.BLOCKED,
    }
    assert status.status == SessionState.INCOMPLETE
    errors = {task.id: task.last_error for task in status.tasks}
    assert errors["1"] == "agent: not logged in"
    assert errors["2"] == "Task 1 did not merge"
    assert errors["4"] == "batch dependency not met: Batch 1"
    assert not stubs.inputs("run_agent", "2") and not stubs.inputs("prepare_workspace", "4")
    assert status.tasks_completed == 1 and status.tasks_total == 4
    assert status.task("1").completed_at is not None


async def test_merge_conflict_gets_one_conflict_round_then_merges(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.script(
        "merge_task", "1", MergeResult(merged=False, conflict=True, conflict_files=["x.py"])
    )
    stubs.script("merge_target", "1", TargetMergeResult(clean=False, conflict_files=["x.py"]))
    status = await run_session(client, stubs, review=review_settings("checks"))

    assert status.status == SessionState.COMPLETED, status.error
    task = status.task("1")
    assert (task.state, task.conflict_round, task.merge_sha) == (TaskState.MERGED, True, "m-1")
    assert task.workflow_id == f"{status.id}/task-1/conflict"
    jobs = stubs.inputs("run_agent")
    assert [(job.purpose, job.request.resolve_conflict) for job in jobs] == [
        ("task", False),
        ("conflict", True),
    ]
    assert jobs[1].conflict_files == ["x.py"]
    assert len(stubs.inputs("merge_task")) == 2 and task.review_rounds == 2
    assert task.attempts == 2
    # the worktree stays for the conflict round and goes with the merge that lands
    assert not stubs.inputs("remove_workspace")


async def test_merge_conflicting_after_the_conflict_round_ends_in_conflict(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    conflict = MergeResult(merged=False, conflict=True, conflict_files=["x.py", "y.py"])
    stubs.script("merge_task", "1", conflict, conflict)
    status = await run_session(client, stubs)

    task = status.task("1")
    assert (task.state, task.conflict_round) == (TaskState.CONFLICT, True)
    assert task.last_error is not None
    assert "after the conflict round (x.py, y.py)" in task.last_error
    assert f"{TARGET} untouched" in task.last_error
    assert status.status == SessionState.INCOMPLETE
    assert len(stubs.inputs("merge_task")) == 2
    assert [request.task_id for request in stubs.inputs("remove_workspace")] == ["1"]


async def test_a_workspace_the_merge_could_not_remove_is_removed_after_it(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    kept = MergeResult(merged=True, merge_sha="m-1", workspace_removed=False)
    stubs.script("merge_task", "1", kept)
    stubs.script("run_agent", "2", agent_error(failed_run("AgentCrash", "boom")))
    status = await run_session(client, stubs, agent=AgentSettings(max_attempts=1))

    assert status.task("1").state == TaskState.MERGED
    assert status.task("2").state == TaskState.FAILED
    # task 1: the merge landed but left its worktree; task 2 never reached a merge
    assert sorted(request.task_id for request in stubs.inputs("remove_workspace")) == ["1", "2"]
    assert [request.task_id for request in stubs.inputs("merge_task")] == ["1"]


async def test_a_failed_task_workflow_says_why(client: Client, stubs: Stubs) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.script(
        "prepare_workspace",
        "1",
        ApplicationError("/repo is not a git repository", type="RepoUnusable", non_retryable=True),
    )
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue)
        # An unusable repo would fail every task: the session pauses and says why.
        paused = await status_until(handle, lambda s: s.paused, "the session to pause")
        await handle.execute_update(SessionWorkflow.cancel, "stop")
        status = await handle.result()

    task = status.task("1")
    assert task.state == TaskState.FAILED
    assert task.last_error is not None and "/repo is not a git repository" in task.last_error
    assert "(RepoUnusable)" in (paused.pause_reason or "")


async def test_unparseable_plan_fails_the_session(client: Client, stubs: Stubs) -> None:
    stubs.script(
        "parse_plan",
        "",
        ApplicationError("no tasks found in /plan.md", type="PlanInvalid", non_retryable=True),
    )
    status = await run_session(client, stubs, start_batch=2, end_batch=3)

    assert status.status == SessionState.FAILED
    assert status.error == "plan: no tasks found in /plan.md [PlanInvalid]"
    assert status.completed_at is not None and status.tasks == []
    (parsed,) = stubs.inputs("parse_plan")  # non-retryable: asked once
    assert (parsed.start_batch, parsed.end_batch) == (2, 3)


# -- SessionWorkflow: pause and resume -----------------------------------------------------------


async def test_pause_holds_new_tasks_until_resume(client: Client, stubs: Stubs) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.hold("1")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=1)
        await until(lambda: stubs.inputs("run_agent", "1"), "task 1's agent to start")
        assert await update_error(
            handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        ) == ("the session is not paused")

        paused = await handle.execute_update(SessionWorkflow.pause, "lunch")
        assert (paused.paused, paused.pause_reason) == (True, "lunch")
        assert await update_error(handle.execute_update(SessionWorkflow.pause, "again")) == (
            "the session is already paused (lunch)"
        )

        # the running task finishes and merges; the next one does not start
        stubs.release("1")
        status = await status_until(
            handle, lambda s: s.task("1").state == TaskState.MERGED, "task 1 to merge"
        )
        assert status.paused and status.task("2").state == TaskState.PENDING
        assert not stubs.inputs("prepare_workspace", "2")

        resumed = await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        assert (resumed.paused, resumed.pause_reason) == (False, None)
        status = await handle.result()

        assert status.status == SessionState.COMPLETED
        assert stubs.index("merge_task", "1") < stubs.index("prepare_workspace", "2")
        # the session has finished: neither update is accepted any more
        for update in (
            handle.execute_update(SessionWorkflow.pause, "late"),
            handle.execute_update(SessionWorkflow.resume, ResumeRequest()),
        ):
            with pytest.raises(RPCError, match="workflow execution already completed"):
                await update


async def test_on_failure_pause_pauses_the_session_with_the_reason(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    asks = verdict("request_changes", "wrong file", ["edit b.py, not a.py"])
    stubs.script("review_changes", "1", asks)
    review = review_settings("agent", rounds=1, on_failure="pause")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=1, review=review)
        status = await status_until(handle, lambda s: s.paused, "the session to pause")

        assert status.status == SessionState.RUNNING
        assert status.pause_reason is not None
        assert status.pause_reason.startswith("Task 1 ended rejected: still not approved")
        assert "edit b.py, not a.py" in status.pause_reason
        assert status.task("1").state == TaskState.REJECTED
        assert status.task("2").state == TaskState.PENDING
        assert not stubs.inputs("run_agent", "2")

        await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        status = await handle.result()

    assert status.status == SessionState.INCOMPLETE
    assert status.task("2").state == TaskState.MERGED and not status.paused


async def test_a_failure_at_the_end_waits_paused_for_the_operator(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    broken = failed_run("AgentError", "logged out")
    stubs.script("run_agent", "1", agent_error(broken))
    async with worker(client, stubs) as queue:
        handle = await start_session(
            client,
            queue,
            review=review_settings(on_failure="pause"),
            agent=AgentSettings(max_attempts=1),
        )
        paused = await status_until(handle, lambda s: s.paused, "the session to pause")
        assert paused.status == SessionState.RUNNING
        reason = paused.pause_reason or ""
        assert reason.startswith("Task 1 ended failed: agent: logged out — ")
        # Which command fits: a retry, then resume (or resume --reload-config after a fix).
        assert f"`starter.py retry {handle.id} 1`" in reason
        assert f"`starter.py resume {handle.id}`" in reason
        assert f"`resume --reload-config {handle.id}`" in reason
        published = (await handle.describe()).typed_search_attributes
        assert published.get(search_attributes.STATUS) == "Paused"

        await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        status = await handle.result()

    assert status.status == SessionState.INCOMPLETE and not status.paused
    published = (await handle.describe()).typed_search_attributes
    assert published.get(search_attributes.STATUS) == "Incomplete"


@pytest.mark.reliability(
    "an approved task's commit adds a .env where the user's checkout has its own ignored one "
    "(--on-failure pause)",
    "stand-ins with the real merge activity on a real repo: the merge is asked once, the task "
    "fails with the reason and the retry command, the session pauses; after the user moves "
    "the file, retry merges it",
)
async def test_a_checkout_in_the_way_fails_the_task_with_the_way_forward(
    client: Client, stubs: Stubs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path / "home")
    repo = make_repo(tmp_path / "repo")
    commit_file(repo, ".gitignore", ".env\n")
    git(repo, "checkout", "-q", "-b", "approved")
    write(repo, ".env", "TOKEN=from-the-task\n")
    git(repo, "add", "-f", ".env")
    git(repo, "commit", "-q", "-m", "the task's work")
    git(repo, "checkout", "-q", "main")
    write(repo, ".env", "TOKEN=secret\n")
    before = head(repo, "main")

    async def real_merge(request: MergeInput) -> MergeResult:
        on_disk = {"repo": str(repo), "branch": "approved", "workspace_path": None, "site": None}
        return await merge_activity(request.model_copy(update=on_disk))

    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.script("merge_task", "1", real_merge, real_merge)
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, review=review_settings(on_failure="pause"))
        paused = await status_until(handle, lambda s: s.paused, "the session to pause")

        task = paused.task("1")
        assert task.state == TaskState.FAILED and task.last_error is not None
        assert task.last_error.startswith("merge: cannot merge into 'main': its checkout at ")
        assert ".env" in task.last_error and "Move them out of the way" in task.last_error
        assert "`python starter.py retry 1`" in task.last_error
        assert task.last_error.endswith(f"[{CHECKOUT_IN_THE_WAY}]")
        assert (paused.pause_reason or "").startswith(f"Task 1 ended failed: {task.last_error} — ")
        assert len(stubs.inputs("merge_task", "1")) == 1  # refused at once, not retried
        assert head(repo, "main") == before
        assert (repo / ".env").read_text() == "TOKEN=secret\n"

        (repo / ".env").rename(repo / ".env.mine")  # the user moves it, then retries
        await handle.execute_update(SessionWorkflow.retry, "1")
        await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        status = await handle.result()

    assert status.status == SessionState.COMPLETED
    assert status.task("1").merge_sha == head(repo, "main") != before
    assert (repo / ".env").read_text() == "TOKEN=from-the-task\n"
    assert (repo / ".env.mine").read_text() == "TOKEN=secret\n"


# -- SessionWorkflow: status ---------------------------------------------------------------------


async def test_status_reports_progress_attempts_cost_and_transcripts(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(
        make_batch(1, make_task("1")), make_batch(2, make_task("2", 2), dependencies=[1])
    )
    limited = failed_run("AgentRateLimited", "slow down", cost=0.1, retry_after_s=0.2)
    stubs.script("run_agent", "1", agent_error(limited))
    stubs.hold("1")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, review=review_settings("agent"))
        running = await status_until(
            handle, lambda s: s.task("1").state == TaskState.RUNNING, "task 1 to run"
        )
        assert running.status == SessionState.RUNNING
        assert (running.current_batch, running.total_batches) == (1, 2)
        assert (running.tasks_completed, running.tasks_total) == (0, 2)
        assert running.plan_title == "Test plan"
        assert [batch.task_ids for batch in running.batches] == [["1"], ["2"]]
        assert running.started_at is not None and running.completed_at is None
        assert running.task("1").started_at is not None
        assert running.task("1").workflow_id == f"{running.id}/task-1"
        stubs.release("1")
        status = await handle.result()

    assert status.status == SessionState.COMPLETED
    published = (await handle.describe()).typed_search_attributes
    assert published.get(search_attributes.STATUS) == "Completed"
    assert published.get(search_attributes.BATCH) == 2
    assert published.get(search_attributes.PLAN) == "plan.md"
    assert published.get(search_attributes.REPO) == "/repo"
    assert (status.current_batch, status.total_batches) == (2, 2)
    assert (status.tasks_completed, status.tasks_total) == (2, 2)
    assert status.started_at is not None and status.completed_at is not None
    assert status.started_at <= status.completed_at
    first, second = status.task("1"), status.task("2")
    assert first.attempts == 2 and second.attempts == 1
    assert first.turns == 1 + 3
    assert first.cost_usd == pytest.approx(0.1 + 0.5 + 0.25)  # failed try, agent, reviewer
    assert second.cost_usd == pytest.approx(0.5 + 0.25)
    assert status.cost_usd == pytest.approx(0.85 + 0.75)
    # The session keeps a compact record, counts only; the reviews and transcripts stay in
    # the task workflow's result, and `status --json` fills them in (with_details).
    assert (first.review_rounds, first.review, first.transcript) == (1, "", "")
    assert first.transcripts == [] and first.reviews == [] and first.commits == []
    detailed = (await with_details(client, status)).task("1")
    assert detailed.transcript == "/transcripts/1-review-r1.jsonl"
    assert detailed.review == "approved; reviewer: approve — looks right"
    assert len(detailed.reviews) == 1 and detailed.commits
    assert first.branch == f"autopilot/{status.id}/task-1" and first.merge_sha == "m-1"
    assert first.commit_count == 1
    assert first.started_at is not None and first.completed_at is not None
    assert second.started_at is not None and first.completed_at <= second.started_at


# -- replay --------------------------------------------------------------------------------------


async def test_finished_histories_replay(client: Client, stubs: Stubs) -> None:
    """A session with a fix round, a retried agent, a failure that pauses it, a resume, a
    conflict round and a blocked batch: its history and its children's replay cleanly."""
    stubs.plan = make_plan(
        make_batch(1, make_task("1"), make_task("2")),
        make_batch(2, make_task("3", 2), dependencies=[1]),
    )
    stubs.script("run_checks", "1", [check(False, "E501")], [check(True)])
    stubs.script("merge_task", "1", MergeResult(merged=False, conflict=True, conflict_files=["x"]))
    stubs.script("merge_target", "1", TargetMergeResult(clean=False, conflict_files=["x"]))
    limited = failed_run("AgentRateLimited", "slow down", retry_after_s=0.2)
    broken = failed_run("AgentError", "logged out", attempt=2)
    stubs.script("run_agent", "2", agent_error(limited), agent_error(broken))
    stubs.hold("1")  # task 1 still has work to do when the session pauses
    review = review_settings("checks", on_failure="pause")
    async with worker(client, stubs) as queue:
        handle = await start_session(
            client, queue, concurrency=2, review=review, agent=AgentSettings(max_attempts=2)
        )
        await status_until(handle, lambda s: s.paused, "the failure to pause the session")
        await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        stubs.release("1")
        status = await handle.result()

    assert status.task("1").state == TaskState.MERGED and status.task("1").conflict_round
    assert status.task("2").state == TaskState.FAILED
    assert status.task("3").state == TaskState.BLOCKED

    histories = await histories_of(client, status.id)
    assert len(histories) == 4  # the session, task 1, its conflict round, task 2
    replayer = Replayer(
        workflows=[SessionWorkflow, TaskWorkflow], data_converter=pydantic_data_converter
    )
    for history in histories:
        await replayer.replay_workflow(history)


async def test_a_long_session_continues_as_new_and_keeps_its_state(
    client: Client, stubs: Stubs
) -> None:
    """Past the history limit the session stops starting tasks, lets the running ones merge,
    and continues as new with its status and plan; the next run picks up the rest."""
    tasks = [make_task(str(n)) for n in range(1, 41)]
    tasks[-1] = make_task("40", depends_on=["1"])  # a dependency settled in an earlier run
    stubs.plan = make_plan(make_batch(1, *tasks))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=4, history_limit=250)
        status = await handle.result()
        runs = []
        async for execution in client.list_workflows(f"WorkflowId = '{handle.id}'"):
            history = await client.get_workflow_handle(
                handle.id, run_id=execution.run_id
            ).fetch_history()
            runs.append(len(history.events))

    assert status.status == SessionState.COMPLETED
    assert status.tasks_completed == 40 and status.runs == len(runs) > 2
    # No run's history grew past the limit: the drain starts early enough.
    assert max(runs) <= 250, runs
    merged = [request.task_id for request in stubs.inputs("merge_task")]
    assert sorted(merged, key=int) == [str(n) for n in range(1, 41)]  # each exactly once
    assert len(stubs.inputs("parse_plan")) == 1  # the plan snapshot travels with the state


async def test_bad_credentials_pause_the_session_whatever_the_policy(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    auth = failed_run("AgentAuth", "Invalid API key")
    stubs.script("run_agent", "1", agent_error(auth, non_retryable=True))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue)  # on_failure: continue
        paused = await status_until(handle, lambda s: s.paused, "the setup error to pause")
        assert "cannot run on this setup (AgentAuth)" in (paused.pause_reason or "")
        assert paused.task("2").state == TaskState.PENDING  # not failed the same way
        await handle.execute_update(SessionWorkflow.cancel, "stop")
        status = await handle.result()
    assert status.status == SessionState.CANCELLED
    assert not stubs.inputs("run_agent", "2")


# -- [workspace]: setup before the agent, again in a conflict round, a failure pauses -------------

WORKSPACE = WorkspaceSettings.model_validate(
    {"setup": [CHECK], "cache_dirs": ["deps"], "copy_files": [".env.test"]}
)


async def test_setup_runs_before_the_agent_and_its_files_stay_out_of_commits(
    client: Client, stubs: Stubs
) -> None:
    stubs.script("commit_changes", "1", DEFAULT)  # the commit step runs on its own: seen
    request = task_request(make_task("1"), review=review_settings("checks"))
    request.workspace = WORKSPACE
    result = await run_task(client, stubs, request)

    assert result.outcome == "ready", result.error
    assert stubs.names() == [
        "prepare_workspace",
        "set_up_workspace",
        "run_agent",
        "commit_changes",
        "run_checks",
    ]
    (setup,) = stubs.inputs("set_up_workspace")
    assert setup.settings == WORKSPACE and setup.output_dir.endswith("/1/setup")
    assert stubs.inputs("commit_changes")[0].keep_out == [".env.test", "deps"]
    assert stubs.inputs("run_agent")[0].commit.keep_out == [".env.test", "deps"]
    assert [run.key for run in result.setup] == ["k"]


async def test_no_workspace_table_no_setup(client: Client, stubs: Stubs) -> None:
    result = await run_task(client, stubs, task_request(make_task("1")))
    assert result.outcome == "ready" and result.setup == []
    assert "set_up_workspace" not in stubs.names()


async def test_conflict_round_sets_up_again_before_the_checks(client: Client, stubs: Stubs) -> None:
    stubs.script("merge_target", "1", TargetMergeResult(clean=False, conflict_files=["deps.lock"]))
    stubs.script("set_up_workspace", "1", SetupResult(key="k2", from_cache=True))
    request = task_request(make_task("1"), review=review_settings("checks"), resolve_conflict=True)
    request.workspace = WORKSPACE
    result = await run_task(client, stubs, request)

    assert result.outcome == "ready", result.error
    # Not before the agent: the lock files may hold conflicts until it resolves them.
    assert stubs.names() == [
        "prepare_workspace",
        "merge_target",
        "run_agent",
        "set_up_workspace",
        "run_checks",
    ]
    assert stubs.inputs("set_up_workspace")[0].output_dir.endswith("/1/setup-conflict-1")
    assert [run.from_cache for run in result.setup] == [True]


async def test_unchanged_lock_files_leave_no_setup_record(client: Client, stubs: Stubs) -> None:
    stubs.script("set_up_workspace", "1", SetupResult(key="k", unchanged=True))
    request = task_request(make_task("1"), review=review_settings("checks"), resolve_conflict=True)
    request.workspace = WORKSPACE
    result = await run_task(client, stubs, request)
    assert result.outcome == "ready" and result.setup == []


async def test_a_failing_setup_pauses_the_session_and_spends_no_attempt(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    failed = SetupResult(commands=[check(False, "npm ERR! 404")], error="x")
    message = "workspace setup command `make test` exited with 1; it ended with:\nnpm ERR! 404"
    stubs.script(
        "set_up_workspace",
        "1",
        ApplicationError(
            message, failed.model_dump(mode="json"), type=WORKSPACE_SETUP_FAILED, non_retryable=True
        ),
    )
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, workspace=WORKSPACE)  # on_failure: continue
        paused = await status_until(handle, lambda s: s.paused, "the setup failure to pause")
        reason = paused.pause_reason or ""
        assert "Task 1 cannot run on this setup (WorkspaceSetupFailed)" in reason
        assert "`make test` exited with 1" in reason and "npm ERR! 404" in reason
        task = paused.task("1")
        assert task.state == TaskState.FAILED and task.attempts == 0
        assert task.setup == "failed: make test"
        detailed = await with_details(client, paused)
        assert detailed.task("1").setup_runs[0].commands[0].output_tail == "npm ERR! 404"
        assert paused.task("2").state == TaskState.PENDING  # not failed the same way
        await handle.execute_update(SessionWorkflow.cancel, "stop")
        await handle.result()
    assert len(stubs.inputs("set_up_workspace", "1")) == 1  # not retried: it is not transient
    assert not stubs.inputs("run_agent")


# -- faults cost nothing, and the carried state is whole -----------------------------------------


def killed(task_id: str) -> ApplicationError:
    """What run_agent and review_changes raise for a CLI killed by a signal from outside."""
    run = failed_run("RunLost", f"claude for {task_id} was killed by a signal from outside")
    return agent_error(run)


@pytest.mark.reliability(
    "the agent's and the reviewer's runs killed from outside, again and again",
    "stand-in activities raise RunLost: no attempt spent, the task merges with 1 attempt",
)
async def test_lost_runs_never_spend_attempts(client: Client, stubs: Stubs) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.script("run_agent", "1", killed("1"), killed("1"))
    stubs.script("review_changes", "1", killed("1"), killed("1"), killed("1"))
    status = await run_session(
        client, stubs, agent=AgentSettings(max_attempts=1), review=review_settings("agent")
    )

    task = status.task("1")
    assert (task.state, task.attempts, task.lost_runs) == (TaskState.MERGED, 1, 5)
    assert [job.after_loss for job in stubs.inputs("run_agent")] == [False, True, True]
    assert [job.attempt for job in stubs.inputs("review_changes")] == [1, 2, 3, 4]


@pytest.mark.reliability(
    "a task's runs lost again and again (a crash loop)",
    "after max_lost_runs in a row the session pauses with the reason; resume runs it again",
)
async def test_a_crash_loop_pauses_the_session_and_never_fails_the_task(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.script("run_agent", "1", killed("1"), killed("1"))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, agent=AgentSettings(max_lost_runs=2))
        paused = await status_until(handle, lambda s: s.paused, "the crash loop to pause")
        assert "lost 2 times in a row" in (paused.pause_reason or "")
        assert "Nothing failed" in (paused.pause_reason or "")
        assert paused.task("1").state == TaskState.PENDING
        await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        status = await handle.result()

    task = status.task("1")
    assert (status.status, task.state, task.lost_runs) == (SessionState.COMPLETED, "merged", 2)
    assert len(stubs.inputs("prepare_workspace", "1")) == 2  # the same worktree, prepared again


@pytest.mark.reliability(
    "the reviewer fails for good after the agent's runs",
    "the task fails, and its status keeps the agent's attempts, turns, cost and lost runs",
)
async def test_a_failed_task_keeps_its_runs_in_the_status(client: Client, stubs: Stubs) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.script("run_agent", "1", killed("1"))
    broken = failed_run("AgentError", "the reviewer hit its turn limit")
    stubs.script("review_changes", "1", agent_error(broken))
    status = await run_session(
        client, stubs, agent=AgentSettings(max_attempts=1), review=review_settings("agent")
    )

    task = status.task("1")
    assert task.state == TaskState.FAILED
    assert "the reviewer hit its turn limit" in (task.last_error or "")
    # the lost run (1 turn, $0.10) and the attempt that worked (3 turns, $0.50)
    assert (task.attempts, task.lost_runs, task.turns) == (1, 1, 4)
    assert task.cost_usd == pytest.approx(0.6)
    assert (await with_details(client, status)).task("1").transcript  # the lost run's


@pytest.mark.reliability(
    "a worktree that cannot be removed",
    "remove_workspace fails for good: the session still completes, status names the worktree",
)
async def test_a_workspace_that_will_not_go_is_left_for_cleanup(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.script("run_agent", "1", agent_error(failed_run("AgentError", "gave up")))
    stubs.script("remove_workspace", "1", ApplicationError("busy", type="RepoUnusable"))
    status = await run_session(client, stubs, agent=AgentSettings(max_attempts=1))

    assert status.status == SessionState.INCOMPLETE and status.error is None
    assert status.task("1").state == TaskState.FAILED
    assert "starter.py cleanup" in status.task("1").workspace_left
    assert status.task("2").state == TaskState.MERGED


@pytest.mark.reliability(
    "operator skip requested before the session continued as new",
    "the skip request is part of the carried state: the skipped task never starts",
)
async def test_a_skip_request_survives_continue_as_new(client: Client, stubs: Stubs) -> None:
    tasks = [make_task(str(n)) for n in range(1, 31)]
    stubs.plan = make_plan(make_batch(1, *tasks))
    stubs.hold("1")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=1, history_limit=200)
        await until(lambda: stubs.inputs("run_agent", "1"), "task 1's agent to start")
        await handle.execute_update(SessionWorkflow.skip, "30")
        stubs.release("1")
        status = await handle.result()

    assert status.runs > 1
    assert status.task("30").state == TaskState.SKIPPED
    assert not stubs.inputs("prepare_workspace", "30")
    assert status.tasks_completed == 29


@pytest.mark.reliability(
    "the session continued as new while a task waited for its conflict round",
    "the due conflict round is carried: every task runs its agent once, then the round",
)
async def test_a_due_conflict_round_survives_continue_as_new(client: Client, stubs: Stubs) -> None:
    tasks = [make_task(str(n)) for n in range(1, 17)]
    stubs.plan = make_plan(make_batch(1, *tasks))
    for task in tasks:
        stubs.script("merge_task", task.id, MergeResult(merged=False, conflict=True))
        stubs.script("merge_target", task.id, TargetMergeResult(clean=False, conflict_files=["x"]))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=2, history_limit=200)
        status = await handle.result()

    assert status.status == SessionState.COMPLETED and status.runs > 2
    for task in tasks:
        purposes = [job.purpose for job in stubs.inputs("run_agent", task.id)]
        assert purposes == ["task", "conflict"], (task.id, purposes)


async def test_the_plan_travels_as_an_outline_of_its_snapshot(client: Client, stubs: Stubs) -> None:
    tasks = [make_task(str(n)) for n in range(1, 31)]
    outline = plan_snapshots.outline(make_plan(make_batch(1, *tasks)))
    stubs.plan = outline.model_copy(update={"sha256": "ab" * 32})
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=2, history_limit=200)
        status = await handle.result()
        carried = await carried_inputs(client, handle.id)

    assert status.status == SessionState.COMPLETED and status.runs > 1
    assert len(stubs.inputs("parse_plan")) == 1
    assert len(stubs.inputs("load_plan_snapshot")) == status.runs - 1
    assert stubs.inputs("parse_plan")[0].state_dir == STATE_DIR
    # No task body travels: each task's activities read their own from the snapshot.
    for job in stubs.inputs("run_agent"):
        assert job.request.task.body == "" and job.request.plan_sha256 == "ab" * 32
    # What a run hands to the next one holds no plan, only its hash in the status.
    assert carried and all(carry.plan is None for carry in carried)


async def carried_inputs(client: Client, session_id: str) -> list[SessionCarry]:
    """The state each continued run of the session was started with."""
    found: list[SessionCarry] = []
    async for execution in client.list_workflows(f"WorkflowId = '{session_id}'"):
        handle = client.get_workflow_handle(session_id, run_id=execution.run_id)
        history = await handle.fetch_history()
        start = history.events[0].workflow_execution_started_event_attributes
        (payload,) = start.input.payloads
        request = pydantic_data_converter.payload_converter.from_payload(payload, SessionRequest)
        if request.carry is not None:
            found.append(request.carry)
    return found


async def test_continue_as_new_on_history_bytes(client: Client, stubs: Stubs) -> None:
    tasks = [make_task(str(n)) for n in range(1, 31)]
    stubs.plan = make_plan(make_batch(1, *tasks))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=2, history_bytes_limit=100_000)
        status = await handle.result()
    assert status.status == SessionState.COMPLETED and status.runs > 1
