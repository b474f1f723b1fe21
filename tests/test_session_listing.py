"""What `list`, the search attributes and `temporal workflow list --query` say of a session,
read after each way a session ends: they agree with the session's own status."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import time
from collections.abc import Callable

from temporalio.client import Client

from autopilot.infra import search_attributes
from autopilot.infra.temporal_connection import temporal_cli
from autopilot.models import SessionState
from autopilot.operate.commands import list_sessions
from autopilot.operate.progress_view import summary_line
from tests.test_workflows import DEADLINE_S, status_until
from tests.workflow_stubs import (
    Stubs,
    make_batch,
    make_plan,
    make_task,
    review_settings,
    start_session,
    verdict,
    worker,
)
from workflows.session import SessionWorkflow


def cli_list(client: Client, query: str) -> list[dict[str, object]]:
    """`temporal workflow list --query` as a person would run it, against the test server."""
    address = client.service_client.config.target_host
    argv = [str(temporal_cli()), "workflow", "list", "--address", address, "--query", query]
    result = subprocess.run(
        [*argv, "--output", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    listed = json.loads(result.stdout or "[]")
    return listed if isinstance(listed, list) else [listed]


async def listed_until(
    client: Client, query: str, condition: Callable[[list[dict[str, object]]], bool]
) -> list[dict[str, object]]:
    """Visibility is eventually consistent: read until the condition holds, or fail."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        rows = await asyncio.to_thread(cli_list, client, query)
        if condition(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"`temporal workflow list --query {query!r}` gave {rows}")
        await asyncio.sleep(0.1)


async def test_a_session_cancelled_while_paused_is_listed_cancelled(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.script("review_changes", "1", verdict("request_changes", "wrong file", ["not a.py"]))
    review = review_settings("agent", rounds=1, on_failure="pause")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=1, review=review)
        await status_until(handle, lambda s: s.paused, "the session to pause")
        paused_query = f"WorkflowId = '{handle.id}' AND AutopilotStatus = 'Paused'"
        await listed_until(client, paused_query, lambda rows: len(rows) == 1)

        await handle.execute_update(SessionWorkflow.cancel, "the plan was wrong")
        final = await handle.result()

    assert final.status == SessionState.CANCELLED
    published = (await handle.describe()).typed_search_attributes
    assert published.get(search_attributes.STATUS) == "Cancelled"
    cancelled_query = f"WorkflowId = '{handle.id}' AND AutopilotStatus = 'Cancelled'"
    await listed_until(client, cancelled_query, lambda rows: len(rows) == 1)
    await listed_until(client, paused_query, lambda rows: rows == [])
    line = summary_line(final)
    assert "(the plan was wrong)" in line and "PAUSED" not in line


async def test_a_terminated_session_is_listed_terminated(client: Client, stubs: Stubs) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.script("review_changes", "1", verdict("request_changes", "wrong file", ["not a.py"]))
    review = review_settings("agent", rounds=1, on_failure="pause")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, review=review)
        await status_until(handle, lambda s: s.paused, "the session to pause")
        await handle.terminate("an operator's temporal workflow terminate")

    # Nothing of the workflow runs on terminate: its attribute still says Paused, so
    # `list` (and a query that means "paused sessions") goes by the execution's status.
    still_paused = f"WorkflowId = '{handle.id}' AND AutopilotStatus = 'Paused'"
    await listed_until(client, still_paused, lambda rows: len(rows) == 1)
    running_and_paused = f"{still_paused} AND ExecutionStatus = 'Running'"
    assert await asyncio.to_thread(cli_list, client, running_and_paused) == []
    deadline = time.monotonic() + DEADLINE_S
    while True:
        out = io.StringIO()
        await list_sessions(client, show_all=True, as_json=True, out=out)
        rows = [row for row in json.loads(out.getvalue()) if row["id"] == handle.id]
        if rows and rows[0]["execution_status"] == "TERMINATED":
            break
        assert time.monotonic() < deadline, f"list --all --json gave {rows}"
        await asyncio.sleep(0.1)
    assert rows[0]["status"] == "Terminated"
