"""A real `git daemon` serving the bare repositories under a folder on 127.0.0.1: the network
transport the remote kind is tested over."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import free_port

START_TIMEOUT_S = 10.0


@dataclass
class GitDaemon:
    base: Path
    port: int
    log: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def git_daemon(
    base: Path, *, receive_pack: bool = True, port: int | None = None
) -> Iterator[GitDaemon]:
    """Serve `base` until the block ends; `receive_pack=False`: fetches only, pushes refused;
    `port`: that one (a daemon started again where it was), else a free one."""
    port = free_port() if port is None else port
    args = [
        "git",
        "daemon",
        "--verbose",
        "--reuseaddr",
        f"--base-path={base}",
        "--export-all",
        "--listen=127.0.0.1",
        f"--port={port}",
        *(["--enable=receive-pack"] if receive_pack else []),
        str(base),
    ]
    daemon = GitDaemon(base=base, port=port)
    ready = threading.Event()
    # Its own process group: the daemon forks one child per connection, all stopped together.
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )

    def read_log() -> None:  # drained all along: a full pipe would stop the daemon
        assert proc.stderr is not None
        for line in proc.stderr:
            daemon.log.append(line)
            if "Ready to rumble" in line:
                ready.set()
        ready.set()  # it exited: stop waiting

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        if not ready.wait(START_TIMEOUT_S) or proc.poll() is not None:
            raise AssertionError(f"git daemon did not start: {''.join(daemon.log)}")
        yield daemon
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        reader.join(timeout=10)
