"""Follow a session until it ends, and say how it ended.

The view refreshes once a second through a LiveSession (autopilot/operate/live_tasks.py): a
describe of the session and of each running task every time (server only), and a query to the
worker only for a workflow whose history moved since it last answered.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from autopilot.models import SessionState, SessionStatus
from autopilot.operate.live_tasks import LiveSession
from autopilot.operate.progress_view import ProgressView, summary_line, task_line
from workflows.session import SessionWorkflow

EXIT_MERGED, EXIT_NOT_MERGED = 0, 1
REFRESH_S = 1.0


async def follow(
    client: Client, handle: WorkflowHandle[SessionWorkflow, SessionStatus], out: TextIO
) -> SessionStatus:
    """Show progress until the session ends; returns its final status."""
    result = asyncio.ensure_future(handle.result())
    live = LiveSession(client, handle)
    with ProgressView(out) as view:
        while True:
            done, _ = await asyncio.wait({result}, timeout=REFRESH_S)
            if done:
                break
            try:
                status, tasks = await live.refresh()
            except (RPCError, TimeoutError) as err:
                view.notice(f"waiting for a worker to answer ({err.__class__.__name__})")
                continue
            view.notice("")
            view.update(status, tasks)
        final = result.result()
        view.update(final)
    return final


def report(final: SessionStatus, ui_url: str, out: TextIO) -> int:
    """The final summary; returns the exit code: 0 only when every task merged."""
    out.write("\n" + summary_line(final) + "\n")
    for task in final.tasks:
        out.write(f"  {task_line(task)}\n")
    if final.error:
        out.write(f"Session error: {final.error}\n")
    if ui_url:
        out.write(f"Web UI: {ui_url}/namespaces/default/workflows/{final.id}\n")
    return EXIT_MERGED if final.status == SessionState.COMPLETED else EXIT_NOT_MERGED
