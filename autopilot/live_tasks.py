"""What the running tasks are doing now: their phase and their agent's latest heartbeat.

The session's status says which tasks run; each task workflow answers a `phase` query, and its
agent's latest heartbeat (session id, turns, cost, transcript) sits on its pending activity.
Reading them costs a query and a describe per running task and adds nothing to any history.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client
from temporalio.service import RPCError

from autopilot.models import AgentProgress, SessionStatus, TaskState

AGENT_ACTIVITIES = ("run_agent", "review_changes")


@dataclass(frozen=True)
class LiveTask:
    phase: str
    agent: AgentProgress | None = None


async def live_tasks(client: Client, status: SessionStatus) -> dict[str, LiveTask]:
    found: dict[str, LiveTask] = {}
    for task in status.tasks:
        if task.state != TaskState.RUNNING or not task.workflow_id:
            continue
        handle = client.get_workflow_handle(task.workflow_id)
        try:
            phase = await handle.query("phase")
            description = await handle.describe()
        except RPCError:
            continue  # not started yet, or the server is busy: shown next refresh
        agent = None
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name not in AGENT_ACTIVITIES:
                continue
            if pending.HasField("heartbeat_details") and pending.heartbeat_details.payloads:
                decoded = await client.data_converter.decode(
                    pending.heartbeat_details.payloads, [AgentProgress]
                )
                agent = AgentProgress.model_validate(decoded[0])
        found[task.id] = LiveTask(phase=str(phase), agent=agent)
    return found
