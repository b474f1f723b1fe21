"""TaskWorkflow: one task of the plan, from a fresh worktree to a branch ready to merge.

Its own workflow (and its own page in the Web UI): prepare the worktree, let the agent work,
commit what it left, and hand the branch back to the session, which owns the merge queue.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.agent import AgentActivities
    from activities.workspace import commit_changes, prepare_workspace
    from autopilot.models import (
        AgentInput,
        AgentRun,
        CommitInput,
        TaskRequest,
        TaskResult,
        WorkspaceInput,
    )

GIT_TIMEOUT = timedelta(minutes=5)
GIT_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=["RepoUnusable"])
# Errors that retrying the agent cannot fix: they end the task at once with the message.
AGENT_NON_RETRYABLE = ["AgentAuth", "AgentSetup"]


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

        self._phase = "agent working"
        settings = request.agent
        try:
            run: AgentRun = await workflow.execute_activity_method(
                AgentActivities.run_agent,
                AgentInput(request=request, workspace=workspace),
                start_to_close_timeout=timedelta(seconds=settings.attempt_timeout_s),
                heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_s),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=5),
                    maximum_attempts=settings.max_attempts,
                    non_retryable_error_types=AGENT_NON_RETRYABLE,
                ),
                summary=f"{label} — agent",
            )
        except ActivityError as err:
            self._phase = "failed"
            result.error = f"agent: {failure_message(err)}"
            return result
        result.agent_runs.append(run)

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
