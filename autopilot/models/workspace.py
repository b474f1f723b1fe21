"""A task's workspace and the git steps on it: prepare, commit, merge, remove."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, Field

from autopilot.models.checks import CheckResult
from autopilot.models.site import TaskSite, WorkspaceOrigin

# How an approved branch lands on the target ([merge] style): a merge commit, or one commit,
# or (forge mode only: the forge does it) its commits rebased onto the target.
MergeStyle = Literal["merge", "squash", "rebase"]


class CommitInfo(BaseModel):
    sha: str
    subject: str


class Workspace(BaseModel):
    """A task's workspace and branch, prepared from the target branch head."""

    path: str
    branch: str
    base_sha: str  # target head the branch started from
    already_merged: bool = False  # a merge commit for this session+task is already on target
    merge_sha: str | None = None  # set when already_merged
    set_aside: str = ""  # started afresh: the branch its earlier work is kept under


class WorkspaceInput(BaseModel):
    repo: str
    target_branch: str
    state_dir: str
    session_id: str
    task_id: str
    # Start from the target's head: the task branch's work is set aside (autopilot/git/fresh.py).
    fresh: bool = False
    site: TaskSite | None = None  # None: recorded before sites were carried


class _InTaskWorkspace(BaseModel):
    """A git step in a task's workspace."""

    # "worktree" in payloads recorded before the rename.
    workspace_path: str = Field(validation_alias=AliasChoices("workspace_path", "worktree"))
    session_id: str
    task_id: str
    # The user's repository: where the target is and the commits are brought back ("":
    # recorded before workspaces had repositories of their own, when the branch was shared).
    repo: str = ""
    site: TaskSite | None = None  # None: recorded before sites were carried


class CommitInput(_InTaskWorkspace):
    base_sha: str
    message: str
    # Never committed, and a branch whose commits hold them is not brought back
    # (WorkspaceSettings.keep_out).
    keep_out: list[str] = Field(default_factory=list)
    # The task's **Files:** paths: the protected paths among them it may change
    # (autopilot/infra/protected_paths.py).
    named_files: list[str] = Field(default_factory=list)
    # Remote mode, a conflict round: a worker that lacks the workspace makes it again with
    # this target merged in, as the round's first step left it.
    conflict_target: str = ""
    # Remote mode: the agent's own activity commits in the workspace it ran in (its work is
    # there, nowhere else); the workflow's commit step finds or makes the workspace first.
    in_place: bool = False


class CommitResult(BaseModel):
    commits: list[CommitInfo]  # base..branch head, oldest first
    head_sha: str
    committed_leftovers: bool  # we committed what the agent left uncommitted
    no_changes: bool  # branch has no commits and the tree no changes


class MergeInput(BaseModel):
    repo: str
    target_branch: str
    branch: str
    session_id: str
    task_id: str
    message: str
    # Removed in the same activity once the branch is on the target, which saves the session
    # a step per task. None (and in histories recorded before it): the session removes it.
    # "worktree" in payloads recorded before the rename.
    workspace_path: str | None = Field(
        default=None, validation_alias=AliasChoices("workspace_path", "worktree")
    )
    # Merge only a branch that holds the target's head: the merge's tree is then the branch's,
    # whose checks passed. Otherwise nothing is merged (MergeResult.target_moved).
    verified_only: bool = False
    style: MergeStyle = "merge"
    site: TaskSite | None = None  # None: recorded before sites were carried


class MergeResult(BaseModel):
    merged: bool
    merge_sha: str | None = None
    already_merged: bool = False  # found on target by its trailers: nothing was done twice
    conflict: bool = False
    conflict_files: list[str] = Field(default_factory=list)
    message: str = ""
    # The task's workspace went with the merge (MergeInput.workspace_path): no removal step
    # follows. "worktree_removed" in results recorded before the rename.
    workspace_removed: bool = Field(
        default=False, validation_alias=AliasChoices("workspace_removed", "worktree_removed")
    )
    # MergeInput.verified_only: the target has commits the branch lacks, nothing was merged.
    target_moved: bool = False
    # The branch merged with the target's new commits failed these checks (verify_merged).
    failed_checks: list[CheckResult] = Field(default_factory=list)


class TargetMergeInput(_InTaskWorkspace):
    target_branch: str
    base_sha: str = ""  # remote mode: where the workspace starts when it is made again

    @classmethod
    def at(
        cls, origin: WorkspaceOrigin, repo: str, workspace_path: str, site: TaskSite | None = None
    ) -> TargetMergeInput:
        return cls(**origin.model_dump(), workspace_path=workspace_path, repo=repo, site=site)

    @property
    def origin(self) -> WorkspaceOrigin:
        return WorkspaceOrigin(**self.model_dump(include=set(WorkspaceOrigin.model_fields)))


class TargetMergeResult(BaseModel):
    """The target branch merged into a task's branch, in its workspace (the conflict round)."""

    clean: bool
    conflict_files: list[str] = Field(default_factory=list)
    already_up_to_date: bool = False
    head_sha: str = ""


class RemoveWorkspaceInput(BaseModel):
    repo: str
    state_dir: str
    session_id: str
    task_id: str
    site: TaskSite | None = None  # None: recorded before sites were carried
