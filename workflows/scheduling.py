"""When each task of the session may run: its dependencies (tasks and batches), a free agent
slot (at most `concurrency` task workflows at once, none while paused), one merge into the
target at a time, and the history's room before the session continues as new. Workflow code:
owned by SessionWorkflow, reading the status the session keeps (workflows/session_status.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from autopilot.models import (
        FINISHED_TASK_STATES,
        Batch,
        SessionRequest,
        Task,
        TaskState,
    )
    from workflows.session_status import SessionBoard

# A dependency in one of these lets its dependants go on.
DONE_STATES = frozenset({TaskState.MERGED, TaskState.SKIPPED})
# Events one task in flight may still add to the session's history (child, merge, cleanup,
# details): the margin kept below history_limit when a run drains before continuing as new.
DRAIN_EVENTS_PER_TASK = 40
# The same margin in bytes: a task's result (its reviews) and its merge's events.
DRAIN_BYTES_PER_TASK = 64 * 1024


def history_full(request: SessionRequest, concurrency: int) -> bool:
    """Time to stop starting tasks and continue as new, so that the run ends under
    history_limit (events) and history_bytes_limit: every task still in flight adds its
    merge, cleanup and bookkeeping events while it finishes. The server may say so first.
    A pure reading: wait predicates must not change state."""
    info = workflow.info()
    in_flight = concurrency + 1
    limit, size_limit = request.history_limit, request.history_bytes_limit
    return (
        info.get_current_history_length()
        > max(limit - DRAIN_EVENTS_PER_TASK * in_flight, limit // 2)
        or info.get_current_history_size()
        > max(size_limit - DRAIN_BYTES_PER_TASK * in_flight, size_limit // 2)
        or info.is_continue_as_new_suggested()
    )


class Scheduler:
    """The slots, the merge queue and the dependencies of the session's tasks."""

    def __init__(self, board: SessionBoard) -> None:
        self._board = board
        self.running = 0  # task workflows under way, bounded by the concurrency
        self.merge_queue = asyncio.Lock()  # one merge into the target branch at a time
        self.removing: set[str] = set()  # tasks whose workspace is being removed

    def skip_requested(self, task_id: str) -> bool:
        return task_id in self._board.carry.skip_requested

    def unskip(self, task_id: str) -> None:
        if task_id in self._board.carry.skip_requested:
            self._board.carry.skip_requested.remove(task_id)

    @asynccontextmanager
    async def agent_slot(self, task: Task, request: SessionRequest) -> AsyncIterator[None]:
        """At most `concurrency` task workflows at once, and none starts while paused."""
        status = self._board.status

        def may_go() -> bool:
            if self._board.cancelling or self.skip_requested(task.id):
                return True
            return (
                not history_full(request, status.concurrency)  # finish, then continue as new
                and not status.paused
                and self.running < status.concurrency
            )

        # Temporal checks every waiting condition in one pass, so several tasks can wake for
        # one free slot: each checks again once it runs, and only the first one takes it.
        while not may_go():
            await workflow.wait_condition(may_go)
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1

    def find(self, task_id: str) -> tuple[Batch, Task]:
        plan = self._board.carry.plan
        assert plan is not None
        for batch in plan.batches:
            for task in batch.tasks:
                if task.id == task_id:
                    return batch, task
        raise KeyError(task_id)

    def may_start(self, task: Task) -> bool:
        """Its dependencies have settled (one outside the selected batches was merged by an
        earlier session), and its last workspace is gone."""
        board = self._board
        return task.id not in self.removing and all(
            not board.in_session(dep) or board.task(dep).state in FINISHED_TASK_STATES
            for dep in task.depends_on
        )

    def unmet_dependencies(self, batch: Batch, task: Task) -> str | None:
        board = self._board
        failed = [
            dep
            for dep in task.depends_on
            if board.in_session(dep) and board.task(dep).state not in DONE_STATES
        ]
        if failed:
            return ", ".join(f"Task {dep}" for dep in failed) + " did not merge"
        unmet = [
            f"Batch {number}"
            for number in batch.dependencies
            if any(
                entry.batch == number and entry.state not in DONE_STATES
                for entry in board.status.tasks
            )
        ]
        if unmet:
            return f"batch dependency not met: {', '.join(unmet)}"
        return None

    def blocked_by(self, task_id: str) -> list[str]:
        """Blocked tasks that wait, directly or not, on task_id (or on its batch)."""
        found: list[str] = []
        frontier = [task_id]
        while frontier:
            current = frontier.pop()
            batch_of_current = self._board.task(current).batch
            for entry in self._board.status.tasks:
                if entry.state != TaskState.BLOCKED or entry.id in found or entry.id == task_id:
                    continue
                batch, _ = self.find(entry.id)
                if current in entry.depends_on or batch_of_current in batch.dependencies:
                    found.append(entry.id)
                    frontier.append(entry.id)
        return found
