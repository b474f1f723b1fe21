"""Which workspace kind a session's repository is: a remote's URL, or a path on this machine."""

from __future__ import annotations

import functools
from pathlib import Path

from autopilot.git.kinds import LOCAL, WorkspaceKind
from autopilot.git.remote import RemoteWorkspaces
from autopilot.git.remote_url import is_remote
from autopilot.infra import own_state_dir


def kind_for(repo: str) -> WorkspaceKind:
    """The kind for `repo` on this worker: a remote's workspaces and cache live in this
    worker's own state dir (its machine shares none with the others)."""
    return _remote_kind(own_state_dir()) if is_remote(repo) else LOCAL


@functools.cache
def _remote_kind(state_dir: Path) -> RemoteWorkspaces:
    return RemoteWorkspaces(state_dir)
