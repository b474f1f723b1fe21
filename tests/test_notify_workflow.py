"""The session's notifications on the real Temporal dev server: the stand-in activities of
tests/workflow_stubs.py for the work, the real notify activities for the notifications, and
webhook receivers on loopback that answer 500 first, 404 always, or hold a request."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.notify import NotifyActivities
from autopilot.infra import ALLOW_PRIVATE_SETTING
from autopilot.models import AgentSettings, NotifySettings, ResumeRequest, SessionState, TaskState
from tests.notify_receiver import Receiver
from tests.test_workflows import agent_error, status_until
from tests.workflow_stubs import (
    Stubs,
    failed_run,
    make_batch,
    make_plan,
    make_task,
    review_settings,
    session_request,
    start_session,
    worker,
)
from workflows.notifications import NOTIFY_ATTEMPT, NOTIFY_DEADLINE, NOTIFY_FAILURES_KEPT
from workflows.session import SessionWorkflow

pytestmark = pytest.mark.timeout(90)

SECRET = "sk-deploy-0123456789abcdef"
# The receivers listen on loopback: the installation's consent to that.
WORKER_ENV = {"PATH": "/usr/bin:/bin", "DEPLOY_TOKEN": SECRET, ALLOW_PRIVATE_SETTING: "1"}


async def delivered(receiver: Receiver, event: str, timeout: float = 20) -> dict[str, Any]:
    """The first `event` the receiver answered 200 to; waits without blocking the worker,
    which runs on this event loop."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not receiver.delivered(event):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {event}")
        await asyncio.sleep(0.05)
    return receiver.delivered(event)[0]


@pytest.mark.reliability(
    "webhook receivers that answer 500 first, 404 always, or hang while the session works",
    "stand-in work, real notify activities, loopback receivers: the 500 is retried and "
    "delivered once, the 404s are kept in status (the latest 5), a hung receiver holds no "
    "task back, the session completes; a secret in the failure reaches no receiver",
)
async def test_notifications_are_retried_never_block_and_failures_show(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    broken = failed_run("AgentError", f"push to https://x:{SECRET}@git.example.com refused")
    stubs.script("run_agent", "1", agent_error(broken))
    release = threading.Event()
    flaky, dead, held = Receiver(500), Receiver(always=404), Receiver(hold=release)
    with flaky.running(), dead.running(), held.running():
        # The held receiver is the worker's own target (AUTOPILOT_NOTIFY), the others the
        # session's (--notify): three dead URLs, so two events make six failures.
        stubs.notifier = NotifyActivities([held.url()], WORKER_ENV)
        targets = NotifySettings(urls=[flaky.url(), *(dead.url(f"/{n}") for n in "abc")])
        async with worker(client, stubs) as queue:
            # No run timeout here: the server would cap the notifications' deadline to it.
            request = session_request(agent=AgentSettings(max_attempts=1), notify=targets)
            handle = await client.start_workflow(
                SessionWorkflow.run, request, id=request.session_id, task_queue=queue
            )
            failed = await delivered(flaky, "task_failed")
            # The held receiver has not answered, and the next task merged meanwhile.
            await status_until(
                handle, lambda s: s.task("2").state == TaskState.MERGED, "task 2 to merge"
            )
            assert held.received == []
            release.set()
            final = await asyncio.wait_for(handle.result(), 60)

    assert final.status == SessionState.INCOMPLETE
    # 500 first, then 200 for the retry and for the session's end: each delivered once.
    assert [r.status for r in flaky.received] == [500, 200, 200]
    assert [body["event"] for body in flaky.delivered()] == ["task_failed", "session_ended"]
    assert [body["event"] for body in held.delivered()] == ["task_failed", "session_ended"]
    assert failed["task_id"] == "1" and failed["task_state"] == "failed"
    assert failed["retry_command"] == f"python starter.py retry {final.id} 1"
    assert "[redacted DEPLOY_TOKEN]@git.example.com" in failed["reason"]
    for receiver in (flaky, dead, held):
        assert all(SECRET.encode() not in r.body for r in receiver.received)

    ended = flaky.delivered("session_ended")[0]
    assert ended["status"] == "incomplete"
    assert ended["counts"] == {"merged": 1, "failed": 1}
    assert ended["tasks_merged"] == 1 and ended["tasks_total"] == 2
    assert ended["duration_s"] is not None and ended["duration_s"] >= 0

    # 404 is not retried: one request per event and URL; the status keeps the latest five.
    assert len(dead.received) == 6
    assert len(final.notify_failures) == NOTIFY_FAILURES_KEPT
    label = f"http://127.0.0.1:{dead.port}"
    for failure in final.notify_failures:
        assert failure.target == label  # never the URL's path
        assert "answered HTTP 404" in failure.error and failure.at is not None
    assert [f.event for f in final.notify_failures] == ["task_failed"] * 2 + ["session_ended"] * 3

    # Every delivery is bounded: one try, and all of them together (what the end waits for).
    history = await handle.fetch_history()
    scheduled = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    notifying = [a for a in scheduled if a.activity_type.name.startswith("notify")]
    assert len(notifying) == 1 + 2 * 5  # the worker's targets looked up; 2 events x 5 targets
    for attributes in notifying:
        assert attributes.start_to_close_timeout.ToTimedelta() == NOTIFY_ATTEMPT
        assert attributes.schedule_to_close_timeout.ToTimedelta() == NOTIFY_DEADLINE


async def test_a_paused_session_notifies_at_once_with_the_command_that_resumes_it(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.script("run_agent", "1", agent_error(failed_run("AgentError", "logged out")))
    with Receiver().running() as receiver:
        stubs.notifier = NotifyActivities([], WORKER_ENV)
        async with worker(client, stubs) as queue:
            handle = await start_session(
                client,
                queue,
                review=review_settings(on_failure="pause"),
                agent=AgentSettings(max_attempts=1),
                notify=NotifySettings(urls=[receiver.url()]),
            )
            paused = await delivered(receiver, "session_paused")
            assert (await handle.query(SessionWorkflow.status)).paused
            assert paused["reason"].startswith("Task 1 ended failed: agent: logged out — ")
            assert paused["resume_command"] == f"python starter.py resume {handle.id}"
            assert paused["counts"] == {"failed": 1, "pending": 1}
            await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
            final = await handle.result()

    assert final.status == SessionState.INCOMPLETE and final.notify_failures == []
    events = [body["event"] for body in receiver.delivered()]
    assert sorted(events[:2]) == ["session_paused", "task_failed"]  # sent together
    assert events[2] == "session_ended"


async def test_a_session_with_no_targets_sends_nothing(client: Client, stubs: Stubs) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue)
        final = await handle.result()
    assert final.status == SessionState.COMPLETED
    # The worker's own targets are asked for once; there are none, so nothing is sent.
    assert stubs.names().count("notify_installation") == 1
    assert "notify" not in stubs.names()
