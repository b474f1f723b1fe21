"""Commits on the task branch, and the conflict round's merge of the target into it."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from autopilot.git.diff_and_fingerprint import changed_files
from autopilot.git.names import SESSION_TRAILER, TASK_TRAILER, branch_name, message_with_trailers
from autopilot.git.refs import (
    branch_head_sha,
    branch_ref,
    clear_stale_index_lock,
    git_internal_path,
    head_sha,
    is_ancestor,
    resolve_rev,
    status_entries,
)
from autopilot.git.runner import (
    GitError,
    git_failure_message,
    git_output,
    git_output_bytes,
    identity_args,
    nul_separated_paths,
    run_git,
    run_git_bytes,
    shown_path,
)
from autopilot.git.workspace import bring_back, enter_workspace
from autopilot.infra import unnamed_protected, untrusted_fs
from autopilot.models import CommitInfo, CommitResult, TargetMergeResult

# What the agent left is read as data, never whole: git's MERGE_MSG is a few KiB, and a file
# with conflict markers left in is a source file, not this big.
_MERGE_MSG_LIMIT = 1024 * 1024
_MARKER_SCAN_LIMIT = 64 * 1024 * 1024
# A file the agent leaves may be at most this big to be committed (GitHub refuses larger).
MAX_FILE_BYTES = 100 * 1024 * 1024


class ConflictsRemain(GitError):
    """A conflict round's merge still has conflict markers: retrying cannot help."""


class ProtectedPathsChanged(GitError):
    """The task's changes touch paths its plan entry does not name and that configure what
    runs with more rights than its code (autopilot/infra/protected_paths.py): the branch is
    not brought back, and retrying the step cannot help."""


class FilesTooLarge(GitError):
    """The agent left a file over MAX_FILE_BYTES: nothing is committed, the branch is not
    brought back, and retrying the step cannot help."""


class WorkspaceFilesCommitted(GitError):
    """The task's commits hold files the workspace setup put there (`copy`, `cache_dirs`):
    the branch is not brought back, and retrying the step cannot help."""


# --------------------------------------------------------------------------------------------
# Commits on the task branch
# --------------------------------------------------------------------------------------------


def _commits_since(workspace: str | Path, base_sha: str) -> list[CommitInfo]:
    # --first-parent: after a conflict round merged the target into the branch, the target's
    # own commits (reachable only through that merge's second parent) are not the task's.
    out = git_output(
        workspace,
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


def _require_task_branch(workspace: str | Path, session_id: str, task_id: str) -> None:
    expected = branch_ref(branch_name(session_id, task_id))
    head_ref = run_git(workspace, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
    if head_ref != expected:
        now_on = head_ref or "a detached HEAD"
        raise GitError(
            f"the task workspace {workspace} is on {now_on}, not on {expected}; the agent "
            "switched branches: check out the task branch there, then retry"
        )


def _commit(workspace: str | Path, full_message: str) -> None:
    """Commit the index (a merge commit when MERGE_HEAD exists) with `full_message` as is."""
    git_output(
        workspace,
        *identity_args(workspace),
        "commit",
        "--quiet",
        "--no-verify",  # hooks must not stop us from keeping the agent's work
        "--cleanup=whitespace",
        "--file=-",
        stdin=full_message,
    )


def _merge_message(workspace: str | Path, message: str, session_id: str, task_id: str) -> str:
    """The message for concluding the merge in progress: the one it was started with
    (MERGE_MSG, git's `# Conflicts` comment lines dropped) if it already carries our
    trailers, else `message` (or git's merge message) with our trailers."""
    found = git_internal_path(workspace, "MERGE_MSG")
    try:
        raw = untrusted_fs.read_file(found.parent, found.name, limit=_MERGE_MSG_LIMIT)
    except (FileNotFoundError, untrusted_fs.UntrustedPath):
        raw = b""  # none, or not a message git wrote (a link, a FIFO, a huge file)
    text = raw.decode("utf-8", errors="replace")
    kept = "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()
    lines = kept.splitlines()
    if f"{SESSION_TRAILER}: {session_id}" in lines and f"{TASK_TRAILER}: {task_id}" in lines:
        return kept + "\n"
    return message_with_trailers(kept or message, session_id, task_id)


def commit_changes(
    workspace: str | Path,
    base_sha: str,
    session_id: str,
    task_id: str,
    message: str,
    *,
    repo: str | Path | None,
    keep_out: Sequence[str] = (),
    named: Sequence[str] = (),
) -> CommitResult:
    """Commit whatever the agent left uncommitted (with our trailers), then list the branch's
    own commits since base_sha (first-parent), oldest first.

    `repo`: the user's repository, where the commits are brought back (`bring_back`); None
    for a linked worktree of a session recorded before, which shares the branch.

    With a merge in progress (a conflict round), this concludes it as a two-parent merge
    commit, staging the agent's resolutions; it raises GitError instead if a file still has
    conflict markers. An unmerged file without markers counts as resolved as it stands.

    `keep_out`: paths the workspace setup put there (WorkspaceSettings.keep_out). They are
    never staged by this commit, even if the agent force-added them; if the agent committed
    them itself, WorkspaceFilesCommitted: the branch is not brought back, so they cannot
    reach the user's repository, nor the target.

    `named`: the task's **Files:** list. A change to a protected path it does not name
    raises ProtectedPathsChanged, again before the branch is brought back."""
    enter_workspace(workspace)
    _require_task_branch(workspace, session_id, task_id)
    clear_stale_index_lock(workspace)
    merging = resolve_rev(workspace, "MERGE_HEAD") is not None
    if merging:
        _, marked = _conflict_state(workspace)
        if marked:
            raise ConflictsRemain(
                f"cannot commit in {workspace}: the merge in progress still has conflict "
                f"markers (<<<<<<< / ======= / >>>>>>>) in {_list_for_people(marked)}; "
                "resolve them there, then retry"
            )
    committed = False
    left = status_entries(workspace, untracked=True)
    _refuse_large_files(workspace, left, task_id)
    # During a merge the resolution may equal HEAD (nothing to stage): still commit it, so
    # the merge is recorded and MERGE_HEAD cleared.
    if merging or left:
        git_output(workspace, "add", "--all")
        if keep_out:  # back to HEAD's index entries: a `git add -f` of them is undone
            git_output(workspace, "reset", "--quiet", "--", *_literal(keep_out))
        if merging or run_git(workspace, ["diff", "--cached", "--quiet"]).returncode != 0:
            full_message = (
                _merge_message(workspace, message, session_id, task_id)
                if merging
                else message_with_trailers(message, session_id, task_id)
            )
            _commit(workspace, full_message)
            committed = True
    _refuse_kept_out(workspace, base_sha, keep_out, task_id)
    _refuse_protected(workspace, base_sha, named)
    commits = _commits_since(workspace, base_sha)
    head_sha = git_output(workspace, "rev-parse", "HEAD").strip()
    clean = not status_entries(workspace, untracked=True)
    if repo is not None:
        bring_back(repo, workspace, session_id, task_id, base_sha)
    return CommitResult(
        commits=commits,
        head_sha=head_sha,
        committed_leftovers=committed,
        no_changes=not commits and clean,
    )


def _literal(paths: Sequence[str]) -> list[str]:
    return [f":(literal){path}" for path in paths]


def _refuse_large_files(workspace: str | Path, changed: Sequence[str], task_id: str) -> None:
    """A file the agent left that is over MAX_FILE_BYTES (a sparse file of many GiB reads as
    that many zeros): FilesTooLarge, before `git add` would read and store it whole. Sizes
    are read without following a link (autopilot/infra/untrusted_fs.py)."""
    found = []
    for path in changed:
        info = untrusted_fs.lstat_at(Path(workspace), *path.rstrip("/").split("/"))
        if info is not None and stat.S_ISREG(info.st_mode) and info.st_size > MAX_FILE_BYTES:
            found.append(f"{path} ({info.st_size / 2**20:,.0f} MiB)")
    if found:
        raise FilesTooLarge(
            f"the task leaves {', '.join(found)} in its workspace, over the "
            f"{MAX_FILE_BYTES // 2**20} MiB a file may have to be committed (forges refuse "
            "such files; a generated or downloaded file belongs in .gitignore): nothing was "
            f"committed and the branch was not brought back. Retry the task (`starter.py "
            f"retry {task_id}`)"
        )


def _refuse_kept_out(
    workspace: str | Path, base_sha: str, keep_out: Sequence[str], task_id: str
) -> None:
    """Any commit since base_sha that adds, changes or removes a kept-out path (a merge
    commit too, when it differs from all its parents there): WorkspaceFilesCommitted."""
    if not keep_out:
        return
    literal = _literal(keep_out)
    found = git_output(workspace, "rev-list", "--full-history", f"{base_sha}..HEAD", "--", *literal)
    shas = found.split()
    if not shas:
        return
    # Each path any of them touched (one added and removed again is still in the history).
    touched = ["log", "-z", "--format=", "--name-only", "--no-renames", f"{base_sha}..HEAD"]
    paths = list(
        dict.fromkeys(nul_separated_paths(git_output_bytes(workspace, *touched, "--", *literal)))
    )
    named = _list_for_people(paths) or ", ".join(keep_out)
    raise WorkspaceFilesCommitted(
        f"the task's commits ({', '.join(sha[:10] for sha in shas[:5])}) hold {named}, which "
        "the workspace setup put in its workspace ([workspace] copy or cache_dirs in "
        ".autopilot.toml): those never leave the workspace, so the branch was not brought "
        f"back and the target is untouched. Retry the task (`starter.py retry {task_id}`); "
        "the agent must leave them uncommitted"
    )


def _refuse_protected(workspace: str | Path, base_sha: str, named: Sequence[str]) -> None:
    """The task's own changes (those the reviewer is shown) to protected paths that its
    **Files:** list does not name: ProtectedPathsChanged. A branch that left its base has
    no such changes to show: bringing it back refuses it (WorkspaceBroken)."""
    if not is_ancestor(workspace, base_sha, "HEAD"):
        return
    refused = unnamed_protected(changed_files(workspace, base_sha), named)
    if not refused:
        return
    shown = ", ".join(refused[:10]) + (
        f" and {len(refused) - 10} more" if len(refused) > 10 else ""
    )
    raise ProtectedPathsChanged(
        f"the task changes {shown}, which its plan entry does not name: these files configure "
        "what runs with more rights than the task's code (the pipeline, Claude Code's hooks "
        "and servers, the forge's CI), so an agent may change them only when asked. The "
        "branch was not brought back and the target is untouched. If the change is wanted, "
        "name the path in the task's **Files:** list and run the plan again"
    )


# --------------------------------------------------------------------------------------------
# Conflict rounds: merging the target into the task branch
# --------------------------------------------------------------------------------------------


def _list_for_people(paths: Sequence[bytes], limit: int = 10) -> str:
    shown = ", ".join(shown_path(path) for path in paths[:limit])
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


def _unmerged_paths(workspace: str | Path) -> list[bytes]:
    # `<mode> <object> <stage>\t<path>`, one line per stage.
    entries = nul_separated_paths(git_output_bytes(workspace, "ls-files", "--unmerged", "-z"))
    return sorted({entry.partition(b"\t")[2] for entry in entries})


def _differs_from(workspace: str | Path, rev: str) -> set[bytes]:
    """Tracked paths whose working-tree content differs from `rev`."""
    return set(
        nul_separated_paths(
            git_output_bytes(workspace, "diff", "--name-only", "--no-renames", "-z", rev, "--")
        )
    )


def _blob(workspace: str | Path, rev: str, path: bytes) -> bytes:
    """The content of `path` at `rev`, empty if it does not exist there."""
    proc = run_git_bytes(workspace, ["cat-file", "blob", f"{rev}:{os.fsdecode(path)}"])
    return proc.stdout if proc.returncode == 0 else b""


def _merge_sides(workspace: str | Path) -> tuple[str, str] | None:
    """(ours, theirs) of the merge in progress, or of HEAD if it is a merge commit (the agent
    may have concluded the merge itself); None without either."""
    ours = resolve_rev(workspace, "HEAD")
    theirs = resolve_rev(workspace, "MERGE_HEAD")
    if ours is None:
        return None
    if theirs is not None:
        return ours, theirs
    second = resolve_rev(workspace, f"{ours}^2")
    first = resolve_rev(workspace, f"{ours}^1")
    return (first, second) if first is not None and second is not None else None


def _conflict_state(workspace: str | Path) -> tuple[list[bytes], list[bytes]]:
    """(unmerged paths, paths whose conflict markers the merge left in).

    A file counts as marked when it changed since the merge base, differs from both sides,
    and has more marker blocks than either side's version: a file that legitimately holds
    marker-like lines (on either side) is not flagged."""
    unmerged = _unmerged_paths(workspace)
    sides = _merge_sides(workspace)
    if sides is None:
        return unmerged, []
    ours, theirs = sides
    candidates = _differs_from(workspace, ours) & _differs_from(workspace, theirs)
    base = run_git(workspace, ["merge-base", ours, theirs])
    if base.returncode == 0:  # unrelated histories have no merge base
        candidates &= _differs_from(workspace, base.stdout.strip())
    marked: list[bytes] = []
    for path in sorted(candidates | set(unmerged)):
        try:  # a link, a FIFO or a file too big to be a source file is not looked into
            content = untrusted_fs.read_file(
                Path(workspace), *os.fsdecode(path).split("/"), limit=_MARKER_SCAN_LIMIT
            )
        except OSError:
            continue
        blocks = _marker_blocks(content)
        if blocks == 0:
            continue
        if blocks > max(_marker_blocks(_blob(workspace, rev, path)) for rev in (ours, theirs)):
            marked.append(path)
    return unmerged, marked


def unresolved_conflicts(workspace: str | Path) -> list[str]:
    """Paths still in conflict: unmerged index entries, plus files with conflict markers left
    by the merge in progress (or by HEAD's merge commit), even if `git add`-ed or committed."""
    unmerged, marked = _conflict_state(workspace)
    return sorted({shown_path(path) for path in [*unmerged, *marked]})


def merge_target_into_branch(
    workspace: str | Path,
    target_branch: str,
    session_id: str,
    task_id: str,
    *,
    repo: str | Path | None,
) -> TargetMergeResult:
    """Merge the target's head into the task branch, in the task's workspace.

    A clean merge is committed (with our trailers); on conflicts the markers and MERGE_HEAD
    are left for the agent, and `commit_changes` concludes the merge later. Called again
    while that merge is in progress (a retry), it only reports it, or commits it once
    nothing is unresolved. The target branch and the user's checkout are never touched.
    `repo`: the user's repository, where the target is (a workspace of its own has no target
    branch; it reads the target's objects through its alternates)."""
    enter_workspace(workspace)
    _require_task_branch(workspace, session_id, task_id)
    clear_stale_index_lock(workspace)
    branch = branch_name(session_id, task_id)
    message = message_with_trailers(
        f"Merge {target_branch} into {branch} for task {task_id}", session_id, task_id
    )
    in_progress = resolve_rev(workspace, "MERGE_HEAD")
    if in_progress is not None:
        conflicts = unresolved_conflicts(workspace)
        if not conflicts:  # e.g. crashed between a clean merge and its commit: finish it
            _commit(workspace, _merge_message(workspace, message, session_id, task_id))
        return TargetMergeResult(
            clean=not conflicts,
            conflict_files=conflicts,
            head_sha=head_sha(workspace),
        )
    target_sha = branch_head_sha(workspace if repo is None else repo, target_branch)
    branch_head = head_sha(workspace)
    if is_ancestor(workspace, target_sha, branch_head):
        return TargetMergeResult(clean=True, already_up_to_date=True, head_sha=branch_head)
    dirty = status_entries(workspace, untracked=False)
    if dirty:
        raise GitError(
            f"cannot merge {target_branch} into {branch} in {workspace}: it has uncommitted "
            f"changes to {', '.join(dirty[:10])}; commit them (commit_changes) or discard "
            "them first, then retry"
        )
    # The sha, not the name: we merge exactly the head we checked, even if the target moves.
    args = [
        *identity_args(workspace),
        "merge",
        "--no-ff",
        "--no-commit",
        "--no-autostash",
        "--no-stat",
        "--quiet",
        f"--message={message}",
        target_sha,
    ]
    proc = run_git(workspace, args)
    if resolve_rev(workspace, "MERGE_HEAD") is None:
        raise GitError(
            f"{git_failure_message(workspace, args, proc)}; nothing was merged. If untracked files "
            "are in the way, move or delete them in the workspace, then retry"
        )
    unmerged = _unmerged_paths(workspace)
    if not unmerged:
        _commit(workspace, message)
    return TargetMergeResult(
        clean=not unmerged,
        conflict_files=[shown_path(path) for path in unmerged],
        head_sha=head_sha(workspace),
    )
