"""Reading a file the user named (a plan, `.autopilot.toml`, a `copy` source): its kind and
size are checked before a byte is read, on the open descriptor itself.

A FIFO would block the reader for ever, a device never end, a directory cannot be read and a
huge file fills the memory: each is refused with a message that says what it is. Opening with
O_NONBLOCK returns at once even for a FIFO without a writer; `fstat` of that descriptor then
says what it is, with no race against a file swapped in between a check and the open.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "BOM",
    "FileTooBig",
    "InputFileError",
    "IsDirectory",
    "NotRegularFile",
    "check_regular",
    "file_kind",
    "read_regular",
]

BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark: some editors write it, TOML does not allow it


class InputFileError(ValueError):
    """A named file cannot be read as one; the message says what it is instead (without the
    file's name: the caller puts it where its own messages put names)."""


class NotRegularFile(InputFileError):
    """A FIFO, a device, a socket or a directory."""


class IsDirectory(NotRegularFile):
    """A directory."""


class FileTooBig(InputFileError):
    """Over the caller's limit."""


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, for people."""
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


def _size_text(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size} bytes"


def _limit_text(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit} bytes"


def _check_mode(mode: int) -> None:
    if not stat.S_ISREG(mode):
        error = IsDirectory if stat.S_ISDIR(mode) else NotRegularFile
        raise error(f"is not a regular file (it is {file_kind(mode)})")


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise FileTooBig(f"is {_size_text(size)}, over the {_limit_text(limit)} limit")


def check_regular(path: Path, limit: int) -> None:
    """InputFileError unless `path` (its last link followed) is a regular file of at most
    `limit` bytes; FileNotFoundError when there is nothing there. Reads nothing."""
    try:
        found = path.stat()
    except FileNotFoundError:
        raise  # the caller says what a missing file means
    except OSError as err:
        raise InputFileError(f"cannot be looked at ({err.strerror or err})") from None
    _check_mode(found.st_mode)
    _check_size(found.st_size, limit)


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes; InputFileError saying
    what it is otherwise, FileNotFoundError when there is nothing there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise  # the caller says what a missing file means
    except IsADirectoryError:
        raise IsDirectory("is not a regular file (it is a directory)") from None
    except OSError as err:
        raise InputFileError(
            f"cannot be read ({err.strerror or err}); check its permissions"
        ) from None
    try:
        found = os.fstat(fd)
        _check_mode(found.st_mode)
        _check_size(found.st_size, limit)  # before a byte is read
        with os.fdopen(fd, "rb", closefd=False) as file:
            raw = file.read(limit + 1)  # never more, even if the file grows meanwhile
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise FileTooBig(f"is over the {_limit_text(limit)} limit")
    return raw
