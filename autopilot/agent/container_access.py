"""Whether container mode can run, and what its failures are called, without the Dagger SDK.

The SDK is slow to import, and the starter (every command) and the worker (every start) need
only this part: the preflight that finds an engine, the way to reach it, and the errors the
pipeline decides on. autopilot/agent/container_engine.py opens sessions and makes the calls.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from autopilot import error_types

PORT_VAR = "DAGGER_SESSION_PORT"
TOKEN_VAR = "DAGGER_SESSION_TOKEN"
# Read by the dagger CLI: where its engine runs (tcp://, docker-container://, kube-pod://...).
RUNNER_HOST_VAR = "_EXPERIMENTAL_DAGGER_RUNNER_HOST"
PROBE_TIMEOUT_S = 2.0
# The SDK wants a CLI (and so an engine) of its own version.
CLI_VERSION = importlib.metadata.version("dagger-io")
CLI_DOWNLOAD = f"https://dl.dagger.io/dagger/releases/{CLI_VERSION}/"
ENGINE_IMAGE = f"registry.dagger.io/engine:v{CLI_VERSION}"


class EngineUnavailable(Exception):
    """No engine can be reached: the message says how to provide one (exit 2, nothing ran)."""


class EngineError(Exception):
    """An engine call went wrong; `error_type` is its name in autopilot/error_types.py."""

    error_type: ClassVar[str]


class EngineLost(EngineError):
    """The connection to the engine broke: the run is lost, not failed."""

    error_type = error_types.RUN_LOST


class EngineTimedOut(EngineError):
    """A call did not answer within its hard timeout: the connection was closed."""

    error_type = error_types.RUN_LOST


class ContainerFailed(EngineError):
    """The engine refused the work: an image it cannot pull, a package that does not install."""

    error_type = error_types.CONTAINER_SETUP


@dataclass(frozen=True)
class EngineAccess:
    """How to reach the engine: an open session (port and token) or a CLI that opens one."""

    port: int | None = None
    token: str = ""
    cli: Path | None = None

    def describe(self) -> str:
        if self.cli is not None:
            return (
                f"the dagger CLI at {self.cli} (it starts its engine if none runs, and may "
                f"pull {ENGINE_IMAGE} to do so)"
            )
        return f"the Dagger session on 127.0.0.1:{self.port}"


def _how_to_provide() -> str:
    return (
        "Provide an engine: install the dagger CLI (https://docs.dagger.io/install) and put it "
        f"on PATH, with {RUNNER_HOST_VAR} set if its engine runs elsewhere; or start the worker "
        f"inside a session (`dagger run .venv/bin/python worker.py` sets {PORT_VAR} and "
        f"{TOKEN_VAR}). Autopilot never lets the SDK fetch one by itself: it would download the "
        f"dagger CLI {CLI_VERSION} from {CLI_DOWNLOAD} and the engine image {ENGINE_IMAGE}."
    )


def engine_preflight(
    env: Mapping[str, str], probe_timeout_s: float = PROBE_TIMEOUT_S
) -> EngineAccess:
    """Which engine the runs will use; EngineUnavailable when there is none."""
    port_text = env.get(PORT_VAR, "").strip()
    if port_text:
        token = env.get(TOKEN_VAR, "")
        if not token:
            raise EngineUnavailable(
                f"{PORT_VAR}={port_text} is set but {TOKEN_VAR} is not: a session needs both "
                f"(`dagger run` sets them together). {_how_to_provide()}"
            )
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError(port_text)
        except ValueError:
            raise EngineUnavailable(
                f"{PORT_VAR}={port_text!r} is not a port number (1 to 65535). {_how_to_provide()}"
            ) from None
        if not _answers(port, probe_timeout_s):
            raise EngineUnavailable(
                f"nothing answers on 127.0.0.1:{port} ({PORT_VAR}): the session has ended. "
                f"Unset {PORT_VAR} and {TOKEN_VAR}, or run inside a live session. "
                f"{_how_to_provide()}"
            )
        return EngineAccess(port=port, token=token)
    cli = shutil.which("dagger", path=env.get("PATH"))
    if cli is not None:
        return EngineAccess(cli=Path(cli))
    raise EngineUnavailable(
        f"no Dagger engine: no {PORT_VAR} and no dagger CLI on PATH. {_how_to_provide()}"
    )


def _answers(port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False
