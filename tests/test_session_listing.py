"""What `list`, the search attributes and `temporal workflow list --query` say of a session,
read after each way a session ends: they agree with the session's own status."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from autopilot.infra import search_attributes, temporal_cli
from autopilot.models import SessionState
from autopilot.operate.commands import CommandError, list_sessions, resolve_session
from autopilot.operate.progress_view import summary_line
from tests.gitutil import make_repo
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
        # The query answers from the worker's state, which can be ahead of the recorded
        # history (the attribute's upsert is recorded when the workflow task completes): wait
        # until visibility says Paused too, then terminate.
        still_paused = f"WorkflowId = '{handle.id}' AND AutopilotStatus = 'Paused'"
        await listed_until(client, still_paused, lambda rows: len(rows) == 1)
        await handle.terminate("an operator's temporal workflow terminate")

    # Nothing of the workflow runs on terminate: its attribute still says Paused, so
    # `list` (and a query that means "paused sessions") goes by the execution's status.
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


async def test_status_with_no_id_in_a_repository_is_its_latest_session(
    client: Client, stubs: Stubs, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "src").mkdir()
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    async with worker(client, stubs) as queue:
        older = await start_session(client, queue, repo=str(repo))
        await older.result()
        newer = await start_session(client, queue, repo=str(repo))
        await newer.result()
        elsewhere = await start_session(client, queue)  # another repository's, finished too
        await elsewhere.result()

    deadline = time.monotonic() + DEADLINE_S
    while True:  # visibility is eventually consistent
        try:
            found = await resolve_session(client, None, here=repo / "src")
        except CommandError:
            found = ""
        if found == newer.id:
            break
        assert time.monotonic() < deadline, f"status with no id found {found!r}"
        await asyncio.sleep(0.1)
    with pytest.raises(CommandError, match="none ran on"):
        await resolve_session(client, None, here=make_repo(tmp_path / "other"))


def test_starter_temporal_talks_to_this_installations_server(
    client: Client, tmp_path: Path
) -> None:
    host, _, port = client.service_client.config.target_host.rpartition(":")
    assert host == "127.0.0.1"
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")} | {
        "AUTOPILOT_TEMPORAL_PORT": port,
        "AUTOPILOT_STATE_DIR": str(tmp_path / "state"),
    }
    result = subprocess.run(
        [sys.executable, "starter.py", "temporal", "operator", "search-attribute", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert search_attributes.STATUS.name in result.stdout  # registered on this server only


async def list_rows(client: Client, session_id: str) -> list[dict[str, object]]:
    out = io.StringIO()
    await list_sessions(client, show_all=True, as_json=True, out=out)
    return [row for row in json.loads(out.getvalue()) if row["id"] == session_id]


async def test_a_session_that_continued_as_new_is_listed_once_as_it_ended(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, *(make_task(str(n)) for n in range(1, 25))))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=4, history_limit=200)
        final = await handle.result()
    assert final.status == SessionState.COMPLETED and final.runs > 1

    ended = f"WorkflowId = '{handle.id}' AND AutopilotStatus = 'Completed'"
    rows = await listed_until(client, ended, lambda rows: len(rows) == 1)
    assert rows[0]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    listed = await list_rows(client, handle.id)
    assert [row["status"] for row in listed] == ["Completed"]  # its earlier runs left out


async def test_a_failed_session_is_listed_failed(client: Client, stubs: Stubs) -> None:
    stubs.script(
        "parse_plan",
        "",
        ApplicationError("no tasks found in /plan.md", type="PlanInvalid", non_retryable=True),
    )
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue)
        final = await handle.result()
    assert final.status == SessionState.FAILED

    await listed_until(
        client,
        f"WorkflowId = '{handle.id}' AND AutopilotStatus = 'Failed'",
        lambda rows: len(rows) == 1,
    )
    assert [row["status"] for row in await list_rows(client, handle.id)] == ["Failed"]
    assert "(plan: no tasks found in /plan.md [PlanInvalid])" in summary_line(final)
