"""The live view's reads (autopilot/live_tasks.py: LiveSession) on the real Temporal dev server,
with the stand-in activities of tests/workflow_stubs.py and a worker that counts the queries it
answers: a refresh asks the worker only about workflows whose history moved, and still shows
the current phase and the latest heartbeat every time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import (
    HandleQueryInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from autopilot.live_tasks import LiveSession, LiveTask
from autopilot.models import AgentInput, AgentProgress, AgentRun, SessionStatus, TaskState
from tests.workflow_stubs import (
    Stubs,
    agent_run,
    commits,
    make_batch,
    make_plan,
    make_task,
    start_session,
    worker,
)

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")

DEADLINE_S = 15.0  # for any one wait; a passing test never comes close


class QueryCounter(Interceptor):
    """Counts the queries the worker answers, by (workflow id, query name)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        counts = self.counts

        class Counting(WorkflowInboundInterceptor):
            async def handle_query(self, input: HandleQueryInput) -> Any:
                counts[(workflow.info().workflow_id, input.query)] += 1
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

        assert counter.of(handle.id, "status") == 1
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
        assert counter.of(handle.id, "status") >= 2
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
        assert counter.of(handle.id, "status") == 1
        finish.set()
        assert (await handle.result()).tasks_completed == 1
