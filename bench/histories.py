"""What the workflow histories of one installation say: how many events each has, and where
the time went (activities' own run time, how long they and workflow tasks waited in a queue)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecution, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

SESSION_TYPE = "SessionWorkflow"
FETCHES_AT_ONCE = 8
LIST_DEADLINE_S = 20.0

E = EventType


@dataclass
class HistoryStats:
    workflows: int = 0  # executions (each run of a continued-as-new session counts)
    session_runs: int = 0
    max_events: int = 0
    max_events_workflow: str = ""
    session_events: list[int] = field(default_factory=list)  # per session run, in start order
    task_events_max: int = 0
    # Seconds each activity type ran (started to closed), summed over all its executions.
    activity_s: dict[str, float] = field(default_factory=dict)
    activity_count: dict[str, int] = field(default_factory=dict)
    activity_wait_s: list[float] = field(default_factory=list)  # scheduled -> started
    workflow_task_wait_s: list[float] = field(default_factory=list)  # scheduled -> started
    workflow_task_run_s: list[float] = field(default_factory=list)  # started -> completed
    workflow_tasks: int = 0
    # The largest Payloads of any event (a workflow or activity input or result, a
    # continue-as-new's carried state, an update's result): what the server's blob size limit
    # applies to.
    max_payload_bytes: int = 0
    max_payload_where: str = ""
    session_start_s: float = 0.0  # epoch seconds: the first session run started
    session_close_s: float = 0.0  # epoch seconds: the last session run closed


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.ToNanoseconds() / 1e9


def _absorb_timings(stats: HistoryStats, events: list[HistoryEvent]) -> None:
    by_id = {event.event_id: event for event in events}
    for event in events:
        kind = event.event_type
        if kind == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            scheduled = by_id.get(event.workflow_task_started_event_attributes.scheduled_event_id)
            stats.workflow_tasks += 1
            if scheduled is not None:
                stats.workflow_task_wait_s.append(_seconds(event) - _seconds(scheduled))
        elif kind == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            started = by_id.get(event.workflow_task_completed_event_attributes.started_event_id)
            if started is not None:
                stats.workflow_task_run_s.append(_seconds(event) - _seconds(started))
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            scheduled = by_id.get(event.activity_task_started_event_attributes.scheduled_event_id)
            if scheduled is not None:
                stats.activity_wait_s.append(_seconds(event) - _seconds(scheduled))
        elif kind in (
            E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            E.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
        ):
            attrs = (
                event.activity_task_completed_event_attributes
                if kind == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                else event.activity_task_failed_event_attributes
                if kind == E.EVENT_TYPE_ACTIVITY_TASK_FAILED
                else event.activity_task_timed_out_event_attributes
            )
            started = by_id.get(attrs.started_event_id)
            scheduled = by_id.get(attrs.scheduled_event_id)
            if started is None or scheduled is None:
                continue
            name = scheduled.activity_task_scheduled_event_attributes.activity_type.name
            stats.activity_s[name] = (
                stats.activity_s.get(name, 0.0) + _seconds(event) - _seconds(started)
            )
            stats.activity_count[name] = stats.activity_count.get(name, 0) + 1


def payload_sizes(message: Message) -> Iterator[int]:
    """The encoded size of every Payloads inside `message` (map fields, which hold memos and
    search attributes, are not walked)."""
    for described, value in message.ListFields():
        kind = described.message_type
        if kind is None or kind.GetOptions().map_entry:
            continue
        for item in value if described.is_repeated else [value]:
            if isinstance(item, Payloads):
                yield item.ByteSize()
            else:
                yield from payload_sizes(item)


def _absorb_payloads(
    stats: HistoryStats, execution: WorkflowExecution, events: list[HistoryEvent]
) -> None:
    for event in events:
        size = max(payload_sizes(event), default=0)
        if size > stats.max_payload_bytes:
            kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
            stats.max_payload_bytes = size
            stats.max_payload_where = f"{execution.id}, event {event.event_id} ({kind})"


def absorb(stats: HistoryStats, execution: WorkflowExecution, history: WorkflowHistory) -> None:
    events = list(history.events)
    count = len(events)
    stats.workflows += 1
    if count > stats.max_events:
        stats.max_events, stats.max_events_workflow = count, f"{execution.id} ({execution.run_id})"
    if execution.workflow_type == SESSION_TYPE:
        stats.session_runs += 1
        if events:
            first, last = _seconds(events[0]), _seconds(events[-1])
            stats.session_start_s = min(stats.session_start_s or first, first)
            stats.session_close_s = max(stats.session_close_s, last)
    else:
        stats.task_events_max = max(stats.task_events_max, count)
    _absorb_timings(stats, events)
    _absorb_payloads(stats, execution, events)


def in_session(execution: WorkflowExecution, session_id: str) -> bool:
    """The session's own runs and its task workflows (`<session>/task-<id>...`)."""
    return execution.id == session_id or execution.id.startswith(f"{session_id}/")


async def _executions(client: Client, session_id: str, expected: int) -> list[WorkflowExecution]:
    """The session's executions, closed ones included; visibility may lag a moment behind."""
    deadline = asyncio.get_running_loop().time() + LIST_DEADLINE_S
    while True:
        found = [
            execution
            async for execution in client.list_workflows()
            if in_session(execution, session_id)
        ]
        if len(found) >= expected or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)  # waiting for visibility to catch up, bounded by the deadline


async def collect(address: str, session_id: str, expected: int) -> HistoryStats:
    """Fetch every history of the session (`expected`: at least this many executions) and sum
    them up."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    executions = await _executions(client, session_id, expected)
    limit = asyncio.Semaphore(FETCHES_AT_ONCE)

    async def fetch(execution: WorkflowExecution) -> WorkflowHistory:
        async with limit:
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            return await handle.fetch_history()

    histories = await asyncio.gather(*(fetch(execution) for execution in executions))
    stats = HistoryStats()
    pairs = sorted(zip(executions, histories, strict=True), key=lambda p: p[0].start_time)
    for execution, history in pairs:
        absorb(stats, execution, history)
        if execution.workflow_type == SESSION_TYPE:
            stats.session_events.append(len(history.events))
    return stats
