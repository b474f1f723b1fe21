"""SessionWorkflow: one autonomous session over a range of a plan's batches.

The story: parse the plan (the parsed snapshot lands in history, so later edits of the file
cannot change this session), then run the batches in order. Inside a batch each task waits for
its dependencies, then for a free slot (at most `concurrency` agents at once), runs as a child
TaskWorkflow in its own worktree, and joins the merge queue: one merge into the target branch
at a time. A task whose dependency did not merge is blocked, never run on a broken base.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.merge import merge_task
    from activities.parse_plan import parse_plan
    from activities.workspace import remove_workspace
    from autopilot.models import (
        FINISHED_TASK_STATES,
        Batch,
        BatchStatus,
        MergeInput,
        MergeOutcome,
        ParsePlanInput,
        Plan,
        RemoveWorkspaceInput,
        SessionRequest,
        SessionState,
        SessionStatus,
        Task,
        TaskRequest,
        TaskResult,
        TaskState,
        TaskStatus,
    )
    from workflows.task import TaskWorkflow, failure_message

ACTIVITY_TIMEOUT = timedelta(minutes=5)
OUTCOME_STATES = {
    "no_changes": TaskState.NO_CHANGES,
    "rejected": TaskState.REJECTED,
    "conflict": TaskState.CONFLICT,
    "failed": TaskState.FAILED,
}
# A task ending in one of these pauses the session when --on-failure is `pause`.
FAILURE_STATES = frozenset({TaskState.FAILED, TaskState.REJECTED, TaskState.CONFLICT})
GIT_RETRY = RetryPolicy(maximum_attempts=10, non_retryable_error_types=["RepoUnusable"])


@workflow.defn
class SessionWorkflow:
    def __init__(self) -> None:
        self._request: SessionRequest | None = None
        self._status: SessionStatus | None = None
        self._running = 0  # task workflows under way, bounded by concurrency
        self._merge_queue = asyncio.Lock()  # one merge into the target branch at a time

    @workflow.query
    def status(self) -> SessionStatus:
        if self._status is None:
            raise RuntimeError("the session has not started yet")
        return self._status

    @workflow.update
    def pause(self, reason: str) -> SessionStatus:
        """No new task starts; running ones finish (and merge)."""
        self._pause(reason or "paused by the operator")
        self._show_progress()
        return self.status()

    @pause.validator
    def _validate_pause(self, reason: str) -> None:
        self._require_running()
        if self._state.paused:
            raise ValueError("the session is already paused")

    @workflow.update
    def resume(self) -> SessionStatus:
        self._state.paused, self._state.pause_reason = False, None
        self._show_progress()
        return self.status()

    @resume.validator
    def _validate_resume(self) -> None:
        self._require_running()
        if not self._state.paused:
            raise ValueError("the session is not paused")

    def _require_running(self) -> None:
        if self._status is None or self._status.status not in (
            SessionState.PARSING,
            SessionState.RUNNING,
        ):
            raise ValueError("the session has finished")

    @workflow.run
    async def run(self, request: SessionRequest) -> SessionStatus:
        self._request = request
        self._status = status = SessionStatus(
            id=request.session_id,
            status=SessionState.PARSING,
            repo=request.repo,
            plan_path=request.plan_path,
            target_branch=request.target_branch,
            concurrency=request.concurrency,
            started_at=workflow.now(),
        )
        workflow.set_current_details(f"Parsing `{request.plan_path}`")

        try:
            plan = await workflow.execute_activity(
                parse_plan,
                ParsePlanInput(
                    plan_path=request.plan_path,
                    start_batch=request.start_batch,
                    end_batch=request.end_batch,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="Parse the plan",
            )
        except ActivityError as err:
            return self._finish(SessionState.FAILED, f"plan: {failure_message(err)}")
        self._track(plan)

        status.status = SessionState.RUNNING
        for batch in plan.batches:
            status.current_batch = batch.number
            self._show_progress()
            await self._run_batch(plan, batch)

        all_merged = all(task.state == TaskState.MERGED for task in status.tasks)
        return self._finish(
            SessionState.COMPLETED if all_merged else SessionState.FINISHED_WITH_FAILURES
        )

    # -- batches and tasks -------------------------------------------------------------------

    async def _run_batch(self, plan: Plan, batch: Batch) -> None:
        unmet = self._unmet_batch_dependencies(batch)
        if unmet:
            for task in batch.tasks:
                self._settle(task.id, TaskState.BLOCKED, f"batch dependency not met: {unmet}")
            return
        await asyncio.gather(*(self._run_task(plan, batch, task) for task in batch.tasks))

    async def _run_task(self, plan: Plan, batch: Batch, task: Task) -> None:
        await workflow.wait_condition(lambda: self._dependencies_settled(task))
        failed = [dep for dep in task.depends_on if self._dependency_failed(dep)]
        if failed:
            names = ", ".join(f"Task {dep}" for dep in failed)
            self._settle(task.id, TaskState.BLOCKED, f"{names} did not merge")
            return

        async with self._agent_slot():
            result = await self._execute_task(plan, batch, task)
        if result.outcome == "ready":
            merge = await self._merge(task, result)
            if merge is not None and merge.conflict:
                # The target moved under the task: one conflict round in its worktree, then a
                # fresh review, then one more try at the merge.
                self._task(task.id).conflict_round = True
                async with self._agent_slot():
                    result = await self._execute_task(plan, batch, task, resolve_conflict=True)
                merge = await self._merge(task, result) if result.outcome == "ready" else None
            if result.outcome == "ready":
                self._settle_merge(task, merge)
        elif result.outcome == "already_merged":
            self._task(task.id).merge_sha = result.merge_sha
            self._settle(task.id, TaskState.MERGED)
        if result.outcome not in ("ready", "already_merged"):
            self._settle(task.id, OUTCOME_STATES[result.outcome], result.error)
        if result.workspace_path:
            await self._remove_workspace(task, result.workspace_path)

    @asynccontextmanager
    async def _agent_slot(self) -> AsyncIterator[None]:
        """At most `concurrency` task workflows at once, and none starts while paused."""
        await workflow.wait_condition(
            lambda: not self._state.paused and self._running < self._req.concurrency
        )
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1

    async def _execute_task(
        self, plan: Plan, batch: Batch, task: Task, resolve_conflict: bool = False
    ) -> TaskResult:
        request = self._req
        entry = self._task(task.id)
        entry.state = TaskState.RUNNING
        entry.started_at = entry.started_at or workflow.now()
        entry.workflow_id = f"{request.session_id}/task-{task.id}"
        if resolve_conflict:
            entry.workflow_id += "/conflict"
        self._show_progress()
        try:
            result = await workflow.execute_child_workflow(
                TaskWorkflow.run,
                TaskRequest(
                    session_id=request.session_id,
                    repo=request.repo,
                    target_branch=request.target_branch,
                    state_dir=request.state_dir,
                    task=task,
                    plan_title=plan.title,
                    plan_context=plan.context,
                    batch_title="" if batch.implicit else batch.title,
                    batch_description=batch.description,
                    agent=request.agent,
                    review=request.review,
                    resolve_conflict=resolve_conflict,
                ),
                id=entry.workflow_id,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"Task {task.id}: {task.title}"
                + (" — conflict round" if resolve_conflict else ""),
                static_details=f"Session `{request.session_id}`, batch {batch.number}",
            )
        except ChildWorkflowError as err:
            # The task workflow itself failed (not the agent: that is an outcome).
            result = TaskResult(task_id=task.id, outcome="failed", error=failure_message(err))
        entry.branch = result.branch or entry.branch
        entry.commits = result.commits or entry.commits
        entry.reviews += result.reviews
        for run in result.agent_runs:
            entry.attempts += 1
            entry.cost_usd += run.cost_usd
            entry.turns += run.turns
            if run.transcript_path:
                entry.transcripts.append(run.transcript_path)
        for review in result.reviews:
            entry.cost_usd += review.reviewer_cost_usd
            if review.reviewer_transcript:
                entry.transcripts.append(review.reviewer_transcript)
        return result

    async def _merge(self, task: Task, result: TaskResult) -> MergeOutcome | None:
        """Merge an approved branch, one at a time. None: the merge itself failed."""
        self._task(task.id).state = TaskState.MERGING
        self._show_progress()
        async with self._merge_queue:
            try:
                return await workflow.execute_activity(
                    merge_task,
                    MergeInput(
                        repo=self._req.repo,
                        target_branch=self._req.target_branch,
                        branch=result.branch,
                        session_id=self._req.session_id,
                        task_id=task.id,
                        message=f"Merge task {task.id}: {task.title}",
                    ),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=GIT_RETRY,
                    summary=f"Task {task.id}: merge into {self._req.target_branch}",
                )
            except ActivityError as err:
                self._settle(task.id, TaskState.FAILED, f"merge: {failure_message(err)}")
                return None

    def _settle_merge(self, task: Task, merge: MergeOutcome | None) -> None:
        entry = self._task(task.id)
        if merge is None:
            return  # the merge activity failed: _merge settled the task
        if merge.merged:
            entry.merge_sha = merge.merge_sha
            self._settle(task.id, TaskState.MERGED)
        elif merge.conflict:
            files = ", ".join(merge.conflict_files) or "unknown files"
            self._settle(
                task.id,
                TaskState.CONFLICT,
                f"still conflicts with {self._req.target_branch} after the conflict round "
                f"({files}); branch {entry.branch} is kept, {self._req.target_branch} untouched",
            )
        else:
            self._settle(task.id, TaskState.FAILED, f"merge: {merge.message}")

    async def _remove_workspace(self, task: Task, path: str) -> None:
        await workflow.execute_activity(
            remove_workspace,
            RemoveWorkspaceInput(repo=self._req.repo, worktree=path),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=GIT_RETRY,
            summary=f"Task {task.id}: remove worktree",
        )

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def _req(self) -> SessionRequest:
        assert self._request is not None
        return self._request

    @property
    def _state(self) -> SessionStatus:
        assert self._status is not None
        return self._status

    def _track(self, plan: Plan) -> None:
        status = self._status
        assert status is not None
        status.plan_title = plan.title
        status.total_batches = len(plan.batches)
        status.batches = [
            BatchStatus(
                number=batch.number,
                title=batch.title,
                dependencies=batch.dependencies,
                task_ids=[task.id for task in batch.tasks],
            )
            for batch in plan.batches
        ]
        status.tasks = [
            TaskStatus(id=task.id, title=task.title, batch=batch.number, depends_on=task.depends_on)
            for batch in plan.batches
            for task in batch.tasks
        ]
        status.tasks_total = len(status.tasks)

    def _task(self, task_id: str) -> TaskStatus:
        assert self._status is not None
        return self._status.task(task_id)

    def _in_session(self, task_id: str) -> bool:
        assert self._status is not None
        return any(task.id == task_id for task in self._status.tasks)

    def _dependencies_settled(self, task: Task) -> bool:
        # A dependency outside the selected batches was merged by an earlier session.
        return all(
            not self._in_session(dep) or self._task(dep).state in FINISHED_TASK_STATES
            for dep in task.depends_on
        )

    def _dependency_failed(self, dep: str) -> bool:
        return self._in_session(dep) and self._task(dep).state != TaskState.MERGED

    def _unmet_batch_dependencies(self, batch: Batch) -> str:
        assert self._status is not None
        unmet = []
        for number in batch.dependencies:
            tasks = [task for task in self._status.tasks if task.batch == number]
            if any(task.state != TaskState.MERGED for task in tasks):
                unmet.append(f"Batch {number}")
        return ", ".join(unmet)

    def _settle(self, task_id: str, state: TaskState, error: str | None = None) -> None:
        assert self._status is not None
        entry = self._task(task_id)
        entry.state = state
        entry.completed_at = workflow.now()
        if error:
            entry.last_error = error
        self._status.tasks_completed = sum(
            task.state == TaskState.MERGED for task in self._status.tasks
        )
        self._status.cost_usd = sum(task.cost_usd for task in self._status.tasks)
        if state in FAILURE_STATES and self._req.review.on_failure == "pause":
            self._pause(f"Task {task_id} ended {state.value}: {error}")
        self._show_progress()

    def _pause(self, reason: str) -> None:
        self._state.paused, self._state.pause_reason = True, reason

    def _show_progress(self) -> None:
        assert self._status is not None
        status = self._status
        paused = f" — PAUSED: {status.pause_reason}" if status.paused else ""
        workflow.set_current_details(
            f"**{status.status.value}**{paused} — batch {status.current_batch} "
            f"({status.total_batches} batches), {status.tasks_completed}/{status.tasks_total} "
            f"tasks merged, ${status.cost_usd:.2f}"
        )

    def _finish(self, state: SessionState, error: str | None = None) -> SessionStatus:
        assert self._status is not None
        self._status.status = state
        self._status.error = error
        self._status.completed_at = workflow.now()
        self._show_progress()
        return self._status
