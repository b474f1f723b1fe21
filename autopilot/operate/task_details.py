"""The whole record of each task, read back from its task workflows' results.

The session keeps a compact entry per task (its status travels in every query, update and
continue-as-new, and Temporal refuses payloads over 2 MB). `status --json` shows the rest:
every review, transcript and commit, from the results of the task workflows, which Temporal
keeps whether or not a worker is running.
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from autopilot.models import SessionStatus, TaskResult, TaskStatus

PARALLEL_READS = 16  # result reads in flight at once: a 1,000-task status stays quick


def run_ids(session_id: str, entry: TaskStatus) -> list[str]:
    """The workflow ids this task's runs had, oldest first (see SessionWorkflow._execute_task)."""
    ids: list[str] = []
    for retry in range(entry.retries + 1):
        base = f"{session_id}/task-{entry.id}" + (f"/retry-{retry}" if retry else "")
        ids += [base, f"{base}/conflict", f"{base}/merged-checks"]
        ids += [f"{base}/forge-{number}" for number in range(1, entry.forge_rounds + 1)]
    return ids


async def _result(client: Client, workflow_id: str, gate: asyncio.Semaphore) -> TaskResult | None:
    async with gate:
        handle = client.get_workflow_handle(workflow_id, result_type=TaskResult)
        try:
            if (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
                return None
            result: TaskResult = await handle.result()
        except RPCError:
            return None  # never ran (no conflict round, say), or gone with the retention
        return result


async def with_details(client: Client, status: SessionStatus) -> SessionStatus:
    """`status` with each task's reviews, workspace setups, transcripts and commits filled in."""
    gate = asyncio.Semaphore(PARALLEL_READS)
    detailed = status.model_copy(deep=True)
    entries = [task for task in detailed.tasks if task.workflow_id]
    results = await asyncio.gather(
        *(
            asyncio.gather(*(_result(client, wid, gate) for wid in run_ids(status.id, entry)))
            for entry in entries
        )
    )
    for entry, runs in zip(entries, results, strict=True):
        for result in runs:
            if result is None:
                continue
            entry.transcripts += [run.transcript_path for run in result.agent_runs]
            entry.transcripts += [r.reviewer_transcript for r in result.reviews]
            entry.transcripts = [path for path in entry.transcripts if path]
            entry.reviews += result.reviews
            entry.setup_runs += result.setup
            entry.commits = result.commits or entry.commits
        entry.transcript = entry.transcripts[-1] if entry.transcripts else entry.transcript
        entry.review = entry.reviews[-1].summary if entry.reviews else entry.review
    return detailed
