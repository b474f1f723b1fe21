"""Names: the task's branch and folders, and the trailers that mark our commits."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SESSION_TRAILER = "Autopilot-Session"
TASK_TRAILER = "Autopilot-Task"
# On a squash commit: the task branch head it stands for (the branch is no ancestor of it).
SQUASHED_TRAILER = "Autopilot-Squashed"
_MAX_COMPONENT = 64
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")

AGENT_SPACES = ".agents"  # beside the workspaces: no task's name starts with a dot


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


def workspace_dir(state_dir: str | Path, session_id: str, task_id: str) -> Path:
    """The task's workspace: `<state_dir>/worktrees/<session>/<task>` (the folder keeps its old
    name: sessions under way have their workspaces there), never outside state_dir."""
    return Path(state_dir) / "worktrees" / safe_component(session_id) / safe_component(task_id)


def agent_space_path(state_dir: str | Path, session_id: str, task_id: str) -> Path:
    """The folder of the task's sandboxed runs (their homes, Claude sessions and temp):
    `<session>/.agents/<task>` beside its workspace (no task's name starts with a dot), and
    removed with it."""
    workspace = workspace_dir(state_dir, session_id, task_id)
    return workspace.parent / AGENT_SPACES / workspace.name


def _trailer_value(kind: str, value: str) -> str:
    if not value or value != value.strip() or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(
            f"{kind} id {value!r} cannot be a git trailer value: it must be non-empty, "
            "without leading/trailing spaces or control characters"
        )
    return value


def message_with_trailers(message: str, session_id: str, task_id: str) -> str:
    """`message` with our trailers as its last paragraph (the one git parses as trailers)."""
    session = _trailer_value("session", session_id)
    task = _trailer_value("task", task_id)
    body = message.strip() or f"Autopilot task {task}"
    return f"{body}\n\n{SESSION_TRAILER}: {session}\n{TASK_TRAILER}: {task}\n"
