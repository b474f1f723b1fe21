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

from autopilot.git.caches_aside import (
    CachesAside,
)
from autopilot.git.cleanup import (
    BranchInfo,
    CleanupAction,
    apply_cleanup,
    find_branches,
    is_task_branch,
    plan_cleanup,
    remove_empty_session_dirs,
)
from autopilot.git.commits import (
    ConflictsRemain,
    FilesTooLarge,
    ProtectedPathsChanged,
    WorkspaceFilesCommitted,
    commit_changes,
    merge_target_into_branch,
    unresolved_conflicts,
)
from autopilot.git.diff_and_fingerprint import (
    ReviewDiff,
    diff_for_review,
    restore_tree,
    tree_fingerprint,
)
from autopilot.git.fresh import (
    SET_ASIDE_MARK,
    set_aside_name,
    start_afresh,
)
from autopilot.git.input_check import (
    InputRefused,
    check_input,
    pin_state_dir,
)
from autopilot.git.kinds import (
    LOCAL,
    LocalWorkspaces,
    WorkspaceKind,
)
from autopilot.git.merge import (
    MERGE_ATTEMPTS,
    CheckoutInTheWay,
    merge_task,
)
from autopilot.git.names import (
    AGENT_SPACES,
    SESSION_TRAILER,
    SQUASHED_TRAILER,
    TASK_TRAILER,
    agent_space_path,
    branch_name,
    safe_component,
    workspace_dir,
)
from autopilot.git.refs import (
    BRANCH_LOCK_STALE_SECONDS,
    STALE_LOCK_SECONDS,
    WORKTREE_LIST_ATTEMPTS,
    WORKTREE_LIST_BACKOFF_S,
    find_task_merge,
    head_sha,
    is_ancestor,
    list_merges,
)
from autopilot.git.remote import (
    RemoteWorkspaces,
    TaskBranchMoved,
    mark_workspace,
)
from autopilot.git.remote_cache import (
    CACHES,
    cache_path,
    locked,
)
from autopilot.git.remote_check import (
    PREFLIGHT_REF,
    PREFLIGHT_TIMEOUT_S,
    RemoteCheck,
    check_remote,
    head_of_target,
    remote_head,
)
from autopilot.git.remote_url import (
    RemoteError,
    checked_remote,
    remote_url,
    repo_name,
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
    git_output,
    git_output_bytes,
    git_version,
    identity_env,
    nul_separated_paths,
    require_git,
    run_git,
    run_git_bytes,
    shown_path,
)
from autopilot.git.task_refs import (
    fetch_command,
    kept_work,
)
from autopilot.git.workspace import (
    INCOMING_PREFIX,
    WORKSPACE_SETTINGS,
    WorkspaceBroken,
    bring_back,
    config_file_values,
    incoming_ref,
    is_workspace_repo,
    objects_dir,
    prepare_workspace,
    remove_workspace,
)

__all__ = [
    "AGENT_SPACES",
    "BRANCH_LOCK_STALE_SECONDS",
    "CACHES",
    "DEFAULT_USER_EMAIL",
    "DEFAULT_USER_NAME",
    "INCOMING_PREFIX",
    "LOCAL",
    "LOW_SPACE_BYTES",
    "MERGE_ATTEMPTS",
    "MIN_GIT_VERSION",
    "PREFLIGHT_REF",
    "PREFLIGHT_TIMEOUT_S",
    "SESSION_TRAILER",
    "SET_ASIDE_MARK",
    "SQUASHED_TRAILER",
    "STALE_LOCK_SECONDS",
    "TASK_TRAILER",
    "WORKSPACE_SETTINGS",
    "WORKTREE_LIST_ATTEMPTS",
    "WORKTREE_LIST_BACKOFF_S",
    "BranchInfo",
    "CachesAside",
    "CheckoutInTheWay",
    "CleanupAction",
    "ConflictsRemain",
    "FilesTooLarge",
    "GitError",
    "GitTimeout",
    "InputRefused",
    "LocalWorkspaces",
    "ProtectedPathsChanged",
    "RemoteCheck",
    "RemoteError",
    "RemoteWorkspaces",
    "RepoCheck",
    "RepoError",
    "ReviewDiff",
    "TaskBranchMoved",
    "WorkspaceBroken",
    "WorkspaceFilesCommitted",
    "WorkspaceKind",
    "agent_space_path",
    "apply_cleanup",
    "branch_name",
    "bring_back",
    "cache_path",
    "check_input",
    "check_remote",
    "check_repo",
    "checked_remote",
    "commit_changes",
    "config_file_values",
    "diff_for_review",
    "fetch_command",
    "find_branches",
    "find_task_merge",
    "git_output",
    "git_output_bytes",
    "git_version",
    "head_of_target",
    "head_sha",
    "identity_env",
    "incoming_ref",
    "is_ancestor",
    "is_task_branch",
    "is_workspace_repo",
    "kept_work",
    "list_merges",
    "locked",
    "mark_workspace",
    "merge_target_into_branch",
    "merge_task",
    "nul_separated_paths",
    "objects_dir",
    "pin_state_dir",
    "plan_cleanup",
    "prepare_workspace",
    "remote_head",
    "remote_url",
    "remove_empty_session_dirs",
    "remove_workspace",
    "repo_name",
    "require_git",
    "restore_tree",
    "run_git",
    "run_git_bytes",
    "safe_component",
    "set_aside_name",
    "shown_path",
    "shown_url",
    "start_afresh",
    "tree_fingerprint",
    "unresolved_conflicts",
    "workspace_dir",
]
