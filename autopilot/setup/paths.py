"""The paths `[workspace]` names (`copy`, `cache_key`, `cache_dirs`): relative to the top of
the repository, inside it, never in a git directory, and reached without following a link.

A workspace is the agent's to change between our steps, so a folder on the way to one of these
paths may have become a symbolic link to somewhere else: `inside` refuses to go through one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from autopilot.infra import relative_path, untrusted_fs


class UnsafePath(ValueError):
    """A named path leaves the workspace or goes through a link; the message says which."""


def inside(root: Path, name: str) -> Path:
    """`root/name`, after checking that no folder between them is a link (or not a folder).
    The last component itself is not looked at: the caller decides what it may be."""
    path = root
    parts = PurePosixPath(relative_path(name)).parts
    for part in parts[:-1]:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue  # made later by the caller, as a real folder
        if not stat.S_ISDIR(mode):
            raise UnsafePath(f"{name}: {path} is a link or a file, not a folder")
    return root / Path(*parts)


def parts_of(name: str) -> tuple[str, ...]:
    """The components of `name`, checked by `relative_path`."""
    return PurePosixPath(relative_path(name)).parts


def make_parents(root: Path, name: str) -> Path:
    """`inside(root, name)` with its missing folders made, none of them through a link."""
    path = inside(root, name)
    root.mkdir(parents=True, exist_ok=True)  # ours (a workspace, a cache entry being built)
    try:
        untrusted_fs.make_dirs(root, *parts_of(name)[:-1])
    except untrusted_fs.UntrustedPath as err:
        raise UnsafePath(f"{name}: {err.strerror}") from None
    return path
