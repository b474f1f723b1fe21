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

from autopilot.infra import printable
from autopilot.models import SessionState, SessionStatus, TaskState
from autopilot.operate.live_tasks import LiveSession
from autopilot.operate.progress_view import ProgressView, failure_details, summary_line, task_line
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


def report(final: SessionStatus, ui_url: str, out: TextIO, rerun: str = "") -> int:
    """The final summary, each failed task with what failed; returns the exit code: 0 only
    when every task merged. `rerun`: the command that ran it, to go on with what is left."""
    out.write("\n" + summary_line(final) + "\n")
    for task in final.tasks:
        out.write(f"  {task_line(task)}\n")
        for detail in failure_details(task):
            out.write(f"      {detail}\n")
    if final.error:
        out.write(printable(f"Session error: {final.error}", keep="\n") + "\n")
    unfinished = [task.id for task in final.tasks if task.state != TaskState.MERGED]
    if rerun and unfinished and final.status != SessionState.COMPLETED:
        out.write(
            printable(
                f"Next: fix what the tasks above say, then run the same command again; it "
                f"skips what merged and runs the {len(unfinished)} unfinished task(s) "
                f"({', '.join(unfinished)}):\n  {rerun}",
                keep="\n",
            )
            + "\n"
        )
        rejected = [task.id for task in final.tasks if task.state == TaskState.REJECTED]
        if rejected and "--fresh" not in rerun.split():
            out.write(
                printable(
                    f"  It goes on from each task's branch: a rejected task's commits stay in "
                    f"its history ({', '.join(rejected)}). Add --fresh to start every unmerged "
                    f"task from {final.target_branch}'s head instead (its branch set aside).",
                )
                + "\n"
            )
    if ui_url:
        out.write(f"Web UI: {ui_url}/namespaces/default/workflows/{final.id}\n")
    return EXIT_MERGED if final.status == SessionState.COMPLETED else EXIT_NOT_MERGED
