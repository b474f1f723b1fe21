"""How far past its history limit a session run's history grows before it continues as new.

A session of more than ~215 tasks crosses its history limit (`SessionRequest.history_limit`, 4,000
events) and continues as new; the target is 10,000 events in any history. The same
mechanism with a small limit takes a minute: the session is started as the starter would start
it (preflight.validate builds the request), only with `history_limit` lowered, and each run's
history is counted. The session stops starting tasks `DRAIN_EVENTS_PER_TASK x (concurrency +
1)` events below its limit (or at half the limit, whichever is later), so a limit of at least
twice that margin drains exactly as the 10,000 one does: the largest run's distance to the
limit (negative: headroom) is what any large session's runs reach against the shipped limit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

import starter
from autopilot.infra import load_settings
from autopilot.operate import preflight
from bench.histories import collect
from bench.pipeline import Installation
from bench.repos import merges_on_main
from workflows.session import SessionWorkflow


@dataclass
class ProbeResult:
    tasks: int
    concurrency: int
    history_limit: int
    wall_s: float
    merged: int
    session_events: list[int]  # per run, in order
    overshoot: int  # the largest run's events past the limit (negative: under it)


async def _run_session(installation: Installation, argv: list[str], limit: int) -> str:
    assert installation.autopilot is not None
    env = installation.autopilot.env()
    request = preflight.validate(starter.build_parser().parse_args(argv), load_settings(env))
    request.history_limit = limit
    client = await Client.connect(
        installation.autopilot.address, data_converter=pydantic_data_converter
    )
    handle = await client.start_workflow(
        SessionWorkflow.run,
        request,
        id=request.session_id,
        task_queue=env["AUTOPILOT_TASK_QUEUE"],
    )
    await handle.result()
    return request.session_id


def probe(
    installation: Installation,
    plan: Path,
    repo: Path,
    tasks: int,
    concurrency: int,
    history_limit: int,
    timeout_s: float,
) -> ProbeResult:
    assert installation.autopilot is not None, "use the installation as a context manager"
    argv = [str(plan), "--repo", str(repo), "--review", "none", "--concurrency", str(concurrency)]
    started = time.perf_counter()
    session_id = asyncio.run(
        asyncio.wait_for(_run_session(installation, argv, history_limit), timeout_s)
    )
    wall = time.perf_counter() - started
    stats = asyncio.run(collect(installation.autopilot.address, session_id, tasks + 1))
    return ProbeResult(
        tasks=tasks,
        concurrency=concurrency,
        history_limit=history_limit,
        wall_s=wall,
        merged=merges_on_main(repo),
        session_events=stats.session_events,
        overshoot=max(stats.session_events, default=0) - history_limit,
    )
