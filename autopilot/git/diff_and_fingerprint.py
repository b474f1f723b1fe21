"""What the reviewer sees (the task's diff) and the proof it changed nothing (the
workspace's fingerprint), with the repair.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from autopilot.git.refs import (
    branch_ref,
    clear_stale_index_lock,
    git_internal_path,
    operation_in_progress,
    resolve_rev,
    same_path,
)
from autopilot.git.runner import (
    GitError,
    git_output,
    git_output_bytes,
    nul_separated_paths,
    run_git,
    shown_path,
)
from autopilot.git.workspace import enter_workspace
from autopilot.infra import untrusted_fs


class ReviewDiff(BaseModel):
    diff: str  # `--stat` summary, then the patch; cut at limit_chars with a note saying so
    changed_files: list[str]  # every path the task changed (renames: both names)
    truncated: bool


def _review_base(workspace: str | Path, base_sha: str) -> str:
    """Where the task's own changes start: the merge base of base_sha and HEAD, moved past
    each merge of the target into the branch (a conflict round) on HEAD's first-parent line.

    Such a merge M is recognised by its shape: the merge base of its two parents is the
    current base, i.e. its second parent is a later state of the target. An agent's own side
    branch forks from a task commit instead, so its changes stay in the diff."""
    proc = run_git(workspace, ["merge-base", base_sha, "HEAD"])
    if proc.returncode != 0:
        raise GitError(
            f"{base_sha!r} shares no history with HEAD in {workspace} (or names no commit); "
            "pass the base the task branch started from, or the target's head"
        )
    base = proc.stdout.strip()
    merges = git_output(
        workspace,
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
        if run_git(workspace, ["merge-base", first, second]).stdout.strip() == base:
            base = second
    return base


def _changed_names(workspace: str | Path, base: str) -> list[bytes]:
    """Every path `base...HEAD` adds, changes or removes; a rename as both of its paths."""
    common = ["--no-color", "--no-ext-diff", "--no-textconv", f"{base}...HEAD", "--"]
    return nul_separated_paths(
        git_output_bytes(workspace, "diff", "--name-only", "--no-renames", "-z", *common)
    )


def changed_files(workspace: str | Path, base_sha: str) -> list[str]:
    """The paths the task's own changes touch (as diff_for_review counts them)."""
    return [
        shown_path(path) for path in _changed_names(workspace, _review_base(workspace, base_sha))
    ]


def diff_for_review(workspace: str | Path, base_sha: str, limit_chars: int = 60_000) -> ReviewDiff:
    """The task's own changes, `git diff <base>...HEAD` with `--stat` first, cut at
    limit_chars (plus a note saying what was left out).

    base_sha may be the workspace's base or the target's head (or name): the diff starts at
    their merge base with HEAD, moved past the target merges of conflict rounds, so the
    target's own changes that came in through those merges are not shown as the task's."""
    enter_workspace(workspace)
    base = _review_base(workspace, base_sha)
    common = ["--no-color", "--no-ext-diff", "--no-textconv", f"{base}...HEAD", "--"]
    names = _changed_names(workspace, base)
    text = git_output_bytes(
        workspace, "diff", "--stat=200", "--summary", "--patch", "--find-renames", *common
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
            f"the workspace, or run `git diff {base}...HEAD -- <path>`, to see the rest.]\n"
        )
    return ReviewDiff(
        diff=text, changed_files=[shown_path(path) for path in names], truncated=truncated
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
# A file bigger than this is fingerprinted by its size, time and inode: not read whole.
_HASHED_FILE_LIMIT = 16 * 1024 * 1024


def tree_fingerprint(workspace: str | Path) -> str:
    """A string that changes when anything in the workspace changes: HEAD, the branch, a merge
    in progress, the index, the content of every changed, untracked or ignored file (so a
    second edit of an already modified file shows), and the workspace's git dir: its config,
    hooks and refs (`_hash_git_dirs` says which, for a linked worktree)."""
    head = resolve_rev(workspace, "HEAD") or "(no commit)"
    branch = run_git(workspace, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip() or "(detached)"
    merge_head = resolve_rev(workspace, "MERGE_HEAD") or "-"
    # --no-optional-locks: looking must not write the index (a stat refresh) either.
    # --ignored=traditional with -uall lists each ignored file, not only its folder.
    status = git_output_bytes(
        workspace,
        "--no-optional-locks",
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--ignored=traditional",
        "--ignore-submodules=none",
    )
    staged = git_output_bytes(
        workspace, "--no-optional-locks", "diff", "--cached", "--raw", "--no-abbrev", "-z"
    )
    digest = hashlib.sha256()
    for part in (head.encode(), branch.encode(), merge_head.encode(), status, staged):
        digest.update(part + b"\0\0")
    for path in _status_paths(status):
        digest.update(path + b"\0")
        _hash_entry(digest, Path(workspace, os.fsdecode(path)))
    _hash_git_dirs(digest, workspace)
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
    """What is at `path`: a link's target, a file's content (a huge one: its size, time and
    inode, it is not read whole), or that it is a folder, something else, or gone. Links are
    not followed: a link out of the workspace is the link, not what it points at."""
    found = untrusted_fs.lstat_at(path.parent, path.name)
    if found is None:
        digest.update(b"missing")
    elif stat.S_ISLNK(found.st_mode):
        digest.update(b"link:" + os.fsencode(os.readlink(path)))
    elif stat.S_ISDIR(found.st_mode):
        digest.update(b"dir")
    elif not stat.S_ISREG(found.st_mode):
        digest.update(f"special:{found.st_mode:o}".encode())  # a FIFO is never opened
    else:
        try:
            content = untrusted_fs.read_file(path.parent, path.name, limit=_HASHED_FILE_LIMIT)
            digest.update(b"file:" + hashlib.sha256(content).digest())
        except FileNotFoundError:  # gone between listing and reading
            digest.update(b"missing")
        except untrusted_fs.UntrustedPath:
            big = f"big:{found.st_size}:{found.st_mtime_ns}:{found.st_ino}"
            digest.update(big.encode())


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


def _hash_git_dirs(digest: _Digest, workspace: str | Path) -> None:
    """The workspace's own git dir (all of it but _UNHASHED_GIT_PARTS) and, for a linked
    worktree, the parts of its repository's common dir that are _SHARED_GIT_PARTS. (Hooks
    elsewhere, where a core.hooksPath would put them, never run for us: our git commands
    override it.)"""
    out = git_output(
        workspace, "rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir"
    )
    git_dir, common_dir = (Path(line) for line in out.splitlines())
    if same_path(git_dir, common_dir):  # a repository of its own
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


def restore_tree(workspace: str | Path, head_sha: str, branch: str | None = None) -> None:
    """Bring the workspace back to `head_sha` after a reviewer touched it: quit a rebase,
    cherry-pick or merge in progress, check out `branch` again if given (else the branch
    now checked out is reset), `git reset --hard`, and remove untracked files (`git clean
    -fd`, which keeps ignored files such as build caches)."""
    enter_workspace(workspace)
    clear_stale_index_lock(workspace)
    for state, quit_args in (
        ("rebase-merge", ["rebase", "--quit"]),
        ("rebase-apply", ["rebase", "--quit"]),
        ("sequencer", ["cherry-pick", "--quit"]),
        ("MERGE_HEAD", ["merge", "--abort"]),
    ):
        if git_internal_path(workspace, state).exists():
            run_git(workspace, quit_args)  # best effort: the reset below clears what is left
    if branch is not None:
        ref = branch_ref(branch)
        if run_git(workspace, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip() != ref:
            git_output(
                workspace, "checkout", "--force", "--quiet", ref.removeprefix("refs/heads/"), "--"
            )
    git_output(workspace, "reset", "--hard", "--quiet", head_sha)
    git_output(workspace, "clean", "-f", "-d", "--quiet")
    what = operation_in_progress(workspace)
    if what is not None:
        raise GitError(
            f"{what} is still in progress in {workspace} after restoring it to {head_sha}; "
            "abort it there by hand, then retry"
        )
