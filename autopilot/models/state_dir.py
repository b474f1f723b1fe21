"""Paths under a session's state dir."""

from __future__ import annotations

import posixpath


def in_state_dir(state_dir: str, *parts: str) -> str:
    """A path under a session's state dir as the session names it: absolute, or relative to
    each worker's own state dir when the session names none (remote mode, on_this_worker)."""
    return posixpath.join(state_dir, *parts)
