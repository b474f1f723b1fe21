"""Forge mode's landing (workflows/pull_request.py) driven with stand-in activities: the
session publishes a ready task as a pull request, watches its gate without an agent slot,
runs the forge's feedback as a round of the task workflow, merges through the forge, and
pauses on a refused token. The real activities meet the GitHub stand-in in
tests/test_forge_e2e.py; these drive the workflow's decisions quickly."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from autopilot.error_types import FORGE_DENIED
from autopilot.infra import forge_task_queue, search_attributes
from autopilot.models import (
    Finding,
    ForgeGate,
    ForgeMergeResult,
    ForgeSettings,
    GateInput,
    GateVerdict,
    NotifySettings,
    PublishInput,
    PullRequestMergeInput,
    PullRequestRef,
    ResumeRequest,
    ReviewResult,
    SessionState,
    TargetMergeResult,
    TaskState,
)
from autopilot.operate import webhook
from tests.harness import free_port
from tests.test_workflows import status_until, until
from tests.workflow_stubs import Stubs, make_batch, make_plan, make_task, start_session
from tests.workflow_stubs import worker as pipeline_worker
from workflows.session import SessionWorkflow

pytestmark = pytest.mark.timeout(60)
FORGE = ForgeSettings(kind="github", repo="octo/project", ui_url="http://ui")
NOTIFY = NotifySettings(urls=["https://hooks.example.com/T0"])


def _verdict(decision: str, head_sha: str = "head-1", **extra: Any) -> GateVerdict:
    merged = "sq" if decision == "merged" else ""
    gate = ForgeGate(state="open", head_sha=head_sha, merged_sha=merged)
    return GateVerdict.model_validate({"decision": decision, "gate": gate, **extra})


async def _never(request: GateInput) -> GateVerdict:
    """A watch that would wait for its next poll (or people) for longer than a test runs."""
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class ForgeStubs(Stubs):
    """The pipeline's stand-ins, and the forge's: each pull request number is 100 + the
    task's position; watches and merges are scripted per task like the others."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: dict[str, int] = {}

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="publish_pull_request")
        async def publish(request: PublishInput) -> PullRequestRef:
            self.calls.append(("publish_pull_request", request.task_id, request))
            number = self.opened.setdefault(request.task_id, 100 + len(self.opened))
            ref = PullRequestRef(
                number=number,
                url=f"https://github.test/octo/project/pull/{number}",
                head_branch=request.head_branch,
                head_sha=f"head-{len(self.inputs('publish_pull_request', request.task_id))}",
            )
            return await self._take("publish_pull_request", request.task_id, request, ref)

        @activity.defn(name="watch_pull_request")
        async def watch(request: GateInput) -> GateVerdict:
            task = self._task_of(request.number)
            self.calls.append(("watch_pull_request", task, request))
            return await self._take("watch_pull_request", task, request, _verdict("merge"))

        @activity.defn(name="merge_pull_request")
        async def merge(request: PullRequestMergeInput) -> ForgeMergeResult:
            task = self._task_of(request.number)
            self.calls.append(("merge_pull_request", task, request))
            done = ForgeMergeResult(outcome="merged", merge_sha=f"sq-{task}")
            return await self._take("merge_pull_request", task, request, done)

        @activity.defn(name="delete_pull_request_branch")
        async def delete(request: PullRequestMergeInput) -> None:
            self.calls.append(
                ("delete_pull_request_branch", self._task_of(request.number), request)
            )

        return [*super().activities(), publish, watch, merge, delete]

    def _task_of(self, number: int) -> str:
        return next(task for task, opened in self.opened.items() if opened == number)


@asynccontextmanager
async def worker(client: Client, stubs: ForgeStubs) -> AsyncIterator[str]:
    """The pipeline's stand-in workers, and one on the forge's queue (the watches)."""
    async with pipeline_worker(client, stubs) as queue:
        async with Worker(
            client, task_queue=forge_task_queue(queue), activities=stubs.activities()
        ):
            yield queue


@pytest.fixture
def forge_stubs() -> ForgeStubs:
    return ForgeStubs()


async def test_each_task_is_a_pull_request_merged_through_the_forge(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    async with worker(client, stubs) as queue:
        handle = await start_session(
            client, queue, forge=FORGE, merge_style="squash", notify=NOTIFY
        )
        status = await handle.result()
        published = (await handle.describe()).typed_search_attributes
    assert status.status == SessionState.COMPLETED, status.error
    assert sorted(published.get(search_attributes.PULL_REQUESTS) or []) == sorted(
        task.pull_request.url for task in status.tasks if task.pull_request
    )
    for task in status.tasks:
        assert task.state == TaskState.MERGED and task.merge_sha == f"sq-{task.id}"
        assert task.pull_request is not None and task.pull_request.url.endswith(
            f"/pull/{stubs.opened[task.id]}"
        )
    assert not stubs.inputs("merge_task")  # the forge merged, not the session
    published = stubs.inputs("publish_pull_request", "1")[0]
    assert published.head_branch == f"autopilot-pr/{status.id}/1"
    assert published.title == "Task 1: Do 1" and "Autopilot-Task: 1" in published.body
    assert "http://ui/namespaces/default/workflows/" in published.body
    merged = stubs.inputs("merge_pull_request", "1")[0]
    assert (merged.expected_head_sha, merged.style) == ("head-1", "squash")
    assert "Autopilot-Session" in merged.message
    events = [n.notification.event for n in stubs.inputs("notify", "1")]
    assert events == ["pull_request_opened", "pull_request_merged"]


async def test_a_failing_check_is_a_feedback_round_on_the_same_pull_request(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    feedback = ReviewResult(
        round=0,
        approved=False,
        summary="required check `ci` failure",
        findings=[Finding(source="ci", message="the required check `ci` concluded failure")],
    )
    stubs.script(
        "watch_pull_request",
        "1",
        _verdict("feedback", feedback=feedback),
        _verdict("merge", head_sha="head-2"),
    )
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, forge=FORGE)
        status = await handle.result()
    task = status.task("1")
    assert task.state == TaskState.MERGED and task.forge_rounds == 1
    assert task.workflow_id == f"{status.id}/task-1/forge-1"
    jobs = stubs.inputs("run_agent", "1")
    assert [job.purpose for job in jobs] == ["task", "fix"]
    assert jobs[1].review.findings[0].source == "ci" and jobs[1].review.round == 1
    assert len(stubs.inputs("publish_pull_request", "1")) == 2  # the same pull request again
    assert stubs.inputs("merge_pull_request", "1")[0].expected_head_sha == "head-2"


async def test_rounds_run_out_and_a_closed_pull_request_rejects(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    again = _verdict("feedback", feedback=ReviewResult(round=0, approved=False, summary="x"))
    stubs.script("watch_pull_request", "1", again, again)
    stubs.script("watch_pull_request", "2", _verdict("closed", message="closed by ana"))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, forge=FORGE.model_copy(update={"rounds": 1}))
        status = await handle.result()
    one, two = status.task("1"), status.task("2")
    assert one.state == TaskState.REJECTED and "after 1 forge round(s)" in (one.last_error or "")
    assert two.state == TaskState.REJECTED and "closed by ana" in (two.last_error or "")
    assert not stubs.inputs("merge_pull_request")


async def test_waiting_for_review_holds_no_slot_and_is_said_once(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    approved = asyncio.Event()

    async def approval(request: GateInput) -> GateVerdict:
        assert request.said_waiting
        await approved.wait()
        return _verdict("merge")

    stubs.script("watch_pull_request", "1", _verdict("waiting_review", message="1"), approval)
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, forge=FORGE, concurrency=1, notify=NOTIFY)
        # Task 2 runs its agent while task 1 waits for people: the wait holds no slot.
        await until(lambda: stubs.inputs("publish_pull_request", "2"), "task 2 published")
        waiting = await status_until(
            handle, lambda s: "waiting for review" in s.task("1").forge_phase, "waiting"
        )
        assert waiting.task("1").state == TaskState.MERGING
        approved.set()
        status = await handle.result()
    assert status.status == SessionState.COMPLETED
    events = [n.notification.event for n in stubs.inputs("notify", "1")]
    assert events.count("pull_request_waiting") == 1


async def test_a_refused_token_pauses_the_session_until_resumed(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    denied = ApplicationError("401 Bad credentials", type=FORGE_DENIED, non_retryable=True)
    stubs.script("publish_pull_request", "1", denied)
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, forge=FORGE)
        paused = await status_until(handle, lambda s: s.paused, "paused")
        assert "refused the workers' token" in (paused.pause_reason or "")
        assert "Bad credentials" in (paused.pause_reason or "")
        await handle.execute_update(SessionWorkflow.resume, ResumeRequest())
        status = await handle.result()
    assert status.task("1").state == TaskState.MERGED
    assert len(stubs.inputs("publish_pull_request", "1")) == 2


@pytest.mark.reliability(
    "the session continued as new while tasks watched their pull requests",
    "each pull request's record is carried: the tasks go on watching, none runs its agent or "
    "opens its pull request again, and 'waiting for review' is said once",
)
async def test_pull_requests_survive_continue_as_new(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    tasks = [make_task(str(n)) for n in range(1, 13)]
    stubs.plan = make_plan(make_batch(1, *tasks))
    release = asyncio.Event()

    async def approved_later(request: GateInput) -> GateVerdict:
        await release.wait()
        return _verdict("merge")

    for task in tasks:
        waiting = _verdict("waiting_review", message="1")
        stubs.script("watch_pull_request", task.id, waiting, approved_later)
    async with worker(client, stubs) as queue:
        handle = await start_session(
            client, queue, forge=FORGE, concurrency=2, history_limit=200, notify=NOTIFY
        )
        await status_until(handle, lambda s: s.runs > 1, "continued as new", timeout=40)
        release.set()
        status = await handle.result()
    assert status.status == SessionState.COMPLETED and status.runs > 1
    for task in tasks:
        assert [job.purpose for job in stubs.inputs("run_agent", task.id)] == ["task"]
        assert len(stubs.inputs("publish_pull_request", task.id)) == 1
        events = [n.notification.event for n in stubs.inputs("notify", task.id)]
        assert events.count("pull_request_waiting") == 1, (task.id, events)


async def test_a_moved_head_is_watched_again_and_a_conflict_gets_its_round(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.script("merge_pull_request", "1", ForgeMergeResult(outcome="head_moved"))
    stubs.script("watch_pull_request", "1", _verdict("merge"), _verdict("merge", head_sha="pushed"))
    stubs.script("merge_pull_request", "2", ForgeMergeResult(outcome="conflict"))
    stubs.script("merge_target", "2", TargetMergeResult(clean=False, conflict_files=["x.py"]))
    stubs.script("watch_pull_request", "2", _verdict("merge"), _verdict("merge", "head-2"))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, forge=FORGE)
        status = await handle.result()
    assert status.status == SessionState.COMPLETED, status.error
    # Only the head whose gate was read is merged: the one a person pushed, once read.
    heads = [m.expected_head_sha for m in stubs.inputs("merge_pull_request", "1")]
    assert heads == ["head-1", "pushed"]
    jobs = stubs.inputs("run_agent", "2")
    assert [(job.purpose, job.request.resolve_conflict) for job in jobs] == [
        ("task", False),
        ("conflict", True),
    ]
    assert status.task("2").workflow_id == f"{status.id}/task-2/forge-1"
    assert len(stubs.inputs("publish_pull_request", "2")) == 2


def test_webhook_signatures_and_targets() -> None:
    body = json.dumps(
        {"pull_request": {"head": {"ref": "autopilot-pr/s-1/2.1"}}, "action": "synchronize"}
    ).encode()
    good = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert webhook.signature_ok(b"k", body, good)
    assert not webhook.signature_ok(b"other", body, good)
    assert not webhook.signature_ok(b"k", body, None)
    assert webhook.targets("pull_request_review", body) == [("s-1", "2.1")]
    status = json.dumps({"branches": [{"name": "main"}, {"name": "autopilot-pr/s-1/3"}]})
    assert webhook.targets("status", status.encode()) == [("s-1", "3")]
    assert webhook.targets("status", b"not json") == []
    with pytest.raises(webhook.WebhookError):
        webhook.listen_address("nowhere")


async def test_a_webhook_delivery_has_the_gate_read_at_once(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    stubs.plan = make_plan(make_batch(1, make_task("1")))

    stubs.script("watch_pull_request", "1", _never)
    port = free_port()
    out = io.StringIO()
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, forge=FORGE)
        receiver = asyncio.create_task(
            webhook.serve(f"127.0.0.1:{port}", client, {webhook.SECRET_ENV: "k"}, out)
        )
        try:
            await until(lambda: stubs.inputs("watch_pull_request", "1"), "the first watch")
            body = json.dumps(
                {"check_suite": {"head_branch": f"autopilot-pr/{handle.id}/1"}}
            ).encode()
            signed = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
            unsigned = await asyncio.to_thread(_post, port, body, "sha256=00", "check_suite")
            assert unsigned == 401
            answer = await asyncio.to_thread(_post, port, body, signed, "check_suite")
            assert answer == 202
            status = await handle.result()
        finally:
            receiver.cancel()
    assert status.task("1").state == TaskState.MERGED
    assert len(stubs.inputs("watch_pull_request", "1")) == 2
    assert f"check_suite: session {handle.id}, Task 1" in out.getvalue()


def _post(port: int, body: bytes, signature: str, event: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=body,
        headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": event},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as err:
        return err.code


async def test_a_task_waiting_on_its_pull_request_can_be_skipped(
    client: Client, forge_stubs: ForgeStubs
) -> None:
    stubs = forge_stubs
    stubs.plan = make_plan(make_batch(1, make_task("1")))

    stubs.script("watch_pull_request", "1", _never)
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, forge=FORGE)
        await until(lambda: stubs.inputs("watch_pull_request", "1"), "the watch")
        await handle.execute_update(SessionWorkflow.skip, "1")
        status = await handle.result()
    task = status.task("1")
    assert task.state == TaskState.SKIPPED and task.pull_request is not None
    assert not stubs.inputs("merge_pull_request")
