"""File operations under a tree the agent could have changed (its workspace and `.git`, its
own folder, a check's temp dir, the setup cache's copies): no link is ever followed.

Each operation starts at a trusted folder (`root`, the worker's own, opened as it is) and goes
down the named `parts` one at a time, each opened O_DIRECTORY|O_NOFOLLOW relative to the one
before: a link anywhere on the way is refused (UntrustedPath), never followed. A file is read
O_NOFOLLOW|O_NONBLOCK, only when it is a regular file, and never past `limit` bytes (a FIFO
cannot block us, a huge sparse file is not read whole); a file is written as a new file
(O_CREAT|O_EXCL) beside its place and renamed over it within the same folder, so a link there
is replaced, not written through; a tree is removed through folder descriptors, a read-only
folder made writable by its own descriptor (fchmod), never by a path a link could redirect.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OWNER_ALL = stat.S_IRWXU


class UntrustedPath(OSError):
    """A path under an agent's tree is not what we may use: a link, or not a folder or regular
    file where one is needed, or bigger than we read. The message says which and where."""


def _where(root: Path, parts: tuple[str, ...]) -> Path:
    return root.joinpath(*parts)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"not a single path component: {name!r}")


def _open_child_dir(parent_fd: int, name: str, shown: Path) -> int:
    """The folder `name` in `parent_fd`, never through a link."""
    _check_name(name)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UntrustedPath(err.errno, f"{shown} is a link or not a folder") from None
        if err.errno != errno.EACCES:
            raise
    # A folder without read permission for us (a read-only cache): made ours by its own fd.
    path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    try:
        os.chmod(f"/proc/self/fd/{path_fd}", _OWNER_ALL)  # the folder itself, not a name
    finally:
        os.close(path_fd)
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


@contextlib.contextmanager
def open_dir(root: Path, *parts: str) -> Iterator[int]:
    """A descriptor of the folder `root/parts...`, reached without following any link below
    `root` (FileNotFoundError if missing, UntrustedPath if a link or not a folder)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, name in enumerate(parts):
            child = _open_child_dir(fd, name, _where(root, parts[: depth + 1]))
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def lstat_at(root: Path, *parts: str) -> os.stat_result | None:
    """The lstat of `root/parts...` itself (a link is a link), None if nothing is there or a
    folder on the way is missing, a link, or not a folder."""
    *folders, name = parts
    _check_name(name)
    try:
        with open_dir(root, *folders) as fd:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError, UntrustedPath):
        return None


def is_real_dir(root: Path, *parts: str) -> bool:
    """A folder there, reached without a link (a link to a folder is not one)."""
    found = lstat_at(root, *parts)
    return found is not None and stat.S_ISDIR(found.st_mode)


def read_file(root: Path, *parts: str, limit: int) -> bytes:
    """The content of the regular file `root/parts...`, at most `limit` bytes: UntrustedPath if
    it is a link, a FIFO, a device, a socket or a folder, or bigger than `limit`;
    FileNotFoundError if it is not there."""
    *folders, name = parts
    where = _where(root, parts)
    with open_dir(root, *folders) as dir_fd:
        _check_name(name)
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise UntrustedPath(err.errno, f"{where} is a link") from None
            raise
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_size > limit:
        os.close(fd)
        if not stat.S_ISREG(found.st_mode):
            raise UntrustedPath(errno.EINVAL, f"{where} is not a regular file")
        raise UntrustedPath(errno.EFBIG, f"{where} is bigger than {limit} bytes")
    with os.fdopen(fd, "rb") as data:
        content = data.read(limit + 1)
    if len(content) > limit:  # grew while we read it
        raise UntrustedPath(errno.EFBIG, f"{where} is bigger than {limit} bytes")
    return content


def write_file(root: Path, *parts: str, data: bytes, mode: int = 0o644) -> None:
    """`root/parts...` holds `data`: written as a new file beside it and renamed over whatever
    was there (a link is replaced, a folder removed first), all within the same folder."""
    *folders, name = parts
    _check_name(name)
    with open_dir(root, *folders) as dir_fd:
        aside = f".{name}.autopilot-{uuid.uuid4().hex[:12]}"
        fd = os.open(aside, _NEW_FILE_FLAGS, mode, dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                os.fchmod(out.fileno(), mode)  # exactly `mode`, whatever the umask
            try:
                os.rename(aside, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as err:  # a folder there
                if err.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                    raise
                _remove_in(dir_fd, name, _where(root, parts))
                os.rename(aside, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(aside, dir_fd=dir_fd)
            raise


def make_dirs(root: Path, *parts: str, mode: int = 0o755) -> None:
    """The folders `root/parts...` exist, each a real folder: one missing is made, a link or a
    file where one must be is refused (UntrustedPath)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, name in enumerate(parts):
            _check_name(name)
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, mode, dir_fd=fd)
            child = _open_child_dir(fd, name, _where(root, parts[: depth + 1]))
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def replace_with_dir(path: Path, mode: int = 0o755) -> None:
    """`path` is a real folder: whatever else is there (a link, a file) is removed first. Its
    parent is the worker's own, made if missing; only `path` itself is the agent's to change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    found = lstat_at(path.parent, path.name)
    if found is not None and not stat.S_ISDIR(found.st_mode):
        remove(path.parent, path.name)
    make_dirs(path.parent, path.name, mode=mode)


def remove(root: Path, *parts: str) -> None:
    """Remove `root/parts...` and all under it, links as links (nothing they point at is
    touched); nothing there, or a folder on the way missing, is no error. A link or a file on
    the way is refused (UntrustedPath): what is behind it is not ours to remove."""
    if not parts:
        raise ValueError("remove needs a name below its root")
    *folders, name = parts
    try:
        with open_dir(root, *folders) as dir_fd:
            _check_name(name)
            _remove_in(dir_fd, name, _where(root, parts))
    except FileNotFoundError:
        return


def remove_path(path: Path) -> None:
    """`remove` of `path`, whose parent is the worker's own (a workspace, a temp dir)."""
    remove(path.parent, path.name)


def _remove_in(dir_fd: int, name: str, shown: Path) -> None:
    """Remove `name` in `dir_fd`: a file or a link unlinked, a folder emptied and removed. The
    tree is walked with one fd at a time, back up by `..` (checked to be the folder we came
    from): no depth the agent makes can exhaust our fds or our stack."""
    try:
        found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(found.st_mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        return
    fd = _open_child_dir(dir_fd, name, shown)
    # Per folder on the way down: its name, (device, inode), and its subfolders still to remove.
    trail: list[tuple[str, tuple[int, int], list[str]]] = [(name, _identity(fd), _empty(fd))]
    try:
        while trail:
            pending = trail[-1][2]
            if pending:
                below = pending.pop()
                child = _open_child_dir(fd, below, shown)
                os.close(fd)
                fd = child
                trail.append((below, _identity(fd), _empty(fd)))
                continue
            done, _, _ = trail.pop()
            if not trail:
                break
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            if _identity(fd) != trail[-1][1]:
                raise UntrustedPath(errno.ESTALE, f"{shown} was moved while we removed it")
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(done, dir_fd=fd)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=dir_fd)


def _identity(fd: int) -> tuple[int, int]:
    found = os.fstat(fd)
    return found.st_dev, found.st_ino


def _empty(fd: int) -> list[str]:
    """Unlink every entry of the folder `fd` but its subfolders; returns their names. The
    folder is made ours to change by its own fd (fchmod), never by a name."""
    if stat.S_IMODE(os.fstat(fd).st_mode) & _OWNER_ALL != _OWNER_ALL:
        os.fchmod(fd, _OWNER_ALL)
    folders = []
    for entry in os.listdir(fd):
        try:
            found = os.stat(entry, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(found.st_mode):
            folders.append(entry)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry, dir_fd=fd)
    return folders
