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
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import dagger
from dagger.client._config import ConnectConfig, Timeout
from dagger.client._session import ConnectParams, SingleConnection
from dagger.provisioning._session import start_cli_session

from autopilot.agent.container_access import (
    ContainerFailed,
    EngineAccess,
    EngineLost,
    EngineTimedOut,
)

T = TypeVar("T")


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
