"""Forge mode's landing of a task, for its session: the task's ready branch as a pull request,
merged through the forge's gate instead of the session's own merge.

The story: the task workflow's branch passed the pipeline's own gate; it is published (pushed
to its pull request's branch, the pull request found or opened) and recorded in the task's
status at once. Then a heartbeating activity watches the pull request until something decides
(autopilot/steps/forge.py): merge it (through the API, only the head that passed; in a merge
queue it is enqueued and the watch sees it merged); a failing required check or a person's
request for changes is a feedback round (the task workflow again, in an agent slot, its first
job the fix), a base that moved under it the conflict round, each published again to the
same pull request, at most `[forge] rounds` of them; people's approvals still due are said
once ("waiting for review") and watched on; a person who closes it rejects the task.

Waiting holds no agent slot: only the rounds take one. Each pull request's record is carried
across continue-as-new (SessionCarry.pull_requests): a task watching its pull request goes on
watching in the next run. A forge that refuses the workers' token pauses the session with what
to fix; once resumed, the step is tried again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.forge import ForgeActivities
    from autopilot.error_types import FORGE_DENIED, FORGE_REFUSED, INPUT_REFUSED, REPO_UNUSABLE
    from autopilot.infra.config import forge_task_queue
    from autopilot.models import (
        Batch,
        ForgeMergeResult,
        GateInput,
        GateVerdict,
        MergeResult,
        NotifyEvent,
        PublishInput,
        PullRequestMergeInput,
        PullRequestRecord,
        SessionCarry,
        SessionRequest,
        Task,
        TaskResult,
        TaskState,
    )
    from autopilot.notifications import pull_request_event
    from autopilot.steps import forge as steps
    from workflows.notifications import Notifier
    from workflows.session_status import SessionBoard
    from workflows.task import failure_message, innermost_error_type
    from workflows.task_run import Stopped, TaskGo, TaskRun

T = TypeVar("T")
FORGE_TIMEOUT = timedelta(minutes=10)
# A watch may last as long as people take to review; its heartbeats say the worker is alive.
WATCH_TIMEOUT = timedelta(days=7)
FORGE_RETRY = RetryPolicy(
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=30,
    non_retryable_error_types=[FORGE_DENIED, FORGE_REFUSED, INPUT_REFUSED, REPO_UNUSABLE],
)


@dataclass
class Failed:
    """A forge step that failed for good (after its retries), or was stopped."""

    message: str
    stopped: Stopped | None = None


# The task workflow again, in an agent slot.
RunRound = Callable[[Batch, Task, TaskGo], Awaitable[TaskRun]]


class PullRequests:
    """The session's pull requests: `land` takes a task from its first run to its end."""

    def __init__(
        self,
        board: SessionBoard,
        notifier: Notifier,
        request: Callable[[], SessionRequest],
        run_round: RunRound,
        pause: Callable[[str], None],
        stopping: Callable[[Task], Stopped | None],
    ) -> None:
        self._board = board
        self._carry: SessionCarry = board.carry
        self._notifier = notifier
        self._request = request
        self._run_round = run_round
        self._pause = pause
        self._stopping = stopping
        self.busy = 0  # publishes and merges under way: the session does not drain under them
        self._poked: set[str] = set()  # tasks whose pull request the forge said changed

    def poke(self, task_id: str) -> None:
        """The forge said the task's pull request changed (a webhook): read its gate now."""
        self._poked.add(task_id)

    async def land(self, batch: Batch, task: Task) -> TaskRun:
        """The task's first run and its pull request until merged or ended; a task whose pull
        request was recorded before (an earlier run of the session) goes on watching it."""
        record = self._carry.pull_requests.get(task.id)
        if record is None:
            landed = await self._published_round(batch, task, TaskGo(), None)
            if isinstance(landed, TaskRun):
                return landed
            run, record = landed
        else:
            entry = self._board.task(task.id)
            run = TaskRun(result=TaskResult(task_id=task.id, outcome="ready", branch=entry.branch))
        return await self._until_decided(batch, task, record, run)

    async def _until_decided(
        self, batch: Batch, task: Task, record: PullRequestRecord, run: TaskRun
    ) -> TaskRun:
        while True:
            verdict = await self._watch(task, record)
            if isinstance(verdict, Failed):
                return _failed(run, verdict)
            number = record.ref.number
            if verdict.decision == "merged":
                return await self._merged(task, record, run, verdict.gate.merged_sha)
            if verdict.decision == "closed":
                run.stopped = (TaskState.REJECTED, f"pull request #{number} {verdict.message}")
                return run
            if verdict.decision == "waiting_review":
                self._waiting(task, record, verdict.message)
                continue
            if verdict.decision == "merge":
                merged = await self._merge(task, record, verdict.gate.head_sha)
                if isinstance(merged, Failed):
                    return _failed(run, merged)
                if merged.outcome == "merged" and merged.merge_sha:
                    return await self._merged(task, record, run, merged.merge_sha, deleted=True)
                if merged.outcome == "queued_failed":
                    return _failed(
                        run, Failed(f"the merge queue did not merge #{number}: {merged.message}")
                    )
                if merged.outcome != "conflict":
                    continue  # enqueued, head moved, closed meanwhile: the watch says what next
                verdict = verdict.model_copy(update={"decision": "conflict"})
            again = await self._round(batch, task, record, verdict)
            if isinstance(again, TaskRun):
                return again
            run = TaskRun(result=again)

    async def _round(
        self, batch: Batch, task: Task, record: PullRequestRecord, verdict: GateVerdict
    ) -> TaskRun | TaskResult:
        """A feedback or conflict round, then the pull request published again: the round's
        result, or how the task ended (out of rounds, not approved, failed)."""
        settings = self._request().forge
        number = record.ref.number
        said = verdict.message or verdict.gate.mergeable_state
        if record.rounds >= settings.rounds:
            return TaskRun(
                result=TaskResult(task_id=task.id, outcome="ready"),
                stopped=(
                    TaskState.REJECTED,
                    f"pull request #{number} still not mergeable after {record.rounds} forge "
                    f"round(s): {said}",
                ),
            )
        record.rounds += 1
        record.seen_reviews += verdict.reviews
        entry = self._board.task(task.id)
        entry.forge_rounds = max(entry.forge_rounds, record.rounds)  # _phase marks the change
        conflict = verdict.decision == "conflict"
        feedback = None
        if not conflict and verdict.feedback is not None:
            feedback = verdict.feedback.model_copy(update={"round": record.rounds})
        kind = "conflict" if conflict else "feedback"
        self._phase(task, f"{kind} round {record.rounds}: {said}")
        again = TaskGo(conflict=conflict, feedback=feedback, round_id=f"/forge-{record.rounds}")
        landed = await self._published_round(batch, task, again, record)
        if isinstance(landed, TaskRun):
            return landed
        assert landed[0].result is not None
        return landed[0].result

    async def _published_round(
        self, batch: Batch, task: Task, go: TaskGo, record: PullRequestRecord | None
    ) -> TaskRun | tuple[TaskRun, PullRequestRecord]:
        """The task workflow in a slot, then its ready branch published: the run and the
        pull request's record, or the run as it ended (not ready, or not published)."""
        run = await self._run_round(batch, task, go)
        if not run.ready:
            return run
        assert run.result is not None
        published = await self._publish(task, run.result, record)
        if isinstance(published, Failed):
            return _failed(run, published)
        return run, published

    async def _publish(
        self, task: Task, result: TaskResult, record: PullRequestRecord | None
    ) -> PullRequestRecord | Failed:
        """Push the branch, find or open its pull request, and record it at once."""
        request = self._request()
        entry = self._board.task(task.id)
        self._board.mark_changed(entry)
        entry.state = TaskState.MERGING
        self._phase(task, "publishing the pull request")
        ref = await self._call(
            ForgeActivities.publish,
            PublishInput(
                forge=request.forge,
                repo=request.repo,
                session_id=request.session_id,
                task_id=task.id,
                branch=result.branch,
                head_branch=steps.head_branch(request.session_id, task.id),
                target_branch=request.target_branch,
                title=steps.title(task),
                body=steps.body(task, result, request.session_id, request.forge.ui_url),
                site=result.site,
            ),
            f"Task {task.id}: publish its pull request",
        )
        if isinstance(ref, Failed):
            return ref
        opened = record is None
        record = record or PullRequestRecord(ref=ref)
        record.ref = ref
        self._carry.pull_requests[task.id] = record
        self._board.mark_changed(entry)
        entry.pull_request = ref
        self._phase(task, "waiting for the forge's checks")
        if opened:
            self._notify(task, "pull_request_opened")
        return record

    async def _watch(self, task: Task, record: PullRequestRecord) -> GateVerdict | Failed:
        """The watch activity until it decides, or until the task is skipped or the session
        cancelled (the watch is stopped; the pull request stays for people). A webhook's
        poke starts the watch again, which reads the gate at once."""
        request = self._request()
        watch = workflow.start_activity_method(
            ForgeActivities.watch,
            GateInput(
                forge=request.forge,
                number=record.ref.number,
                head_sha=record.ref.head_sha,
                seen_reviews=record.seen_reviews,
                said_waiting=record.said_waiting,
            ),
            task_queue=forge_task_queue(workflow.info().task_queue),
            start_to_close_timeout=WATCH_TIMEOUT,
            heartbeat_timeout=self._heartbeat,
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(minutes=2),
                non_retryable_error_types=[FORGE_DENIED, FORGE_REFUSED, INPUT_REFUSED],
            ),
            summary=f"Task {task.id}: watch pull request #{record.ref.number}",
        )
        self._poked.discard(task.id)  # this watch reads the gate first thing
        stop = asyncio.ensure_future(
            workflow.wait_condition(
                lambda: self._stopping(task) is not None or task.id in self._poked
            )
        )
        await workflow.wait([watch, stop], return_when=asyncio.FIRST_COMPLETED)
        if not watch.done():
            watch.cancel()
            stopped = self._stopping(task)
            if stopped is None:  # poked: a new watch reads the gate at once
                return await self._watch(task, record)
            return Failed(stopped[1], stopped)
        stop.cancel()
        return await self._outcome(watch, lambda: self._watch(task, record))

    async def _merge(
        self, task: Task, record: PullRequestRecord, head_sha: str
    ) -> ForgeMergeResult | Failed:
        """Merge the head whose gate was just read: one that moved since is watched again."""
        request = self._request()
        title, message = steps.merge_message(
            request.merge_style, task, request.session_id, head_sha
        )
        self._phase(task, "merging")
        return await self._call(
            ForgeActivities.merge,
            self._merge_input(record, title, message, head_sha),
            f"Task {task.id}: merge pull request #{record.ref.number}",
        )

    async def _merged(
        self, task: Task, record: PullRequestRecord, run: TaskRun, sha: str, deleted: bool = False
    ) -> TaskRun:
        """Merged (by us, the merge queue or a person): its branch goes, and it is said."""
        if not deleted:
            # Best effort: a branch left behind is the forge's to tidy, not a failed task.
            await self._call(
                ForgeActivities.delete_branch,
                self._merge_input(record, "", ""),
                f"Task {task.id}: delete the branch of pull request #{record.ref.number}",
            )
        self._phase(task, f"merged through pull request #{record.ref.number}")
        run.merge = MergeResult(merged=True, merge_sha=sha)
        self._notify(task, "pull_request_merged")
        return run

    def _waiting(self, task: Task, record: PullRequestRecord, message: str) -> None:
        record.said_waiting = True
        self._phase(task, f"waiting for review ({message})")
        self._notify(task, "pull_request_waiting")

    def _merge_input(
        self, record: PullRequestRecord, title: str, message: str, head_sha: str = ""
    ) -> PullRequestMergeInput:
        request = self._request()
        return PullRequestMergeInput(
            forge=request.forge,
            number=record.ref.number,
            expected_head_sha=head_sha or record.ref.head_sha,
            head_branch=record.ref.head_branch,
            style=request.merge_style,
            title=title,
            message=message,
        )

    async def _call(
        self, activity: Callable[..., Awaitable[T]], arg: Any, summary: str
    ) -> T | Failed:
        """A forge step (publish, merge): retried by its policy; a refused token pauses the
        session and the step is tried again once it is resumed."""
        self.busy += 1
        try:
            handle = workflow.start_activity_method(
                activity,
                arg,
                start_to_close_timeout=FORGE_TIMEOUT,
                heartbeat_timeout=self._heartbeat,
                retry_policy=FORGE_RETRY,
                summary=summary,
            )
            return await self._outcome(handle, lambda: self._call(activity, arg, summary))
        finally:
            self.busy -= 1

    async def _outcome(
        self, handle: Awaitable[T], again: Callable[[], Awaitable[T | Failed]]
    ) -> T | Failed:
        try:
            return await handle
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            if innermost_error_type(err) != FORGE_DENIED:
                return Failed(f"the forge: {failure_message(err)}")
            session = self._request().session_id
            self._pause(
                f"the forge refused the workers' token: {failure_message(err)} — give each "
                "worker a token that reaches the repository with push rights (GITHUB_TOKEN, or "
                f"the GitHub App's key), then `starter.py resume {session}`"
            )
        await workflow.wait_condition(
            lambda: not self._board.status.paused or self._board.cancelling
        )
        if self._board.cancelling:
            cancelled = "the session was cancelled"
            return Failed(cancelled, (TaskState.CANCELLED, cancelled))
        return await again()

    @property
    def _heartbeat(self) -> timedelta:
        return timedelta(seconds=self._request().agent.heartbeat_timeout_s)

    def _phase(self, task: Task, phase: str) -> None:
        entry = self._board.task(task.id)
        self._board.mark_changed(entry)
        entry.forge_phase = phase
        self._board.show_progress()

    def _notify(self, task: Task, event: NotifyEvent) -> None:
        entry = self._board.task(task.id)
        self._notifier.send(pull_request_event(self._board.status, entry, event))


def _failed(run: TaskRun, failed: Failed) -> TaskRun:
    """The task ends: stopped (skipped, cancelled), or failed with the forge's words."""
    if failed.stopped is not None:
        run.stopped = failed.stopped
        return run
    run.merge = MergeResult(merged=False, message=failed.message)
    return run
