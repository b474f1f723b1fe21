"""SessionWorkflow: one autonomous session over a range of a plan's batches.

The story: parse the plan (the parsed snapshot lands in history, so later edits of the file
cannot change this session), then run the batches in order. Inside a batch each task waits for
its dependencies, then for a free slot (at most `concurrency` agents at once, none while the
session is paused), runs as a child TaskWorkflow in its own worktree, and joins the merge
queue: one merge into the target branch at a time. With verify_merged, a branch that lacks the
target's head is first merged with it in its worktree and checked there, and the target moves
only to that checked tree. A branch that no longer merges gets one conflict round; one that
merges but fails the checks together with the target's new commits gets one round to fix
that. A task whose dependency did not merge is blocked, never run on a broken base.

The operator steers with updates (pause, resume, resume_with_config, cancel, skip, retry,
set_concurrency), each validated first so a request that cannot apply is rejected with the
reason. resume_with_config moves the session to a newer `.autopilot.toml` (the request it
carries into its next run holds the new settings): tasks started after it run with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.workflow import ActivityCancellationType, ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.merge import merge_task
    from activities.parse_plan import load_plan_snapshot, parse_plan
    from activities.review import CheckActivities
    from activities.workspace import remove_workspace
    from autopilot.error_types import (
        CONFIG_ERRORS,
        CONTAINER_SETUP,
        REPO_UNUSABLE,
        SETUP_ERRORS,
    )
    from autopilot.infra import search_attributes
    from autopilot.infra.repo_config import CONFIG_FILE
    from autopilot.models import (
        ACTIVE_SESSION_STATES,
        FINISHED_TASK_STATES,
        RETRYABLE_TASK_STATES,
        Batch,
        BatchStatus,
        CheckResult,
        ConfigReload,
        MergeInput,
        MergeOutcome,
        MergeStyle,
        MergeVerification,
        ParsePlanInput,
        Plan,
        RemoveWorkspaceInput,
        ResumeRequest,
        RetryRequest,
        SessionCarry,
        SessionChanges,
        SessionRequest,
        SessionState,
        SessionStatus,
        TargetMergeInput,
        Task,
        TaskRequest,
        TaskResult,
        TaskState,
        TaskStatus,
        VerifyMergeInput,
        Workspace,
        place_of,
    )
    from autopilot.notifications import paused, session_ended, task_ended
    from workflows.controls import refused, retry_request, settled
    from workflows.notifications import Notifier
    from workflows.task import (
        TaskWorkflow,
        checks_input,
        checks_timeout,
        failure_message,
        innermost_error_type,
    )

# Patch ids (workflow.patched): sessions that ended while paused were published "Paused";
# sessions before verify_merged merged a branch checked before the target moved. The controls'
# patches are in workflows/controls.py.
FINISHED_NOT_PAUSED = "finished-not-paused"
VERIFY_MERGED = "verify-merged"
# The target moved again while the branch merged with it was checked this many times in a row
# (another session, a person pushing): the merge gives up and says so.
VERIFY_ATTEMPTS = 3
ACTIVITY_TIMEOUT = timedelta(minutes=5)
GIT_RETRY = RetryPolicy(maximum_attempts=10, non_retryable_error_types=[REPO_UNUSABLE])
OUTCOME_STATES = {
    "no_changes": TaskState.NO_CHANGES,
    "rejected": TaskState.REJECTED,
    "conflict": TaskState.CONFLICT,
    "failed": TaskState.FAILED,
    "cancelled": TaskState.CANCELLED,
}
# A task ending in one of these pauses the session when --on-failure is `pause`.
FAILURE_STATES = frozenset({TaskState.FAILED, TaskState.REJECTED, TaskState.CONFLICT})
# Events one task in flight may still add to the session's history (child, merge, cleanup,
# details): the margin kept below history_limit when a run drains before continuing as new.
DRAIN_EVENTS_PER_TASK = 40
# The same margin in bytes: a task's result (its reviews) and its merge's events.
DRAIN_BYTES_PER_TASK = 64 * 1024
# A dependency in one of these lets its dependants go on.
DONE_STATES = frozenset({TaskState.MERGED, TaskState.SKIPPED})
# A task that was not started (skipped, cancelled): the state it settles in, and why.
Stopped = tuple[TaskState, str]


@workflow.defn
class SessionWorkflow:
    @workflow.init
    def __init__(self, request: SessionRequest) -> None:
        self._req = request
        # Everything the session knows lives in one model, handed whole to the next run when
        # it continues as new; the attributes below are this run's machinery only.
        if request.carry is not None:  # a continued run: pick up where the last one stopped
            self._state = request.carry
            self._state.status.runs += 1
        else:
            self._state = SessionCarry(
                status=SessionStatus(
                    id=request.session_id,
                    status=SessionState.PARSING,
                    repo=request.repo,
                    plan_path=request.plan_path,
                    target_branch=request.target_branch,
                    config_commit=request.config_commit,
                    concurrency=request.concurrency,
                    max_cost_usd=request.max_cost_usd,
                )
            )
        self._running = 0  # task workflows under way, bounded by the concurrency
        self._merge_queue = asyncio.Lock()  # one merge into the target branch at a time
        self._children: dict[str, ChildWorkflowHandle[Any, TaskResult]] = {}
        self._retries: list[asyncio.Task[None]] = []  # task runs the operator asked for again
        self._removing: set[str] = set()  # tasks whose worktree is being removed
        self._published: tuple[object, ...] = ()
        self._notifier = Notifier(request, self._state)

    @property
    def _status(self) -> SessionStatus:
        return self._state.status

    @property
    def _plan(self) -> Plan | None:
        return self._state.plan

    # -- the story ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: SessionRequest) -> SessionStatus:
        final = await self._run(request)
        # Say how it ended, after what was said before (each delivery has a deadline), and
        # wait for it, so that a notification that failed is in the result.
        await self._notifier.settled()
        self._notifier.send(session_ended(final, self._duration()))
        await self._notifier.settled()
        return final

    async def _run(self, request: SessionRequest) -> SessionStatus:
        status = self._status
        if self._plan is None and status.plan_sha256:
            # A continued run of a session that keeps its plan as a snapshot.
            loaded = await self._load_plan(request)
            if loaded is None:
                return status
            self._state.plan = loaded
        elif self._plan is None:
            status.started_at = workflow.now()
            self._show_progress()
            parsed = await self._parse_plan(request)
            if parsed is None:
                return status
            self._track(parsed)
        plan = self._plan
        assert plan is not None

        status.status = SessionState.RUNNING
        for batch in plan.batches:
            if self._cancelling:
                break
            status.current_batch = batch.number
            self._show_progress()
            workflow.logger.info(
                "Batch %s: %s (%d tasks)", batch.number, batch.title, len(batch.tasks)
            )
            batch_done = (
                self._run_in_order(batch)
                if batch.sequential
                else asyncio.gather(*(self._run_task(batch, task) for task in batch.tasks))
            )
            if await self._drained_before(batch_done):
                return self._continue_as_new()
        # A paused session waits for its operator (who may retry what failed), and tasks
        # sent round again finish before the session does.
        settled = workflow.wait_condition(
            lambda: (
                all(run.done() for run in self._retries)
                and (self._cancelling or not self._status.paused)
            )
        )
        if await self._drained_before(settled):
            return self._continue_as_new()

        if self._cancelling:
            for task in status.tasks:
                if task.state not in FINISHED_TASK_STATES:
                    self._settle(task.id, TaskState.CANCELLED, "the session was cancelled")
            return self._finish(SessionState.CANCELLED)
        all_merged = all(task.state == TaskState.MERGED for task in status.tasks)
        return self._finish(SessionState.COMPLETED if all_merged else SessionState.INCOMPLETE)

    async def _parse_plan(self, request: SessionRequest) -> Plan | None:
        return await self._read_plan(parse_plan, request, "Parse the plan")

    async def _load_plan(self, request: SessionRequest) -> Plan | None:
        return await self._read_plan(
            load_plan_snapshot, request, "Read the plan snapshot again", self._status.plan_sha256
        )

    async def _read_plan(
        self,
        reader: Callable[[ParsePlanInput], Awaitable[Plan]],
        request: SessionRequest,
        summary: str,
        sha256: str = "",
    ) -> Plan | None:
        """The plan's outline, parsed anew or read from the session's snapshot. None: the
        session has failed with the reason."""
        try:
            return await workflow.execute_activity(
                reader,
                ParsePlanInput(
                    plan_path=request.plan_path,
                    start_batch=request.start_batch,
                    end_batch=request.end_batch,
                    state_dir=request.state_dir,
                    sha256=sha256,
                    plan_text=request.plan_text,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=summary,
            )
        except ActivityError as err:
            self._finish(SessionState.FAILED, f"plan: {failure_message(err)}")
            return None

    async def _drained_before(self, work: Awaitable[object]) -> bool:
        """Run `work`, unless the history grows too long first. True: time to continue as new
        (new tasks stopped starting, and everything that ran has finished and merged)."""
        done = asyncio.ensure_future(work)
        drained = asyncio.ensure_future(
            workflow.wait_condition(
                lambda: (
                    self._history_full()
                    and self._running == 0
                    and not self._merge_queue.locked()
                    and not self._notifier.busy
                )
            )
        )
        await workflow.wait([done, drained], return_when=asyncio.FIRST_COMPLETED)
        if not done.done():
            return True
        drained.cancel()
        done.result()  # raise what the work raised
        return False

    def _continue_as_new(self) -> SessionStatus:
        workflow.logger.info(
            "History at %d events: continuing as new", workflow.info().get_current_history_length()
        )
        assert self._plan is not None
        # An outline is read again from its snapshot: the carried state stays small.
        carry = self._state.model_copy(update={"plan": None if self._plan.outline else self._plan})
        workflow.continue_as_new(self._req.model_copy(update={"carry": carry}))

    async def _run_in_order(self, batch: Batch) -> None:
        """A sequential batch: each task starts once the one before it has ended."""
        for task in batch.tasks:
            await self._run_task(batch, task)

    async def _run_task(self, batch: Batch, task: Task) -> None:
        if self._task(task.id).state in FINISHED_TASK_STATES:
            return  # settled by an earlier run of this session (before continue-as-new)
        await workflow.wait_condition(
            lambda: self._dependencies_settled(task) and task.id not in self._removing
        )
        if self._cancelling:
            self._settle(task.id, TaskState.CANCELLED, "the session was cancelled")
            return
        unmet = self._unmet_dependencies(batch, task)
        if unmet:
            self._settle(task.id, TaskState.BLOCKED, unmet)
            return

        outcome: TaskResult | Stopped | None = None
        merge: MergeOutcome | None = None
        if task.id not in self._state.conflict_due:
            outcome = await self._execute_in_slot(batch, task)
            if isinstance(outcome, TaskResult) and outcome.outcome == "ready":
                merge = await self._merge(task, outcome)
                if (merge.conflict or merge.failed_checks) and not self._cancelling:
                    # The target moved under the task: one conflict round in its worktree,
                    # then a fresh review, then one more try at the merge. Carried across
                    # continue-as-new, so a drained run goes on with the round, not anew.
                    entry = self._changed(self._task(task.id))
                    if merge.failed_checks:  # it merges, but fails checks with the target
                        entry.merged_checks_round = True
                        self._state.merged_checks_failed[task.id] = merge.failed_checks
                    else:
                        entry.conflict_round = True
                    self._state.conflict_due.append(task.id)
        if task.id in self._state.conflict_due:
            outcome = await self._execute_in_slot(
                batch,
                task,
                resolve_conflict=True,
                merged_checks=self._state.merged_checks_failed.get(task.id, []),
            )
            self._state.conflict_due.remove(task.id)
            self._state.merged_checks_failed.pop(task.id, None)
            merge = None
            if isinstance(outcome, TaskResult) and outcome.outcome == "ready":
                merge = await self._merge(task, outcome)
        assert outcome is not None

        if isinstance(outcome, TaskResult):
            state, error = self._final_state(task, outcome, merge)
        else:
            state, error = outcome
        setup_error = isinstance(outcome, TaskResult) and outcome.error_type in SETUP_ERRORS
        self._settle(task.id, state, error, setup_error=setup_error)
        if task.id in self._state.setup_failed:
            self._state.setup_failed.remove(task.id)
        if isinstance(outcome, TaskResult) and outcome.error_type in SETUP_ERRORS:
            self._state.setup_failed.append(task.id)
            if not self._status.paused:
                # Every other task would fail the same way: stop and say what to fix.
                self._pause(
                    f"Task {task.id} cannot run on this setup ({outcome.error_type}): "
                    f"{outcome.error} — {self._setup_remedy(task.id, outcome.error_type)}",
                    reload_config=outcome.error_type in CONFIG_ERRORS,
                )
        self._unskip(task.id)
        # The worktree goes; the branch stays (merged, or kept for a look when not). A merge
        # took it along already; a task stopped before its first run has none. A retry of
        # the task waits for this removal (_run_task), never meeting a half-removed worktree.
        entry = self._task(task.id)
        made_workspace = (
            isinstance(outcome, TaskResult) or entry.conflict_round or entry.lost_runs > 0
        )
        if made_workspace and (merge is None or not merge.worktree_removed):
            self._removing.add(task.id)
            try:
                await self._remove_workspace(task)
            finally:
                self._removing.discard(task.id)

    async def _execute_in_slot(
        self,
        batch: Batch,
        task: Task,
        resolve_conflict: bool = False,
        merged_checks: list[CheckResult] | None = None,
    ) -> TaskResult | Stopped:
        """The task workflow, in a free slot, or why it did not start. A task whose runs were
        lost too often in a row pauses the session and runs again once resumed: lost work is
        never a failure."""
        while True:
            async with self._agent_slot(task):
                stopped = self._stopped_before_start(task)
                if stopped is not None:
                    return stopped
                result = await self._execute_task(batch, task, resolve_conflict, merged_checks)
            if result.outcome != "lost" or self._cancelling:
                return result
            entry = self._changed(self._task(task.id))
            entry.state, entry.last_error = TaskState.PENDING, result.error
            if not self._status.paused:
                self._pause(
                    f"Task {task.id}: {result.error}. Nothing failed; find why its runs are "
                    f"lost (worker logs), then `starter.py resume` runs it again"
                )

    def _setup_remedy(self, task_id: str, error_type: str) -> str:
        """Which command fits once the person fixed what a setup error names."""
        session = self._req.session_id
        if error_type in CONFIG_ERRORS:
            return (
                f"fix {CONFIG_FILE}, commit it on {self._req.target_branch}, then "
                f"`starter.py resume --reload-config {session}` (it retries Task {task_id} "
                "and every task that met a setup error, with the new settings)"
            )
        remedy = (
            f"fix it, then `starter.py retry {session} {task_id}` and `starter.py resume {session}`"
        )
        if error_type == CONTAINER_SETUP:
            remedy += (
                f"; when [container] in {CONFIG_FILE} was wrong, commit the fix on "
                f"{self._req.target_branch} and run `starter.py resume --reload-config {session}`"
                " instead (it retries the task)"
            )
        return remedy

    def _final_state(
        self, task: Task, result: TaskResult, merge: MergeOutcome | None
    ) -> tuple[TaskState, str | None]:
        entry = self._task(task.id)
        if result.outcome == "already_merged":
            entry.merge_sha = result.merge_sha  # _settle marks the change
            return TaskState.MERGED, None
        if result.outcome != "ready":
            state = OUTCOME_STATES[result.outcome]
            if state == TaskState.CANCELLED and self._skip_requested(task.id):
                return TaskState.SKIPPED, "skipped by the operator while running"
            return state, result.error
        assert merge is not None
        if merge.merged:
            entry.merge_sha = merge.merge_sha
            return TaskState.MERGED, None
        if merge.failed_checks:
            # Ends here after its round, or without one (the session is being cancelled, or
            # the task had its one round already, for a conflict).
            again = (" still", " after its round") if entry.merged_checks_round else ("", "")
            return TaskState.CONFLICT, (
                f"its change and {self._req.target_branch}'s new commits{again[0]} fail "
                f"{_named(merge.failed_checks)} together{again[1]}; branch {entry.branch} is "
                f"kept, {self._req.target_branch} untouched"
            )
        if merge.conflict:
            files = ", ".join(merge.conflict_files) or "unknown files"
            return TaskState.CONFLICT, (
                f"still conflicts with {self._req.target_branch} after the conflict round "
                f"({files}); branch {entry.branch} is kept, {self._req.target_branch} untouched"
            )
        return TaskState.FAILED, f"merge: {merge.message}"

    @asynccontextmanager
    async def _agent_slot(self, task: Task) -> AsyncIterator[None]:
        """At most `concurrency` task workflows at once, and none starts while paused."""

        def may_go() -> bool:
            if self._cancelling or self._skip_requested(task.id):
                return True
            return (
                not self._history_full()  # finish what runs, then continue as new
                and not self._status.paused
                and self._running < self._status.concurrency
            )

        # Temporal checks every waiting condition in one pass, so several tasks can wake for
        # one free slot: each checks again once it runs, and only the first one takes it.
        while not may_go():
            await workflow.wait_condition(may_go)
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1

    def _stopped_before_start(self, task: Task) -> Stopped | None:
        if self._skip_requested(task.id):
            return TaskState.SKIPPED, "skipped by the operator"
        if self._cancelling:
            return TaskState.CANCELLED, "the session was cancelled"
        return None

    async def _execute_task(
        self,
        batch: Batch,
        task: Task,
        resolve_conflict: bool = False,
        merged_checks: list[CheckResult] | None = None,
    ) -> TaskResult:
        request, plan, entry = self._req, self._plan, self._changed(self._task(task.id))
        assert plan is not None
        entry.state = TaskState.RUNNING
        entry.started_at = entry.started_at or workflow.now()
        entry.workflow_id = f"{request.session_id}/task-{task.id}"
        if entry.retries:
            entry.workflow_id += f"/retry-{entry.retries}"
        if merged_checks:
            entry.workflow_id += "/merged-checks"
        elif resolve_conflict:
            entry.workflow_id += "/conflict"
        # Only the task's first run after `--fresh` starts afresh: a lost run's rerun and a
        # conflict round go on from its new branch.
        fresh, entry.fresh_start = entry.fresh_start and not resolve_conflict, False
        self._show_progress()
        try:
            child = await workflow.start_child_workflow(
                TaskWorkflow.run,
                TaskRequest.of(
                    request,
                    plan,
                    batch,
                    task,
                    resolve_conflict,
                    merged_checks,
                    fresh=fresh,
                ),
                id=entry.workflow_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"Task {task.id}: {task.title}"
                + (
                    " — merged-checks round"
                    if merged_checks
                    else " — conflict round"
                    if resolve_conflict
                    else ""
                ),
                static_details=f"Session `{request.session_id}`, batch {batch.number}",
            )
            self._children[task.id] = child
            result = await child
        except ChildWorkflowError as err:
            if isinstance(err.cause, CancelledError):
                result = TaskResult(task_id=task.id, outcome="cancelled", error="cancelled")
            else:  # the task workflow itself failed (not the agent: that is an outcome)
                result = TaskResult(
                    task_id=task.id,
                    outcome="failed",
                    error=failure_message(err),
                    error_type=innermost_error_type(err),
                )
        finally:
            self._children.pop(task.id, None)
        self._absorb(entry, result)
        return result

    async def _merge(self, task: Task, result: TaskResult) -> MergeOutcome:
        """Merge an approved branch, one at a time. With verify_merged, the target moves only
        to a tree whose checks passed as that tree: a branch that lacks the target's head is
        merged with it in its workspace and checked first, all under the merge queue's lock
        (merges wait meanwhile: that is the price of a green target)."""
        self._changed(self._task(task.id)).state = TaskState.MERGING
        self._show_progress()
        async with self._merge_queue:
            if self._req.review.verifies_merges and workflow.patched(VERIFY_MERGED):
                return await self._verified_merge(task, result)
            return await self._merge_branch(task, result, verified_only=False)

    async def _verified_merge(self, task: Task, result: TaskResult) -> MergeOutcome:
        """Merge only a branch holding the target's head (its tree is the one checked); else
        check the branch merged with the target, and try again (bounded: the target may move
        again meanwhile, when another session or a person moves it)."""
        for _ in range(VERIFY_ATTEMPTS):
            merge = await self._merge_branch(task, result, verified_only=True)
            if not merge.target_moved:
                return merge
            entry = self._task(task.id)
            try:
                # Numbered over the task's whole life: each verification keeps its own logs.
                verified = await self._verify(task, result, entry.merge_checks + 1)
            except ActivityError as err:
                return MergeOutcome(merged=False, message=failure_message(err))
            self._changed(entry).merge_checks += 1
            if not verified.clean:
                return MergeOutcome(
                    merged=False, conflict=True, conflict_files=verified.conflict_files
                )
            if verified.failed_checks:
                return MergeOutcome(
                    merged=False,
                    failed_checks=verified.failed_checks,
                    message=f"its change and {self._req.target_branch}'s new commits fail "
                    f"{_named(verified.failed_checks)} together",
                )
        return MergeOutcome(
            merged=False,
            message=f"{self._req.target_branch} moved again each of the {VERIFY_ATTEMPTS} "
            "times the branch merged with it was checked; retry when it is quiet",
        )

    async def _merge_branch(
        self, task: Task, result: TaskResult, *, verified_only: bool
    ) -> MergeOutcome:
        try:
            return await workflow.execute_activity(
                merge_task,
                MergeInput(
                    repo=self._req.repo,
                    target_branch=self._req.target_branch,
                    branch=result.branch,
                    session_id=self._req.session_id,
                    task_id=task.id,
                    message=_merge_message(self._req.merge_style, task),
                    worktree=result.workspace_path,
                    verified_only=verified_only,
                    style=self._req.merge_style,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=self._git_heartbeat,
                retry_policy=GIT_RETRY,
                summary=f"Task {task.id}: merge into {self._req.target_branch}",
            )
        except ActivityError as err:
            return MergeOutcome(merged=False, message=failure_message(err))

    async def _verify(self, task: Task, result: TaskResult, number: int) -> MergeVerification:
        """The target merged into the task's branch in its workspace, and the checks there."""
        batch, _ = self._find(task.id)
        assert self._plan is not None
        request = TaskRequest.of(self._req, self._plan, batch, task)
        workspace = Workspace(
            path=result.workspace_path, branch=result.branch, base_sha=result.base_sha
        )
        setup = self._req.workspace
        verified: MergeVerification = await workflow.execute_activity_method(
            CheckActivities.verify_merge,
            VerifyMergeInput(
                merge=TargetMergeInput(
                    worktree=result.workspace_path,
                    target_branch=self._req.target_branch,
                    session_id=self._req.session_id,
                    task_id=task.id,
                    repo=self._req.repo,
                    base_sha=result.base_sha,
                ),
                checks=checks_input(request, workspace, f"merged-{number}"),
            ),
            # The merge, the setup again (the target may change a lock file), the checks.
            start_to_close_timeout=ACTIVITY_TIMEOUT
            + timedelta(seconds=setup.setup_timeout_s * len(setup.setup))
            + checks_timeout(self._req.review),
            heartbeat_timeout=self._git_heartbeat,
            retry_policy=GIT_RETRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"Task {task.id}: check it merged with {self._req.target_branch}",
        )
        return verified

    async def _remove_workspace(self, task: Task) -> None:
        """A worktree that will not go is left for `starter.py cleanup` and shown in the
        status: the task's outcome stands, and the session goes on."""
        entry = self._task(task.id)
        try:
            await workflow.execute_activity(
                remove_workspace,
                RemoveWorkspaceInput(
                    repo=self._req.repo,
                    state_dir=self._req.state_dir,
                    session_id=self._req.session_id,
                    task_id=task.id,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=self._git_heartbeat,
                retry_policy=GIT_RETRY,
                summary=f"Task {task.id}: remove worktree",
            )
        except ActivityError as err:
            self._changed(entry).workspace_left = (
                f"the worktree could not be removed ({failure_message(err)}); "
                "`starter.py cleanup` removes it"
            )
        else:
            if entry.workspace_left:
                self._changed(entry).workspace_left = ""

    # -- the operator's controls -------------------------------------------------------------

    @workflow.query
    def status(self) -> SessionStatus:
        return self._status

    @workflow.query
    def changes(self, since: int) -> SessionChanges:
        """The status with only the task entries changed after revision `since` (all of them
        for 0): the live view's once-a-second read, small however many tasks the plan has."""
        status = self._status
        changed = [task for task in status.tasks if since <= 0 or task.revision > since]
        return SessionChanges(session=status.model_copy(update={"tasks": []}), tasks=changed)

    # A control's validator runs before the other events of the workflow task that brings it
    # (a task that just failed, say), while a status query may already have seen them: what
    # the session's state decides is checked in the handler, once those events are applied
    # (`settled`, workflows/controls.py). The validators refuse only what no event can change.

    @workflow.update
    async def pause(self, reason: str) -> SessionStatus:
        """No new task starts; running ones finish (and merge)."""
        await settled()
        if self._status.paused:
            raise refused(f"the session is already paused ({self._status.pause_reason})")
        self._pause(reason or "paused by the operator")
        return self._status

    @pause.validator
    def _validate_pause(self, reason: str) -> None:
        self._require_active()

    @workflow.update
    async def resume(self, request: ResumeRequest) -> SessionStatus:
        await settled()
        self._check_resumable(request)
        return self._resume(request)

    def _check_resumable(self, request: ResumeRequest) -> None:
        if not self._status.paused:
            raise refused("the session is not paused")
        budget = (
            request.max_cost_usd if request.max_cost_usd is not None else self._status.max_cost_usd
        )
        if budget is not None and self._status.cost_usd >= budget:
            raise refused(
                f"the session has spent ${self._status.cost_usd:.2f} of its "
                f"${budget:.2f} budget; resume with a higher --max-cost-usd"
            )

    def _resume(self, request: ResumeRequest) -> SessionStatus:
        if request.max_cost_usd is not None:
            self._status.max_cost_usd = request.max_cost_usd
        self._status.paused, self._status.pause_reason = False, None
        self._show_progress()
        return self._status

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        self._require_active()

    @workflow.update
    async def resume_with_config(self, reload: ConfigReload) -> SessionStatus:
        """`resume --reload-config`: the settings of a newer `.autopilot.toml` for the tasks
        started from now on (running ones keep theirs), the tasks that met a setup error
        retried with them, and the session resumed: one step, so nothing runs in between."""
        await settled()
        self._check_resumable(reload)
        agent = self._req.agent.model_copy(
            update={"network": reload.network, "ports": reload.ports}
        )
        self._req = self._req.model_copy(
            update={
                "review": reload.review,
                "workspace": reload.workspace,
                "container": reload.container,
                "agent": agent,
                "config_commit": reload.config_commit,
            }
        )
        self._status.config_commit = reload.config_commit
        self._status.config_changes = reload.changes
        for task_id in list(self._state.setup_failed):
            if self._task(task_id).state in RETRYABLE_TASK_STATES:
                self._retry(task_id)
        return self._resume(reload)

    @resume_with_config.validator
    def _validate_resume_with_config(self, reload: ConfigReload) -> None:
        self._require_active()
        if self._cancelling:
            raise ValueError("the session is being cancelled")

    @workflow.query
    def settings(self) -> SessionRequest:
        """The settings the session starts its next tasks with (without its carried state)."""
        return self._req.model_copy(update={"carry": None})

    @workflow.update
    def cancel(self, reason: str) -> SessionStatus:
        """Running agents are stopped (their task workflows cancelled), worktrees removed,
        branches kept; nothing new starts; the session ends `cancelled`."""
        self._status.cancel_reason = reason or "cancelled by the operator"
        for child in self._children.values():
            child.cancel()
        self._show_progress()
        return self._status

    @cancel.validator
    def _validate_cancel(self, reason: str) -> None:
        self._require_active()
        if self._cancelling:
            raise ValueError("the session is already being cancelled")

    @workflow.update
    async def skip(self, task_id: str) -> SessionStatus:
        """A pending task never starts; a running one is stopped. Its dependants go on."""
        await settled()
        entry = self._task(task_id)
        if entry.state in FINISHED_TASK_STATES or entry.state == TaskState.MERGING:
            raise refused(f"Task {task_id} is already {entry.state.value}")
        if task_id not in self._state.skip_requested:
            self._state.skip_requested.append(task_id)
        child = self._children.get(task_id)
        if child is not None:
            child.cancel()
        return self._status

    @skip.validator
    def _validate_skip(self, task_id: str) -> None:
        self._require_active()
        self._known_task(task_id)

    @workflow.update
    async def retry(self, request: str | RetryRequest) -> SessionStatus:
        """Run a task that did not merge again, with the tasks it blocked. `fresh`: the task
        starts from the target's head, its branch's work set aside (its blocked dependants
        have no branch of their own yet)."""
        retry = retry_request(request)
        task_id = retry.task_id
        await settled()
        entry = self._task(task_id)
        if entry.state not in RETRYABLE_TASK_STATES:
            allowed = ", ".join(sorted(state.value for state in RETRYABLE_TASK_STATES))
            raise refused(
                f"Task {task_id} is {entry.state.value}; only a task that is {allowed} "
                "can be retried"
            )
        self._retry(task_id, fresh=retry.fresh)
        return self._status

    def _retry(self, task_id: str, *, fresh: bool = False) -> None:
        for task_id_again in [task_id, *self._blocked_by(task_id)]:
            batch, task = self._find(task_id_again)
            entry = self._changed(self._task(task_id_again))
            entry.state, entry.completed_at = TaskState.PENDING, None
            entry.retries += 1
            entry.fresh_start = fresh and task_id_again == task_id
            self._retries.append(asyncio.create_task(self._run_task(batch, task)))
        self._recount()

    @retry.validator
    def _validate_retry(self, request: str | RetryRequest) -> None:
        task_id = retry_request(request).task_id
        self._require_active()
        self._known_task(task_id)
        if self._cancelling:
            raise ValueError("the session is being cancelled")

    @workflow.update
    def set_concurrency(self, concurrency: int) -> SessionStatus:
        self._status.concurrency = concurrency
        self._show_progress()
        return self._status

    @set_concurrency.validator
    def _validate_set_concurrency(self, concurrency: int) -> None:
        self._require_active()
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 (got {concurrency})")

    def _require_active(self) -> None:
        if self._status.status not in ACTIVE_SESSION_STATES:
            raise ValueError(f"the session has finished ({self._status.status.value})")

    def _known_task(self, task_id: str) -> TaskStatus:
        try:
            return self._task(task_id)
        except KeyError:
            known = ", ".join(task.id for task in self._status.tasks) or "none yet"
            raise ValueError(f"no Task {task_id} in this session (tasks: {known})") from None

    # -- bookkeeping -------------------------------------------------------------------------

    def _history_full(self) -> bool:
        """Time to stop starting tasks and continue as new, so that the run ends under
        history_limit (events) and history_bytes_limit: every task still in flight adds its
        merge, cleanup and bookkeeping events while it finishes. The server may say so first.
        A pure reading: wait predicates must not change state."""
        info = workflow.info()
        in_flight = self._status.concurrency + 1
        limit, size_limit = self._req.history_limit, self._req.history_bytes_limit
        return (
            info.get_current_history_length()
            > max(limit - DRAIN_EVENTS_PER_TASK * in_flight, limit // 2)
            or info.get_current_history_size()
            > max(size_limit - DRAIN_BYTES_PER_TASK * in_flight, size_limit // 2)
            or info.is_continue_as_new_suggested()
        )

    def _skip_requested(self, task_id: str) -> bool:
        return task_id in self._state.skip_requested

    def _unskip(self, task_id: str) -> None:
        if task_id in self._state.skip_requested:
            self._state.skip_requested.remove(task_id)

    @property
    def _git_heartbeat(self) -> timedelta:
        # Git steps heartbeat too: a worker that dies mid-merge is noticed this fast.
        return timedelta(seconds=self._req.agent.heartbeat_timeout_s)

    @property
    def _cancelling(self) -> bool:
        return self._status.cancel_reason is not None

    def _track(self, plan: Plan) -> None:
        self._state.plan = plan
        status = self._status
        status.plan_title = plan.title
        status.plan_sha256 = plan.sha256
        status.total_batches = len(plan.batches)
        status.batches = [
            BatchStatus(
                number=batch.number,
                title=batch.title,
                dependencies=batch.dependencies,
                execution_mode=place_of(self._req, batch),
                sequential=batch.sequential,
                task_ids=[task.id for task in batch.tasks],
            )
            for batch in plan.batches
        ]
        status.tasks = [
            self._changed(
                TaskStatus(
                    id=task.id, title=task.title, batch=batch.number, depends_on=task.depends_on
                )
            )
            for batch in plan.batches
            for task in batch.tasks
        ]
        for entry in status.tasks:
            entry.fresh_start = self._req.fresh  # a merged one is found merged first, untouched
        status.tasks_total = len(status.tasks)
        status.done_in_plan = plan.done_tasks  # shown, never run: the session has no other use

    def _find(self, task_id: str) -> tuple[Batch, Task]:
        assert self._plan is not None
        for batch in self._plan.batches:
            for task in batch.tasks:
                if task.id == task_id:
                    return batch, task
        raise KeyError(task_id)

    def _task(self, task_id: str) -> TaskStatus:
        return self._status.task(task_id)

    def _changed(self, entry: TaskStatus) -> TaskStatus:
        """Mark a task entry as changed (before or after changing it, in the same step): the
        `changes` query sends it again to whoever saw an earlier revision."""
        self._status.revision += 1
        entry.revision = self._status.revision
        return entry

    def _in_session(self, task_id: str) -> bool:
        return any(task.id == task_id for task in self._status.tasks)

    def _dependencies_settled(self, task: Task) -> bool:
        # A dependency outside the selected batches was merged by an earlier session.
        return all(
            not self._in_session(dep) or self._task(dep).state in FINISHED_TASK_STATES
            for dep in task.depends_on
        )

    def _unmet_dependencies(self, batch: Batch, task: Task) -> str | None:
        failed = [
            dep
            for dep in task.depends_on
            if self._in_session(dep) and self._task(dep).state not in DONE_STATES
        ]
        if failed:
            return ", ".join(f"Task {dep}" for dep in failed) + " did not merge"
        unmet = [
            f"Batch {number}"
            for number in batch.dependencies
            if any(
                entry.batch == number and entry.state not in DONE_STATES
                for entry in self._status.tasks
            )
        ]
        if unmet:
            return f"batch dependency not met: {', '.join(unmet)}"
        return None

    def _blocked_by(self, task_id: str) -> list[str]:
        """Blocked tasks that wait, directly or not, on task_id (or on its batch)."""
        found: list[str] = []
        frontier = [task_id]
        while frontier:
            current = frontier.pop()
            batch_of_current = self._task(current).batch
            for entry in self._status.tasks:
                if entry.state != TaskState.BLOCKED or entry.id in found or entry.id == task_id:
                    continue
                batch, _ = self._find(entry.id)
                if current in entry.depends_on or batch_of_current in batch.dependencies:
                    found.append(entry.id)
                    frontier.append(entry.id)
        return found

    def _absorb(self, entry: TaskStatus, result: TaskResult) -> None:
        """A finished task workflow's figures, added to what earlier runs of it reported."""
        self._changed(entry)
        entry.branch = result.branch or entry.branch
        if result.set_aside:
            entry.set_aside.append(result.set_aside)
        entry.commit_count = len(result.commits) or entry.commit_count
        entry.lost_runs += result.lost_runs
        for run in result.agent_runs:
            entry.attempts += not run.lost
            entry.cost_usd += run.cost_usd
            entry.turns += run.turns
            entry.input_tokens += run.input_tokens
            entry.output_tokens += run.output_tokens
        # The reviews and transcripts themselves stay in the task workflow's result (`status
        # --json` fills them in): the session's status travels in every query, update and
        # continue-as-new, one entry per task.
        if result.setup:
            entry.setup = result.setup[-1].summary()
        entry.review_rounds += len(result.reviews)
        for review in result.reviews:
            entry.cost_usd += review.reviewer_cost_usd
        self._recount()

    def _settle(
        self,
        task_id: str,
        state: TaskState,
        error: str | None = None,
        *,
        setup_error: bool = False,
    ) -> None:
        """`setup_error`: the caller pauses right after, saying which command fits."""
        entry = self._changed(self._task(task_id))
        entry.state = state
        entry.completed_at = workflow.now()
        workflow.logger.info("Task %s %s%s", task_id, state.value, f": {error}" if error else "")
        entry.last_error = error if state != TaskState.MERGED else None
        self._notifier.send(task_ended(self._status, entry))
        if state in FAILURE_STATES and self._req.review.on_failure == "pause" and not setup_error:
            if not self._status.paused and not self._cancelling:
                session = self._req.session_id
                self._pause(
                    f"Task {task_id} ended {state.value}: {error} — `starter.py retry "
                    f"{session} {task_id}` runs it again once resumed (`starter.py resume "
                    f"{session}`; `resume --reload-config {session}` after committing a fix "
                    f"of {CONFIG_FILE} on {self._req.target_branch})"
                )
        self._recount()

    def _recount(self) -> None:
        status = self._status
        status.tasks_completed = sum(task.state == TaskState.MERGED for task in status.tasks)
        status.cost_usd = sum(task.cost_usd for task in status.tasks)
        status.input_tokens = sum(task.input_tokens for task in status.tasks)
        status.output_tokens = sum(task.output_tokens for task in status.tasks)
        budget = status.max_cost_usd
        work_left = any(task.state == TaskState.PENDING for task in status.tasks)
        if budget is not None and status.cost_usd >= budget and work_left and not status.paused:
            self._pause(
                f"budget reached: ${status.cost_usd:.2f} of ${budget:.2f} spent",
                budget_reached=True,
            )
        self._show_progress()

    def _pause(
        self, reason: str, *, budget_reached: bool = False, reload_config: bool = False
    ) -> None:
        workflow.logger.info("Session paused: %s", reason)
        self._status.paused, self._status.pause_reason = True, reason
        self._show_progress()
        self._notifier.send(
            paused(self._status, budget_reached=budget_reached, reload_config=reload_config)
        )

    def _show_progress(self) -> None:
        """What the Web UI shows: the current details line and the search attributes."""
        status = self._status
        paused = f" — PAUSED: {status.pause_reason}" if status.paused else ""
        workflow.set_current_details(
            f"**{status.status.value}**{paused} — batch {status.current_batch} "
            f"({status.total_batches} batches), {status.tasks_completed}/{status.tasks_total} "
            f"tasks merged, ${status.cost_usd:.2f}"
        )
        self._publish()

    def _publish(self) -> None:
        status = self._status
        label = "Paused" if status.paused else status.status.value.title()
        if self._cancelling and status.status in ACTIVE_SESSION_STATES:
            label = "Cancelling"
        finished = status.status not in ACTIVE_SESSION_STATES
        if finished and status.paused and workflow.patched(FINISHED_NOT_PAUSED):
            label = status.status.value.title()  # a session cancelled while paused is over
        plan_name = status.plan_path.rsplit("/", 1)[-1]
        published = (label, plan_name, status.repo, status.current_batch)
        if published == self._published:
            return  # every upsert is a history event: only on change
        self._published = published
        updates: list[SearchAttributeUpdate[Any]] = [
            search_attributes.STATUS.value_set(label),
            search_attributes.PLAN.value_set(plan_name),
            search_attributes.REPO.value_set(status.repo),
        ]
        if status.current_batch is not None:
            updates.append(search_attributes.BATCH.value_set(status.current_batch))
        workflow.upsert_search_attributes(updates)

    def _duration(self) -> float | None:
        status = self._status
        if status.started_at is None or status.completed_at is None:
            return None
        return (status.completed_at - status.started_at).total_seconds()

    def _finish(self, state: SessionState, error: str | None = None) -> SessionStatus:
        self._status.status = state
        self._status.error = error
        self._status.completed_at = workflow.now()
        self._show_progress()
        return self._status


def _merge_message(style: MergeStyle, task: Task) -> str:
    """A squash commit is the task's one commit on the target: it says what the task did."""
    prefix = "Task" if style == "squash" else "Merge task"
    return f"{prefix} {task.id}: {task.title}"


def _named(checks: list[CheckResult]) -> str:
    return ", ".join(f"`{check.command}`" for check in checks)
