"""Throw-away target repositories for the benchmark runs."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


def make_repo(path: Path) -> Path:
    """A repository with one commit (README.md) on `main` and a local identity."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@localhost")
    (path / "README.md").write_text("benchmark target\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


def merges_on_main(repo: Path) -> int:
    """Merge commits on main's first-parent history: one per merged task."""
    out = git(repo, "rev-list", "--count", "--first-parent", "--min-parents=2", "main")
    return int(out or 0)
