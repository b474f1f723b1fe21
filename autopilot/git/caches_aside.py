"""The remote caches a starter makes while it checks a run (reading the remote's
`.autopilot.toml`): made aside, in a folder of their own, and moved into the state dir only
once the run is accepted. A refused run, whatever refused it, leaves the state dir as it found
it; an accepted one hands its worker the fetch it already made.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from autopilot.git.remote import RemoteWorkspaces
from autopilot.git.remote_cache import CACHES, locked
from autopilot.infra import remove_path

__all__ = ["CachesAside"]


class CachesAside:
    """`with CachesAside(state_dir) as aside:` gives `aside.workspaces`, whose caches live in
    a temporary folder that the `with` removes; `aside.adopt()` first moves each of them to
    `state_dir`, where a worker sharing it finds them."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._folder = Path(tempfile.mkdtemp(prefix="autopilot-starting-"))
        self.workspaces = RemoteWorkspaces(self._folder)

    def __enter__(self) -> CachesAside:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def adopt(self) -> None:
        """Move every cache made aside into the state dir, where there is none of its remote
        yet (one there is the worker's: kept), each under the cache's lock, whole or not at
        all: copied beside its place, then renamed into it."""
        made = self._folder / CACHES
        if not made.is_dir():
            return
        for cache in sorted(made.glob("*.git")):
            if not (cache / "HEAD").is_file():
                continue
            place = self.state_dir.absolute() / CACHES / cache.name
            with locked(place):
                if (place / "HEAD").is_file():
                    continue
                making = place.with_name(f".making-{place.name}")
                try:
                    remove_path(making)
                    # A rename when the temporary folder is on the state dir's file system; a
                    # copy otherwise (rename cannot cross file systems).
                    shutil.move(cache, making)
                    remove_path(place)
                    making.rename(place)
                except OSError:
                    # The session has started: its worker makes its own cache instead.
                    with contextlib.suppress(OSError):
                        remove_path(making)
