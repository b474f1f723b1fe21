"""Helpers for tests that need real, throw-away git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

TEST_NAME = "Test User"
TEST_EMAIL = "test@example.com"


def isolate_git(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Make git ignore the machine's global/system config and never look above `home`."""
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(home.parent))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{name}_NAME", raising=False)
        monkeypatch.delenv(f"GIT_{name}_EMAIL", raising=False)


def git(cwd: str | Path, *args: str, check: bool = True) -> str:
    """Run git in `cwd` and return its stdout, stripped."""
    proc = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def write(repo: Path, name: str, content: str) -> Path:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def commit_file(repo: Path, name: str, content: str, message: str | None = None) -> str:
    """Write `name`, commit it, return the new HEAD sha."""
    write(repo, name, content)
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", message or f"change {name}")
    return git(repo, "rev-parse", "HEAD")


def make_repo(path: Path, branch: str = "main", identity: bool = True) -> Path:
    """A repo with one commit (README.md) on `branch`."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    if identity:
        git(path, "config", "user.name", TEST_NAME)
        git(path, "config", "user.email", TEST_EMAIL)
        commit_file(path, "README.md", "hello\n", "initial")
    else:
        (path / "README.md").write_text("hello\n")
        git(path, "add", "README.md")
        git(
            path,
            "-c",
            f"user.name={TEST_NAME}",
            "-c",
            f"user.email={TEST_EMAIL}",
            "commit",
            "-q",
            "-m",
            "initial",
        )
    return path


def head(repo: Path, rev: str = "HEAD") -> str:
    return git(repo, "rev-parse", rev)


def trailers(repo: Path, rev: str) -> dict[str, list[str]]:
    """The commit's trailers as git parses them."""
    out = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", rev)
    result: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        result.setdefault(key.strip(), []).append(value.strip())
    return result
