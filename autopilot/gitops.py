"""Plain, blocking git operations behind the Temporal activities.

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

import contextlib
import hashlib
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from autopilot.models import CommitInfo, CommitOutcome, MergeOutcome, TargetMerge, Workspace
from autopilot.private_files import make_private_dir

SESSION_TRAILER = "Autopilot-Session"
TASK_TRAILER = "Autopilot-Task"
DEFAULT_USER_NAME = "CC3 Autopilot"
DEFAULT_USER_EMAIL = "autopilot@localhost"
_DEFAULT_IDENTITY = {"user.name": DEFAULT_USER_NAME, "user.email": DEFAULT_USER_EMAIL}
MIN_GIT_VERSION = (2, 38, 0)  # `git merge-tree --write-tree`

# An index.lock in one of OUR worktrees older than this is left over from a killed git
# process: no git command we or the agent run holds the index that long.
STALE_LOCK_SECONDS = 60.0
BRANCH_LOCK_STALE_SECONDS = 5.0
MERGE_ATTEMPTS = 5  # the target moved under us this many times in a row: give up

_MAX_COMPONENT = 64
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
# Variables that would point git at another repository than the one we name with -C.
_GIT_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)


class GitError(Exception):
    """A git operation failed; the message says what, where, and git's own words."""


class ConflictsRemain(GitError):
    """A conflict round's merge still has conflict markers: retrying cannot help."""


class CheckoutInTheWay(GitError):
    """The target's checkout has files git does not track where a merge would write or remove,
    or a rebase, merge or cherry-pick under way: the merge is refused, nothing was changed, and
    the message says what the user can do before the task is retried."""


class RepoError(GitError):
    """The repository cannot be used for a session; the message says how to fix it."""


class RepoCheck(BaseModel):
    """A repository validated by `check_repo`."""

    model_config = ConfigDict(frozen=True)

    path: str  # absolute top-level directory of the checkout that was named
    target_branch: str  # short branch name, e.g. "main"
    head_sha: str  # the target branch's head commit
    checked_out_at: str | None = None  # worktree where the target branch is checked out


# --------------------------------------------------------------------------------------------
# Running git
# --------------------------------------------------------------------------------------------


# What our git commands see of the worker's environment: where things are, the locale, which
# config files and identity the user chose. Nothing else: an API key has no business there.
_GIT_ENV_KEPT = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "LC_MESSAGES",
        "TZ",
        "TMPDIR",
        "SSH_AUTH_SOCK",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    }
)
# Every git command of ours runs no hook and no fsmonitor command, whatever a repository's
# config says: in a workspace that config is the agent's to write.
_GIT = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _GIT_ENV_KEPT}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _run(
    cwd: str | Path, args: Sequence[str], *, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `git -C cwd args...` and return the result whatever its exit status."""
    try:
        return subprocess.run(
            [*_GIT, "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            input=stdin,
            env=_git_env(),
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH; install git >= 2.38") from exc


def _fail(cwd: str | Path, args: Sequence[str], proc: subprocess.CompletedProcess[str]) -> str:
    output = (proc.stderr.strip() or proc.stdout.strip() or "(no output)")[-2000:]
    message = f"`git {' '.join(args)}` failed in {cwd} (exit {proc.returncode}): {output}"
    return message + _full_disk_hint([str(cwd), *args])


LOW_SPACE_BYTES = 4 * 1024 * 1024


def _full_disk_hint(places: Sequence[str]) -> str:
    """Git says "unable to write file" when a disk is full; say which disk, and what to do."""
    for place in places:
        path = Path(place)
        if not path.is_absolute():
            continue
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            continue
        if free < LOW_SPACE_BYTES:
            return (
                f"; the disk holding {path} is full ({free // 1024} KB free): free some space "
                "there (or move AUTOPILOT_STATE_DIR); the step is retried"
            )
    return ""


def _git(cwd: str | Path, *args: str, stdin: str | None = None) -> str:
    """Run git and return its stdout; raise GitError on a non-zero exit."""
    proc = _run(cwd, args, stdin=stdin)
    if proc.returncode != 0:
        raise GitError(_fail(cwd, args, proc))
    return proc.stdout


def _run_raw(cwd: str | Path, args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    """Like `_run`, with bytes output: diffs, file contents and `-z` paths need not be UTF-8."""
    try:
        return subprocess.run(
            [*_GIT, "-C", str(cwd), *args], capture_output=True, env=_git_env(), check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH; install git >= 2.38") from exc


def _git_raw(cwd: str | Path, *args: str) -> bytes:
    """Run git and return its stdout as bytes; raise GitError on a non-zero exit."""
    proc = _run_raw(cwd, args)
    if proc.returncode != 0:
        shown = subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
        raise GitError(_fail(cwd, args, shown))
    return proc.stdout


def _z_paths(out: bytes) -> list[bytes]:
    return [path for path in out.split(b"\0") if path]


def _shown(path: bytes) -> str:
    """A repository path as text for people and models (never fails on odd bytes)."""
    return path.decode("utf-8", "replace")


def _missing_identity(cwd: str | Path) -> dict[str, str]:
    """Our default for each of user.name / user.email the repository has not configured."""
    return {
        key: default
        for key, default in _DEFAULT_IDENTITY.items()
        if not _run(cwd, ["config", "--get", key]).stdout.strip()
    }


def _identity_args(cwd: str | Path) -> list[str]:
    """`-c user.name=… -c user.email=…` defaults for whatever the repo has not configured."""
    return [
        arg for key, value in _missing_identity(cwd).items() for arg in ("-c", f"{key}={value}")
    ]


def identity_env(cwd: str | Path) -> dict[str, str]:
    """Environment variables giving an agent's own `git commit` in `cwd` our default author
    and committer, for whatever identity the repository has not configured (else empty)."""
    missing = _missing_identity(cwd)
    env: dict[str, str] = {}
    if "user.name" in missing:
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = missing["user.name"]
    if "user.email" in missing:
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = missing["user.email"]
    return env


def git_version() -> tuple[int, int, int]:
    """The installed git's version, e.g. (2, 39, 5)."""
    out = _git(".", "--version")
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if found is None:
        raise GitError(f"cannot read the git version from `git --version`: {out.strip()!r}")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def require_git(min: tuple[int, int, int] = MIN_GIT_VERSION) -> tuple[int, int, int]:
    """Return the git version, or raise GitError if it is older than `min`."""
    version = git_version()
    if version < min:
        have = ".".join(map(str, version))
        need = ".".join(map(str, min))
        raise GitError(
            f"git {have} is too old: CC3 Autopilot needs git >= {need} "
            "(for `git merge-tree --write-tree`); install a newer git and try again"
        )
    return version


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def safe_component(value: str) -> str:
    """`value` as one safe ref and path component: only [A-Za-z0-9._-], no `..`, no leading
    `.`/`-`, no trailing `.`/`.lock`. A changed value gets a hash of the original appended so
    that two different ids never share a name."""
    cleaned = _UNSAFE_CHARS.sub("_", value)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).lstrip(".-")[:_MAX_COMPONENT]
    while cleaned.endswith((".", ".lock")):
        cleaned = cleaned.removesuffix(".lock").rstrip(".")
    if cleaned and cleaned == value:
        return cleaned
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned}-{digest}" if cleaned else f"id-{digest}"


def branch_name(session_id: str, task_id: str) -> str:
    """The task's branch: `autopilot/<session>/<task>`, both parts made ref-safe."""
    return f"autopilot/{safe_component(session_id)}/{safe_component(task_id)}"


def worktree_path(state_dir: str | Path, session_id: str, task_id: str) -> Path:
    """The task's worktree: `<state_dir>/worktrees/<session>/<task>`, never outside state_dir."""
    return Path(state_dir) / "worktrees" / safe_component(session_id) / safe_component(task_id)


def agent_space_path(state_dir: str | Path, session_id: str, task_id: str) -> Path:
    """The folder of the task's sandboxed runs (their homes, Claude sessions and temp):
    `<session>/.agents/<task>` beside its workspace (no task's name starts with a dot), and
    removed with it."""
    workspace = worktree_path(state_dir, session_id, task_id)
    return workspace.parent / AGENT_SPACES / workspace.name


def _trailer_value(kind: str, value: str) -> str:
    if not value or value != value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(
            f"{kind} id {value!r} cannot be a git trailer value: it must be non-empty, "
            "without leading/trailing spaces or control characters"
        )
    return value


def _message_with_trailers(message: str, session_id: str, task_id: str) -> str:
    """`message` with our trailers as its last paragraph (the one git parses as trailers)."""
    session = _trailer_value("session", session_id)
    task = _trailer_value("task", task_id)
    body = message.strip() or f"Autopilot task {task}"
    return f"{body}\n\n{SESSION_TRAILER}: {session}\n{TASK_TRAILER}: {task}\n"


# --------------------------------------------------------------------------------------------
# Refs, history, worktrees
# --------------------------------------------------------------------------------------------


def _branch_ref(branch: str) -> str:
    """The full ref of a branch named short (`main`) or in full (`refs/heads/main`). Any other
    ref is refused: what a merge moves must never be a tag or a remote-tracking branch."""
    if branch.startswith("refs/heads/"):
        return branch
    if branch.startswith("refs/"):
        raise RepoError(f"{branch!r} is not a branch: only branches (refs/heads/*) are merged into")
    return f"refs/heads/{branch}"


def _resolve(cwd: str | Path, rev: str) -> str | None:
    """The commit sha `rev` names, or None if it names none."""
    proc = _run(cwd, ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"])
    return proc.stdout.strip() if proc.returncode == 0 else None


def head_sha(worktree: str | Path) -> str:
    """The commit HEAD points at."""
    return _git(worktree, "rev-parse", "--verify", "HEAD^{commit}").strip()


def _branch_head(repo: str | Path, branch: str) -> str:
    if not Path(repo).is_dir():
        raise RepoError(f"the repository {repo} does not exist (moved or deleted?)")
    sha = _resolve(repo, _branch_ref(branch))
    if sha is None:
        raise RepoError(f"branch {branch!r} does not exist in {repo} (renamed or deleted?)")
    return sha


def _is_ancestor(repo: str | Path, ancestor: str, descendant: str) -> bool:
    args = ["merge-base", "--is-ancestor", ancestor, descendant]
    proc = _run(repo, args)
    if proc.returncode not in (0, 1):
        raise GitError(_fail(repo, args, proc))
    return proc.returncode == 0


def _our_merges(repo: str | Path, target_branch: str, session_id: str) -> list[tuple[str, str]]:
    """(task id, merge sha) of this session's merge commits on the target's first-parent
    history, oldest first."""
    fmt = (
        f"%H%x1f%(trailers:key={SESSION_TRAILER},valueonly,unfold,separator=%x1d)"
        f"%x1f%(trailers:key={TASK_TRAILER},valueonly,unfold,separator=%x1d)%x1e"
    )
    out = _git(
        repo,
        "log",
        "--no-show-signature",
        "--first-parent",
        "--min-parents=2",
        "--reverse",
        "--fixed-strings",
        f"--grep={SESSION_TRAILER}: {session_id}",
        f"--format={fmt}",
        _branch_ref(target_branch),
        "--",
    )
    merges: list[tuple[str, str]] = []
    for record in out.split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) != 3:
            continue
        sha, sessions, tasks = fields
        if session_id in sessions.split("\x1d") and tasks:
            merges.append((tasks.split("\x1d")[-1], sha))
    return merges


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
class _Worktree:
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
        proc = _run(repo, args)
        if proc.returncode == 0:
            return proc.stdout
        failures += 1
        if failures == WORKTREE_LIST_ATTEMPTS or not _ENTRY_BEING_WRITTEN.search(proc.stderr):
            raise GitError(_fail(repo, args, proc))
        _wait_for_worktree_entry(failures)


def _worktrees(repo: str | Path) -> list[_Worktree]:
    """`git worktree list --porcelain -z`, parsed; the main worktree comes first."""
    out = _worktree_listing(repo)
    result: list[_Worktree] = []
    for block in out.split("\0\0"):
        attrs: dict[str, str] = {}
        for line in block.split("\0"):
            if line:
                key, _, value = line.partition(" ")
                attrs[key] = value
        if "worktree" in attrs:
            result.append(
                _Worktree(
                    path=attrs["worktree"],
                    head=attrs.get("HEAD"),
                    branch=attrs.get("branch"),
                    bare="bare" in attrs,
                    locked=attrs.get("locked"),
                    prunable="prunable" in attrs,
                )
            )
    return result


def _same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _registered(repo: str | Path, path: str | Path) -> _Worktree | None:
    return next((wt for wt in _worktrees(repo) if _same_path(wt.path, path)), None)


def _checkout_of(repo: str | Path, branch: str) -> _Worktree | None:
    """The worktree (with an existing directory) where `branch` is checked out, if any."""
    ref = _branch_ref(branch)
    for wt in _worktrees(repo):
        if wt.branch == ref and not wt.prunable and Path(wt.path).is_dir():
            return wt
    return None


def _status_entries(cwd: str | Path, *, untracked: bool) -> list[str]:
    """Paths `git status` reports as changed (ignored files never count)."""
    out = _git(
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


def _git_path(cwd: str | Path, name: str) -> Path:
    """Absolute path of `name` in the (per-worktree) git dir, e.g. MERGE_HEAD, MERGE_MSG."""
    return Path(_git(cwd, "rev-parse", "--path-format=absolute", "--git-path", name).strip())


def _rmtree(path: Path) -> None:
    """Remove a directory tree, read-only files (e.g. a Go module cache) included."""

    def make_writable_and_retry(func: Callable[..., Any], name: str, _exc: Any) -> None:
        os.chmod(name, stat.S_IRWXU)
        func(name)

    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=make_writable_and_retry)


def _clear_stale_lock(lock: Path, stale_after_s: float = STALE_LOCK_SECONDS) -> None:
    """Remove `lock` if it is older than `stale_after_s`: a git killed while holding it."""
    try:
        age = time.time() - lock.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return
    if age > stale_after_s:
        lock.unlink(missing_ok=True)


def _clear_stale_index_lock(worktree: str | Path) -> None:
    """Remove an index.lock older than STALE_LOCK_SECONDS, only in a task workspace or a
    linked worktree's own git dir (never the main repository's): a killed git leaves it
    behind, and no git command run in a task worktree holds the index lock that long."""
    if not _is_linked_worktree(Path(worktree)):
        _clear_stale_lock(Path(worktree, ".git", "index.lock"))
        return
    out = _git(worktree, "rev-parse", "--absolute-git-dir", "--git-common-dir").splitlines()
    git_dir = Path(out[0])
    common_dir = Path(worktree, out[1]) if not Path(out[1]).is_absolute() else Path(out[1])
    if _same_path(git_dir, common_dir):
        return  # not a linked worktree: not ours to clean
    _clear_stale_lock(git_dir / "index.lock")


# --------------------------------------------------------------------------------------------
# Workspace: branch + worktree of one task
# --------------------------------------------------------------------------------------------


def _clear_stale_branch_lock(repo: str | Path, branch: str) -> None:
    """Remove the task branch's own ref lock left by a git killed mid-update (a worker killed
    during `git worktree add -b`). Only this task's steps write its branch, one at a time, and
    git holds a ref lock for milliseconds: one older than BRANCH_LOCK_STALE_SECONDS is dead."""
    common_dir = Path(_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip())
    _clear_stale_lock(common_dir / f"{_branch_ref(branch)}.lock", BRANCH_LOCK_STALE_SECONDS)


def _remove_registered_worktree(repo: str | Path, path: str | Path) -> None:
    # Twice --force: also removes a locked worktree and one with local changes.
    _git(repo, "worktree", "remove", "--force", "--force", str(path))


def _ensure_worktree(repo: str | Path, path: Path, branch: str, start_sha: str) -> None:
    """Make `path` a worktree of `repo` on `branch`, creating the branch at `start_sha`."""
    ref = _branch_ref(branch)
    entry = _registered(repo, path)
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
            _clear_stale_index_lock(path)
            return
        now_on = entry.branch or f"a detached HEAD at {entry.head}"
        raise GitError(
            f"the task worktree {path} is on {now_on}, not on {ref}; check out {branch} "
            "there or remove the worktree (`git worktree remove --force`), then retry"
        )
    _clear_stale_branch_lock(repo, branch)
    if path.exists() or path.is_symlink():
        _rmtree(path)  # a leftover directory in our state dir that git does not know
    make_private_dir(path.parent)
    if _resolve(repo, ref) is not None:
        _git(repo, "worktree", "add", str(path), branch)
    else:
        _git(repo, "worktree", "add", "-b", branch, str(path), start_sha)


def prepare_workspace(
    repo: str | Path, target_branch: str, state_dir: str | Path, session_id: str, task_id: str
) -> Workspace:
    """Ensure the task's branch and worktree exist, or report that the task is already merged.

    A new branch starts at the target's head; an existing branch (and worktree) is reused,
    with base_sha the merge-base of branch and target.
    """
    branch = branch_name(session_id, task_id)
    target_head = _branch_head(repo, target_branch)
    merge_sha = find_task_merge(repo, target_branch, session_id, task_id)
    if merge_sha is not None:
        return Workspace(
            path="", branch=branch, base_sha=target_head, already_merged=True, merge_sha=merge_sha
        )
    path = worktree_path(Path(state_dir).absolute(), session_id, task_id)
    if _registered(repo, path) is not None:  # a worktree made before workspaces had their own
        _ensure_worktree(repo, path, branch, target_head)
        base_sha = _git(repo, "merge-base", _branch_ref(branch), target_head).strip()
        return Workspace(path=str(path), branch=branch, base_sha=base_sha)
    _clear_stale_branch_lock(repo, branch)
    start = _resolve(repo, _branch_ref(branch)) or target_head  # a retry goes on from its branch
    _ensure_workspace(repo, path, branch, start)
    # In the workspace: a crashed run's commits may not be brought back yet.
    base_sha = _git(path, "merge-base", "HEAD", target_head).strip()
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
AGENT_SPACES = ".agents"
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
    common = _git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir").strip()
    return Path(common) / "objects"


def is_workspace_repo(path: str | Path) -> bool:
    """A repository of its own (a `.git` directory), not a linked worktree (a `.git` file)."""
    return Path(path, ".git").is_dir() and not Path(path, ".git").is_symlink()


# What of a workspace's config survives `_own_workspace`: the identity its commits carry.
_WORKSPACE_KEPT_KEYS = tuple(_DEFAULT_IDENTITY)


def _config_values(config: Path) -> dict[str, str]:
    """The settings of a config file, read as data (nothing in it runs)."""
    proc = _run_raw(config.parent, ["config", "--file", str(config), "--list", "-z"])
    values: dict[str, str] = {}
    for entry in proc.stdout.decode("utf-8", "replace").split("\0"):
        key, _, value = entry.partition("\n")
        if key:
            values[key] = value
    return values


def _write_workspace_config(config: Path, identity: dict[str, str]) -> None:
    fresh = config.with_name("config.autopilot")
    fresh.write_text("")
    for key, value in (WORKSPACE_SETTINGS | identity).items():
        _git(config.parent, "config", "--file", str(fresh), key, value)
    os.replace(fresh, config)


def _own_workspace(path: Path) -> None:
    """Put our config back (keeping only the identity) and drop whatever would point git at
    another repository: our next git command there must work on this repository and run
    nothing the agent configured."""
    git_dir = path / ".git"
    if git_dir.is_symlink() or not git_dir.is_dir():
        raise WorkspaceBroken(
            f"the workspace {path} no longer has a .git directory of its own (the agent "
            "replaced it); its work cannot be trusted: retry the task to start afresh"
        )
    for name in ("commondir", "config.worktree"):  # would point git at another repository
        _rmtree(git_dir / name)
    config = git_dir / "config"
    values = {} if config.is_symlink() or not config.is_file() else _config_values(config)
    identity = {key: values[key] for key in _WORKSPACE_KEPT_KEYS if key in values}
    expected = WORKSPACE_SETTINGS | identity
    if values != expected:
        _rmtree(config)
        _write_workspace_config(config, identity)


def _is_linked_worktree(path: Path) -> bool:
    """A worktree of a session recorded before workspaces had repositories of their own: its
    `.git` file names a git dir whose `gitdir` file names this `.git` back (git writes both
    when it adds a worktree; a `.git` file pointing at a repository itself has no such link)."""
    dot_git = path / ".git"
    if dot_git.is_symlink() or not dot_git.is_file():
        return False
    named = dot_git.read_text(errors="replace").strip().removeprefix("gitdir:").strip()
    try:
        back = Path(named, "gitdir").read_text(errors="replace").strip()
    except OSError:
        return False
    return _same_path(back, dot_git)


def _enter(worktree: str | Path) -> None:
    """Before any step of ours in a task workspace: it is ours again (`_own_workspace`). A
    linked worktree of before is taken as it is."""
    path = Path(worktree)
    if not _is_linked_worktree(path):
        _own_workspace(path)


def _ensure_workspace(repo: str | Path, path: Path, branch: str, start_sha: str) -> None:
    """Make `path` the task's own repository on `branch` at `start_sha`, or keep the one there
    (a retry after a crash finds it as the agent left it)."""
    if is_workspace_repo(path):
        _own_workspace(path)
        _clear_stale_index_lock(path)
        on = _run(path, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
        if on != _branch_ref(branch):
            raise GitError(
                f"the task workspace {path} is on {on or 'a detached HEAD'}, not on "
                f"{_branch_ref(branch)}; check out {branch} there or remove the workspace, "
                "then retry"
            )
        return
    # Made aside and renamed into place: a workspace at `path` is always a whole one, and
    # what a worker killed while making it left is made again.
    making = path.with_name(f".making-{path.name}")
    _rmtree(making)
    make_private_dir(path.parent)  # the state dir's folders are the worker's alone
    making.mkdir()
    # --template=: no sample hooks, nothing but what git needs.
    _git(making, "init", "--quiet", "--template=", f"--initial-branch={branch}")
    identity = {
        key: _run(repo, ["config", "--get", key]).stdout.strip() or default
        for key, default in _DEFAULT_IDENTITY.items()
    }
    _write_workspace_config(making / ".git" / "config", identity)
    alternates = making / ".git" / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(f"{objects_dir(repo)}\n")
    _git(making, "update-ref", _branch_ref(branch), start_sha)
    _git(making, "reset", "--quiet", "--hard", start_sha)
    _rmtree(path)  # something else that was there: not a workspace, not ours to keep
    making.rename(path)


def bring_back(
    repo: str | Path, workspace: str | Path, session_id: str, task_id: str, base_sha: str
) -> str:
    """Fetch the workspace's task branch into the user's repository's private namespace,
    check that it descends from `base_sha`, and only then point the task branch at it.
    Returns the task branch's new head."""
    path = Path(workspace)
    branch = branch_name(session_id, task_id)
    if _is_linked_worktree(path):  # it shares the branch already
        return _branch_head(repo, branch)
    _own_workspace(path)
    incoming = incoming_ref(session_id, task_id)
    # The workspace's objects that the user's repository lacks come over; refs other than
    # the task branch, and anything the agent configured, do not.
    _git(
        repo,
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-recurse-submodules",
        str(path),
        f"+{_branch_ref(branch)}:{incoming}",
    )
    head = _git(repo, "rev-parse", "--verify", "--quiet", f"{incoming}^{{commit}}").strip()
    if not _is_ancestor(repo, base_sha, head):
        raise WorkspaceBroken(
            f"the task branch in {path} ({head[:12]}) does not descend from {base_sha[:12]}, "
            f"where the task started: its history was rewritten; {branch} was left unchanged"
        )
    current = _resolve(repo, _branch_ref(branch))
    if current != head:
        args = [
            "update-ref",
            "-m",
            f"autopilot: task {task_id} from its workspace",
            _branch_ref(branch),
            head,
        ]
        _git(repo, *args, *([current] if current else []))
    _git(repo, "update-ref", "-d", incoming, head)  # checked and published: done with
    return head


def remove_workspace(repo: str | Path, worktree_path: str | Path) -> None:
    """Remove the task's worktree (registered or a leftover directory); keep its branch.

    Only this worktree's registration is removed (no `git worktree prune`, which would touch
    every worktree and can race with another task's `git worktree add`)."""
    path = Path(worktree_path).absolute()
    worktrees = _worktrees(repo)
    main = os.path.realpath(worktrees[0].path) if worktrees else None
    if main is not None and (main + os.sep).startswith(os.path.realpath(path) + os.sep):
        raise GitError(f"refusing to remove {path}: it is (or holds) the main checkout of {repo}")
    if any(_same_path(wt.path, path) for wt in worktrees):
        _remove_registered_worktree(repo, path)
    _rmtree(path)
    _rmtree(path.parent / AGENT_SPACES / path.name)
    # The session's folder goes with its last worktree. A task preparing its worktree at the
    # same moment is safe: it makes the folder again.
    for folder in (path.parent / AGENT_SPACES, path.parent):
        with contextlib.suppress(OSError):  # not empty: other tasks' are in it
            folder.rmdir()


# --------------------------------------------------------------------------------------------
# Commits on the task branch
# --------------------------------------------------------------------------------------------


def _commits_since(worktree: str | Path, base_sha: str) -> list[CommitInfo]:
    # --first-parent: after a conflict round merged the target into the branch, the target's
    # own commits (reachable only through that merge's second parent) are not the task's.
    out = _git(
        worktree,
        "log",
        "--no-show-signature",
        "--first-parent",
        "--reverse",
        "-z",
        "--format=%H%x1f%s",
        f"{base_sha}..HEAD",
        "--",
    )
    commits: list[CommitInfo] = []
    for record in out.split("\0"):
        if record:
            sha, _, subject = record.partition("\x1f")
            commits.append(CommitInfo(sha=sha, subject=subject))
    return commits


def _require_task_branch(worktree: str | Path, session_id: str, task_id: str) -> None:
    expected = _branch_ref(branch_name(session_id, task_id))
    head_ref = _run(worktree, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
    if head_ref != expected:
        now_on = head_ref or "a detached HEAD"
        raise GitError(
            f"the task worktree {worktree} is on {now_on}, not on {expected}; the agent "
            "switched branches: check out the task branch there, then retry"
        )


def _commit(worktree: str | Path, full_message: str) -> None:
    """Commit the index (a merge commit when MERGE_HEAD exists) with `full_message` as is."""
    _git(
        worktree,
        *_identity_args(worktree),
        "commit",
        "--quiet",
        "--no-verify",  # hooks must not stop us from keeping the agent's work
        "--cleanup=whitespace",
        "--file=-",
        stdin=full_message,
    )


def _merge_message(worktree: str | Path, message: str, session_id: str, task_id: str) -> str:
    """The message for concluding the merge in progress: the one it was started with
    (MERGE_MSG, git's `# Conflicts` comment lines dropped) if it already carries our
    trailers, else `message` (or git's merge message) with our trailers."""
    try:
        text = _git_path(worktree, "MERGE_MSG").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    kept = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
    lines = kept.splitlines()
    if f"{SESSION_TRAILER}: {session_id}" in lines and f"{TASK_TRAILER}: {task_id}" in lines:
        return kept + "\n"
    return _message_with_trailers(kept or message, session_id, task_id)


def commit_changes(
    worktree: str | Path,
    base_sha: str,
    session_id: str,
    task_id: str,
    message: str,
    *,
    repo: str | Path | None,
) -> CommitOutcome:
    """Commit whatever the agent left uncommitted (with our trailers), then list the branch's
    own commits since base_sha (first-parent), oldest first.

    `repo`: the user's repository, where the commits are brought back (`bring_back`); None
    for a linked worktree of a session recorded before, which shares the branch.

    With a merge in progress (a conflict round), this concludes it as a two-parent merge
    commit, staging the agent's resolutions; it raises GitError instead if a file still has
    conflict markers. An unmerged file without markers counts as resolved as it stands."""
    _enter(worktree)
    _require_task_branch(worktree, session_id, task_id)
    _clear_stale_index_lock(worktree)
    merging = _resolve(worktree, "MERGE_HEAD") is not None
    if merging:
        _, marked = _conflict_state(worktree)
        if marked:
            raise ConflictsRemain(
                f"cannot commit in {worktree}: the merge in progress still has conflict "
                f"markers (<<<<<<< / ======= / >>>>>>>) in {_list_for_people(marked)}; "
                "resolve them there, then retry"
            )
    committed = False
    # During a merge the resolution may equal HEAD (nothing to stage): still commit it, so
    # the merge is recorded and MERGE_HEAD cleared.
    if merging or _status_entries(worktree, untracked=True):
        _git(worktree, "add", "--all")
        if merging or _run(worktree, ["diff", "--cached", "--quiet"]).returncode != 0:
            full_message = (
                _merge_message(worktree, message, session_id, task_id)
                if merging
                else _message_with_trailers(message, session_id, task_id)
            )
            _commit(worktree, full_message)
            committed = True
    commits = _commits_since(worktree, base_sha)
    head_sha = _git(worktree, "rev-parse", "HEAD").strip()
    clean = not _status_entries(worktree, untracked=True)
    if repo is not None:
        bring_back(repo, worktree, session_id, task_id, base_sha)
    return CommitOutcome(
        commits=commits,
        head_sha=head_sha,
        committed_leftovers=committed,
        no_changes=not commits and clean,
    )


# --------------------------------------------------------------------------------------------
# Conflict rounds: merging the target into the task branch
# --------------------------------------------------------------------------------------------


def _list_for_people(paths: Sequence[bytes], limit: int = 10) -> str:
    shown = ", ".join(_shown(path) for path in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _is_marker(line: bytes, char: bytes) -> bool:
    # Exactly seven marker characters, then a label or the end of the line.
    return line.startswith(char * 7) and (len(line) == 7 or line[7:8] in (b" ", b"\t", b"\r"))


def _marker_blocks(data: bytes) -> int:
    """How many `<<<<<<<` … `=======` … `>>>>>>>` line sequences `data` has."""
    blocks, state = 0, 0
    for line in data.splitlines():
        if _is_marker(line, b"<"):
            state = 1
        elif state == 1 and line.rstrip() == b"=" * 7:
            state = 2
        elif state == 2 and _is_marker(line, b">"):
            blocks, state = blocks + 1, 0
    return blocks


def _unmerged_paths(worktree: str | Path) -> list[bytes]:
    # `<mode> <object> <stage>\t<path>`, one line per stage.
    entries = _z_paths(_git_raw(worktree, "ls-files", "--unmerged", "-z"))
    return sorted({entry.partition(b"\t")[2] for entry in entries})


def _differs_from(worktree: str | Path, rev: str) -> set[bytes]:
    """Tracked paths whose working-tree content differs from `rev`."""
    return set(_z_paths(_git_raw(worktree, "diff", "--name-only", "--no-renames", "-z", rev, "--")))


def _blob(worktree: str | Path, rev: str, path: bytes) -> bytes:
    """The content of `path` at `rev`, empty if it does not exist there."""
    proc = _run_raw(worktree, ["cat-file", "blob", f"{rev}:{os.fsdecode(path)}"])
    return proc.stdout if proc.returncode == 0 else b""


def _merge_sides(worktree: str | Path) -> tuple[str, str] | None:
    """(ours, theirs) of the merge in progress, or of HEAD if it is a merge commit (the agent
    may have concluded the merge itself); None without either."""
    ours = _resolve(worktree, "HEAD")
    theirs = _resolve(worktree, "MERGE_HEAD")
    if ours is None:
        return None
    if theirs is not None:
        return ours, theirs
    second = _resolve(worktree, f"{ours}^2")
    first = _resolve(worktree, f"{ours}^1")
    return (first, second) if first is not None and second is not None else None


def _conflict_state(worktree: str | Path) -> tuple[list[bytes], list[bytes]]:
    """(unmerged paths, paths whose conflict markers the merge left in).

    A file counts as marked when it changed since the merge base, differs from both sides,
    and has more marker blocks than either side's version: a file that legitimately holds
    marker-like lines (on either side) is not flagged."""
    unmerged = _unmerged_paths(worktree)
    sides = _merge_sides(worktree)
    if sides is None:
        return unmerged, []
    ours, theirs = sides
    candidates = _differs_from(worktree, ours) & _differs_from(worktree, theirs)
    base = _run(worktree, ["merge-base", ours, theirs])
    if base.returncode == 0:  # unrelated histories have no merge base
        candidates &= _differs_from(worktree, base.stdout.strip())
    marked: list[bytes] = []
    for path in sorted(candidates | set(unmerged)):
        full = Path(worktree, os.fsdecode(path))
        if full.is_symlink() or not full.is_file():
            continue
        try:
            blocks = _marker_blocks(full.read_bytes())
        except OSError:
            continue
        if blocks == 0:
            continue
        if blocks > max(_marker_blocks(_blob(worktree, rev, path)) for rev in (ours, theirs)):
            marked.append(path)
    return unmerged, marked


def unresolved_conflicts(worktree: str | Path) -> list[str]:
    """Paths still in conflict: unmerged index entries, plus files with conflict markers left
    by the merge in progress (or by HEAD's merge commit), even if `git add`-ed or committed."""
    unmerged, marked = _conflict_state(worktree)
    return sorted({_shown(path) for path in [*unmerged, *marked]})


def merge_target_into_branch(
    worktree: str | Path,
    target_branch: str,
    session_id: str,
    task_id: str,
    *,
    repo: str | Path | None,
) -> TargetMerge:
    """Merge the target's head into the task branch, in the task's worktree.

    A clean merge is committed (with our trailers); on conflicts the markers and MERGE_HEAD
    are left for the agent, and `commit_changes` concludes the merge later. Called again
    while that merge is in progress (a retry), it only reports it, or commits it once
    nothing is unresolved. The target branch and the user's checkout are never touched.
    `repo`: the user's repository, where the target is (a workspace of its own has no target
    branch; it reads the target's objects through its alternates)."""
    _enter(worktree)
    _require_task_branch(worktree, session_id, task_id)
    _clear_stale_index_lock(worktree)
    branch = branch_name(session_id, task_id)
    message = _message_with_trailers(
        f"Merge {target_branch} into {branch} for task {task_id}", session_id, task_id
    )
    in_progress = _resolve(worktree, "MERGE_HEAD")
    if in_progress is not None:
        conflicts = unresolved_conflicts(worktree)
        if not conflicts:  # e.g. crashed between a clean merge and its commit: finish it
            _commit(worktree, _merge_message(worktree, message, session_id, task_id))
        return TargetMerge(
            clean=not conflicts,
            conflict_files=conflicts,
            head_sha=head_sha(worktree),
        )
    target_sha = _branch_head(worktree if repo is None else repo, target_branch)
    branch_head = head_sha(worktree)
    if _is_ancestor(worktree, target_sha, branch_head):
        return TargetMerge(clean=True, already_up_to_date=True, head_sha=branch_head)
    dirty = _status_entries(worktree, untracked=False)
    if dirty:
        raise GitError(
            f"cannot merge {target_branch} into {branch} in {worktree}: it has uncommitted "
            f"changes to {', '.join(dirty[:10])}; commit them (commit_changes) or discard "
            "them first, then retry"
        )
    # The sha, not the name: we merge exactly the head we checked, even if the target moves.
    args = [
        *_identity_args(worktree),
        "merge",
        "--no-ff",
        "--no-commit",
        "--no-autostash",
        "--no-stat",
        "--quiet",
        f"--message={message}",
        target_sha,
    ]
    proc = _run(worktree, args)
    if _resolve(worktree, "MERGE_HEAD") is None:
        raise GitError(
            f"{_fail(worktree, args, proc)}; nothing was merged. If untracked files are in "
            "the way, move or delete them in the worktree, then retry"
        )
    unmerged = _unmerged_paths(worktree)
    if not unmerged:
        _commit(worktree, message)
    return TargetMerge(
        clean=not unmerged,
        conflict_files=[_shown(path) for path in unmerged],
        head_sha=head_sha(worktree),
    )


# --------------------------------------------------------------------------------------------
# Review: the task's diff, and keeping the tree as the reviewer found it
# --------------------------------------------------------------------------------------------


class ReviewDiff(BaseModel):
    diff: str  # `--stat` summary, then the patch; cut at limit_chars with a note saying so
    changed_files: list[str]  # every path the task changed (renames: both names)
    truncated: bool


def _review_base(worktree: str | Path, base_sha: str) -> str:
    """Where the task's own changes start: the merge base of base_sha and HEAD, moved past
    each merge of the target into the branch (a conflict round) on HEAD's first-parent line.

    Such a merge M is recognised by its shape: the merge base of its two parents is the
    current base, i.e. its second parent is a later state of the target. An agent's own side
    branch forks from a task commit instead, so its changes stay in the diff."""
    proc = _run(worktree, ["merge-base", base_sha, "HEAD"])
    if proc.returncode != 0:
        raise GitError(
            f"{base_sha!r} shares no history with HEAD in {worktree} (or names no commit); "
            "pass the base the task branch started from, or the target's head"
        )
    base = proc.stdout.strip()
    merges = _git(
        worktree,
        "rev-list",
        "--first-parent",
        "--min-parents=2",
        "--reverse",
        "--parents",
        f"{base}..HEAD",
        "--",
    )
    for line in merges.splitlines():
        _, first, second = line.split()[:3]
        if _run(worktree, ["merge-base", first, second]).stdout.strip() == base:
            base = second
    return base


def diff_for_review(worktree: str | Path, base_sha: str, limit_chars: int = 60_000) -> ReviewDiff:
    """The task's own changes, `git diff <base>...HEAD` with `--stat` first, cut at
    limit_chars (plus a note saying what was left out).

    base_sha may be the workspace's base or the target's head (or name): the diff starts at
    their merge base with HEAD, moved past the target merges of conflict rounds, so the
    target's own changes that came in through those merges are not shown as the task's."""
    _enter(worktree)
    base = _review_base(worktree, base_sha)
    common = ["--no-color", "--no-ext-diff", "--no-textconv", f"{base}...HEAD", "--"]
    names = _git_raw(worktree, "diff", "--name-only", "--no-renames", "-z", *common)
    text = _git_raw(
        worktree, "diff", "--stat=200", "--summary", "--patch", "--find-renames", *common
    ).decode("utf-8", "replace")
    if not text.strip():
        text = f"(no changes: HEAD changes nothing relative to {base})\n"
    truncated = len(text) > limit_chars
    if truncated:
        cut = text.rfind("\n", 0, limit_chars) + 1 or limit_chars  # whole lines if possible
        left = text[cut:]
        unseen = left.count("\ndiff --git ") + left.startswith("diff --git ")
        partly = "" if left.startswith("diff --git ") else "the last file shown is cut off, "
        text = (
            f"{text[:cut]}\n[diff truncated: {len(left)} of {len(text)} characters "
            f"({left.count(chr(10))} lines) left out; {partly}{unseen} more file(s) not "
            "shown. The summary at the top lists every changed file: read those files in "
            f"the worktree, or run `git diff {base}...HEAD -- <path>`, to see the rest.]\n"
        )
    return ReviewDiff(
        diff=text, changed_files=[_shown(path) for path in _z_paths(names)], truncated=truncated
    )


# What the fingerprint leaves out of a git dir. objects/ is content-addressed: a new object
# changes nothing until a ref or the index points at it, and those are covered. logs/ only
# records how refs moved (the refs are hashed themselves). The index is rewritten by any
# `git status` that refreshes its stat data; what it stages is in the `diff --cached` above.
_UNHASHED_GIT_PARTS = frozenset({"objects", "logs", "index"})
# The other worktrees' private git dirs, in a repository shared by several.
_OTHER_WORKTREES = "worktrees"
# What a linked worktree shares with the rest of its repository and the fingerprint covers:
# the configuration that makes git run commands (hooks, filters, core.fsmonitor) and the
# exclude and attributes files. Not the shared refs, packed-refs and the main checkout's
# HEAD: other tasks commit and merge, and the user works, in that repository while a review
# runs, and the fingerprint would see them as the reviewer's doing.
_SHARED_GIT_PARTS = ("config", "hooks", "info")


def tree_fingerprint(worktree: str | Path) -> str:
    """A string that changes when anything in the worktree changes: HEAD, the branch, a merge
    in progress, the index, the content of every changed, untracked or ignored file (so a
    second edit of an already modified file shows), and the worktree's git dir: its config,
    hooks and refs (`_hash_git_dirs` says which, for a linked worktree)."""
    head = _resolve(worktree, "HEAD") or "(no commit)"
    branch = _run(worktree, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip() or "(detached)"
    merge_head = _resolve(worktree, "MERGE_HEAD") or "-"
    # --no-optional-locks: looking must not write the index (a stat refresh) either.
    # --ignored=traditional with -uall lists each ignored file, not only its folder.
    status = _git_raw(
        worktree,
        "--no-optional-locks",
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--ignored=traditional",
        "--ignore-submodules=none",
    )
    staged = _git_raw(
        worktree, "--no-optional-locks", "diff", "--cached", "--raw", "--no-abbrev", "-z"
    )
    digest = hashlib.sha256()
    for part in (head.encode(), branch.encode(), merge_head.encode(), status, staged):
        digest.update(part + b"\0\0")
    for path in _status_paths(status):
        digest.update(path + b"\0")
        _hash_entry(digest, Path(worktree, os.fsdecode(path)))
    _hash_git_dirs(digest, worktree)
    return f"{head}:{digest.hexdigest()}"


def _status_paths(status: bytes) -> list[bytes]:
    """The paths of `git status --porcelain=v1 -z` entries (a rename's source skipped)."""
    paths: list[bytes] = []
    entries = iter(status.split(b"\0"))
    for entry in entries:
        if not entry:
            continue
        paths.append(entry[3:])
        if entry[:1] in (b"R", b"C"):  # a rename/copy is followed by its source path
            next(entries, None)
    return paths


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


def _hash_entry(digest: _Digest, path: Path) -> None:
    """What is at `path`: a link's target, a file's content, or that it is a folder or gone.
    Links are not followed: a link out of the worktree is the link, not what it points at."""
    try:
        if path.is_symlink():
            digest.update(b"link:" + os.fsencode(os.readlink(path)))
        elif path.is_file():
            with path.open("rb") as handle:
                digest.update(b"file:" + hashlib.file_digest(handle, "sha256").digest())
        else:
            digest.update(b"dir" if path.is_dir() else b"missing")
    except FileNotFoundError:  # gone between listing and reading
        digest.update(b"missing")


def _hash_tree(digest: _Digest, root: Path, skip: frozenset[str] = frozenset()) -> None:
    """Every entry under root, in a stable order, but the top-level names in `skip`."""
    digest.update(b"tree:" + os.fsencode(root) + b"\0")
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == root:
            dirs[:] = [name for name in dirs if name not in skip]
            files = [name for name in files if name not in skip]
        dirs.sort()
        for name in sorted([*dirs, *files]):
            entry = here / name
            digest.update(os.fsencode(entry.relative_to(root)) + b"\0")
            _hash_entry(digest, entry)


def _hash_git_dirs(digest: _Digest, worktree: str | Path) -> None:
    """The worktree's own git dir (all of it but _UNHASHED_GIT_PARTS) and, for a linked
    worktree, the parts of its repository's common dir that are _SHARED_GIT_PARTS. (Hooks
    elsewhere, where a core.hooksPath would put them, never run for us: our git commands
    override it.)"""
    out = _git(worktree, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir")
    git_dir, common_dir = (Path(line) for line in out.splitlines())
    if _same_path(git_dir, common_dir):  # a repository of its own
        _hash_tree(digest, git_dir, _UNHASHED_GIT_PARTS | {_OTHER_WORKTREES})
    else:
        _hash_tree(digest, git_dir, _UNHASHED_GIT_PARTS)
        for name in _SHARED_GIT_PARTS:
            shared = common_dir / name
            digest.update(os.fsencode(shared) + b"\0")
            if shared.is_dir() and not shared.is_symlink():
                _hash_tree(digest, shared)
            else:
                _hash_entry(digest, shared)


def restore_tree(worktree: str | Path, head_sha: str, branch: str | None = None) -> None:
    """Bring the worktree back to `head_sha` after a reviewer touched it: quit a rebase,
    cherry-pick or merge in progress, check out `branch` again if given (else the branch
    now checked out is reset), `git reset --hard`, and remove untracked files (`git clean
    -fd`, which keeps ignored files such as build caches)."""
    _enter(worktree)
    _clear_stale_index_lock(worktree)
    for state, quit_args in (
        ("rebase-merge", ["rebase", "--quit"]),
        ("rebase-apply", ["rebase", "--quit"]),
        ("sequencer", ["cherry-pick", "--quit"]),
        ("MERGE_HEAD", ["merge", "--abort"]),
    ):
        if _git_path(worktree, state).exists():
            _run(worktree, quit_args)  # best effort: the reset below clears what is left
    if branch is not None:
        ref = _branch_ref(branch)
        if _run(worktree, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip() != ref:
            _git(worktree, "checkout", "--force", "--quiet", ref.removeprefix("refs/heads/"), "--")
    _git(worktree, "reset", "--hard", "--quiet", head_sha)
    _git(worktree, "clean", "-f", "-d", "--quiet")
    what = _operation_in_progress(worktree)
    if what is not None:
        raise GitError(
            f"{what} is still in progress in {worktree} after restoring it to {head_sha}; "
            "abort it there by hand, then retry"
        )


# --------------------------------------------------------------------------------------------
# Merging a task branch into the target
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TreeMerge:
    tree: str
    conflict: bool
    conflict_files: list[str]
    conflict_messages: list[str]


def _merge_trees(repo: str | Path, ours: str, theirs: str) -> _TreeMerge:
    """Merge two commits into a tree object without touching any index or working tree."""
    args = ["merge-tree", "--write-tree", "--name-only", "-z", ours, theirs]
    proc = _run(repo, args)
    if proc.returncode not in (0, 1):
        raise GitError(_fail(repo, args, proc))
    tree, _, rest = proc.stdout.partition("\0")
    if proc.returncode == 0:
        return _TreeMerge(tree=tree, conflict=False, conflict_files=[], conflict_messages=[])
    names, _, info = rest.partition("\0\0")
    files = [name for name in names.split("\0") if name]
    # Informational messages: <count>\0<path>\0...\0<type>\0<message>\0, repeated.
    messages: list[str] = []
    fields = info.split("\0")
    i = 0
    while i < len(fields) and fields[i].isdigit():
        count = int(fields[i])
        tail = fields[i + 1 + count : i + 3 + count]
        if len(tail) < 2:
            break
        kind, text = tail
        if kind.startswith("CONFLICT"):
            messages.append(text.strip())
            if not files:
                files += fields[i + 1 : i + 1 + count]
        i += 3 + count
    return _TreeMerge(
        tree=tree, conflict=True, conflict_files=sorted(set(files)), conflict_messages=messages
    )


def _retry_hint(target_branch: str, task_id: str) -> str:
    return (
        f"then `python starter.py retry {task_id}`. {target_branch!r} and the files there "
        "were left unchanged."
    )


def _refuse_operation(path: str, what: str, target_branch: str, task_id: str) -> CheckoutInTheWay:
    return CheckoutInTheWay(
        f"cannot merge into {target_branch!r}: {what} is in progress in its checkout at "
        f"{path}, and moving {target_branch!r} now would break it. Finish or abort it there, "
        + _retry_hint(target_branch, task_id)
    )


def _refuse_untracked(
    path: str, in_the_way: list[str], target_branch: str, task_id: str
) -> CheckoutInTheWay:
    shown = ", ".join(in_the_way[:10]) + (
        f" and {len(in_the_way) - 10} more" if len(in_the_way) > 10 else ""
    )
    return CheckoutInTheWay(
        f"cannot merge into {target_branch!r}: its checkout at {path} has files that git does "
        f"not track (untracked or ignored) where the merge would write or remove files: "
        f"{shown}. Move them out of the way, or switch that checkout to another branch so "
        f"that {target_branch!r} is not checked out there; " + _retry_hint(target_branch, task_id)
    )


def _changes(checkout: str, old_head: str, new_head: str) -> dict[bytes, bytes]:
    """Each path the fast-forward changes, with its status: A added, D deleted, M or T
    changed in place (renames come as a delete and an add)."""
    out = _git_raw(checkout, "diff", "--name-status", "--no-renames", "-z", old_head, new_head)
    fields = _z_paths(out)
    return dict(zip(fields[1::2], fields[::2], strict=True))


def _lstat(path: bytes) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _is_real_dir(found: os.stat_result) -> bool:
    return stat.S_ISDIR(found.st_mode)  # lstat: a symlink to a directory is not one


def _untracked_under(checkout: str, directory: bytes) -> bool:
    """Does `directory` hold any file git does not track (ignored ones included)?"""
    # No --exclude-standard: ignored files are listed too. Literal: a path is no pattern.
    out = _git_raw(
        checkout, "--literal-pathspecs", "ls-files", "--others", "-z", "--", os.fsdecode(directory)
    )
    return bool(out.strip(b"\0"))


def _blocking_parent(root: bytes, path: bytes, deleted: set[bytes]) -> bytes | None:
    """The first leading directory of `path` that is on disk as something else (a file, a
    symlink) the merge does not itself delete: git would remove it to make the directory."""
    parts = path.split(b"/")[:-1]
    for depth in range(1, len(parts) + 1):
        parent = b"/".join(parts[:depth])
        found = _lstat(os.path.join(root, parent))
        if found is None:
            return None  # nothing deeper exists either
        if not _is_real_dir(found):
            return None if parent in deleted else parent
    return None


def _blocking_entry(checkout: str, root: bytes, path: bytes) -> bytes | None:
    """`path`, added by the merge, if something untracked is there: a file or symlink git
    would overwrite, or a directory whose untracked files git would delete."""
    found = _lstat(os.path.join(root, path))
    if found is None:
        return None
    if _is_real_dir(found):
        return path + b"/" if _untracked_under(checkout, path) else None
    return path


def _untracked_in_the_way(checkout: str | Path, old_head: str, new_head: str) -> list[str]:
    """What in `checkout` (at old_head) that git does not track the fast-forward to new_head
    would overwrite or remove. Git itself treats ignored files as expendable (a `.env`, a
    build directory): we never do. Tracked files with local changes are git's own check."""
    checkout = str(checkout)
    root = os.fsencode(checkout)
    changes = _changes(checkout, old_head, new_head)
    deleted = {path for path, status in changes.items() if status == b"D"}
    blocking: set[bytes] = set()
    for path, status in changes.items():
        if status == b"D":
            continue  # git removes only the tracked file: untracked ones beside it stay
        parent = _blocking_parent(root, path, deleted)
        if parent is not None:
            blocking.add(parent)
        elif status == b"A":  # a path changed in place is tracked: git checks it itself
            entry = _blocking_entry(checkout, root, path)
            if entry is not None:
                blocking.add(entry)
    return sorted(_shown(path) for path in blocking)


def _advance_in_checkout(
    checkout: _Worktree, target_branch: str, old_head: str, merge_sha: str, task_id: str
) -> bool:
    """Fast-forward the target where it is checked out (ref, index and files together).
    False if the target moved meanwhile (the caller recomputes). Refused (CheckoutInTheWay)
    while an operation is under way there, or when it would touch an untracked file."""
    path = checkout.path
    now_on = _run(path, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
    if now_on != _branch_ref(target_branch) or _resolve(path, "HEAD") != old_head:
        return False
    what = _operation_in_progress(path)
    if what is not None:
        raise _refuse_operation(path, what, target_branch, task_id)
    in_the_way = _untracked_in_the_way(path, old_head, merge_sha)
    if in_the_way:
        raise _refuse_untracked(path, in_the_way, target_branch, task_id)
    # --no-overwrite-ignore: should a file appear after the check above, git refuses too.
    args = ["merge", "--ff-only", "--no-overwrite-ignore", "--no-autostash"]
    args += ["--no-verify-signatures", "--quiet", "--no-stat", merge_sha]
    proc = _run(path, args)
    if proc.returncode == 0:
        return True
    if _resolve(path, _branch_ref(target_branch)) != old_head:
        return False
    raise GitError(
        f"could not merge into {target_branch!r}: the checkout at {path} has local changes "
        f"(or untracked files) that the merge would overwrite, or a merge/rebase in progress. "
        f"Commit or stash them there, then retry; {target_branch!r} was left unchanged. "
        f"git said: {(proc.stderr.strip() or proc.stdout.strip())[-2000:]}"
    )


def _rebase_of(repo: str | Path, branch: str) -> _Worktree | None:
    """The worktree where `branch` is being rebased. Its HEAD is detached meanwhile, so it is
    no checkout of the branch, but the rebase moves the branch when it ends, and fails if the
    branch moved in between."""
    ref = _branch_ref(branch)
    for wt in _worktrees(repo):
        if wt.branch is not None or wt.bare or wt.prunable or not Path(wt.path).is_dir():
            continue
        for state in ("rebase-merge", "rebase-apply"):
            with contextlib.suppress(OSError):
                if _git_path(wt.path, f"{state}/head-name").read_text().strip() == ref:
                    return wt
    return None


def _advance_ref(repo: str | Path, target_branch: str, old_head: str, merge_sha: str) -> bool:
    """Compare-and-swap the target ref; False if it moved meanwhile."""
    ref = _branch_ref(target_branch)
    args = ["update-ref", "-m", f"autopilot: merge {merge_sha}", ref, merge_sha, old_head]
    proc = _run(repo, args)
    if proc.returncode == 0:
        return True
    if _resolve(repo, ref) != old_head:
        return False
    raise GitError(_fail(repo, args, proc))


def merge_task(
    repo: str | Path,
    target_branch: str,
    branch: str,
    session_id: str,
    task_id: str,
    message: str,
) -> MergeOutcome:
    """Merge `branch` into the target with a merge commit carrying our trailers, atomically:
    the target either points at the full merge (with its checkout updated) or is untouched.
    CheckoutInTheWay: the user's checkout of the target is not safe to update now."""
    found = find_task_merge(repo, target_branch, session_id, task_id)
    if found is not None:
        return MergeOutcome(
            merged=True,
            already_merged=True,
            merge_sha=found,
            message=f"task {task_id} was already merged into {target_branch} as {found[:12]}",
        )
    branch_head = _branch_head(repo, branch)
    full_message = _message_with_trailers(message, session_id, task_id)
    for _ in range(MERGE_ATTEMPTS):
        target_head = _branch_head(repo, target_branch)
        if _is_ancestor(repo, branch_head, target_head):
            return MergeOutcome(
                merged=True,
                already_merged=True,
                message=f"{branch} ({branch_head[:12]}) is already contained in "
                f"{target_branch}: nothing to merge",
            )
        merged = _merge_trees(repo, target_head, branch_head)
        if merged.conflict:
            details = "; ".join(merged.conflict_messages) or ", ".join(merged.conflict_files)
            return MergeOutcome(
                merged=False,
                conflict=True,
                conflict_files=merged.conflict_files,
                message=f"merging {branch} into {target_branch} conflicts ({details}); "
                f"{target_branch} was left unchanged",
            )
        merge_sha = _git(
            repo,
            *_identity_args(repo),
            "commit-tree",
            merged.tree,
            "-p",
            target_head,
            "-p",
            branch_head,
            stdin=full_message,
        ).strip()
        rebasing = _rebase_of(repo, target_branch)
        if rebasing is not None:
            raise _refuse_operation(rebasing.path, "a rebase", target_branch, task_id)
        checkout = _checkout_of(repo, target_branch)
        if checkout is not None:
            advanced = _advance_in_checkout(
                checkout, target_branch, target_head, merge_sha, task_id
            )
        else:
            advanced = _advance_ref(repo, target_branch, target_head, merge_sha)
        if advanced:
            return MergeOutcome(
                merged=True,
                merge_sha=merge_sha,
                message=f"merged {branch} into {target_branch} as {merge_sha[:12]}",
            )
    raise GitError(
        f"could not merge {branch} into {target_branch} in {repo}: the target branch kept "
        f"moving during {MERGE_ATTEMPTS} attempts; retry when it is quiet"
    )


# --------------------------------------------------------------------------------------------
# Validating a repository before a session starts
# --------------------------------------------------------------------------------------------

_IN_PROGRESS = {
    "MERGE_HEAD": "a merge",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase (or `git am`)",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
}


def _operation_in_progress(checkout: str | Path) -> str | None:
    for name, what in _IN_PROGRESS.items():
        if _git_path(checkout, name).exists():
            return what
    return None


def _target_branch(top: str, name: str) -> str:
    """`name` as the short name of an existing branch: `main`, `feature/x` or
    `refs/heads/main`. A tag, a remote-tracking branch, HEAD or a commit is refused: the merge
    moves the target's ref, and must never move anything but a branch."""
    short = name.removeprefix("refs/heads/")
    valid = (
        not short.startswith("refs/")
        and _run(top, ["check-ref-format", "--branch", short]).returncode == 0
    )
    if valid and _resolve(top, f"refs/heads/{short}") is not None:
        return short
    if not valid or _resolve(top, name) is not None:
        raise RepoError(
            f"--target-branch {name!r} is not a branch of {top}: only a branch (a name like "
            "main or feature/x, or refs/heads/<name>) can be merged into, never a tag, a "
            "remote-tracking branch, HEAD or a commit. Give a branch; to merge on top of "
            f"{name!r}, create one there first (`git branch <new-name> {name}`)"
        )
    names = _git(
        top,
        "for-each-ref",
        "--sort=-committerdate",
        "--count=5",
        "--format=%(refname:short)",
        "refs/heads",
    ).split()
    raise RepoError(f"{top} has no branch {name!r}; existing branches include: {', '.join(names)}")


def check_repo(
    repo: str | Path, target_branch: str | None = None, *, clean: bool = True
) -> RepoCheck:
    """Validate that `repo` can take a session's merges into `target_branch` (default: the
    current branch); raise RepoError saying what to fix."""
    path = Path(repo).expanduser()
    if not path.exists():
        raise RepoError(f"{repo} does not exist; give the path of your git repository")
    if not path.is_dir():
        raise RepoError(f"{repo} is not a directory; give the path of your git repository")
    proc = _run(path, ["rev-parse", "--is-bare-repository", "--is-inside-work-tree"])
    if proc.returncode != 0:
        raise RepoError(f"{repo} is not a git repository (run `git init` there, or pick another)")
    bare, inside = proc.stdout.split()
    if bare == "true":
        raise RepoError(f"{repo} is a bare repository; give a checkout (a non-bare clone) instead")
    if inside != "true":
        raise RepoError(f"{repo} is inside a .git directory; give the checkout's directory")
    top = _git(path, "rev-parse", "--show-toplevel").strip()
    if not _git(top, "for-each-ref", "--count=1", "refs/heads").strip():
        raise RepoError(f"{top} has no commits yet; make a first commit, then try again")
    if target_branch is None:
        head_ref = _run(top, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
        if not head_ref.startswith("refs/heads/"):
            raise RepoError(
                f"{top} has a detached HEAD; name the target branch to merge into "
                "(--target-branch B), or check out a branch first"
            )
        target_branch = head_ref.removeprefix("refs/heads/")
    target_branch = _target_branch(top, target_branch)
    head_sha = _branch_head(top, target_branch)
    checkout = _checkout_of(top, target_branch)
    for place in dict.fromkeys([top, *([checkout.path] if checkout else [])]):
        what = _operation_in_progress(place)
        if clean and what is not None:
            raise RepoError(f"{what} is in progress in {place}; finish or abort it first")
    if clean and checkout is not None:
        changed = _status_entries(checkout.path, untracked=False)
        if changed:
            shown = ", ".join(changed[:5]) + (
                f" and {len(changed) - 5} more" if len(changed) > 5 else ""
            )
            raise RepoError(
                f"the checkout of {target_branch!r} at {checkout.path} has uncommitted changes "
                f"to tracked files: {shown}; commit or stash them first"
            )
    return RepoCheck(
        path=top,
        target_branch=target_branch,
        head_sha=head_sha,
        checked_out_at=checkout.path if checkout else None,
    )
