"""What a session and its running tasks are doing now, for the starter's live view.

The session's `changes` query says which tasks run; each task workflow answers a `phase` query,
and its agent's latest heartbeat (session id, turns, cost, transcript) sits on its pending
activity. A query is a round trip through the server to the worker, which replays or reads the
workflow and serialises its answer; a describe is answered by the server alone.

A workflow's state changes only when the worker completes a workflow task, and that always adds
events to its history; heartbeats and queries add none. So LiveSession, asked once a second,
describes the session and each running task (the describe also carries the heartbeat) and sends
a query only to a workflow whose history (run id and length) moved since its last answer; other
times it reuses that answer. A refresh in which nothing happened costs 1 + N describes (N
running tasks) and no work on the worker, instead of 1 + N queries and N describes (with 4
running tasks on the embedded dev server, measured: worker 0, server ~20 ms, starter ~9 ms CPU,
down from ~28, ~57 and ~14 ms). A refresh after a change costs the describes plus the queries
of what moved. The view is as fresh as ever: status and phases are those of the current
history, the turns come from each refresh's describe. Nothing of this adds to any history.

The session's answer is small too: `changes(since)` sends the session's own fields and only
the task entries changed after the revision this view last saw, which it puts into its copy
(the whole status of a 1,000-task session is ~1 MB; serialising that once a second grew the
worker's memory and the SDK warned about the payload size).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from autopilot.models import AgentProgress, SessionChanges, SessionStatus, TaskState
from workflows.session import SessionWorkflow

T = TypeVar("T")
AGENT_ACTIVITIES = ("run_agent", "review_changes")
QUERY_TIMEOUT = timedelta(seconds=5)

# The version of a workflow's state: its run and its history length. Equal versions, equal state.
Version = tuple[str, int]


@dataclass(frozen=True)
class LiveTask:
    phase: str
    agent: AgentProgress | None = None


@dataclass(frozen=True)
class _Answer(Generic[T]):
    version: Version
    value: T


def whole(status: SessionStatus) -> SessionChanges:
    """A whole status as an answer to `changes`: every entry changed."""
    return SessionChanges(session=status.model_copy(update={"tasks": []}), tasks=status.tasks)


def version_of(description: WorkflowExecutionDescription) -> Version:
    return description.run_id, description.raw_description.workflow_execution_info.history_length


class LiveSession:
    """One session followed live: `refresh()` once a second gives its status and what each
    running task is doing, querying the worker only about workflows whose history moved."""

    def __init__(
        self,
        client: Client,
        handle: WorkflowHandle[Any, SessionStatus],
        rpc_timeout: timedelta = QUERY_TIMEOUT,
    ) -> None:
        self._client = client
        self._handle = handle
        self._rpc_timeout = rpc_timeout
        self._status: _Answer[SessionStatus] | None = None
        self._phases: dict[str, _Answer[str]] = {}  # by task workflow id: running tasks only
        self._whole_status_only = False  # the worker has no `changes` query

    async def refresh(self) -> tuple[SessionStatus, dict[str, LiveTask]]:
        """The session's status and its running tasks' phases and heartbeats. Raises RPCError
        or TimeoutError when the session cannot be read (no worker answers its query); a task
        that cannot be read is left out this time."""
        status = await self.status()
        return status, await self.tasks(status)

    async def status(self) -> SessionStatus:
        """The session's status; queried only when its history moved since the last answer."""
        description = await self._handle.describe(rpc_timeout=self._rpc_timeout)
        version = version_of(description)
        if self._status is None or self._status.version != version:
            # Described before queried: an answer at least as new as `version`, so a change in
            # between only costs one more query next time, never a stale status.
            self._status = _Answer(version, await self._changed_status())
        return self._status.value

    async def _changed_status(self) -> SessionStatus:
        """The last status with the task entries changed since then put in."""
        known = self._status.value if self._status is not None else None
        since = known.revision if known is not None else 0
        changes = await self._changes(since)
        if changes.session.revision < since:
            # The session went back (reset to an earlier point): start over from everything.
            known, changes = None, await self._changes(0)
        return changes.applied_to(known)

    async def _changes(self, since: int) -> SessionChanges:
        if self._whole_status_only:
            return whole(await self._whole_status())
        try:
            return await self._handle.query(
                SessionWorkflow.changes, since, rpc_timeout=self._rpc_timeout
            )
        except WorkflowQueryFailedError as err:
            if "changes" not in str(err):
                raise
            # A worker from before the `changes` query (still running an older checkout).
            self._whole_status_only = True
            return whole(await self._whole_status())

    async def _whole_status(self) -> SessionStatus:
        return await self._handle.query(SessionWorkflow.status, rpc_timeout=self._rpc_timeout)

    async def tasks(self, status: SessionStatus) -> dict[str, LiveTask]:
        """Phase and agent heartbeat of each running task of `status`, by task id."""
        found: dict[str, LiveTask] = {}
        running = {
            task.id: task.workflow_id
            for task in status.tasks
            if task.state == TaskState.RUNNING and task.workflow_id
        }
        for workflow_id in set(self._phases) - set(running.values()):
            del self._phases[workflow_id]
        for task_id, workflow_id in running.items():
            try:
                found[task_id] = await self._task(workflow_id)
            except (RPCError, TimeoutError):
                continue  # not started yet, or the server is busy: shown next refresh
        return found

    async def _task(self, workflow_id: str) -> LiveTask:
        handle = self._client.get_workflow_handle(workflow_id)
        description = await handle.describe(rpc_timeout=self._rpc_timeout)
        version = version_of(description)
        cached = self._phases.get(workflow_id)
        if cached is None or cached.version != version:
            phase = await handle.query("phase", rpc_timeout=self._rpc_timeout)
            cached = self._phases[workflow_id] = _Answer(version, str(phase))
        return LiveTask(phase=cached.value, agent=await self._heartbeat(description))

    async def _heartbeat(self, description: WorkflowExecutionDescription) -> AgentProgress | None:
        """The latest heartbeat of the task's running agent (or reviewer), if any."""
        agent = None
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name not in AGENT_ACTIVITIES:
                continue
            if pending.HasField("heartbeat_details") and pending.heartbeat_details.payloads:
                decoded = await self._client.data_converter.decode(
                    pending.heartbeat_details.payloads, [AgentProgress]
                )
                agent = AgentProgress.model_validate(decoded[0])
        return agent
