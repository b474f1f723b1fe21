"""TaskWorkflow: one task of the plan, from a fresh worktree to a branch ready to merge.

Its own workflow (and its own page in the Web UI): prepare the worktree, let the agent work,
commit what it left, and hand the branch back to the session, which owns the merge queue.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.agent import AgentActivities
    from activities.workspace import commit_changes, prepare_workspace
    from autopilot.models import (
        AgentInput,
        AgentProgress,
        AgentRun,
        CommitInput,
        TaskRequest,
        TaskResult,
        Workspace,
        WorkspaceInput,
    )

GIT_TIMEOUT = timedelta(minutes=5)
GIT_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=["RepoUnusable"])
# Errors that retrying the agent cannot fix: they end the task at once with the message.
AGENT_NON_RETRYABLE = frozenset({"AgentAuth", "AgentSetup"})
AGENT_BACKOFF = timedelta(seconds=5)
AGENT_BACKOFF_MAX = timedelta(minutes=5)


def failure_message(err: BaseException) -> str:
    """The innermost message of an activity failure: what a person needs to read."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    if isinstance(err, ApplicationError) and err.type:
        return f"{err.message} [{err.type}]"
    return str(err)


@workflow.defn
class TaskWorkflow:
    def __init__(self) -> None:
        self._phase = "starting"

    @workflow.query
    def phase(self) -> str:
        return self._phase

    @workflow.run
    async def run(self, request: TaskRequest) -> TaskResult:
        task = request.task
        label = f"Task {task.id}: {task.title}"

        self._phase = "preparing worktree"
        workspace = await workflow.execute_activity(
            prepare_workspace,
            WorkspaceInput(
                repo=request.repo,
                target_branch=request.target_branch,
                state_dir=request.state_dir,
                session_id=request.session_id,
                task_id=task.id,
            ),
            start_to_close_timeout=GIT_TIMEOUT,
            retry_policy=GIT_RETRY,
            summary=f"{label} — prepare worktree",
        )
        if workspace.already_merged:
            # A merge for this task is already on the target (an earlier run of this session).
            self._phase = "already merged"
            return TaskResult(
                task_id=task.id,
                outcome="already_merged",
                branch=workspace.branch,
                merge_sha=workspace.merge_sha,
            )
        result = TaskResult(
            task_id=task.id,
            outcome="failed",
            branch=workspace.branch,
            workspace_path=workspace.path,
            base_sha=workspace.base_sha,
        )

        if await self._run_agent(request, workspace, result) is None:
            self._phase = "failed"
            return result

        self._phase = "committing"
        commits = await workflow.execute_activity(
            commit_changes,
            CommitInput(
                worktree=workspace.path,
                base_sha=workspace.base_sha,
                session_id=request.session_id,
                task_id=task.id,
                message=task.commit_message or label,
            ),
            start_to_close_timeout=GIT_TIMEOUT,
            retry_policy=GIT_RETRY,
            summary=f"{label} — commit",
        )
        result.commits = commits.commits
        if commits.no_changes:
            self._phase = "no changes"
            result.outcome = "no_changes"
            result.error = "the agent finished without changing anything; nothing to merge"
            return result

        self._phase = "ready to merge"
        result.outcome = "ready"
        return result

    async def _run_agent(
        self, request: TaskRequest, workspace: Workspace, result: TaskResult
    ) -> AgentRun | None:
        """The agent's attempts, each recorded. The workflow owns the retries (not the
        activity's retry policy) so that every attempt's cost, turns and transcript stay in
        the task's result, and a rate limit waits as a visible timer for the reset time."""
        settings = request.agent
        label = f"Task {request.task.id}: {request.task.title}"
        for attempt in range(1, settings.max_attempts + 1):
            self._phase = f"agent attempt {attempt}"
            try:
                run: AgentRun = await workflow.execute_activity_method(
                    AgentActivities.run_agent,
                    AgentInput(request=request, workspace=workspace, attempt=attempt),
                    start_to_close_timeout=timedelta(seconds=settings.attempt_timeout_s),
                    heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_s),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    summary=f"{label} — agent, attempt {attempt}",
                )
            except ActivityError as err:
                failed = failed_attempt(err, attempt)
                result.agent_runs.append(failed)
                if failed.error_type in AGENT_NON_RETRYABLE or attempt == settings.max_attempts:
                    result.error = f"agent: {failed.error}"
                    return None
                await workflow.sleep(retry_delay(failed, attempt))
                continue
            result.agent_runs.append(run)
            return run
        return None


def failed_attempt(err: ActivityError, attempt: int) -> AgentRun:
    """The failed attempt as the activity described it, or what its last heartbeat said
    when it never got to say anything (worker gone, timed out)."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.details:
        return AgentRun.model_validate(cause.details[0])
    run = AgentRun(session_id="", attempt=attempt, is_error=True, error=failure_message(err))
    if isinstance(cause, TimeoutError) and cause.last_heartbeat_details:
        progress = AgentProgress.model_validate(cause.last_heartbeat_details[0])
        run.session_id, run.turns = progress.session_id, progress.turns
        run.transcript_path = progress.transcript_path
        run.error_type = "AgentLost"
    return run


def retry_delay(failed: AgentRun, attempt: int) -> timedelta:
    if failed.retry_after_s:
        return timedelta(seconds=failed.retry_after_s)
    backoff: timedelta = AGENT_BACKOFF * 2 ** (attempt - 1)
    return min(backoff, AGENT_BACKOFF_MAX)
