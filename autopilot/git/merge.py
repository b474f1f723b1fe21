"""Merging a task branch into the target: a merge commit made without a checkout, the
target moved by compare-and-swap or fast-forwarded where it is checked out, never over
the user's files.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from autopilot.git import runner
from autopilot.git.names import SQUASHED_TRAILER, message_with_trailers
from autopilot.git.refs import (
    WorktreeEntry,
    branch_head_sha,
    branch_ref,
    checkout_of,
    find_task_merge,
    git_internal_path,
    is_ancestor,
    list_worktrees,
    operation_in_progress,
    resolve_rev,
)
from autopilot.infra import untrusted_fs
from autopilot.models import MergeInput, MergeResult, MergeStyle

MERGE_ATTEMPTS = 5  # the target moved under us this many times in a row: give up


class CheckoutInTheWay(runner.GitError):
    """The target's checkout has files git does not track where a merge would write or remove,
    or a rebase, merge or cherry-pick under way: the merge is refused, nothing was changed, and
    the message says what the user can do before the task is retried."""


@dataclass(frozen=True)
class TreeMerge:
    tree: str
    conflict: bool
    conflict_files: list[str]
    conflict_messages: list[str]


def merge_trees(repo: str | Path, ours: str, theirs: str) -> TreeMerge:
    """Merge two commits into a tree object without touching any index or working tree."""
    args = ["merge-tree", "--write-tree", "--name-only", "-z", ours, theirs]
    proc = runner.run_git(repo, args)
    if proc.returncode not in (0, 1):
        raise runner.GitError(runner.git_failure_message(repo, args, proc))
    tree, _, rest = proc.stdout.partition("\0")
    if proc.returncode == 0:
        return TreeMerge(tree=tree, conflict=False, conflict_files=[], conflict_messages=[])
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
    return TreeMerge(
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
    out = runner.git_output_bytes(
        checkout, "diff", "--name-status", "--no-renames", "-z", old_head, new_head
    )
    fields = runner.nul_separated_paths(out)
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
    out = runner.git_output_bytes(
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
    return sorted(runner.shown_path(path) for path in blocking)


def _advance_in_checkout(
    checkout: WorktreeEntry, target_branch: str, old_head: str, merge_sha: str, task_id: str
) -> bool:
    """Fast-forward the target where it is checked out (ref, index and files together).
    False if the target moved meanwhile (the caller recomputes). Refused (CheckoutInTheWay)
    while an operation is under way there, or when it would touch an untracked file."""
    path = checkout.path
    now_on = runner.run_git(path, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
    if now_on != branch_ref(target_branch) or resolve_rev(path, "HEAD") != old_head:
        return False
    what = operation_in_progress(path)
    if what is not None:
        raise _refuse_operation(path, what, target_branch, task_id)
    in_the_way = _untracked_in_the_way(path, old_head, merge_sha)
    if in_the_way:
        raise _refuse_untracked(path, in_the_way, target_branch, task_id)
    # --no-overwrite-ignore: should a file appear after the check above, git refuses too.
    args = ["merge", "--ff-only", "--no-overwrite-ignore", "--no-autostash"]
    args += ["--no-verify-signatures", "--quiet", "--no-stat", merge_sha]
    proc = runner.run_git(path, args)
    if proc.returncode == 0:
        return True
    if resolve_rev(path, branch_ref(target_branch)) != old_head:
        return False
    raise runner.GitError(
        f"could not merge into {target_branch!r}: the checkout at {path} has local changes "
        f"(or untracked files) that the merge would overwrite, or a merge/rebase in progress. "
        f"Commit or stash them there, then retry; {target_branch!r} was left unchanged. "
        f"git said: {(proc.stderr.strip() or proc.stdout.strip())[-2000:]}"
    )


def _rebase_of(repo: str | Path, branch: str) -> WorktreeEntry | None:
    """The worktree where `branch` is being rebased. Its HEAD is detached meanwhile, so it is
    no checkout of the branch, but the rebase moves the branch when it ends, and fails if the
    branch moved in between."""
    ref = branch_ref(branch)
    for wt in list_worktrees(repo):
        if wt.branch is not None or wt.bare or wt.prunable or not Path(wt.path).is_dir():
            continue
        for state in ("rebase-merge", "rebase-apply"):
            head_name = git_internal_path(wt.path, f"{state}/head-name")
            with contextlib.suppress(OSError):
                named = untrusted_fs.read_file(head_name.parent, head_name.name, limit=4096)
                if named.decode(errors="replace").strip() == ref:
                    return wt
    return None


def _advance_ref(repo: str | Path, target_branch: str, old_head: str, merge_sha: str) -> bool:
    """Compare-and-swap the target ref; False if it moved meanwhile."""
    ref = branch_ref(target_branch)
    args = ["update-ref", "-m", f"autopilot: merge {merge_sha}", ref, merge_sha, old_head]
    proc = runner.run_git(repo, args)
    if proc.returncode == 0:
        return True
    if resolve_rev(repo, ref) != old_head:
        return False
    raise runner.GitError(runner.git_failure_message(repo, args, proc))


def merge_in(repo: str | Path, request: MergeInput) -> MergeResult:
    """The merge step's `request` in `repo`: the user's repository, or a remote's cache."""
    return merge_task(
        repo,
        request.target_branch,
        request.branch,
        request.session_id,
        request.task_id,
        request.message,
        verified_only=request.verified_only,
        style=request.style,
    )


def merge_task(
    repo: str | Path,
    target_branch: str,
    branch: str,
    session_id: str,
    task_id: str,
    message: str,
    *,
    verified_only: bool = False,
    style: MergeStyle = "merge",
) -> MergeResult:
    """Merge `branch` into the target with a merge commit carrying our trailers, atomically:
    the target either points at the full merge (with its checkout updated) or is untouched.
    CheckoutInTheWay: the user's checkout of the target is not safe to update now.

    `verified_only`: merge only while the branch holds the target's head, so that the merge's
    tree is exactly the branch's, the tree whose checks passed; else nothing is merged and the
    outcome says the target moved (the caller checks the branch merged with it first).

    `style` "squash": one commit on the target's head instead, with the same tree a merge
    would have (with `verified_only`, the branch's checked tree) and our trailers, plus
    SQUASHED_TRAILER naming the branch head it stands for (found again by `find_task_merge`,
    and what tells cleanup the branch is merged though it is no ancestor of the target)."""
    found = find_task_merge(repo, target_branch, session_id, task_id)
    if found is not None:
        return MergeResult(
            merged=True,
            already_merged=True,
            merge_sha=found,
            message=f"task {task_id} was already merged into {target_branch} as {found[:12]}",
        )
    branch_head = branch_head_sha(repo, branch)
    full_message = message_with_trailers(message, session_id, task_id)
    for _ in range(MERGE_ATTEMPTS):
        target_head = branch_head_sha(repo, target_branch)
        if is_ancestor(repo, branch_head, target_head):
            return MergeResult(
                merged=True,
                already_merged=True,
                message=f"{branch} ({branch_head[:12]}) is already contained in "
                f"{target_branch}: nothing to merge",
            )
        if verified_only and not is_ancestor(repo, target_head, branch_head):
            return MergeResult(
                merged=False,
                target_moved=True,
                message=f"{target_branch} ({target_head[:12]}) has commits that {branch} "
                f"({branch_head[:12]}) was not checked with; {target_branch} was left unchanged",
            )
        merged = merge_trees(repo, target_head, branch_head)
        if merged.conflict:
            details = "; ".join(merged.conflict_messages) or ", ".join(merged.conflict_files)
            return MergeResult(
                merged=False,
                conflict=True,
                conflict_files=merged.conflict_files,
                message=f"merging {branch} into {target_branch} conflicts ({details}); "
                f"{target_branch} was left unchanged",
            )
        # The pipeline's identity, as for a merge commit: the commit is the pipeline's act of
        # landing reviewed work; the agent's own commits stay, with their author, on the branch.
        parents = ["-p", target_head] + ([] if style == "squash" else ["-p", branch_head])
        message = (
            f"{full_message}{SQUASHED_TRAILER}: {branch_head}\n"
            if style == "squash"
            else full_message
        )
        merge_sha = runner.git_output(
            repo, *runner.identity_args(repo), "commit-tree", merged.tree, *parents, stdin=message
        ).strip()
        rebasing = _rebase_of(repo, target_branch)
        if rebasing is not None:
            raise _refuse_operation(rebasing.path, "a rebase", target_branch, task_id)
        checkout = checkout_of(repo, target_branch)
        if checkout is not None:
            advanced = _advance_in_checkout(
                checkout, target_branch, target_head, merge_sha, task_id
            )
        else:
            advanced = _advance_ref(repo, target_branch, target_head, merge_sha)
        if advanced:
            return MergeResult(
                merged=True,
                merge_sha=merge_sha,
                message=f"{'squashed' if style == 'squash' else 'merged'} {branch} into "
                f"{target_branch} as {merge_sha[:12]}",
            )
    raise runner.GitError(
        f"could not merge {branch} into {target_branch} in {repo}: the target branch kept "
        f"moving during {MERGE_ATTEMPTS} attempts; retry when it is quiet"
    )
