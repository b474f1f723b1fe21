"""Real processes for end-to-end tests: the embedded Temporal server, workers and the starter,
each with its own free ports and state dir, and condition waits with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from autopilot.infra import load_settings, stop_embedded_server, stop_worker
from autopilot.models import SessionStatus

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


# Ports for servers a test starts and then releases (the embedded Temporal server, git daemon)
# come from below the kernel's ephemeral range, one slice per test process: a port the kernel
# handed to one process (bind to 0, then close) could be handed to another process before the
# server binds it, and any outgoing connection may take an ephemeral port as its source.
PORTS_LOW, PORTS_HIGH = 20000, 32000


def _port_slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    width = (PORTS_HIGH - PORTS_LOW) // max(count, 1)
    start = PORTS_LOW + index * width
    return range(start, start + width)


_SLICE = _port_slice()
_next_port = [_SLICE.start + (os.getpid() % len(_SLICE))]


def _bindable(port: int) -> bool:
    # No SO_REUSEADDR: a port still in TIME_WAIT from an earlier server counts as taken.
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port nothing holds now and no other test process will be given."""
    for _ in range(len(_SLICE)):
        port = _next_port[0]
        _next_port[0] = port + 1 if port + 1 < _SLICE.stop else _SLICE.start
        if _bindable(port):
            return port
    raise AssertionError(f"no free port in {_SLICE.start}-{_SLICE.stop - 1}")


def free_ports(count: int) -> list[int]:
    """`count` different free ports."""
    return [free_port() for _ in range(count)]


def wait_until(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def claude_bin() -> Path:
    explicit = os.environ.get("AUTOPILOT_CLAUDE_BIN")
    path = Path(explicit) if explicit else ROOT / "tools/claude-code/node_modules/.bin/claude"
    if not path.is_file():
        raise AssertionError(f"the pinned claude CLI is missing at {path}; run ./dev setup")
    return path


def clean_env() -> dict[str, str]:
    """The test process's environment without any real credentials or Temporal settings."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ANTHROPIC_", "CLAUDE_", "TEMPORAL_", "AUTOPILOT_"))
    }


# Python with SIGINT at its default, whatever this process inherited: an ignored signal stays
# ignored across exec, and Python then installs no KeyboardInterrupt handler.
WITH_SIGINT = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])",
]


@dataclass
class Autopilot:
    """One isolated installation: its own state dir, Temporal ports and task queue."""

    root: Path
    model_env: dict[str, str]
    temporal_port: int = 0  # free ones, chosen together (free_ports), unless given
    ui_port: int = 0
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # for every process it starts

    def __post_init__(self) -> None:
        if not self.temporal_port or not self.ui_port:
            self.temporal_port, self.ui_port = free_ports(2)

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    def env(self, **extra: str) -> dict[str, str]:
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = clean_env()
        env.update(self.model_env)
        env.update(
            AUTOPILOT_STATE_DIR=str(self.state_dir),
            AUTOPILOT_TEMPORAL_PORT=str(self.temporal_port),
            AUTOPILOT_TEMPORAL_UI_PORT=str(self.ui_port),
            AUTOPILOT_TASK_QUEUE=f"autopilot-test-{self.temporal_port}",
            AUTOPILOT_CLAUDE_BIN=str(claude_bin()),
            CLAUDE_CONFIG_DIR=str(self.root / "claude-config"),
            HOME=str(home),
            PYTHONUNBUFFERED="1",
            # A test's workers stop at once when it ends (its held agents need no grace);
            # the tests of the grace period give it with --graceful-shutdown-s.
            AUTOPILOT_GRACEFUL_SHUTDOWN_S="0",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def worker_log(self, index: int) -> Path:
        """What the index-th worker started by `start_worker` wrote."""
        return self.root / f"worker-{index}.log"

    def start_worker(
        self,
        *args: str,
        wrap: Sequence[str] = (),
        cwd: Path = ROOT,
        own_session: bool = False,
        ready_s: float = 90,
        **env: str,
    ) -> subprocess.Popen[bytes]:
        """A worker process (`wrap`: the command it runs under, e.g. its own mount namespace;
        `cwd`: its working directory; `own_session`: a process group of its own, for a kill of
        the worker and all it started)."""
        log_path = self.worker_log(len(self.workers))
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [*wrap, sys.executable, str(ROOT / "worker.py"), *args],
                cwd=cwd,
                env=self.env(**env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=own_session,
            )
        self.workers.append(worker)
        wait_until(
            lambda: (
                "worker ready" in log_path.read_text(errors="replace") or worker.poll() is not None
            ),
            ready_s,
            f"the worker to report ready ({log_path})",
        )
        assert worker.poll() is None, log_path.read_text(errors="replace")
        return worker

    def starter(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "starter.py"), *args],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_detached(self, plan: Path, repo: Path, *extra: str) -> str:
        """Start a session with `--detach`; returns its id."""
        done = self.starter(str(plan), "--repo", str(repo), "--detach", *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.split("session ", 1)[1].split()[0]

    def status(self, session: str) -> SessionStatus:
        """`starter.py status --json`, parsed."""
        done = self.starter("status", session, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return SessionStatus.model_validate_json(done.stdout)

    def spawn_starter(self, *args: str) -> subprocess.Popen[str]:
        """The starter as a terminal runs it, Ctrl-C (SIGINT) included: a test run started in
        the background (`pytest &`, as CI scripts may) ignores SIGINT, which every process it
        starts would inherit."""
        return subprocess.Popen(
            [*WITH_SIGINT, str(ROOT / "starter.py"), *args],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def shutdown(self) -> None:
        for worker in self.workers:
            stop_worker(worker, grace_s=20)
        pid_file = self.state_dir / "logs" / "worker.pid"  # a worker the starter started
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        stop_embedded_server(load_settings(self.env()))


@contextmanager
def autopilot(root: Path, model_env: dict[str, str]) -> Iterator[Autopilot]:
    root.mkdir(parents=True, exist_ok=True)
    installation = Autopilot(root=root, model_env=model_env)
    try:
        yield installation
    finally:
        installation.shutdown()


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` or below (Linux /proc). A
    sandboxed process names its cwd by the sandbox's fixed path (/workspace/<name>): it is
    found by the folder itself (device and inode), never by a name other runs share."""
    folders = _folders_under(directory)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            seen = os.stat(entry / "cwd")
        except OSError:
            continue
        here = cwd == str(directory) or cwd.startswith(f"{directory}/")
        if here or (seen.st_dev, seen.st_ino) in folders:
            found.append(int(entry.name))
    return found


def _folders_under(directory: Path) -> dict[tuple[int, int], Path]:
    """`directory` and every folder below it (not into .git), by device and inode."""
    folders: dict[tuple[int, int], Path] = {}
    for top, subfolders, _ in os.walk(directory):
        subfolders[:] = [name for name in subfolders if name != ".git"]
        with contextlib.suppress(OSError):
            info = os.stat(top)
            folders[(info.st_dev, info.st_ino)] = Path(top)
    return folders


def working_folder(pid: int, directory: Path) -> Path | None:
    """The folder under `directory` that process `pid` works in, as this machine names it
    (a sandboxed process names its own by the fixed path /workspace/<name>); None when it
    works elsewhere or is gone."""
    try:
        seen = os.stat(f"/proc/{pid}/cwd")
    except OSError:
        return None
    return _folders_under(directory).get((seen.st_dev, seen.st_ino))


def commands_in(directory: Path) -> list[str]:
    """Command lines of the live processes working in `directory`."""
    found = []
    for pid in processes_in(directory):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


async def wait_gone(directory: Path, timeout: float = 15.0) -> None:
    """Wait (with a deadline) until no process works in `directory`."""
    await asyncio.to_thread(
        wait_until,
        lambda: not processes_in(directory),
        timeout,
        f"every process in {directory} to be gone (left: {commands_in(directory)})",
    )
