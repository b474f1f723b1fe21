"""Blocking work (git, checks) in a thread, with the activity heartbeating meanwhile.

A heartbeat is how Temporal notices that the worker running an activity died: without one a
killed worker's git step would be retried only after its whole start-to-close timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
T = TypeVar("T")
TICK_S = 1.0  # local calls; the SDK throttles what reaches the server


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    while True:
        done, _ = await asyncio.wait({work}, timeout=TICK_S)
        if done:
            return work.result()
        activity.heartbeat()
