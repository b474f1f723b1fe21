"""SessionWorkflow: one autonomous session over a range of a plan's batches.

The story: parse the plan (the parsed snapshot lands in history, so later edits of the file
cannot change this session), then run the batches in order. Inside a batch each task waits for
its dependencies, then for a free slot (at most `concurrency` agents at once, none while the
session is paused), runs as a child TaskWorkflow in its own workspace, and joins the merge
queue: one merge into the target branch at a time. With verify_merged, a branch that lacks the
target's head is first merged with it in its workspace and checked there, and the target moves
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
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.workflow import ActivityCancellationType, ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.checks import CheckActivities
    from activities.merge import merge_task
    from activities.parse_plan import load_plan_snapshot, parse_plan
    from activities.workspace import remove_workspace
    from autopilot.error_types import (
        CONFIG_ERRORS,
        CONTAINER_SETUP,
        REPO_UNUSABLE,
    )
    from autopilot.infra.repo_config import CONFIG_FILE
    from autopilot.models import (
        FINISHED_TASK_STATES,
        RETRYABLE_TASK_STATES,
        Batch,
        CheckResult,
        ConfigReload,
        MergeInput,
        MergeResult,
        MergeStyle,
        ParsePlanInput,
        Plan,
        RemoveWorkspaceInput,
        ResumeRequest,
        RetryRequest,
        SessionChanges,
        SessionRequest,
        SessionState,
        SessionStatus,
        TargetMergeInput,
        Task,
        TaskRequest,
        TaskResult,
        TaskSite,
        TaskState,
        VerifyMergeInput,
        VerifyMergeResult,
        Workspace,
    )
    from autopilot.notifications import paused, session_ended, task_ended
    from autopilot.steps.site import task_site
    from workflows.controls import ControlRules, retry_request, settled
    from workflows.notifications import Notifier
    from workflows.pull_request import PullRequests
    from workflows.scheduling import Scheduler, history_full
    from workflows.session_status import SessionBoard, first_carry
    from workflows.task import (
        TaskWorkflow,
        checks_input,
        checks_timeout,
        failure_message,
        innermost_error_type,
    )
    from workflows.task_run import FIRST_GO, Stopped, TaskGo, TaskRun

# Patch id (workflow.patched): sessions before verify_merged merged a branch checked before the
# target moved. The others: workflows/controls.py, workflows/session_status.py.
VERIFY_MERGED = "verify-merged"
# The target moved again while the branch merged with it was checked this many times in a row
# (another session, a person pushing): the merge gives up and says so.
VERIFY_ATTEMPTS = 3
ACTIVITY_TIMEOUT = timedelta(minutes=5)
GIT_RETRY = RetryPolicy(maximum_attempts=10, non_retryable_error_types=[REPO_UNUSABLE])
# A task ending in one of these pauses the session when --on-failure is `pause`.
FAILURE_STATES = frozenset({TaskState.FAILED, TaskState.REJECTED, TaskState.CONFLICT})


@workflow.defn
class SessionWorkflow:
    @workflow.init
    def __init__(self, request: SessionRequest) -> None:
        self._req = request
        # Everything the session knows lives in one model, handed whole to the next run when
        # it continues as new (the board's carry); the rest is this run's machinery only.
        self._board = SessionBoard(first_carry(request))
        self._carry = self._board.carry
        self._scheduler = Scheduler(self._board)
        self._rules = ControlRules(self._board)
        self._children: dict[str, ChildWorkflowHandle[Any, TaskResult]] = {}
        self._retries: list[asyncio.Task[None]] = []  # task runs the operator asked for again
        self._notifier = Notifier(request, self._carry)
        self._pull_requests = PullRequests(
            self._board,
            self._notifier,
            lambda: self._req,
            self._execute_in_slot,
            self._pause,
            self._stopped_before_start,
        )

    @property
    def _status(self) -> SessionStatus:
        return self._board.status

    @property
    def _plan(self) -> Plan | None:
        return self._carry.plan

    # -- the story ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: SessionRequest) -> SessionStatus:
        final = await self._run(request)
        # Say how it ended, after what was said before (each delivery has a deadline), and
        # wait for it, so that a notification that failed is in the result.
        await self._notifier.settled()
        self._notifier.send(session_ended(final, self._board.duration()))
        await self._notifier.settled()
        return final

    async def _run(self, request: SessionRequest) -> SessionStatus:
        plan = await self._plan_of(request)
        if plan is None:
            return self._status
        self._status.status = SessionState.RUNNING
        for batch in plan.batches:
            if self._board.cancelling:
                break
            self._status.current_batch = batch.number
            self._board.show_progress()
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
        settled_all = workflow.wait_condition(
            lambda: (
                all(run.done() for run in self._retries)
                and (self._board.cancelling or not self._status.paused)
            )
        )
        if await self._drained_before(settled_all):
            return self._continue_as_new()
        return self._end()

    async def _plan_of(self, request: SessionRequest) -> Plan | None:
        """The plan this run works on: carried, read from its snapshot, or parsed (None: the
        session has failed with the reason)."""
        if self._plan is None and self._status.plan_sha256:
            # A continued run of a session that keeps its plan as a snapshot.
            loaded = await self._load_plan(request)
            if loaded is None:
                return None
            self._carry.plan = loaded
        elif self._plan is None:
            self._status.started_at = workflow.now()
            self._board.show_progress()
            parsed = await self._parse_plan(request)
            if parsed is None:
                return None
            self._board.track(parsed, self._req)
        return self._plan

    def _end(self) -> SessionStatus:
        if self._board.cancelling:
            for task in self._status.tasks:
                if task.state not in FINISHED_TASK_STATES:
                    self._settle(task.id, TaskState.CANCELLED, "the session was cancelled")
            return self._board.finish(SessionState.CANCELLED)
        all_merged = all(task.state == TaskState.MERGED for task in self._status.tasks)
        return self._board.finish(SessionState.COMPLETED if all_merged else SessionState.INCOMPLETE)

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
                # The session's own plan settings, under the same names.
                ParsePlanInput(
                    **request.model_dump(include=set(ParsePlanInput.model_fields) - {"sha256"}),
                    sha256=sha256,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=summary,
            )
        except ActivityError as err:
            self._board.finish(SessionState.FAILED, f"plan: {failure_message(err)}")
            return None

    async def _drained_before(self, work: Awaitable[object]) -> bool:
        """Run `work`, unless the history grows too long first. True: time to continue as new
        (new tasks stopped starting, and everything that ran has finished and merged)."""
        done = asyncio.ensure_future(work)
        drained = asyncio.ensure_future(
            workflow.wait_condition(
                lambda: (
                    history_full(self._req, self._status.concurrency)
                    and self._scheduler.running == 0
                    and not self._scheduler.merge_queue.locked()
                    and not self._notifier.busy
                    and not self._pull_requests.busy
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
        carry = self._carry.model_copy(update={"plan": None if self._plan.outline else self._plan})
        workflow.continue_as_new(self._req.model_copy(update={"carry": carry}))

    async def _run_in_order(self, batch: Batch) -> None:
        """A sequential batch: each task starts once the one before it has ended."""
        for task in batch.tasks:
            await self._run_task(batch, task)

    async def _run_task(self, batch: Batch, task: Task) -> None:
        if self._board.task(task.id).state in FINISHED_TASK_STATES:
            return  # settled by an earlier run of this session (before continue-as-new)
        await workflow.wait_condition(lambda: self._scheduler.may_start(task))
        if self._board.cancelling:
            self._settle(task.id, TaskState.CANCELLED, "the session was cancelled")
            return
        unmet = self._scheduler.unmet_dependencies(batch, task)
        if unmet:
            self._settle(task.id, TaskState.BLOCKED, unmet)
            return

        run = await self._run_and_merge(batch, task)
        state, error = self._final_state(task, run)
        self._settle(task.id, state, error, setup_error=run.setup_error is not None)
        self._note_setup_error(task, run)
        self._scheduler.unskip(task.id)
        # The workspace goes; the branch stays (merged, or kept for a look when not). A merge
        # took it along already; a task stopped before its first run has none. A retry of
        # the task waits for this removal (may_start), never meeting a half-removed workspace.
        entry = self._board.task(task.id)
        made_workspace = run.result is not None or entry.conflict_round or entry.lost_runs > 0
        if made_workspace and (run.merge is None or not run.merge.workspace_removed):
            self._scheduler.removing.add(task.id)
            try:
                await self._remove_workspace(task, self._site(task, run.result))
            finally:
                self._scheduler.removing.discard(task.id)

    async def _run_and_merge(self, batch: Batch, task: Task) -> TaskRun:
        """The task's run and merge; when the target moved under it, one round in its
        workspace (a conflict round, or a merged-checks round), a fresh review, and one more
        try at the merge. The round due is carried across continue-as-new, so a drained run
        goes on with the round, not anew. In forge mode the forge merges, through the task's
        pull request (workflows/pull_request.py)."""
        if self._req.forge.active:
            return await self._pull_requests.land(batch, task)
        if task.id not in self._carry.conflict_due:
            run = await self._merged(task, await self._execute_in_slot(batch, task))
            if not run.target_moved_under or self._board.cancelling:
                return run
            self._round_due(task.id, run.merge)
        merged_checks = self._carry.merged_checks_failed.get(task.id, [])
        run = await self._execute_in_slot(
            batch, task, TaskGo(conflict=True, merged_checks=merged_checks)
        )
        self._carry.conflict_due.remove(task.id)
        self._carry.merged_checks_failed.pop(task.id, None)
        return await self._merged(task, run)

    async def _merged(self, task: Task, run: TaskRun) -> TaskRun:
        """The run with its merge, when its branch is ready."""
        if run.ready:
            assert run.result is not None
            run.merge = await self._merge(task, run.result)
        return run

    def _round_due(self, task_id: str, merge: MergeResult | None) -> None:
        assert merge is not None
        entry = self._board.task(task_id)
        self._board.mark_changed(entry)
        if merge.failed_checks:  # it merges, but fails checks with the target
            entry.merged_checks_round = True
            self._carry.merged_checks_failed[task_id] = merge.failed_checks
        else:
            entry.conflict_round = True
        self._carry.conflict_due.append(task_id)

    def _note_setup_error(self, task: Task, run: TaskRun) -> None:
        """A task that met a setup error is retried by `resume --reload-config`; every other
        task would fail the same way, so the session pauses and says what to fix."""
        if task.id in self._carry.setup_failed:
            self._carry.setup_failed.remove(task.id)
        error_type = run.setup_error
        if error_type is None:
            return
        self._carry.setup_failed.append(task.id)
        if not self._status.paused:
            assert run.result is not None
            self._pause(
                f"Task {task.id} cannot run on this setup ({error_type}): "
                f"{run.result.error} — {self._setup_remedy(task.id, error_type)}",
                reload_config=error_type in CONFIG_ERRORS,
            )

    async def _execute_in_slot(self, batch: Batch, task: Task, go: TaskGo = FIRST_GO) -> TaskRun:
        """The task workflow, in a free slot, or why it did not start. A task whose runs were
        lost too often in a row pauses the session and runs again once resumed: lost work is
        never a failure."""
        while True:
            async with self._scheduler.agent_slot(task, self._req):
                stopped = self._stopped_before_start(task)
                if stopped is not None:
                    return TaskRun(stopped=stopped)
                result = await self._execute_task(batch, task, go)
            if result.outcome != "lost" or self._board.cancelling:
                return TaskRun(result=result)
            entry = self._board.task(task.id)
            self._board.mark_changed(entry)
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

    def _final_state(self, task: Task, run: TaskRun) -> tuple[TaskState, str | None]:
        if run.stopped is not None:
            return run.stopped
        result, merge = run.result, run.merge
        assert result is not None
        entry = self._board.task(task.id)
        if result.outcome == "already_merged":
            entry.merge_sha = result.merge_sha  # _settle marks the change
            return TaskState.MERGED, None
        if result.outcome != "ready":
            state = TaskState(result.outcome)  # the task workflow ended it: the same word
            if state == TaskState.CANCELLED and self._scheduler.skip_requested(task.id):
                return TaskState.SKIPPED, "skipped by the operator while running"
            return state, result.error
        assert merge is not None
        if merge.merged:
            entry.merge_sha = merge.merge_sha
            return TaskState.MERGED, None
        return self._unmerged(entry.merged_checks_round, entry.branch, merge)

    def _unmerged(
        self, had_checks_round: bool, branch: str, merge: MergeResult
    ) -> tuple[TaskState, str | None]:
        target = self._req.target_branch
        if merge.failed_checks:
            # Ends here after its round, or without one (the session is being cancelled, or
            # the task had its one round already, for a conflict).
            again = (" still", " after its round") if had_checks_round else ("", "")
            return TaskState.CONFLICT, (
                f"its change and {target}'s new commits{again[0]} fail "
                f"{_named(merge.failed_checks)} together{again[1]}; branch {branch} is "
                f"kept, {target} untouched"
            )
        if merge.conflict:
            files = ", ".join(merge.conflict_files) or "unknown files"
            return TaskState.CONFLICT, (
                f"still conflicts with {target} after the conflict round "
                f"({files}); branch {branch} is kept, {target} untouched"
            )
        return TaskState.FAILED, f"merge: {merge.message}"

    def _stopped_before_start(self, task: Task) -> Stopped | None:
        if self._scheduler.skip_requested(task.id):
            return TaskState.SKIPPED, "skipped by the operator"
        if self._board.cancelling:
            return TaskState.CANCELLED, "the session was cancelled"
        return None

    async def _execute_task(self, batch: Batch, task: Task, go: TaskGo) -> TaskResult:
        request, plan, entry = self._req, self._plan, self._board.task(task.id)
        assert plan is not None
        self._board.mark_changed(entry)
        entry.state = TaskState.RUNNING
        entry.started_at = entry.started_at or workflow.now()
        entry.workflow_id = f"{request.session_id}/task-{task.id}"
        if entry.retries:
            entry.workflow_id += f"/retry-{entry.retries}"
        suffix, round_name = go.names()
        entry.workflow_id += suffix
        # Only the task's first run after `--fresh` starts afresh: a lost run's rerun and a
        # conflict round go on from its new branch.
        fresh, entry.fresh_start = entry.fresh_start and not go.conflict, False
        self._board.show_progress()
        task_request = TaskRequest.of(
            request,
            plan,
            batch,
            task,
            go.conflict,
            go.merged_checks,
            fresh=fresh,
            forge_feedback=go.feedback,
        )
        try:
            child = await workflow.start_child_workflow(
                TaskWorkflow.run,
                task_request,
                id=entry.workflow_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"Task {task.id}: {task.title}{round_name}",
                static_details=f"Session `{request.session_id}`, batch {batch.number}",
            )
            self._children[task.id] = child
            result = await child
        except ChildWorkflowError as err:
            result = _ended_by(task, err)
        finally:
            self._children.pop(task.id, None)
        self._board.absorb(entry, result)
        self._recount()
        return result

    async def _merge(self, task: Task, result: TaskResult) -> MergeResult:
        """Merge an approved branch, one at a time. With verify_merged, the target moves only
        to a tree whose checks passed as that tree: a branch that lacks the target's head is
        merged with it in its workspace and checked first, all under the merge queue's lock
        (merges wait meanwhile: that is the price of a green target)."""
        entry = self._board.task(task.id)
        self._board.mark_changed(entry)
        entry.state = TaskState.MERGING
        self._board.show_progress()
        async with self._scheduler.merge_queue:
            if not self._req.review.verifies_merges:
                return await self._merge_branch(task, result, verified_only=False)
            if workflow.patched(VERIFY_MERGED):
                return await self._verified_merge(task, result)
            else:  # recorded before verify_merged: the branch as checked, the target moved or not
                return await self._merge_branch(task, result, verified_only=False)

    async def _verified_merge(self, task: Task, result: TaskResult) -> MergeResult:
        """Merge only a branch holding the target's head (its tree is the one checked); else
        check the branch merged with the target, and try again (bounded: the target may move
        again meanwhile, when another session or a person moves it)."""
        for _ in range(VERIFY_ATTEMPTS):
            merge = await self._merge_branch(task, result, verified_only=True)
            if not merge.target_moved:
                return merge
            entry = self._board.task(task.id)
            try:
                # Numbered over the task's whole life: each verification keeps its own logs.
                verified = await self._verify(task, result, entry.merge_checks + 1)
            except ActivityError as err:
                return MergeResult(merged=False, message=failure_message(err))
            self._board.mark_changed(entry)
            entry.merge_checks += 1
            if not verified.clean:
                return MergeResult(
                    merged=False, conflict=True, conflict_files=verified.conflict_files
                )
            if verified.failed_checks:
                return MergeResult(
                    merged=False,
                    failed_checks=verified.failed_checks,
                    message=f"its change and {self._req.target_branch}'s new commits fail "
                    f"{_named(verified.failed_checks)} together",
                )
        return MergeResult(
            merged=False,
            message=f"{self._req.target_branch} moved again each of the {VERIFY_ATTEMPTS} "
            "times the branch merged with it was checked; retry when it is quiet",
        )

    async def _merge_branch(
        self, task: Task, result: TaskResult, *, verified_only: bool
    ) -> MergeResult:
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
                    workspace_path=result.workspace_path,
                    verified_only=verified_only,
                    style=self._req.merge_style,
                    site=self._site(task, result),
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=self._git_heartbeat,
                retry_policy=GIT_RETRY,
                summary=f"Task {task.id}: merge into {self._req.target_branch}",
            )
        except ActivityError as err:
            return MergeResult(merged=False, message=failure_message(err))

    async def _verify(self, task: Task, result: TaskResult, number: int) -> VerifyMergeResult:
        """The target merged into the task's branch in its workspace, and the checks there."""
        batch, _ = self._scheduler.find(task.id)
        assert self._plan is not None
        request = TaskRequest.of(self._req, self._plan, batch, task)
        workspace = Workspace(
            path=result.workspace_path, branch=result.branch, base_sha=result.base_sha
        )
        setup = self._req.workspace
        verified: VerifyMergeResult = await workflow.execute_activity_method(
            CheckActivities.verify_merge,
            VerifyMergeInput(
                merge=TargetMergeInput(
                    workspace_path=result.workspace_path,
                    target_branch=self._req.target_branch,
                    session_id=self._req.session_id,
                    task_id=task.id,
                    repo=self._req.repo,
                    base_sha=result.base_sha,
                    site=self._site(task, result),
                ),
                checks=checks_input(
                    request, workspace, f"merged-{number}", self._site(task, result)
                ),
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

    def _site(self, task: Task, result: TaskResult | None) -> TaskSite:
        """Where the task ran, as its workflow decided; for a result recorded before sites
        were carried, or a task that ended before its workspace was made, decided here."""
        if result is not None and result.site is not None:
            return result.site
        batch, _ = self._scheduler.find(task.id)
        assert self._plan is not None
        return task_site(TaskRequest.of(self._req, self._plan, batch, task))

    async def _remove_workspace(self, task: Task, site: TaskSite) -> None:
        """A workspace that will not go is left for `starter.py cleanup` and shown in the
        status: the task's outcome stands, and the session goes on."""
        entry = self._board.task(task.id)
        try:
            await workflow.execute_activity(
                remove_workspace,
                RemoveWorkspaceInput(
                    repo=self._req.repo,
                    state_dir=self._req.state_dir,
                    session_id=self._req.session_id,
                    task_id=task.id,
                    site=site,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=self._git_heartbeat,
                retry_policy=GIT_RETRY,
                summary=f"Task {task.id}: remove workspace",
            )
        except ActivityError as err:
            self._board.mark_changed(entry)
            entry.workspace_left = (
                f"the workspace could not be removed ({failure_message(err)}); "
                "`starter.py cleanup` removes it"
            )
        else:
            if entry.workspace_left:
                self._board.mark_changed(entry)
                entry.workspace_left = ""

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

    # A control's validator runs before the other events of the workflow task that brings it
    # (a task that just failed, say), while a status query may already have seen them: what
    # the session's state decides is checked in the handler, once those events are applied
    # (`settled`, workflows/controls.py). The validators refuse only what no event can change.

    @workflow.update
    async def pause(self, reason: str) -> SessionStatus:
        """No new task starts; running ones finish (and merge)."""
        await settled()
        self._rules.check_pausable()
        self._pause(reason or "paused by the operator")
        return self._status

    @pause.validator
    def _validate_pause(self, reason: str) -> None:
        self._rules.require_active()

    @workflow.update
    async def resume(self, request: ResumeRequest) -> SessionStatus:
        await settled()
        self._rules.check_resumable(request)
        return self._resume(request)

    @resume.validator
    def _validate_resume(self, request: ResumeRequest) -> None:
        self._rules.require_active()

    def _resume(self, request: ResumeRequest) -> SessionStatus:
        if request.max_cost_usd is not None:
            self._status.max_cost_usd = request.max_cost_usd
        self._status.paused, self._status.pause_reason = False, None
        self._board.show_progress()
        return self._status

    @workflow.update
    async def resume_with_config(self, reload: ConfigReload) -> SessionStatus:
        """`resume --reload-config`: the settings of a newer `.autopilot.toml` for the tasks
        started from now on (running ones keep theirs), the tasks that met a setup error
        retried with them, and the session resumed: one step, so nothing runs in between."""
        await settled()
        self._rules.check_resumable(reload)
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
        for task_id in list(self._carry.setup_failed):
            if self._board.task(task_id).state in RETRYABLE_TASK_STATES:
                self._retry(task_id)
        return self._resume(reload)

    @resume_with_config.validator
    def _validate_resume_with_config(self, reload: ConfigReload) -> None:
        self._rules.require_active()
        self._rules.require_not_cancelling()

    @workflow.query
    def settings(self) -> SessionRequest:
        """The settings the session starts its next tasks with (without its carried state)."""
        return self._req.model_copy(update={"carry": None})

    @workflow.update
    def cancel(self, reason: str) -> SessionStatus:
        """Running agents are stopped (their task workflows cancelled), workspaces removed,
        branches kept; nothing new starts; the session ends `cancelled`."""
        self._status.cancel_reason = reason or "cancelled by the operator"
        for child in self._children.values():
            child.cancel()
        self._board.show_progress()
        return self._status

    @cancel.validator
    def _validate_cancel(self, reason: str) -> None:
        self._rules.require_active()
        if self._board.cancelling:
            raise ValueError("the session is already being cancelled")

    @workflow.update
    async def skip(self, task_id: str) -> SessionStatus:
        """A pending task never starts; a running one is stopped. Its dependants go on."""
        await settled()
        self._rules.check_skippable(task_id)
        if task_id not in self._carry.skip_requested:
            self._carry.skip_requested.append(task_id)
        child = self._children.get(task_id)
        if child is not None:
            child.cancel()
        return self._status

    @skip.validator
    def _validate_skip(self, task_id: str) -> None:
        self._rules.require_active()
        self._rules.known_task(task_id)

    @workflow.update
    async def retry(self, request: str | RetryRequest) -> SessionStatus:
        """Run a task that did not merge again, with the tasks it blocked. `fresh`: the task
        starts from the target's head, its branch's work set aside (its blocked dependants
        have no branch of their own yet)."""
        retry = retry_request(request)
        await settled()
        self._rules.check_retryable(retry.task_id)
        self._retry(retry.task_id, fresh=retry.fresh)
        return self._status

    def _retry(self, task_id: str, *, fresh: bool = False) -> None:
        for task_id_again in [task_id, *self._scheduler.blocked_by(task_id)]:
            batch, task = self._scheduler.find(task_id_again)
            entry = self._board.task(task_id_again)
            self._board.mark_changed(entry)
            entry.state, entry.completed_at = TaskState.PENDING, None
            entry.retries += 1
            entry.fresh_start = fresh and task_id_again == task_id
            # Forge mode: a task run again gets a pull request of its own again (the forge
            # finds the open one by its branch; a closed one stays closed).
            self._carry.pull_requests.pop(task_id_again, None)
            self._retries.append(asyncio.create_task(self._run_task(batch, task)))
        self._recount()

    @retry.validator
    def _validate_retry(self, request: str | RetryRequest) -> None:
        task_id = retry_request(request).task_id
        self._rules.require_active()
        self._rules.known_task(task_id)
        self._rules.require_not_cancelling()

    @workflow.signal
    def forge_changed(self, task_id: str) -> None:
        """Forge mode: the forge said the task's pull request changed (`starter.py webhook`):
        its watch reads the gate now instead of at its next poll."""
        self._pull_requests.poke(task_id)

    @workflow.update
    def set_concurrency(self, concurrency: int) -> SessionStatus:
        self._status.concurrency = concurrency
        self._board.show_progress()
        return self._status

    @set_concurrency.validator
    def _validate_set_concurrency(self, concurrency: int) -> None:
        self._rules.require_active()
        self._rules.check_concurrency(concurrency)

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def _git_heartbeat(self) -> timedelta:
        # Git steps heartbeat too: a worker that dies mid-merge is noticed this fast.
        return timedelta(seconds=self._req.agent.heartbeat_timeout_s)

    def _settle(
        self,
        task_id: str,
        state: TaskState,
        error: str | None = None,
        *,
        setup_error: bool = False,
    ) -> None:
        """`setup_error`: the caller pauses right after, saying which command fits."""
        entry = self._board.task(task_id)
        self._board.mark_changed(entry)
        entry.state = state
        entry.completed_at = workflow.now()
        workflow.logger.info("Task %s %s%s", task_id, state.value, f": {error}" if error else "")
        entry.last_error = error if state != TaskState.MERGED else None
        self._notifier.send(task_ended(self._status, entry))
        if state in FAILURE_STATES and self._req.review.on_failure == "pause" and not setup_error:
            if not self._status.paused and not self._board.cancelling:
                session = self._req.session_id
                self._pause(
                    f"Task {task_id} ended {state.value}: {error} — `starter.py retry "
                    f"{session} {task_id}` runs it again once resumed (`starter.py resume "
                    f"{session}`; `resume --reload-config {session}` after committing a fix "
                    f"of {CONFIG_FILE} on {self._req.target_branch})"
                )
        self._recount()

    def _recount(self) -> None:
        """The totals again; the budget spent with work left pauses the session."""
        self._board.recount()
        status = self._status
        if self._board.over_budget():
            assert status.max_cost_usd is not None
            self._pause(
                f"budget reached: ${status.cost_usd:.2f} of ${status.max_cost_usd:.2f} spent",
                budget_reached=True,
            )
        self._board.show_progress()

    def _pause(
        self, reason: str, *, budget_reached: bool = False, reload_config: bool = False
    ) -> None:
        workflow.logger.info("Session paused: %s", reason)
        self._status.paused, self._status.pause_reason = True, reason
        self._board.show_progress()
        self._notifier.send(
            paused(self._status, budget_reached=budget_reached, reload_config=reload_config)
        )


def _ended_by(task: Task, err: ChildWorkflowError) -> TaskResult:
    """The result of a task workflow that did not return one: cancelled, or itself failed
    (not the agent: that is an outcome)."""
    if isinstance(err.cause, CancelledError):
        return TaskResult(task_id=task.id, outcome="cancelled", error="cancelled")
    return TaskResult(
        task_id=task.id,
        outcome="failed",
        error=failure_message(err),
        error_type=innermost_error_type(err),
    )


def _merge_message(style: MergeStyle, task: Task) -> str:
    """A squash commit is the task's one commit on the target: it says what the task did."""
    prefix = "Task" if style == "squash" else "Merge task"
    return f"{prefix} {task.id}: {task.title}"


def _named(checks: list[CheckResult]) -> str:
    return ", ".join(f"`{check.command}`" for check in checks)
