"""Removing the task branches and workspaces that sessions leave behind, safely.

Three steps, so that `cleanup --dry-run` is just the first two:

- `find_branches` lists `autopilot/<session>/<task>` branches (local and, optionally, on one
  remote) with what decides their fate: merged into the target or not, checked out where.
- `plan_cleanup` decides, without touching anything: a branch of a task still running, one
  matching a `--keep` pattern, one checked out in the user's main checkout, and (unless asked)
  an unmerged one are kept; every other one is deleted, its workspace removed first.
- `apply_cleanup` carries the plan out one action at a time; a failing action is reported
  and the others are still done. A branch that moved since it was planned is left alone.

Only refs shaped exactly like `gitops.branch_name` makes them are ever considered, so
`feature/x`, `autopilot-notes` or `autopilot/notes` can never be deleted.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field

from autopilot.git.names import AGENT_SPACES, workspace_dir
from autopilot.git.refs import (
    branch_head_sha,
    branch_ref,
    is_ancestor,
    list_worktrees,
    resolve_rev,
    squashed_heads,
)
from autopilot.git.runner import GitError, git_output, run_git
from autopilot.git.workspace import is_workspace_repo, remove_workspace

BRANCH_PREFIX = "autopilot/"
# What `gitops.safe_component` produces: a leading [A-Za-z0-9_], then [A-Za-z0-9._-].
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


class BranchInfo(BaseModel):
    """One task branch, local or as a remote-tracking ref."""

    name: str  # the branch name, e.g. "autopilot/s1/1.2" (without the remote's prefix)
    session_id: str  # the components as in the branch name (made safe, maybe hashed)
    task_id: str
    remote: str | None = None  # None for a local branch, else the remote's name
    target: str  # the branch `merged` refers to
    # Its tip is an ancestor of the target (for a remote: or of <remote>/<target>), or was
    # squashed onto the target (a squash commit's Autopilot-Squashed trailer names it).
    merged: bool
    # Where it is checked out: its task's workspace, or a registered git worktree ("worktree"
    # in payloads recorded before the rename).
    workspace: str | None = Field(
        default=None, validation_alias=AliasChoices("workspace", "worktree")
    )
    main_checkout: bool = False  # that checkout is the repository's main checkout
    head_sha: str


class CleanupAction(BaseModel):
    kind: Literal["remove_workspace", "delete_branch", "delete_remote_branch", "keep"]
    # remove_workspace: the path; delete_branch / delete_remote_branch: the branch name;
    # keep: the branch as people know it ("origin/autopilot/s1/1" for a remote one).
    target: str
    reason: str
    # For a delete: the commit the branch pointed at when planned. A branch that moved since
    # (new work) is not deleted.
    sha: str | None = None


def is_task_branch(name: str) -> bool:
    """Whether `name` is shaped like a branch `gitops.branch_name` makes."""
    parts = name.split("/")
    return (
        len(parts) == 3
        and parts[0] == "autopilot"
        and all(_is_component(part) for part in parts[1:])
    )


def _is_component(part: str) -> bool:
    return (
        _COMPONENT.fullmatch(part) is not None
        and ".." not in part
        and not part.endswith((".", ".lock"))
    )


def _check_remote(repo: str | Path, remote: str) -> None:
    """Accept only a configured remote's name: never a URL, path or option for git to run."""
    names = git_output(repo, "remote").split()
    if remote not in names:
        known = ", ".join(names) or "none"
        raise GitError(f"{repo} has no remote named {remote!r} (configured remotes: {known})")


def _refs(repo: str | Path, prefix: str) -> list[tuple[str, str]]:
    """(ref name, sha) of the refs under `prefix`."""
    out = git_output(repo, "for-each-ref", "--format=%(refname)%00%(objectname)", prefix)
    refs: list[tuple[str, str]] = []
    for line in out.splitlines():
        ref, _, sha = line.partition("\0")
        # for-each-ref also matches a pattern as a glob: keep only what is really below it.
        if ref.startswith(prefix) and sha:
            refs.append((ref, sha))
    return refs


def find_branches(
    repo: str | Path,
    target_branch: str,
    remote: str | None = None,
    *,
    fetch: bool = False,
    state_dir: str | Path | None = None,
) -> list[BranchInfo]:
    """The task branches of `repo`: local ones and, with `remote`, that remote's as last
    fetched (`fetch=True` runs `git fetch --prune <remote>` first). Local branches come
    first, each group sorted by name. The target branch itself is never listed. A branch's
    `worktree` is where it is checked out, or its task's workspace under `state_dir`."""
    if fetch and remote is None:
        raise ValueError("fetch=True needs a remote to fetch from")
    target_sha = branch_head_sha(repo, target_branch)
    # Merged, though no ancestor of the target.
    squashed = squashed_heads(repo, branch_ref(target_branch))
    worktrees = list_worktrees(repo)
    main_path = worktrees[0].path if worktrees else None
    checked_out: dict[str, str] = {}
    for wt in worktrees:
        if wt.branch is not None:
            checked_out.setdefault(wt.branch, wt.path)

    found: list[BranchInfo] = []
    for ref, sha in _refs(repo, f"refs/heads/{BRANCH_PREFIX}"):
        name = ref.removeprefix("refs/heads/")
        if not is_task_branch(name) or name == target_branch:
            continue
        _, session_id, task_id = name.split("/")
        path = checked_out.get(ref) or _workspace_of(state_dir, session_id, task_id)
        found.append(
            BranchInfo(
                name=name,
                session_id=session_id,
                task_id=task_id,
                target=target_branch,
                merged=sha in squashed or is_ancestor(repo, sha, target_sha),
                workspace=path,
                main_checkout=path is not None and path == main_path,
                head_sha=sha,
            )
        )

    if remote is not None:
        _check_remote(repo, remote)
        if fetch:
            git_output(repo, "fetch", "--quiet", "--prune", "--", remote)
        targets = [target_sha]
        remote_target = resolve_rev(repo, f"refs/remotes/{remote}/{target_branch}")
        if remote_target is not None:
            targets.append(remote_target)
            squashed |= squashed_heads(repo, f"refs/remotes/{remote}/{target_branch}")
        prefix = f"refs/remotes/{remote}/"
        for ref, sha in _refs(repo, f"{prefix}{BRANCH_PREFIX}"):
            name = ref.removeprefix(prefix)
            if not is_task_branch(name) or name == target_branch:
                continue
            _, session_id, task_id = name.split("/")
            found.append(
                BranchInfo(
                    name=name,
                    session_id=session_id,
                    task_id=task_id,
                    remote=remote,
                    target=target_branch,
                    merged=sha in squashed or any(is_ancestor(repo, sha, t) for t in targets),
                    head_sha=sha,
                )
            )
    found.sort(key=lambda b: (b.remote is not None, b.name))
    return found


def _workspace_of(state_dir: str | Path | None, session_id: str, task_id: str) -> str | None:
    """The task's workspace (a repository of its own) if one is left in the state dir."""
    if state_dir is None:
        return None
    path = workspace_dir(Path(state_dir).absolute(), session_id, task_id)
    return str(path) if is_workspace_repo(path) else None


def _keep_reason(
    branch: BranchInfo, active: set[str], keep: Sequence[str], include_unmerged: bool
) -> str | None:
    if branch.name in active:
        return "its task is still running"
    for pattern in keep:
        if fnmatchcase(branch.name, pattern):
            return f"kept: matches --keep {pattern}"
    if branch.main_checkout:
        return (
            f"checked out in your main checkout at {branch.workspace}; "
            "switch that checkout to another branch to remove it"
        )
    if not branch.merged and not include_unmerged:
        return f"not merged into {branch.target}; pass --include-unmerged to remove it"
    return None


def plan_cleanup(
    branches: Iterable[BranchInfo],
    *,
    active: set[str],
    keep: Sequence[str],
    include_unmerged: bool,
) -> list[CleanupAction]:
    """What `apply_cleanup` should do, in order (a branch's workspace before the branch).
    Pure: reads nothing and changes nothing, so it is the whole of a dry run."""
    actions: list[CleanupAction] = []
    for branch in branches:
        shown = branch.name if branch.remote is None else f"{branch.remote}/{branch.name}"
        kept = _keep_reason(branch, active, keep, include_unmerged)
        if kept is not None:
            actions.append(CleanupAction(kind="keep", target=shown, reason=kept))
            continue
        why = (
            f"merged into {branch.target}"
            if branch.merged
            else f"not merged into {branch.target} (--include-unmerged)"
        )
        if branch.remote is not None:
            actions.append(
                CleanupAction(
                    kind="delete_remote_branch", target=branch.name, reason=why, sha=branch.head_sha
                )
            )
            continue
        if branch.workspace is not None:
            actions.append(
                CleanupAction(
                    kind="remove_workspace",
                    target=branch.workspace,
                    reason=f"{branch.name} is checked out there; it is {why}",
                )
            )
        actions.append(
            CleanupAction(kind="delete_branch", target=branch.name, reason=why, sha=branch.head_sha)
        )
    return actions


def _inside(path: Path, folder: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real != base and real.startswith(base + os.sep)


def _remove_workspace(repo: str | Path, path: Path, state_dir: Path | None) -> str:
    registered = any(
        os.path.realpath(wt.path) == os.path.realpath(path) for wt in list_worktrees(repo)
    )
    if not registered and not (path.exists() or path.is_symlink()):
        return f"workspace {path} is already gone"
    if state_dir is not None and _inside(path, state_dir / "worktrees"):
        # One of ours: whatever is left in it is a finished task's leftovers.
        remove_workspace(repo, path)
    elif registered:
        # Somewhere else, made by someone: git refuses if it has changes or is locked, and
        # that refusal is what we want to report rather than override.
        git_output(repo, "worktree", "remove", str(path))
    else:
        return f"left {path} alone: it is no workspace of {repo} and not in the state directory"
    return f"removed workspace {path}"


def _delete_branch(repo: str | Path, name: str, sha: str | None) -> str:
    current = resolve_rev(repo, f"refs/heads/{name}")
    if current is None:
        return f"branch {name} is already gone"
    if sha is not None and current != sha:
        return (
            f"skipped branch {name}: it moved to {current[:12]} since it was planned "
            f"(at {sha[:12]}); run cleanup again to reconsider it"
        )
    # `branch -D` (not update-ref) so that git refuses a branch checked out in any worktree.
    git_output(repo, "branch", "--quiet", "-D", name)
    return f"deleted branch {name} (was {current[:12]})"


def _delete_remote_branch(repo: str | Path, remote: str, name: str, sha: str | None) -> str:
    ref = f"refs/heads/{name}"
    args = ["push", "--quiet"]
    if sha is not None:
        # Compare-and-swap on the remote: someone's push since the plan makes it fail.
        args.append(f"--force-with-lease={ref}:{sha}")
    try:
        git_output(repo, *args, "--delete", "--", remote, ref)
    except GitError:
        listing = run_git(repo, ["ls-remote", "--", remote, ref])
        if listing.returncode != 0 or ref in listing.stdout.split():
            raise
        # Deleted there by someone else: only our remote-tracking ref was stale.
        run_git(repo, ["update-ref", "-d", f"refs/remotes/{remote}/{name}"])
        return f"branch {name} is already gone from {remote}"
    return f"deleted {remote}/{name}" + (f" (was {sha[:12]})" if sha else "")


def remove_empty_session_dirs(state_dir: str | Path) -> list[str]:
    """Remove the empty `<state_dir>/worktrees/<session>` folders; lines for people."""
    root = Path(state_dir) / "worktrees"
    if not root.is_dir() or root.is_symlink():
        return []
    lines: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.is_symlink() or not entry.is_dir():
            continue
        with contextlib.suppress(OSError):  # its tasks' agent folders, if all gone
            (entry / AGENT_SPACES).rmdir()
        try:
            entry.rmdir()  # only ever succeeds on an empty folder
        except OSError:
            continue
        lines.append(f"removed empty folder {entry}")
    return lines


_VERBS = {
    "remove_workspace": "remove workspace",
    "delete_branch": "delete branch",
    "delete_remote_branch": "delete remote branch",
    "keep": "keep",
}


def _apply_one(
    repo: str | Path, action: CleanupAction, remote: str | None, state_dir: Path | None
) -> str:
    if action.kind == "keep":
        return f"kept {action.target}: {action.reason}"
    if action.kind == "remove_workspace":
        return _remove_workspace(repo, Path(action.target).absolute(), state_dir)
    # A hand-made or tampered plan must not reach other branches either.
    if not is_task_branch(action.target):
        raise GitError(f"refusing: {action.target!r} is not an autopilot task branch")
    if action.kind == "delete_branch":
        return _delete_branch(repo, action.target, action.sha)
    if remote is None:
        raise GitError("no remote was given to delete it from")
    _check_remote(repo, remote)
    return _delete_remote_branch(repo, remote, action.target, action.sha)


def apply_cleanup(
    repo: str | Path,
    actions: Sequence[CleanupAction],
    *,
    remote: str | None,
    state_dir: str | Path | None = None,
) -> list[str]:
    """Carry out `actions` in order and say what happened, one line each. A failing action
    is reported ("FAILED to …") and the rest still done. Running it again, or planning
    again, finds nothing more to do. With `state_dir`, workspaces inside it are removed
    even with changes, and empty session folders left there are removed too."""
    state = Path(state_dir).absolute() if state_dir is not None else None
    lines: list[str] = []
    for action in actions:
        try:
            lines.append(_apply_one(repo, action, remote, state))
        except (GitError, OSError) as exc:
            lines.append(f"FAILED to {_VERBS[action.kind]} {action.target}: {exc}")
    if state is not None:
        lines += remove_empty_session_dirs(state)
    return lines
