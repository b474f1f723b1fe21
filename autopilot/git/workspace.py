"""The task's workspace: a repository of its own (or a worktree of a session from before),
made, taken back before each of our steps, its commits brought back, removed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from autopilot.git.names import AGENT_SPACES, branch_name, safe_component, workspace_dir
from autopilot.git.refs import (
    BRANCH_LOCK_STALE_SECONDS,
    branch_head_sha,
    branch_ref,
    clear_stale_index_lock,
    clear_stale_lock,
    find_task_merge,
    is_ancestor,
    is_linked_worktree,
    list_worktrees,
    registered_worktree,
    resolve_rev,
    same_path,
)
from autopilot.git.runner import (
    DEFAULT_IDENTITY,
    GitError,
    configured_identity,
    git_output,
    run_git,
    run_git_bytes,
)
from autopilot.infra import make_private_dir, untrusted_fs
from autopilot.models import Workspace


def _clear_stale_branch_lock(repo: str | Path, branch: str) -> None:
    """Remove the task branch's own ref lock left by a git killed mid-update (a worker killed
    during `git worktree add -b`). Only this task's steps write its branch, one at a time, and
    git holds a ref lock for milliseconds: one older than BRANCH_LOCK_STALE_SECONDS is dead."""
    common_dir = Path(
        git_output(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    )
    lock = f"{branch_ref(branch)}.lock".split("/")
    clear_stale_lock(common_dir, *lock, stale_after_s=BRANCH_LOCK_STALE_SECONDS)


def _remove_registered_worktree(repo: str | Path, path: str | Path) -> None:
    # Twice --force: also removes a locked worktree and one with local changes.
    git_output(repo, "worktree", "remove", "--force", "--force", str(path))


def _ensure_worktree(repo: str | Path, path: Path, branch: str, start_sha: str) -> None:
    """Make `path` a worktree of `repo` on `branch`, creating the branch at `start_sha`."""
    ref = branch_ref(branch)
    entry = registered_worktree(repo, path)
    if entry is not None and (
        entry.prunable or not path.is_dir() or entry.locked == "initializing"
    ):
        # A stale registration (its directory was deleted), or `git worktree add` killed
        # half-way (its checkout cannot be trusted): drop just our own registration. We do
        # not `git worktree prune`: it touches every worktree and can race with another
        # task's `git worktree add` in the same repository.
        _remove_registered_worktree(repo, path)
        entry = None
    if entry is not None:
        if entry.branch == ref:
            clear_stale_index_lock(path)
            return
        now_on = entry.branch or f"a detached HEAD at {entry.head}"
        raise GitError(
            f"the task workspace {path} is on {now_on}, not on {ref}; check out {branch} "
            "there or remove the worktree (`git worktree remove --force`), then retry"
        )
    _clear_stale_branch_lock(repo, branch)
    untrusted_fs.remove_path(path)  # a leftover directory in our state dir that git does not know
    make_private_dir(path.parent)
    if resolve_rev(repo, ref) is not None:
        git_output(repo, "worktree", "add", str(path), branch)
    else:
        git_output(repo, "worktree", "add", "-b", branch, str(path), start_sha)


def prepare_workspace(
    repo: str | Path, target_branch: str, state_dir: str | Path, session_id: str, task_id: str
) -> Workspace:
    """Ensure the task's branch and workspace exist, or report that the task is already merged.

    A new branch starts at the target's head; an existing branch (and workspace) is reused,
    with base_sha the merge-base of branch and target.
    """
    branch = branch_name(session_id, task_id)
    target_head = branch_head_sha(repo, target_branch)
    merge_sha = find_task_merge(repo, target_branch, session_id, task_id)
    if merge_sha is not None:
        return Workspace(
            path="", branch=branch, base_sha=target_head, already_merged=True, merge_sha=merge_sha
        )
    path = workspace_dir(Path(state_dir).absolute(), session_id, task_id)
    if (
        registered_worktree(repo, path) is not None
    ):  # a worktree made before workspaces had their own
        _ensure_worktree(repo, path, branch, target_head)
        base_sha = git_output(repo, "merge-base", branch_ref(branch), target_head).strip()
        return Workspace(path=str(path), branch=branch, base_sha=base_sha)
    _clear_stale_branch_lock(repo, branch)
    start = resolve_rev(repo, branch_ref(branch)) or target_head  # a retry goes on from its branch
    ensure_workspace(repo, path, branch, start)
    # In the workspace: a crashed run's commits may not be brought back yet.
    base_sha = git_output(path, "merge-base", "HEAD", target_head).strip()
    return Workspace(path=str(path), branch=branch, base_sha=base_sha)


# --------------------------------------------------------------------------------------------
# Task workspaces: a repository of their own
# --------------------------------------------------------------------------------------------
# The agent's workspace shares nothing writable with the user's repository: its own git dir,
# the user's objects read through `alternates` (the sandbox keeps them read-only: no hardlink
# or shared object file the agent could change). Its config is ours and is put back before
# each of our steps there; its commits reach the user's repository only by `bring_back`, a
# fetch into refs/autopilot/ that is checked before the task branch moves.

INCOMING_PREFIX = "refs/autopilot"
# The whole config of a workspace: no remote, no hooks, no gc (its objects are mostly the
# user's, through alternates), and the identity its commits carry.
WORKSPACE_SETTINGS = {
    "core.repositoryformatversion": "0",
    "core.filemode": "true",
    "core.bare": "false",
    "core.logallrefupdates": "true",
    "core.hookspath": "/dev/null",
    "gc.auto": "0",
}


class WorkspaceBroken(GitError):
    """The agent changed what makes its workspace a repository of its own (.git replaced by a
    link or a file, another repository named as its git dir): nothing of it is trusted."""


def incoming_ref(session_id: str, task_id: str) -> str:
    """Where a task's commits arrive in the user's repository, before they are checked."""
    return f"{INCOMING_PREFIX}/{safe_component(session_id)}/{safe_component(task_id)}"


def objects_dir(repo: str | Path) -> Path:
    """The repository's object store (a task workspace reads it through `alternates`)."""
    common = git_output(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    return Path(common) / "objects"


def is_workspace_repo(path: str | Path) -> bool:
    """A repository of its own (a `.git` directory), not a linked worktree (a `.git` file)."""
    return untrusted_fs.is_real_dir(Path(path), ".git")


# What of a workspace's config survives `own_workspace`: the identity its commits carry.
_WORKSPACE_KEPT_KEYS = tuple(DEFAULT_IDENTITY)
# Our config is a few hundred bytes; one the agent made far bigger is replaced unread.
_CONFIG_LIMIT = 64 * 1024


def config_file_values(config: bytes, where: Path) -> dict[str, str]:
    """The settings of a config file's content, read as data by git (nothing in it runs), in
    `where`, a folder of the worker's that is no repository."""
    proc = run_git_bytes(where, ["config", "--file", "-", "--list", "-z"], stdin=config)
    values: dict[str, str] = {}
    for entry in proc.stdout.decode("utf-8", "replace").split("\0"):
        key, _, value = entry.partition("\n")
        if key:
            values[key] = value
    return values


def _config_text(settings: dict[str, str]) -> str:
    """A git config file holding `settings` (`section.key` names), each value quoted and
    escaped as git reads it back: written at once instead of one `git config` per key."""
    sections: dict[str, list[str]] = {}
    for name, value in settings.items():
        section, _, key = name.rpartition(".")
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\t", "\\t")
        )
        sections.setdefault(section, []).append(f'\t{key} = "{escaped}"\n')
    return "".join(f"[{section}]\n" + "".join(lines) for section, lines in sections.items())


def _write_workspace_config(workspace: Path, identity: dict[str, str]) -> None:
    text = _config_text(WORKSPACE_SETTINGS | identity).encode()
    untrusted_fs.write_file(workspace, ".git", "config", data=text)


def own_workspace(path: Path) -> None:
    """Put our config back (keeping only the identity) and drop whatever would point git at
    another repository: our next git command there must work on this repository and run
    nothing the agent configured. Nothing in its `.git` is followed if it is a link."""
    if not untrusted_fs.is_real_dir(path, ".git"):
        raise WorkspaceBroken(
            f"the workspace {path} no longer has a .git directory of its own (the agent "
            "replaced it); its work cannot be trusted: retry the task to start afresh"
        )
    for name in ("commondir", "config.worktree"):  # would point git at another repository
        untrusted_fs.remove(path, ".git", name)
    try:
        config = untrusted_fs.read_file(path, ".git", "config", limit=_CONFIG_LIMIT)
        values = config_file_values(config, path.parent)
    except (FileNotFoundError, untrusted_fs.UntrustedPath):
        values = {}  # a link, a FIFO, a folder, a huge file: replaced below
    identity = {key: values[key] for key in _WORKSPACE_KEPT_KEYS if key in values}
    if values != WORKSPACE_SETTINGS | identity:
        _write_workspace_config(path, identity)


def enter_workspace(workspace: str | Path) -> None:
    """Before any step of ours in a task workspace: it is ours again (`own_workspace`). A
    linked worktree of before is taken as it is."""
    path = Path(workspace)
    if not is_linked_worktree(path):
        own_workspace(path)


def ensure_workspace(repo: str | Path, path: Path, branch: str, start_sha: str) -> None:
    """Make `path` the task's own repository on `branch` at `start_sha`, or keep the one there
    (a retry after a crash finds it as the agent left it)."""
    if is_workspace_repo(path):
        own_workspace(path)
        clear_stale_index_lock(path)
        on = run_git(path, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
        if on != branch_ref(branch):
            raise GitError(
                f"the task workspace {path} is on {on or 'a detached HEAD'}, not on "
                f"{branch_ref(branch)}; check out {branch} there or remove the workspace, "
                "then retry"
            )
        return
    # Made aside and renamed into place: a workspace at `path` is always a whole one, and
    # what a worker killed while making it left is made again.
    making = path.with_name(f".making-{path.name}")
    untrusted_fs.remove_path(making)
    make_private_dir(path.parent)  # the state dir's folders are the worker's alone
    making.mkdir()
    # --template=: no sample hooks, nothing but what git needs.
    git_output(making, "init", "--quiet", "--template=", f"--initial-branch={branch}")
    identity = DEFAULT_IDENTITY | configured_identity(repo)
    _write_workspace_config(making, identity)
    untrusted_fs.make_dirs(making, ".git", "objects", "info")
    alternates = f"{objects_dir(repo)}\n".encode()
    untrusted_fs.write_file(making, ".git", "objects", "info", "alternates", data=alternates)
    git_output(making, "update-ref", branch_ref(branch), start_sha)
    git_output(making, "reset", "--quiet", "--hard", start_sha)
    untrusted_fs.remove_path(path)  # something else that was there: not a workspace, not ours
    making.rename(path)


def bring_back(
    repo: str | Path, workspace: str | Path, session_id: str, task_id: str, base_sha: str
) -> str:
    """Fetch the workspace's task branch into the user's repository's private namespace,
    check that it descends from `base_sha`, and only then point the task branch at it.
    Returns the task branch's new head."""
    path = Path(workspace)
    branch = branch_name(session_id, task_id)
    if is_linked_worktree(path):  # it shares the branch already
        return branch_head_sha(repo, branch)
    own_workspace(path)
    incoming = incoming_ref(session_id, task_id)
    # The workspace's objects that the user's repository lacks come over; refs other than
    # the task branch, and anything the agent configured, do not.
    git_output(
        repo,
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        str(path),
        f"+{branch_ref(branch)}:{incoming}",
    )
    head = git_output(repo, "rev-parse", "--verify", "--quiet", f"{incoming}^{{commit}}").strip()
    if not is_ancestor(repo, base_sha, head):
        raise WorkspaceBroken(
            f"the task branch in {path} ({head[:12]}) does not descend from {base_sha[:12]}, "
            f"where the task started: its history was rewritten; {branch} was left unchanged"
        )
    current = resolve_rev(repo, branch_ref(branch))
    if current != head:
        args = [
            "update-ref",
            "-m",
            f"autopilot: task {task_id} from its workspace",
            branch_ref(branch),
            head,
        ]
        git_output(repo, *args, *([current] if current else []))
    git_output(repo, "update-ref", "-d", incoming, head)  # checked and published: done with
    return head


def remove_workspace(repo: str | Path, workspace: str | Path) -> None:
    """Remove the task's workspace (a legacy linked worktree, or a directory); keep its branch.

    Only this worktree's registration is removed (no `git worktree prune`, which would touch
    every worktree and can race with another task's `git worktree add`)."""
    path = Path(workspace).absolute()
    worktrees = list_worktrees(repo)
    main = os.path.realpath(worktrees[0].path) if worktrees else None
    if main is not None and (main + os.sep).startswith(os.path.realpath(path) + os.sep):
        raise GitError(f"refusing to remove {path}: it is (or holds) the main checkout of {repo}")
    if any(same_path(wt.path, path) for wt in worktrees):
        _remove_registered_worktree(repo, path)
    remove_workspace_dirs(path)


def remove_workspace_dirs(path: Path) -> None:
    """Remove a task's workspace directory and its agent space (no registration to drop)."""
    untrusted_fs.remove_path(path)
    untrusted_fs.remove(path.parent, AGENT_SPACES, path.name)
    # The session's folder goes with its last workspace. A task preparing its workspace at the
    # same moment is safe: it makes the folder again.
    for folder in (path.parent / AGENT_SPACES, path.parent):
        with contextlib.suppress(OSError):  # not empty: other tasks' are in it
            folder.rmdir()
