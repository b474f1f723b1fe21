"""Files and folders under the state dir that only their owner may read.

The state dir holds what the agent saw and did: transcripts, logs, check output, the plan's
texts, Temporal's database. It is 0700 (tightened on start when it is wider), the folders the
pipeline makes in it 0700, and the files it writes there 0600: set when each is made, not by
changing the umask, which every git command run for the user's checkout inherits (a merge
must leave the user's files with the modes the user's umask gives them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# For a process whose every file is private (the embedded Temporal server).
PRIVATE_UMASK = 0o077


def make_private_dir(path: Path) -> Path:
    """Create `path` and its missing parents as 0700 folders; an existing one is left as is."""
    missing: list[Path] = []
    current = path
    while not current.is_dir() and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            if not folder.is_dir():
                raise
    return path


def tighten_dir(path: Path) -> None:
    """Make an existing folder 0700 if it allows anyone else in (OSError if it is not ours)."""
    if path.stat().st_mode & 0o777 != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)


def private_opener(path: str, flags: int) -> int:
    """An `opener` for open(): a new file is made 0600, and an existing one made so."""
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: Path, mode: str, **kwargs: Any) -> IO[Any]:
    """open(path, mode) for a file under the state dir, its folder made first: see above."""
    make_private_dir(path.parent)
    return open(path, mode, opener=private_opener, **kwargs)


def touch_private(path: Path) -> Path:
    """Make sure `path` exists and is 0600, for a writer that opens it itself (logging)."""
    with open_private(path, "ab"):
        pass
    return path
