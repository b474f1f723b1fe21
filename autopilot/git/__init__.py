"""Plain, blocking git operations behind the Temporal activities: the git layer's face.
Its parts are the modules beside this one (runner, names, refs, workspace, commits, inspect,
merge, repo_check, cleanup; remote_url, remote_check, remote_cache and remote for a session
whose repository is a git remote); callers use this package's names (`from autopilot import
git as gitops`), not the parts.

Git is the source of truth: every commit and merge commit we create carries the trailers
`Autopilot-Session: <session>` and `Autopilot-Task: <task>`, so each function can find out
from the repository alone what a previous (possibly crashed) attempt already did. Every
public function is idempotent: calling it again after a crash at any point neither
duplicates a commit nor a merge.

Git runs as a subprocess with an argv list (never a shell), with `GIT_TERMINAL_PROMPT=0`
and without inherited `GIT_DIR`-like variables. Unexpected failures raise `GitError` whose
message says what failed, where, and what git printed.
"""

from __future__ import annotations

from autopilot.git.commits import (
    ConflictsRemain,
    FilesTooLarge,
    ProtectedPathsChanged,
    WorkspaceFilesCommitted,
    commit_changes,
    merge_target_into_branch,
    unresolved_conflicts,
)
from autopilot.git.inspect import (
    ReviewDiff,
    diff_for_review,
    restore_tree,
    tree_fingerprint,
)
from autopilot.git.merge import (
    MERGE_ATTEMPTS,
    CheckoutInTheWay,
    merge_task,
)
from autopilot.git.names import (
    AGENT_SPACES,
    SESSION_TRAILER,
    TASK_TRAILER,
    agent_space_path,
    branch_name,
    safe_component,
    worktree_path,
)
from autopilot.git.refs import (
    BRANCH_LOCK_STALE_SECONDS,
    STALE_LOCK_SECONDS,
    WORKTREE_LIST_ATTEMPTS,
    WORKTREE_LIST_BACKOFF_S,
    find_task_merge,
    head_sha,
    list_merges,
)
from autopilot.git.remote_check import (
    PREFLIGHT_TIMEOUT_S,
    RemoteCheck,
    check_remote,
)
from autopilot.git.remote_url import (
    RemoteError,
    remote_url,
    shown_url,
)
from autopilot.git.repo_check import (
    RepoCheck,
    check_repo,
)
from autopilot.git.runner import (
    DEFAULT_USER_EMAIL,
    DEFAULT_USER_NAME,
    LOW_SPACE_BYTES,
    MIN_GIT_VERSION,
    GitError,
    GitTimeout,
    RepoError,
    git_version,
    identity_env,
    require_git,
)
from autopilot.git.workspace import (
    INCOMING_PREFIX,
    WORKSPACE_SETTINGS,
    WorkspaceBroken,
    bring_back,
    incoming_ref,
    is_workspace_repo,
    objects_dir,
    prepare_workspace,
    remove_workspace,
)

__all__ = [
    "AGENT_SPACES",
    "BRANCH_LOCK_STALE_SECONDS",
    "DEFAULT_USER_EMAIL",
    "DEFAULT_USER_NAME",
    "INCOMING_PREFIX",
    "LOW_SPACE_BYTES",
    "MERGE_ATTEMPTS",
    "MIN_GIT_VERSION",
    "PREFLIGHT_TIMEOUT_S",
    "SESSION_TRAILER",
    "STALE_LOCK_SECONDS",
    "TASK_TRAILER",
    "WORKSPACE_SETTINGS",
    "WORKTREE_LIST_ATTEMPTS",
    "WORKTREE_LIST_BACKOFF_S",
    "CheckoutInTheWay",
    "ConflictsRemain",
    "FilesTooLarge",
    "GitError",
    "GitTimeout",
    "ProtectedPathsChanged",
    "RemoteCheck",
    "RemoteError",
    "RepoCheck",
    "RepoError",
    "ReviewDiff",
    "WorkspaceBroken",
    "WorkspaceFilesCommitted",
    "agent_space_path",
    "branch_name",
    "bring_back",
    "check_remote",
    "check_repo",
    "commit_changes",
    "diff_for_review",
    "find_task_merge",
    "git_version",
    "head_sha",
    "identity_env",
    "incoming_ref",
    "is_workspace_repo",
    "list_merges",
    "merge_target_into_branch",
    "merge_task",
    "objects_dir",
    "prepare_workspace",
    "remote_url",
    "remove_workspace",
    "require_git",
    "restore_tree",
    "safe_component",
    "shown_url",
    "tree_fingerprint",
    "unresolved_conflicts",
    "worktree_path",
]
