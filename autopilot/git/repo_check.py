"""Validating a repository before a session starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from autopilot.git.refs import (
    branch_head_sha,
    checkout_of,
    operation_in_progress,
    resolve_rev,
    status_entries,
)
from autopilot.git.runner import RepoError, git_output, run_git


class RepoCheck(BaseModel):
    """A repository validated by `check_repo`."""

    model_config = ConfigDict(frozen=True)

    path: str  # absolute top-level directory of the checkout that was named
    target_branch: str  # short branch name, e.g. "main"
    head_sha: str  # the target branch's head commit
    checked_out_at: str | None = None  # worktree where the target branch is checked out


def _target_branch(top: str, name: str) -> str:
    """`name` as the short name of an existing branch: `main`, `feature/x` or
    `refs/heads/main`. A tag, a remote-tracking branch, HEAD or a commit is refused: the merge
    moves the target's ref, and must never move anything but a branch."""
    short = name.removeprefix("refs/heads/")
    valid = (
        not short.startswith("refs/")
        and run_git(top, ["check-ref-format", "--branch", short]).returncode == 0
    )
    if valid and resolve_rev(top, f"refs/heads/{short}") is not None:
        return short
    if not valid or resolve_rev(top, name) is not None:
        raise RepoError(
            f"--target-branch {name!r} is not a branch of {top}: only a branch (a name like "
            "main or feature/x, or refs/heads/<name>) can be merged into, never a tag, a "
            "remote-tracking branch, HEAD or a commit. Give a branch; to merge on top of "
            f"{name!r}, create one there first (`git branch <new-name> {name}`)"
        )
    names = git_output(
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
    proc = run_git(path, ["rev-parse", "--is-bare-repository", "--is-inside-work-tree"])
    if proc.returncode != 0:
        raise RepoError(f"{repo} is not a git repository (run `git init` there, or pick another)")
    bare, inside = proc.stdout.split()
    if bare == "true":
        raise RepoError(f"{repo} is a bare repository; give a checkout (a non-bare clone) instead")
    if inside != "true":
        raise RepoError(f"{repo} is inside a .git directory; give the checkout's directory")
    top = git_output(path, "rev-parse", "--show-toplevel").strip()
    if not git_output(top, "for-each-ref", "--count=1", "refs/heads").strip():
        raise RepoError(f"{top} has no commits yet; make a first commit, then try again")
    if target_branch is not None and not target_branch.strip():
        raise RepoError(
            "--target-branch is empty; give the branch to merge into (e.g. main), or leave the "
            "flag out to merge into the branch checked out in the repository"
        )
    if target_branch is None:
        head_ref = run_git(top, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
        what = operation_in_progress(top)
        if clean and what is not None and not head_ref.startswith("refs/heads/"):
            # A rebase detaches HEAD: the rebase is the cause to name, not the HEAD.
            raise RepoError(f"{what} is in progress in {top}; finish or abort it first")
        if not head_ref.startswith("refs/heads/"):
            raise RepoError(
                f"{top} has a detached HEAD; name the target branch to merge into "
                "(--target-branch B), or check out a branch first"
            )
        target_branch = head_ref.removeprefix("refs/heads/")
    target_branch = _target_branch(top, target_branch)
    head_sha = branch_head_sha(top, target_branch)
    checkout = checkout_of(top, target_branch)
    for place in dict.fromkeys([top, *([checkout.path] if checkout else [])]):
        what = operation_in_progress(place)
        if clean and what is not None:
            raise RepoError(f"{what} is in progress in {place}; finish or abort it first")
    if clean and checkout is not None:
        changed = status_entries(checkout.path, untracked=False)
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
