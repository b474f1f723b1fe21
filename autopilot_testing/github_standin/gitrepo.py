"""Real git over the stand-in's bare repositories: refs, mergeability and the three merges."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "GitHub",
    "GIT_AUTHOR_EMAIL": "noreply@github.com",
    "GIT_COMMITTER_NAME": "GitHub",
    "GIT_COMMITTER_EMAIL": "noreply@github.com",
}


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **IDENTITY, "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=check, env=env
    )


def init_bare(path: Path, default_branch: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", "init", "-q", "--bare", f"--initial-branch={default_branch}", str(path)],
        check=True,
        capture_output=True,
    )
    git(path, "config", "http.receivepack", "true")


def branches(repo: Path) -> dict[str, str]:
    out = git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if line)


def rev(repo: Path, ref: str) -> str:
    done = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return done.stdout.strip()


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    return git(repo, "merge-base", "--is-ancestor", older, newer, check=False).returncode == 0


def merge_tree(repo: Path, base: str, head: str) -> str | None:
    """The merged tree of base and head, or None on a conflict."""
    done = git(repo, "merge-tree", "--write-tree", base, head, check=False)
    return done.stdout.split("\n", 1)[0].strip() if done.returncode == 0 else None


def changed_files(repo: Path, base: str, head: str) -> list[tuple[str, str]]:
    """(status letter, path) of each file the head changes since it left the base."""
    out = git(repo, "diff", "--name-status", f"{base}...{head}").stdout
    return [tuple(line.split("\t", 1)) for line in out.splitlines() if line]  # type: ignore[misc]


def _commit_tree(repo: Path, tree: str, parents: list[str], message: str) -> str:
    argv = ["commit-tree", tree, "-m", message]
    for parent in parents:
        argv += ["-p", parent]
    return git(repo, *argv).stdout.strip()


def merged_commit(repo: Path, base: str, head: str, style: str, message: str) -> str | None:
    """The commit GitHub would put on the base for `head` in `style` (merge, squash, rebase),
    without moving any ref; None on a conflict."""
    if style == "rebase":
        return _rebase(repo, base, head)
    tree = merge_tree(repo, base, head)
    if tree is None:
        return None
    parents = [base, head] if style == "merge" else [base]
    return _commit_tree(repo, tree, parents, message)


def move_ref(repo: Path, ref: str, new: str, old: str = "") -> bool:
    """Point `ref` at `new` if it is still at `old` ("" : whatever it is, or absent)."""
    argv = ["update-ref", ref, new] + ([old] if old else [])
    return git(repo, *argv, check=False).returncode == 0


def _rebase(repo: Path, onto: str, head: str) -> str | None:
    """The head's commits replayed onto `onto` (git 2.39's merge-tree cannot take a merge
    base, so a throwaway worktree cherry-picks them); None on a conflict."""
    with tempfile.TemporaryDirectory(prefix="standin-rebase-") as scratch:
        tree = Path(scratch) / "w"
        git(repo, "worktree", "add", "-q", "--detach", str(tree), onto)
        try:
            picked = git(tree, "cherry-pick", "--allow-empty", f"{onto}..{head}", check=False)
            return rev(tree, "HEAD") if picked.returncode == 0 else None
        finally:
            git(repo, "worktree", "remove", "--force", str(tree), check=False)
            git(repo, "worktree", "prune", check=False)


def delete_branch(repo: Path, branch: str) -> bool:
    return git(repo, "update-ref", "-d", f"refs/heads/{branch}", check=False).returncode == 0


def commit_info(repo: Path, sha: str) -> dict[str, str]:
    out = git(repo, "log", "-1", "--format=%an%x00%ae%x00%aI%x00%B", sha).stdout
    name, email, date, message = out.split("\x00", 3)
    return {"name": name, "email": email, "date": date, "message": message.rstrip("\n")}
