"""Paths a task may change only when its plan entry names them.

They configure what runs with more rights than the task's code: the pipeline itself
(`.autopilot.toml`: checks, setup, notifications), Claude Code in the next agent's or a
person's run (`.claude/`: hooks, permissions; `.mcp.json`: servers), and the forge's CI,
which runs on a push with the repository's secrets. An agent that changes one unasked is
refused before its branch can merge (autopilot/git/commits.py); one the task names is
pointed out to the reviewer (autopilot/review/reviewer.py).
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable, Sequence

# Relative to the repository's root; a trailing slash: everything under that folder.
PROTECTED = (
    ".autopilot.toml",
    ".claude/",
    ".mcp.json",
    ".github/workflows/",
    ".github/actions/",  # composite actions the workflows run
    ".gitlab-ci.yml",
    ".circleci/",
    ".buildkite/",
    "Jenkinsfile",
)


def normalise(path: str) -> str:
    """A repository path as git prints it: forward slashes, no `./`, no trailing slash."""
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return posixpath.normpath(path).rstrip("/") if path else ""


def is_protected(path: str) -> bool:
    path = normalise(path)
    return any(
        path.startswith(entry) if entry.endswith("/") else path == entry for entry in PROTECTED
    )


def names(named: str, path: str) -> bool:
    """Does the **Files:** entry `named` cover `path`: the same file, a folder above it, or
    a glob it matches."""
    named, path = normalise(named), normalise(path)
    if not named:
        return False
    if any(ch in named for ch in "*?["):
        return fnmatch.fnmatchcase(path, named)
    return path == named or path.startswith(named + "/")


def protected_changes(changed: Iterable[str]) -> list[str]:
    """The changed paths that are protected, in their order."""
    return [path for path in changed if is_protected(path)]


def unnamed_protected(changed: Iterable[str], named: Sequence[str]) -> list[str]:
    """The changed protected paths that no **Files:** entry names: the ones to refuse."""
    return [path for path in protected_changes(changed) if not any(names(n, path) for n in named)]
