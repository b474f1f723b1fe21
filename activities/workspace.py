"""Activities over a task's workspace: prepare it, commit what the agent left, remove it.

Each is a thin wrapper over the workspace kind (autopilot/git/kinds.py), whose methods are
idempotent: a retry after a crash at any point looks at git first and never repeats a commit.
"""

from __future__ import annotations

from temporalio import activity

from activities.errors import checked, git_errors_as_activity_errors
from activities.heartbeat import in_thread
from autopilot.models import (
    CommitInput,
    CommitResult,
    RemoveWorkspaceInput,
    TargetMergeInput,
    TargetMergeResult,
    Workspace,
    WorkspaceInput,
)
from autopilot.steps.site import site_of, workspaces


@activity.defn
async def prepare_workspace(request: WorkspaceInput) -> Workspace:
    with git_errors_as_activity_errors():
        return await in_thread(workspaces(site_of(request)).prepare, checked(request))


@activity.defn
async def commit_changes(request: CommitInput) -> CommitResult:
    with git_errors_as_activity_errors():
        return await in_thread(workspaces(site_of(request)).commit, checked(request))


@activity.defn
async def remove_workspace(request: RemoveWorkspaceInput) -> None:
    with git_errors_as_activity_errors():
        await in_thread(workspaces(site_of(request)).remove, checked(request))


@activity.defn
async def merge_target(request: TargetMergeInput) -> TargetMergeResult:
    # The conflict round's first step: the target merged into the task's branch, conflicts
    # left in place for the agent. Idempotent: a retry finds the merge in progress.
    with git_errors_as_activity_errors():
        return await in_thread(workspaces(site_of(request)).merge_target, checked(request))
