"""The live view's reads (autopilot/operate/live_tasks.py: LiveSession) on the real Temporal dev
server, with the stand-in activities of tests/workflow_stubs.py and a worker that counts the
queries it answers: a refresh asks the worker only about workflows whose history moved, and
still shows the current phase and the latest heartbeat every time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleQueryInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from autopilot.models import (
    AgentInput,
    AgentProgress,
    AgentRun,
    MergeResult,
    ResumeRequest,
    SessionState,
    SessionStatus,
    TaskState,
)
from autopilot.operate.live_tasks import LiveSession, LiveTask, version_of
from tests.workflow_stubs import (
    Stubs,
    agent_run,
    commits,
    failed_run,
    make_batch,
    make_plan,
    make_task,
    start_session,
    worker,
)
from workflows.session import SessionWorkflow

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")

DEADLINE_S = 15.0  # for any one wait; a passing test never comes close
# For the views that read a closed session: the worker replays it to answer, slow on a busy box.
RPC_TIMEOUT = timedelta(seconds=30)


class QueryCounter(Interceptor):
    """Counts the queries the worker answers, by (workflow id, query name). With `refuse`, the
    worker is one from before that query: it fails it as the SDK fails a query it has no
    handler for (counted too)."""

    def __init__(self, refuse: str | None = None) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.refuse = refuse

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        counts, refuse = self.counts, self.refuse

        class Counting(WorkflowInboundInterceptor):
            async def handle_query(self, input: HandleQueryInput) -> Any:
                counts[(workflow.info().workflow_id, input.query)] += 1
                if input.query == refuse:
                    raise RuntimeError(
                        f"Query handler for '{refuse}' expected but not found, known queries: "
                        "[phase status]"
                    )
                return await super().handle_query(input)

        return Counting

    def of(self, workflow_id: str, query: str) -> int:
        return self.counts[(workflow_id, query)]


def counting_worker(
    client: Client, stubs: Stubs, counter: QueryCounter
) -> AbstractAsyncContextManager[str]:
    """The stand-ins' worker plus the query counter; heartbeats reach the server at most every
    50 ms (not every 0.8 x the heartbeat timeout) so a test sees them."""
    return worker(
        client,
        stubs,
        interceptors=[counter],
        max_heartbeat_throttle_interval=timedelta(milliseconds=50),
        default_heartbeat_throttle_interval=timedelta(milliseconds=50),
    )


def task_workflow_id(handle: WorkflowHandle[Any, Any], task_id: str) -> str:
    return f"{handle.id}/task-{task_id}"


async def eventually(
    produce: Callable[[], Awaitable[T]], condition: Callable[[T], bool], what: str
) -> T:
    """Produce values until one meets the condition; fail at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    last: T | None = None
    while time.monotonic() < deadline:
        last = await produce()
        if condition(last):
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {DEADLINE_S:.0f}s waiting for {what}; last: {last}")


async def settled(client: Client, handle: WorkflowHandle[Any, Any], task_ids: list[str]) -> bool:
    """Every task's child workflow started and no workflow task pending on the session or on
    any task: with the agents held, nothing more happens in any history."""
    history = await handle.fetch_history()
    started = sum(
        event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
        for event in history.events
    )
    if started < len(task_ids):
        return False
    ids = [handle.id] + [task_workflow_id(handle, task_id) for task_id in task_ids]
    return await quiet(client, ids)


async def quiet(client: Client, workflow_ids: list[str]) -> bool:
    """No workflow task pending on any of these workflows: their histories stand still until
    an activity of theirs ends."""
    for workflow_id in workflow_ids:
        description = await client.get_workflow_handle(workflow_id).describe()
        if description.raw_description.HasField("pending_workflow_task"):
            return False
    return True


async def until_settled(
    client: Client, stubs: Stubs, handle: WorkflowHandle[Any, Any], task_ids: list[str]
) -> None:
    async def check() -> bool:
        return stubs.active_agents == len(task_ids) and await settled(client, handle, task_ids)

    await eventually(check, bool, f"agents of {task_ids} held and every history quiet")


async def test_refreshes_ask_the_worker_only_once_while_nothing_changes(
    client: Client, stubs: Stubs
) -> None:
    ids = ["1", "2"]
    stubs.plan = make_plan(make_batch(1, *(make_task(task_id) for task_id in ids)))
    stubs.hold(*ids)
    counter = QueryCounter()
    async with counting_worker(client, stubs, counter) as queue:
        handle = await start_session(client, queue, concurrency=2)
        await until_settled(client, stubs, handle, ids)
        live = LiveSession(client, handle)

        for _ in range(5):
            status, tasks = await live.refresh()
            assert [task.state for task in status.tasks] == [TaskState.RUNNING] * 2
            assert set(tasks) == set(ids)
            for task in tasks.values():
                assert task.phase == "agent (task), round 1, attempt 1"

        assert counter.of(handle.id, "changes") == 1
        for task_id in ids:
            assert counter.of(task_workflow_id(handle, task_id), "phase") == 1
        stubs.release(*ids)
        assert (await handle.result()).tasks_completed == 2


async def test_a_task_that_moved_is_asked_again_and_a_finished_one_drops_out(
    client: Client, stubs: Stubs
) -> None:
    ids = ["1", "2"]
    stubs.plan = make_plan(make_batch(1, *(make_task(task_id) for task_id in ids)))
    stubs.hold(*ids)
    committing = asyncio.Event()

    async def slow_commit(_: object) -> object:
        await committing.wait()
        return commits("1")

    stubs.script("commit_changes", "1", slow_commit)
    counter = QueryCounter()
    async with counting_worker(client, stubs, counter) as queue:
        handle = await start_session(client, queue, concurrency=2)
        task_1, task_2 = (task_workflow_id(handle, task_id) for task_id in ids)
        await until_settled(client, stubs, handle, ids)
        live = LiveSession(client, handle)
        _, tasks = await live.refresh()
        assert tasks["1"].phase == "agent (task), round 1, attempt 1"

        # Task 1's agent finishes: its workflow moves on to the commit (held) and is asked again.
        stubs.release("1")

        async def committing_quietly() -> bool:
            return bool(stubs.inputs("commit_changes", "1")) and await quiet(client, [task_1])

        await eventually(committing_quietly, bool, "task 1 committing, its history quiet")
        _, tasks = await live.refresh()
        assert tasks["1"].phase == "committing"
        asked = counter.of(task_1, "phase")
        assert asked >= 2
        for _ in range(3):  # and stays put: asked no more
            _, tasks = await live.refresh()
            assert tasks["1"].phase == "committing"
        assert counter.of(task_1, "phase") == asked

        # Task 2 finishes and merges: the session's history moves, task 2 drops out, and task 1
        # (whose history did not move) is not asked again.
        stubs.release("2")
        _, tasks = await eventually(
            live.refresh,
            lambda seen: seen[0].task("2").state == TaskState.MERGED,
            "task 2 merged",
        )
        assert set(tasks) == {"1"} and tasks["1"].phase == "committing"
        assert counter.of(task_1, "phase") == asked
        assert counter.of(handle.id, "changes") >= 2
        asked_2 = counter.of(task_2, "phase")
        for _ in range(2):
            _, tasks = await live.refresh()
            assert set(tasks) == {"1"}
        assert counter.of(task_2, "phase") == asked_2

        committing.set()
        assert (await handle.result()).tasks_completed == 2


async def test_heartbeats_reach_the_view_every_refresh_without_a_query(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    second_beat, finish = asyncio.Event(), asyncio.Event()

    async def beating(job: AgentInput) -> AgentRun:
        activity.heartbeat(AgentProgress(session_id="claude-1", turns=1))
        await second_beat.wait()
        activity.heartbeat(AgentProgress(session_id="claude-1", turns=2, cost_usd=0.25))
        await finish.wait()
        return agent_run(job)

    stubs.script("run_agent", "1", beating)
    counter = QueryCounter()
    async with counting_worker(client, stubs, counter) as queue:
        handle = await start_session(client, queue, concurrency=1)
        await until_settled(client, stubs, handle, ["1"])
        live = LiveSession(client, handle)

        def turns(wanted: int) -> Callable[[tuple[SessionStatus, dict[str, LiveTask]]], bool]:
            def seen(refreshed: tuple[SessionStatus, dict[str, LiveTask]]) -> bool:
                agent = refreshed[1]["1"].agent
                return agent is not None and agent.turns == wanted

            return seen

        await eventually(live.refresh, turns(1), "the first heartbeat")
        second_beat.set()
        _, tasks = await eventually(live.refresh, turns(2), "the second heartbeat")

        assert tasks["1"] == LiveTask(
            phase="agent (task), round 1, attempt 1",
            agent=AgentProgress(session_id="claude-1", turns=2, cost_usd=0.25),
        )
        assert counter.of(task_workflow_id(handle, "1"), "phase") == 1
        assert counter.of(handle.id, "changes") == 1
        finish.set()
        assert (await handle.result()).tasks_completed == 1


TIMESTAMPS = ("started_at", "completed_at")


def without_timestamps(status: SessionStatus) -> dict[str, Any]:
    """The status with each timestamp reduced to whether it is set. A query on a closed session
    is answered by a replay, whose workflow.now() can be some ms off the original run's, while
    the view keeps the entries the run sent (seen: 80 ms on a task's completed_at)."""
    data = status.model_dump()
    for entry in [data, *data["tasks"]]:
        for name in TIMESTAMPS:  # a task entry leaves out what is unset (None)
            entry[name] = entry.get(name) is not None
    return data


def timestamps(status: SessionStatus) -> list[datetime | None]:
    entries = [status, *status.tasks]
    return [getattr(entry, name) for entry in entries for name in TIMESTAMPS]


def same_status(seen: SessionStatus, whole: SessionStatus) -> None:
    assert without_timestamps(seen) == without_timestamps(whole)
    for mine, theirs in zip(timestamps(seen), timestamps(whole), strict=True):
        assert mine == theirs or (
            mine is not None and theirs is not None and abs(mine - theirs) < timedelta(seconds=1)
        ), (mine, theirs)


async def agree(live: LiveSession, handle: WorkflowHandle[Any, SessionStatus]) -> SessionStatus:
    """The live view's status equals the whole `status`, read while the history stood still."""

    async def same() -> SessionStatus | None:
        before = version_of(await handle.describe())
        seen = await live.status()
        whole = await handle.query(SessionWorkflow.status)
        if version_of(await handle.describe()) != before:
            return None  # it moved in between: look again
        same_status(seen, whole)
        return whole

    found = await eventually(same, lambda status: status is not None, "a standing history")
    assert found is not None
    return found


async def test_the_live_status_is_the_whole_status_through_every_kind_of_change(
    client: Client, stubs: Stubs
) -> None:
    """The view keeps a copy and puts in only the entries changed since its last look: it must
    equal the whole status through running and held tasks, a conflict round, a task with no
    changes, a failure and the pause it causes, a blocked dependant, the operator's retry, and
    the end."""
    stubs.plan = make_plan(
        make_batch(1, make_task("1"), make_task("2")),
        make_batch(2, make_task("3", batch=2), make_task("4", batch=2, depends_on=["3"])),
    )
    stubs.script(
        "merge_task", "1", MergeResult(merged=False, conflict=True, conflict_files=["f.txt"])
    )
    stubs.script("commit_changes", "2", commits("2", no_changes=True))
    auth = failed_run("AgentAuth", "Invalid API key", cost=0.0)
    assert auth.error is not None
    stubs.script(
        "run_agent",
        "3",
        ApplicationError(auth.error, auth, type=auth.error_type, non_retryable=True),
    )
    stubs.hold("1", "2")
    counter = QueryCounter()
    async with counting_worker(client, stubs, counter) as queue:
        handle = await start_session(client, queue, concurrency=2)
        live = LiveSession(client, handle, rpc_timeout=RPC_TIMEOUT)

        await until_settled(client, stubs, handle, ["1", "2"])
        status = await agree(live, handle)
        assert [task.state for task in status.tasks] == [
            TaskState.RUNNING,
            TaskState.RUNNING,
            TaskState.PENDING,
            TaskState.PENDING,
        ]

        # 1 merges after its conflict round, 2 has nothing to merge; then 3 fails on a setup
        # error (the session pauses) and 4, which needs 3, is blocked.
        stubs.release("1", "2")
        await eventually(
            live.status,
            lambda status: status.paused and status.task("4").state == TaskState.BLOCKED,
            "the session paused by task 3, task 4 blocked",
        )
        status = await agree(live, handle)
        assert [task.state for task in status.tasks] == [
            TaskState.MERGED,
            TaskState.NO_CHANGES,
            TaskState.FAILED,
            TaskState.BLOCKED,
        ]
        assert status.task("1").conflict_round and status.task("1").merge_sha

        # Nothing moves while the session waits for its operator: no query, and an empty
        # answer for the revision the view holds.
        asked = counter.of(handle.id, "changes")
        await live.status()
        assert counter.of(handle.id, "changes") == asked
        unchanged = await handle.query(SessionWorkflow.changes, status.revision)
        assert unchanged.tasks == [] and unchanged.session.revision == status.revision

        await handle.execute_update(SessionWorkflow.retry, "3")
        await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        final = await handle.result()
        assert final.status == SessionState.INCOMPLETE  # task 2 had nothing to merge
        same_status(await agree(live, handle), final)
        assert [task.state for task in final.tasks] == [
            TaskState.MERGED,
            TaskState.NO_CHANGES,
            TaskState.MERGED,
            TaskState.MERGED,
        ]
        everything = await handle.query(SessionWorkflow.changes, 0)
        assert [task.id for task in everything.tasks] == ["1", "2", "3", "4"]


async def test_an_older_worker_without_changes_gets_asked_for_the_whole_status(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.hold("1")
    counter = QueryCounter(refuse="changes")
    async with counting_worker(client, stubs, counter) as queue:
        handle = await start_session(client, queue, concurrency=1)
        await until_settled(client, stubs, handle, ["1"])
        live = LiveSession(client, handle, rpc_timeout=RPC_TIMEOUT)
        await agree(live, handle)
        stubs.release("1")
        final = await handle.result()
        same_status(await agree(live, handle), final)
        assert counter.of(handle.id, "changes") == 1  # asked once, then never again
        assert counter.of(handle.id, "status") >= 4  # the view's and agree's own
