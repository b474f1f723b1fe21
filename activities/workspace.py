"""Activities over a task's worktree: prepare it, commit what the agent left, remove it.

Each is a thin wrapper over autopilot.git, whose functions are idempotent: a retry after a
crash at any point looks at git first and never repeats a commit.
"""

from __future__ import annotations

from temporalio import activity

from activities.errors import git_errors_as_activity_errors
from activities.heartbeat import in_thread
from autopilot import git as gitops
from autopilot.models import (
    CommitInput,
    CommitOutcome,
    RemoveWorkspaceInput,
    TargetMerge,
    TargetMergeInput,
    Workspace,
    WorkspaceInput,
)


@activity.defn
async def prepare_workspace(request: WorkspaceInput) -> Workspace:
    with git_errors_as_activity_errors():
        return await in_thread(
            gitops.prepare_workspace,
            request.repo,
            request.target_branch,
            request.state_dir,
            request.session_id,
            request.task_id,
        )


@activity.defn
async def commit_changes(request: CommitInput) -> CommitOutcome:
    with git_errors_as_activity_errors():
        return await in_thread(
            gitops.commit_changes,
            request.worktree,
            request.base_sha,
            request.session_id,
            request.task_id,
            request.message,
            repo=request.repo or None,
        )


@activity.defn
async def remove_workspace(request: RemoveWorkspaceInput) -> None:
    with git_errors_as_activity_errors():
        path = gitops.worktree_path(request.state_dir, request.session_id, request.task_id)
        await in_thread(gitops.remove_workspace, request.repo, path)


@activity.defn
async def merge_target(request: TargetMergeInput) -> TargetMerge:
    # The conflict round's first step: the target merged into the task's branch, conflicts
    # left in place for the agent. Idempotent: a retry finds the merge in progress.
    with git_errors_as_activity_errors():
        return await in_thread(
            gitops.merge_target_into_branch,
            request.worktree,
            request.target_branch,
            request.session_id,
            request.task_id,
            repo=request.repo or None,
        )
