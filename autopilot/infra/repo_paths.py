"""A path the repository's settings name (`copy`, `cache_key`, `cache_dirs`): relative to the
top of the repository, inside it and never in a git directory.

Here, below the setup that uses these paths, because the settings are checked when read.
"""

from __future__ import annotations

from pathlib import PurePosixPath


def relative_path(value: str) -> str:
    """`value` as a clean relative path (`config/local.toml`), or ValueError saying why not."""
    if not value or "\0" in value:
        raise ValueError("an empty path or one with a NUL character")
    path = PurePosixPath(value)
    if path.is_absolute():
        raise ValueError("an absolute path")
    if not path.parts or path.parts == (".",):
        raise ValueError("the top of the repository itself")
    if ".." in path.parts:
        raise ValueError("a path with '..'")
    if any(part.lower() == ".git" for part in path.parts):
        raise ValueError("a path in a git directory")
    return str(path)
