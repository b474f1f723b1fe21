"""The kinds of task workspace, behind one interface.

A kind says where a task's repository lives and how the agent's work gets from its workspace
to the target branch. The activities call only this interface, so the task workflow, its
heartbeats, review and merge stay the same whatever the kind:

- `local`: the user's repository on this machine. Each task gets a repository of its own in
  the state dir that reads the user's objects through alternates (autopilot/git/workspace.py);
  its commits come back by a checked fetch, and the merge moves the user's branch.
- remote (autopilot/git/remote.py, `RemoteWorkspaces`): the repository is a git remote;
  each worker makes the workspaces from its own cache of it, pushes the task refs there,
  and merges on the remote by a compare-and-swap push.

Every method is blocking and idempotent, like the functions under it: a retry after a crash
at any point looks at git first.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol, runtime_checkable

from autopilot import models
from autopilot.git.commits import commit_changes, merge_target_into_branch
from autopilot.git.fresh import start_afresh
from autopilot.git.merge import merge_in
from autopilot.git.names import workspace_dir
from autopilot.git.workspace import bring_back, objects_dir, prepare_workspace, remove_workspace


class Located(NamedTuple):
    """A task's workspace on this worker."""

    path: str
    made: bool  # made anew here just now (a remote task's step on another worker): set it up


def commit_in(
    workspace: str | Path, request: models.CommitInput, repo: str | Path | None
) -> models.CommitResult:
    """`request`'s commit in `workspace`, its branch brought back into `repo`
    (None: the caller brings it back)."""
    return commit_changes(
        workspace,
        request.base_sha,
        request.session_id,
        request.task_id,
        request.message,
        repo=repo,
        keep_out=request.keep_out,
        named=request.named_files,
    )


@runtime_checkable
class WorkspaceKind(Protocol):
    """A task's workspace from start to merge."""

    def prepare(self, request: models.WorkspaceInput) -> models.Workspace:
        """Make the task's workspace on its branch, or say the task is merged already."""
        ...

    def here(self, repo: str, workspace: str, place: models.WorkspaceOrigin | None) -> Located:
        """The task's workspace (prepared as `workspace`) where this step runs."""
        ...

    def target_repo(self, repo: str) -> Path:
        """The repository on this machine where the target branch is (as last seen)."""
        ...

    def shared_objects(self, repo: str) -> Path:
        """The object store the workspace reads and must never write (the sandbox shows it
        read-only)."""
        ...

    def commit(self, request: models.CommitInput) -> models.CommitResult:
        """Commit what the agent left and bring the branch back where the merge reads it."""
        ...

    def merge_target(self, request: models.TargetMergeInput) -> models.TargetMergeResult:
        """Merge the target into the task's branch in its workspace (a conflict round)."""
        ...

    def merge(self, request: models.MergeInput) -> models.MergeResult:
        """Merge the task's branch into the target, once."""
        ...

    def remove(self, request: models.RemoveWorkspaceInput) -> None:
        """Remove the task's workspace (its branch stays)."""
        ...

    def remove_at(self, repo: str, path: str) -> None:
        """Remove a workspace known by its path (the merge's tidy-up)."""
        ...


class LocalWorkspaces:
    """The user's repository on this machine."""

    def prepare(self, request: models.WorkspaceInput) -> models.Workspace:
        aside = ""
        if request.fresh:
            aside = start_afresh(
                request.repo,
                request.target_branch,
                request.state_dir,
                request.session_id,
                request.task_id,
            )
        workspace = prepare_workspace(
            request.repo,
            request.target_branch,
            request.state_dir,
            request.session_id,
            request.task_id,
        )
        workspace.set_aside = aside
        return workspace

    def here(self, repo: str, workspace: str, place: models.WorkspaceOrigin | None) -> Located:
        return Located(workspace, made=False)  # one machine: where it was prepared

    def target_repo(self, repo: str) -> Path:
        return Path(repo)

    def shared_objects(self, repo: str) -> Path:
        return objects_dir(repo)

    def commit(self, request: models.CommitInput) -> models.CommitResult:
        return commit_in(request.workspace_path, request, repo=request.repo or None)

    def merge_target(self, request: models.TargetMergeInput) -> models.TargetMergeResult:
        merged = merge_target_into_branch(
            request.workspace_path,
            request.target_branch,
            request.session_id,
            request.task_id,
            repo=request.repo or None,
        )
        if merged.clean and request.repo and request.base_sha:
            # The merge is the branch's new head, which a merge verified_only reads in the
            # user's repository (conflicts come back with their resolution, by the commit).
            bring_back(
                request.repo,
                request.workspace_path,
                request.session_id,
                request.task_id,
                request.base_sha,
            )
        return merged

    def merge(self, request: models.MergeInput) -> models.MergeResult:
        return merge_in(request.repo, request)

    def remove(self, request: models.RemoveWorkspaceInput) -> None:
        path = workspace_dir(Path(request.state_dir), request.session_id, request.task_id)
        remove_workspace(request.repo, path)

    def remove_at(self, repo: str, path: str) -> None:
        remove_workspace(repo, path)


LOCAL: WorkspaceKind = LocalWorkspaces()
