"""A control judges the state a status query shows (workflows/controls.py says why it waits).

The cause, shown deterministically: an update admitted into the same workflow task as the event
that changes what it judges (here a timer's firing; in a session, a task's end that pauses it).
The worker is stopped while the event lands, the update is admitted, then a worker takes that
one workflow task: `settled()` must let the handler see the event.

Then the session's own case under load: sessions each pause on a rejected task, the status
shows them paused, and one `resume` each (never sent again) applies, with two busy processes
keeping both cores loaded. They run a few at a time on one worker with no workflow cache, so
queries replay the history and workflow tasks queue behind one another.
`AUTOPILOT_RACE_SESSIONS` sets how many.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from autopilot.models import ResumeRequest, SessionState, TaskState
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
from workflows.controls import refused, settled
from workflows.session import SessionWorkflow

# The suite runs 10; `./dev soak` runs 50 (about 3 minutes on a shared 2-core machine).
SESSIONS = int(os.environ.get("AUTOPILOT_RACE_SESSIONS", "10"))
# Sessions under way at once: enough to queue workflow tasks behind one another, few enough
# that their status polls (each a replay of the history) do not time out the queries.
SIDE_BY_SIDE = 5
HOG = "import time\nend = time.monotonic() + 300\nwhile time.monotonic() < end: pass\n"
PROBE_TIMER = timedelta(seconds=1)
# How long a session may take to pause while all of them share a loaded machine.
LOADED_S = 180.0


@workflow.defn(sandboxed=False)
class SettleProbe:
    """Pauses when its timer fires; `resume` is refused unless it sees that pause."""

    def __init__(self) -> None:
        self.paused = False
        self.resumed = False

    @workflow.run
    async def run(self) -> bool:
        await workflow.sleep(PROBE_TIMER)
        self.paused = True
        await workflow.wait_condition(lambda: self.resumed)
        return self.resumed

    @workflow.update
    async def resume(self) -> None:
        await settled()
        if not self.paused:
            raise refused("not paused")
        self.resumed = True


async def until_event(handle: WorkflowHandle[SettleProbe, bool], kind: EventType.ValueType) -> None:
    """Follow the history (a long poll on new events) until an event of this kind."""
    async for event in handle.fetch_history_events(wait_new_event=True):
        if event.event_type == kind:
            return


async def until_admitted(
    client: Client, handle: WorkflowHandle[SettleProbe, bool], id: str
) -> None:
    """Ask the server until it knows the update (it answers not-found before that)."""
    request = PollWorkflowExecutionUpdateRequest(
        namespace=client.namespace,
        update_ref=UpdateRef(
            workflow_execution=WorkflowExecution(
                workflow_id=handle.id, run_id=handle.result_run_id or ""
            ),
            update_id=id,
        ),
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
        ),
    )
    while True:
        try:
            await client.workflow_service.poll_workflow_execution_update(
                request, timeout=timedelta(seconds=5)
            )
            return
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise


async def test_a_control_in_the_workflow_task_of_a_change_sees_the_change(
    client: Client,
) -> None:
    queue = f"settle-probe-{uuid.uuid4()}"
    probe = Worker(client, task_queue=queue, workflows=[SettleProbe], max_cached_workflows=0)
    async with probe:
        handle = await client.start_workflow(
            SettleProbe.run,
            id=queue,
            task_queue=queue,
            execution_timeout=timedelta(minutes=2),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        await until_event(handle, EventType.EVENT_TYPE_TIMER_STARTED)
    # No worker: the timer fires into a workflow task that waits, and the update joins it.
    await until_event(handle, EventType.EVENT_TYPE_TIMER_FIRED)
    update_id = "resume-with-the-timer"
    resume = asyncio.ensure_future(handle.execute_update(SettleProbe.resume, id=update_id))
    await until_admitted(client, handle, update_id)
    async with Worker(client, task_queue=queue, workflows=[SettleProbe], max_cached_workflows=0):
        await resume
        assert await handle.result()


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """Two busy processes, one per core of this machine, for the test's length (5 min at most
    whatever happens to the test)."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


async def pause_then_resume(client: Client, queue: str, slots: asyncio.Semaphore) -> None:
    async with slots:
        await run_pause_then_resume(client, queue)


async def run_pause_then_resume(client: Client, queue: str) -> None:
    handle = await start_session(
        client,
        queue,
        concurrency=1,
        review=review_settings("agent", rounds=1, on_failure="pause"),
    )
    paused = await status_until(handle, lambda s: s.paused, "the session to pause", LOADED_S)
    assert paused.task("1").state == TaskState.REJECTED

    await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
    final = await handle.result()

    assert final.status == SessionState.INCOMPLETE
    assert final.task("2").state == TaskState.MERGED and not final.paused


async def test_sessions_the_status_shows_paused_are_resumed_under_load(
    client: Client, stubs: Stubs, cpu_hog: None
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    rejected = verdict("request_changes", "wrong file", ["not a.py"])
    stubs.script("review_changes", "1", *[rejected] * SESSIONS)
    slots = asyncio.Semaphore(SIDE_BY_SIDE)
    async with worker(client, stubs) as queue:
        await asyncio.gather(*(pause_then_resume(client, queue, slots) for _ in range(SESSIONS)))
