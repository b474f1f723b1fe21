"""What the running agents are doing now: read from their heartbeat details.

The session's status says which tasks run; the agent activity's latest heartbeat (session id,
turns, cost, transcript) sits on its task workflow's pending activity. Reading it costs one
describe per running task and adds nothing to any workflow history.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError

from autopilot.models import AgentProgress, SessionStatus, TaskState


async def live_agents(client: Client, status: SessionStatus) -> dict[str, AgentProgress]:
    found: dict[str, AgentProgress] = {}
    for task in status.tasks:
        if task.state != TaskState.RUNNING or not task.workflow_id:
            continue
        try:
            description = await client.get_workflow_handle(task.workflow_id).describe()
        except RPCError:
            continue  # not started yet, or the server is busy: shown next refresh
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name != "run_agent":
                continue
            if pending.HasField("heartbeat_details") and pending.heartbeat_details.payloads:
                decoded = await client.data_converter.decode(
                    pending.heartbeat_details.payloads, [AgentProgress]
                )
                found[task.id] = AgentProgress.model_validate(decoded[0])
    return found
