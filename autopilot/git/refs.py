"""Refs, history and worktrees of a repository, read; stale locks a killed git left."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from autopilot.git.names import SESSION_TRAILER, SQUASHED_TRAILER, TASK_TRAILER
from autopilot.git.runner import GitError, RepoError, git_failure_message, git_output, run_git
from autopilot.infra import untrusted_fs

# An index.lock in one of OUR workspaces older than this is left over from a killed git
# process: no git command we or the agent run holds the index that long.
STALE_LOCK_SECONDS = 60.0
BRANCH_LOCK_STALE_SECONDS = 5.0
# A `.git` file and a worktree's `gitdir` file hold one path: anything longer is not one.
_POINTER_LIMIT = 64 * 1024


def branch_ref(branch: str) -> str:
    """The full ref of a branch named short (`main`) or in full (`refs/heads/main`). Any other
    ref is refused: what a merge moves must never be a tag or a remote-tracking branch."""
    if branch.startswith("refs/heads/"):
        return branch
    if branch.startswith("refs/"):
        raise RepoError(f"{branch!r} is not a branch: only branches (refs/heads/*) are merged into")
    return f"refs/heads/{branch}"


def resolve_rev(cwd: str | Path, rev: str) -> str | None:
    """The commit sha `rev` names, or None if it names none."""
    proc = run_git(
        cwd, ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"]
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def head_sha(workspace: str | Path) -> str:
    """The commit HEAD points at."""
    return git_output(workspace, "rev-parse", "--verify", "HEAD^{commit}").strip()


def branch_head_sha(repo: str | Path, branch: str) -> str:
    if not Path(repo).is_dir():
        raise RepoError(f"the repository {repo} does not exist (moved or deleted?)")
    sha = resolve_rev(repo, branch_ref(branch))
    if sha is None:
        raise RepoError(f"branch {branch!r} does not exist in {repo} (renamed or deleted?)")
    return sha


def is_ancestor(repo: str | Path, ancestor: str, descendant: str) -> bool:
    args = ["merge-base", "--is-ancestor", ancestor, descendant]
    proc = run_git(repo, args)
    if proc.returncode not in (0, 1):
        raise GitError(git_failure_message(repo, args, proc))
    return proc.returncode == 0


def _our_merges(repo: str | Path, target_branch: str, session_id: str) -> list[tuple[str, str]]:
    """(task id, merge sha) of this session's merge and squash commits on the target's
    first-parent history, oldest first. A one-parent commit counts only with SQUASHED_TRAILER:
    the agent's own commits carry our session and task trailers too."""
    fmt = (
        f"%H%x1f%P%x1f%(trailers:key={SESSION_TRAILER},valueonly,unfold,separator=%x1d)"
        f"%x1f%(trailers:key={TASK_TRAILER},valueonly,unfold,separator=%x1d)"
        f"%x1f%(trailers:key={SQUASHED_TRAILER},valueonly,unfold,separator=%x1d)%x1e"
    )
    out = git_output(
        repo,
        "log",
        "--no-show-signature",
        "--first-parent",
        "--reverse",
        "--fixed-strings",
        f"--grep={SESSION_TRAILER}: {session_id}",
        f"--format={fmt}",
        branch_ref(target_branch),
        "--",
    )
    merges: list[tuple[str, str]] = []
    for record in out.split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) != 5:
            continue
        sha, parents, sessions, tasks, squashed = fields
        ours = len(parents.split()) >= 2 or bool(squashed)
        if ours and session_id in sessions.split("\x1d") and tasks:
            merges.append((tasks.split("\x1d")[-1], sha))
    return merges


def squashed_heads(repo: str | Path, target_ref: str) -> set[str]:
    """The task branch heads squashed onto the target (SQUASHED_TRAILER of its first-parent
    history; `target_ref` a full ref, a remote-tracking one too): such a branch is merged
    though it is no ancestor of the target."""
    out = git_output(
        repo,
        "log",
        "--no-show-signature",
        "--first-parent",
        "--max-parents=1",
        "--fixed-strings",
        f"--grep={SQUASHED_TRAILER}: ",
        f"--format=%(trailers:key={SQUASHED_TRAILER},valueonly,unfold,separator=%x1d)%x1e",
        target_ref,
        "--",
    )
    return {
        head.strip()
        for record in out.split("\x1e")
        for head in record.strip("\n").split("\x1d")
        if head.strip()
    }


def list_merges(repo: str | Path, target_branch: str, session_id: str) -> list[tuple[str, str]]:
    """(task id, merge sha) of the session's merges on the target branch, oldest first."""
    return _our_merges(repo, target_branch, session_id)


def find_task_merge(
    repo: str | Path, target_branch: str, session_id: str, task_id: str
) -> str | None:
    """The sha of the merge commit on the target (first-parent history) whose trailers name
    this session and task, or None."""
    for merged_task, sha in _our_merges(repo, target_branch, session_id):
        if merged_task == task_id:
            return sha
    return None


@dataclass(frozen=True)
class WorktreeEntry:
    path: str
    head: str | None
    branch: str | None  # full ref name, None when detached or bare
    bare: bool
    locked: str | None  # the lock reason ("" without one), None when not locked
    prunable: bool


# `git worktree add` writes a new entry's files one by one (commondir made before it is
# written, a `locked` file held only while it initializes), and a listing that reads the entry
# in between fails: "failed to read .git/worktrees/<name>/commondir", "failed to read
# '.git/worktrees/<name>/locked': No such file". Another task adding its worktree is the usual
# cause, so the listing is tried again a moment later.
WORKTREE_LIST_ATTEMPTS = 6
WORKTREE_LIST_BACKOFF_S = 0.02
_ENTRY_BEING_WRITTEN = re.compile(r"failed to read '?[^\n']*worktrees/[^/\n']+/\w+")


def _wait_for_worktree_entry(failures: int) -> None:
    time.sleep(WORKTREE_LIST_BACKOFF_S * 2 ** (failures - 1))  # 20 ms doubling: 0.6 s in all


def _worktree_listing(repo: str | Path) -> str:
    args = ("worktree", "list", "--porcelain", "-z")
    failures = 0
    while True:
        proc = run_git(repo, args)
        if proc.returncode == 0:
            return proc.stdout
        failures += 1
        if failures == WORKTREE_LIST_ATTEMPTS or not _ENTRY_BEING_WRITTEN.search(proc.stderr):
            raise GitError(git_failure_message(repo, args, proc))
        _wait_for_worktree_entry(failures)


def list_worktrees(repo: str | Path) -> list[WorktreeEntry]:
    """`git worktree list --porcelain -z`, parsed; the main worktree comes first."""
    out = _worktree_listing(repo)
    result: list[WorktreeEntry] = []
    for block in out.split("\0\0"):
        attrs: dict[str, str] = {}
        for line in block.split("\0"):
            if line:
                key, _, value = line.partition(" ")
                attrs[key] = value
        if "worktree" in attrs:
            result.append(
                WorktreeEntry(
                    path=attrs["worktree"],
                    head=attrs.get("HEAD"),
                    branch=attrs.get("branch"),
                    bare="bare" in attrs,
                    locked=attrs.get("locked"),
                    prunable="prunable" in attrs,
                )
            )
    return result


def is_linked_worktree(path: Path) -> bool:
    """A worktree of a session recorded before workspaces had repositories of their own: its
    `.git` file names a git dir whose `gitdir` file names this `.git` back (git writes both
    when it adds a worktree; a `.git` file pointing at a repository itself has no such link).
    Both are the agent's to change: read as data, never through a link, never whole."""
    try:
        text = untrusted_fs.read_file(path, ".git", limit=_POINTER_LIMIT)
        named = text.decode(errors="replace").strip().removeprefix("gitdir:").strip()
        back = untrusted_fs.read_file(Path(named), "gitdir", limit=_POINTER_LIMIT)
    except (OSError, ValueError):
        return False
    return same_path(back.decode(errors="replace").strip(), path / ".git")


def same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def registered_worktree(repo: str | Path, path: str | Path) -> WorktreeEntry | None:
    return next((wt for wt in list_worktrees(repo) if same_path(wt.path, path)), None)


def checkout_of(repo: str | Path, branch: str) -> WorktreeEntry | None:
    """The worktree (with an existing directory) where `branch` is checked out, if any."""
    ref = branch_ref(branch)
    for wt in list_worktrees(repo):
        if wt.branch == ref and not wt.prunable and Path(wt.path).is_dir():
            return wt
    return None


def status_entries(cwd: str | Path, *, untracked: bool) -> list[str]:
    """Paths `git status` reports as changed (ignored files never count)."""
    out = git_output(
        cwd,
        "status",
        "--porcelain=v1",
        "-z",
        "--ignore-submodules=none",
        f"--untracked-files={'all' if untracked else 'no'}",
    )
    paths: list[str] = []
    fields = iter(out.split("\0"))
    for entry in fields:
        if not entry:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # a rename/copy is followed by its source path
            next(fields, None)
    return paths


def git_internal_path(cwd: str | Path, name: str) -> Path:
    """Absolute path of `name` in the (per-worktree) git dir, e.g. MERGE_HEAD, MERGE_MSG."""
    return Path(git_output(cwd, "rev-parse", "--path-format=absolute", "--git-path", name).strip())


_IN_PROGRESS = {
    "MERGE_HEAD": "a merge",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase (or `git am`)",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
}


def operation_in_progress(checkout: str | Path) -> str | None:
    for name, what in _IN_PROGRESS.items():
        if git_internal_path(checkout, name).exists():
            return what
    return None


def clear_stale_lock(root: Path, *parts: str, stale_after_s: float = STALE_LOCK_SECONDS) -> None:
    """Remove the lock `root/parts...` if it is older than `stale_after_s`: a git killed while
    holding it. Reached without following a link (a workspace's `.git` is the agent's)."""
    found = untrusted_fs.lstat_at(root, *parts)
    if found is not None and time.time() - found.st_mtime > stale_after_s:
        untrusted_fs.remove(root, *parts)


def clear_stale_index_lock(workspace: str | Path) -> None:
    """Remove an index.lock older than STALE_LOCK_SECONDS, only in a task workspace or a
    linked worktree's own git dir (never the main repository's): a killed git leaves it
    behind, and no git command run in a task workspace holds the index lock that long."""
    if not is_linked_worktree(Path(workspace)):
        clear_stale_lock(Path(workspace), ".git", "index.lock")
        return
    out = git_output(workspace, "rev-parse", "--absolute-git-dir", "--git-common-dir").splitlines()
    git_dir = Path(out[0])
    common_dir = Path(workspace, out[1]) if not Path(out[1]).is_absolute() else Path(out[1])
    if same_path(git_dir, common_dir):
        return  # not a linked worktree: not ours to clean
    clear_stale_lock(git_dir, "index.lock")
