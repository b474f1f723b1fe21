"""The setup's cache: what the setup commands made (`cache_dirs`), kept under the worker's
state dir by a key, and copied into later workspaces instead of running the commands again.

The key is the sha256 of the repository's identity, the setup commands, the cache dirs and the
contents of the `cache_key` files (the lock files): another lock file, another entry; another
repository, another entry, whatever its lock files (`repository_identity` says why the
identity is the repository's location). An entry is built
aside and renamed into place, so one that exists is whole, and two tasks that build the same
key at once both finish (one entry stays, the other is dropped).

A workspace gets a copy (`cp --reflink=auto -a`: copy-on-write where the file system can, a
real copy elsewhere), never a hardlink: a hardlinked file would let the agent's workspace
write through to the cached one, and from there into every later task's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import stat
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from autopilot.infra import make_private_dir, untrusted_fs
from autopilot.models import WorkspaceSettings
from autopilot.setup.paths import inside, make_parents, parts_of

CACHE_FOLDER = "setup-cache"
KEY_VERSION = 2  # bump when what an entry holds, or what keys it, changes
MANIFEST = "manifest.json"
TREE = "tree"
_BUILDING = ".building-"
# A half-built entry this old was left by a killed worker: removed by the next build.
STALE_BUILD_S = 24 * 3600
# A lock file is a few MiB at most: a bigger one is not read (it counts as not a file).
KEY_FILE_LIMIT = 64 * 1024 * 1024


class CacheProblem(OSError):
    """A cache dir cannot be stored or put back; the message says which and why."""


def cache_root(state_dir: str | Path) -> Path:
    return Path(state_dir) / CACHE_FOLDER


def repository_identity(repo: str) -> str:
    """Which repository a cache entry belongs to: a local repository's path, or a remote's URL
    without a user or password (one remote, whoever reaches it, and no secret in a key).

    Its location, chosen by the person who starts the session, not anything in its history:
    root commits are data that anyone can copy, so a hostile repository could claim another's
    and fill the cache with what its own setup made; forks share them as well."""
    if repo.startswith("/"):  # a local repository: an absolute path (a remote's cache is one)
        return repo
    if "://" in repo:
        parts = urlsplit(repo)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return repo.split("@", 1)[1] if "@" in repo.split(":", 1)[0] else repo


def cache_key(workspace: Path, settings: WorkspaceSettings, repo: str) -> str:
    """The key of what the setup makes in `workspace` of the repository `repo` (a session's
    repository: a path or a remote's URL), from its `cache_key` files as they are there now
    (a missing one counts as missing, a link or a folder as not a file)."""
    files = {name: _file_digest(workspace, name) for name in settings.cache_key}
    described = {
        "version": KEY_VERSION,
        "repository": repository_identity(repo),
        "setup": [command.argv for command in settings.setup],
        "cache_dirs": settings.cache_dirs,
        "files": files,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def _file_digest(workspace: Path, name: str) -> str:
    # No link is followed, a FIFO the agent left there cannot block the worker, and a huge
    # (sparse) file is not read: it counts as "not a file".
    try:
        content = untrusted_fs.read_file(workspace, *parts_of(name), limit=KEY_FILE_LIMIT)
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "not a file"
    return hashlib.sha256(content).hexdigest()


def lookup(root: Path, key: str) -> Path | None:
    """The entry for `key`, if one was made whole."""
    entry = root / key
    return entry if (entry / MANIFEST).is_file() else None


def store(root: Path, key: str, workspace: Path, dirs: Sequence[str]) -> Path:
    """Copy `dirs` (those the setup made) from the workspace into the entry for `key`."""
    make_private_dir(root)
    _sweep_stale_builds(root)
    building = root / f"{_BUILDING}{key}-{uuid.uuid4().hex[:8]}"
    building.mkdir()
    try:
        present = []
        for name in dirs:
            source = _checked_dir(workspace, name)
            if source is None:
                continue  # the setup made no such folder: nothing to keep of it
            _copy_tree(source, make_parents(building / TREE, name))
            present.append(name)
        (building / MANIFEST).write_text(json.dumps({"dirs": present}) + "\n")
        try:
            building.rename(root / key)
        except OSError:
            if lookup(root, key) is None:
                raise
            untrusted_fs.remove_path(building)  # another task stored the key first: keep theirs
    except BaseException:
        with contextlib.suppress(OSError):
            untrusted_fs.remove_path(building)
        raise
    return root / key


def restore(entry: Path, workspace: Path, dirs: Sequence[str]) -> None:
    """Replace `dirs` in the workspace with the entry's copies (a folder the entry lacks is
    removed: the setup did not make it)."""
    manifest = json.loads((entry / MANIFEST).read_text())
    for name in dirs:
        target = make_parents(workspace, name)
        untrusted_fs.remove(workspace, *parts_of(name))
        if name in manifest["dirs"]:
            _copy_tree(entry / TREE / name, target)


def clear(workspace: Path, dirs: Sequence[str]) -> None:
    """Remove `dirs` from the workspace: the setup makes them afresh, so an entry stored
    from them depends on the key alone."""
    for name in dirs:
        untrusted_fs.remove(workspace, *parts_of(name))


def _checked_dir(workspace: Path, name: str) -> Path | None:
    path = inside(workspace, name)  # UnsafePath: a link or a file on the way
    found = untrusted_fs.lstat_at(workspace, *parts_of(name))
    if found is None:
        return None
    if not stat.S_ISDIR(found.st_mode):
        raise CacheProblem(f"cache_dirs names {name!r}, but the setup made a link or a file there")
    return path


def _copy_tree(source: Path, target: Path) -> None:
    # -a keeps links as links (never followed) and modes; --reflink=auto shares blocks
    # copy-on-write where the file system can: a write to either copy never reaches the other.
    argv = ["cp", "--reflink=auto", "-a", "--no-target-directory", str(source), str(target)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CacheProblem(f"cannot copy {source} to {target}: {done.stderr.strip()}")


def _sweep_stale_builds(root: Path) -> None:
    now = time.time()
    for entry in root.glob(f"{_BUILDING}*"):
        with contextlib.suppress(OSError):
            if now - entry.lstat().st_mtime > STALE_BUILD_S:
                untrusted_fs.remove_path(entry)
