"""Reaching a Dagger engine: the preflight, the session, and every call's hard timeout.

An engine is reachable in one of two ways, and only these: a session someone already opened
(`dagger run ...` sets DAGGER_SESSION_PORT and DAGGER_SESSION_TOKEN), or a `dagger` CLI on
PATH that opens one (`dagger session`; the CLI starts its engine if none runs). Left to
itself the SDK would download a CLI from dl.dagger.io, and that CLI would pull the engine
image from registry.dagger.io: this project never lets that happen unannounced, so the
connection is always made from what `engine_preflight` found, never from the SDK's own
provisioning.

Every call goes through `engine_call`: a hard timeout, and the SDK's errors turned into the
three that matter to the pipeline: the engine was lost (a lost run), a call timed out (a lost
run too), or the engine refused the work (the container cannot be made).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import dagger
from dagger._engine._version import CLI_VERSION
from dagger.client._config import ConnectConfig, Timeout
from dagger.client._session import ConnectParams, SingleConnection
from dagger.provisioning._session import start_cli_session

from autopilot import error_types

T = TypeVar("T")

PORT_VAR = "DAGGER_SESSION_PORT"
TOKEN_VAR = "DAGGER_SESSION_TOKEN"
# Read by the dagger CLI: where its engine runs (tcp://, docker-container://, kube-pod://...).
RUNNER_HOST_VAR = "_EXPERIMENTAL_DAGGER_RUNNER_HOST"
PROBE_TIMEOUT_S = 2.0
CLI_DOWNLOAD = f"https://dl.dagger.io/dagger/releases/{CLI_VERSION}/"
ENGINE_IMAGE = f"registry.dagger.io/engine:v{CLI_VERSION}"


def _no_request_bodies(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


# gql logs each query's arguments and body at DEBUG, and setSecret's hold the credential: a
# filter on each of its loggers, not a level, so no logging configuration can turn them on.
GQL_LOGGERS = (
    "gql.dsl",
    "gql.transport.httpx",
    "gql.transport.common.base",
    "gql.utilities.parse_result",
)
for _name in GQL_LOGGERS:
    logging.getLogger(_name).addFilter(_no_request_bodies)


class EngineUnavailable(Exception):
    """No engine can be reached: the message says how to provide one (exit 2, nothing ran)."""


class EngineError(Exception):
    """An engine call went wrong; `error_type` is its name in autopilot/error_types.py."""

    error_type: ClassVar[str]


class EngineLost(EngineError):
    """The connection to the engine broke: the run is lost, not failed."""

    error_type = error_types.ENGINE_LOST


class EngineTimedOut(EngineError):
    """A call did not answer within its hard timeout: the connection was closed."""

    error_type = error_types.ENGINE_TIMED_OUT


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


@contextlib.asynccontextmanager
async def engine_session(
    access: EngineAccess, connect_timeout_s: float
) -> AsyncIterator[dagger.Client]:
    """A client of its own on the engine, closed on the way out, cancellation included: closing
    it aborts what is in flight, and a session the CLI opened ends with its engine client."""
    # No read timeout here: engine_call bounds each call, the run's own call by its limit.
    config = ConnectConfig(timeout=Timeout(None, connect=connect_timeout_s), retry=None)
    async with contextlib.AsyncExitStack() as stack:
        if access.cli is not None:
            cli_config = dagger.Config(timeout=Timeout(None, connect=connect_timeout_s), retry=None)
            try:
                params = await stack.enter_async_context(
                    start_cli_session(cli_config, str(access.cli))
                )
            except (dagger.DaggerError, OSError) as err:
                raise EngineLost(f"{access.cli} could not open a Dagger session: {err}") from err
        else:
            assert access.port is not None
            params = ConnectParams(port=access.port, session_token=access.token)
        connection = SingleConnection(params, config)
        await engine_call("connecting", connection.connect(), connect_timeout_s + 5.0, access)
        stack.push_async_callback(connection.close)
        yield dagger.Client.from_connection(connection)


async def engine_call(
    what: str, call: Awaitable[T], timeout_s: float, access: EngineAccess | None = None
) -> T:
    """One engine call, bounded by `timeout_s`; the SDK's failures as EngineError."""
    where = f" ({access.describe()})" if access is not None else ""
    try:
        async with asyncio.timeout(timeout_s):
            return await call
    except TimeoutError:
        raise EngineTimedOut(
            f"the Dagger engine did not finish {what} within {timeout_s:g}s{where}; the call "
            "was abandoned and the connection closed"
        ) from None
    except (dagger.TransportError, dagger.ClientConnectionError) as err:
        raise EngineLost(f"lost the Dagger engine during {what}{where}: {err}") from err
    except dagger.QueryError as err:
        raise ContainerFailed(f"the Dagger engine refused {what}: {err}") from err
