"""Starting a task afresh (`retry --fresh`, a rerun with `--fresh`): its branch's work is set
aside under a name of its own, never deleted, and the task starts again from the target's head.

The set-aside branch is `autopilot/<session>/<task>--rejected-<head>`, named by the commit it
keeps: unique across reruns of the same session (which reuse its branch names), and the same
name again when a step is retried. It stays a task branch of the session for `cleanup` (kept
unless --include-unmerged), and never reaches the target.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from autopilot.git.names import branch_name, workspace_dir
from autopilot.git.refs import (
    branch_head_sha,
    branch_ref,
    checkout_of,
    find_task_merge,
    is_ancestor,
    resolve_rev,
)
from autopilot.git.runner import GitError, git_output
from autopilot.git.workspace import (
    WorkspaceBroken,
    bring_back,
    is_workspace_repo,
    remove_workspace,
)

SET_ASIDE_MARK = "--rejected-"
_SHA_SHOWN = 12


def set_aside_name(branch: str, head: str) -> str:
    """The name a task branch at `head` is kept under once its task starts afresh."""
    return f"{branch}{SET_ASIDE_MARK}{head[:_SHA_SHOWN]}"


def start_afresh(
    repo: str | Path, target_branch: str, state_dir: str | Path, session_id: str, task_id: str
) -> str:
    """Set the task's branch aside and remove its workspace, so that preparing the task next
    starts from the target's head. Returns the set-aside branch, or "" when there was nothing
    to keep: no branch, a branch without commits the target lacks (a retried step finds its
    own fresh start so), or a task merged already (nothing is touched then)."""
    if find_task_merge(repo, target_branch, session_id, task_id) is not None:
        return ""
    branch = branch_name(session_id, task_id)
    ref = branch_ref(branch)
    workspace = workspace_dir(Path(state_dir).absolute(), session_id, task_id)
    _keep_left_commits(repo, workspace, session_id, task_id, target_branch)
    head = resolve_rev(repo, ref)
    if head is None:
        remove_workspace(repo, workspace)
        return ""
    checkout = checkout_of(repo, branch)
    if checkout is not None and Path(checkout.path).resolve() != workspace.resolve():
        raise GitError(
            f"cannot start task {task_id} afresh: its branch {branch} is checked out at "
            f"{checkout.path}; switch that checkout to another branch, then retry"
        )
    remove_workspace(repo, workspace)  # its commits are on the branch now
    if is_ancestor(repo, head, branch_head_sha(repo, target_branch)):
        git_output(repo, "update-ref", "-d", ref, head)
        return ""
    aside = set_aside_name(branch, head)
    kept = resolve_rev(repo, branch_ref(aside))
    if kept is None:
        message = f"autopilot: task {task_id} started afresh; its work is kept here"
        git_output(repo, "update-ref", "-m", message, branch_ref(aside), head, "")
    elif kept != head:
        raise GitError(
            f"cannot set {branch} aside: {aside} exists already at {kept[:12]}, not at "
            f"{head[:12]}; rename or delete that branch, then retry"
        )
    git_output(repo, "update-ref", "-d", ref, head)  # only if nobody moved it meanwhile
    return aside


def _keep_left_commits(
    repo: str | Path, workspace: Path, session_id: str, task_id: str, target_branch: str
) -> None:
    """A workspace left behind (its removal failed, its worker died before the bring-back)
    may hold commits its branch lacks: they come back first, checked as every bring-back is,
    so that setting the branch aside keeps them. A workspace whose history was rewritten is
    not trusted: the branch is what is kept then."""
    if not is_workspace_repo(workspace):
        return
    branch_head = resolve_rev(repo, branch_ref(branch_name(session_id, task_id)))
    base = branch_head or branch_head_sha(repo, target_branch)
    with contextlib.suppress(WorkspaceBroken):
        bring_back(repo, workspace, session_id, task_id, base)
