"""Following a session: Ctrl-C (the follow task cancelled) ends it even when the cancellation
reached an RPC in flight that turned it into its own error."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from autopilot.operate import follow as follow_module

DEADLINE_S = 10.0


class NeverEnds:
    """A session handle whose result never comes."""

    async def result(self) -> Any:
        await asyncio.Event().wait()


class Stop(Exception):
    """Ends a follow loop that did not end on its own (so that a failing test leaves no task
    running in the shared event loop)."""


class CancelledAsRpcError:
    """A LiveSession whose refresh, cancelled mid-RPC, raises the RPC's error instead."""

    last: CancelledAsRpcError
    stop = False

    def __init__(self, client: object, handle: object) -> None:
        self.started = asyncio.Event()

    async def refresh(self) -> Any:
        if CancelledAsRpcError.stop:
            raise Stop
        CancelledAsRpcError.last = self
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RPCError("call cancelled", RPCStatusCode.CANCELLED, b"") from None


async def test_ctrl_c_ends_the_follow_even_when_an_rpc_swallowed_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(follow_module, "LiveSession", CancelledAsRpcError)
    monkeypatch.setattr(follow_module, "REFRESH_S", 0.01)
    following = asyncio.ensure_future(
        follow_module.follow(object(), NeverEnds(), io.StringIO())  # type: ignore[arg-type]
    )
    async with asyncio.timeout(DEADLINE_S):
        while not hasattr(CancelledAsRpcError, "last"):
            await asyncio.sleep(0)  # yield until the follow loop is in its refresh
        await CancelledAsRpcError.last.started.wait()
    following.cancel()
    await asyncio.wait({following}, timeout=DEADLINE_S)  # a deadline that never cancels it
    try:
        assert following.cancelled(), "the follow loop went on after Ctrl-C"
    finally:
        CancelledAsRpcError.stop = True
        following.cancel()  # out of its refresh, into the next one, which stops it
        await asyncio.wait({following}, timeout=DEADLINE_S)
