"""The session's status as it is carried and shown: the one model handed whole to the next run
when the session continues as new (SessionCarry), each task's entry with the revision the live
view reads changes by, the totals, and what the Web UI shows (the details line and the search
attributes). Workflow code: it is owned by SessionWorkflow and changed only from there.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from autopilot.infra import search_attributes
    from autopilot.models import (
        ACTIVE_SESSION_STATES,
        BatchStatus,
        Plan,
        SessionCarry,
        SessionRequest,
        SessionState,
        SessionStatus,
        TaskResult,
        TaskState,
        TaskStatus,
        place_of,
    )

# Patch id (workflow.patched): sessions that ended while paused were published "Paused".
FINISHED_NOT_PAUSED = "finished-not-paused"
# The request's settings a session's status shows from its start, under the same names.
_SHOWN_SETTINGS = {
    "repo",
    "plan_path",
    "target_branch",
    "config_commit",
    "concurrency",
    "max_cost_usd",
}


def first_carry(request: SessionRequest) -> SessionCarry:
    """What a session knows when it starts, or what its last run handed on."""
    if request.carry is not None:  # a continued run: pick up where the last one stopped
        request.carry.status.runs += 1
        return request.carry
    return SessionCarry(
        status=SessionStatus(
            id=request.session_id,
            status=SessionState.PARSING,
            **request.model_dump(include=_SHOWN_SETTINGS),
        )
    )


class SessionBoard:
    """The carried state, its task entries and totals, and what is published of it."""

    def __init__(self, carry: SessionCarry) -> None:
        self.carry = carry
        self._published: tuple[object, ...] = ()

    @property
    def status(self) -> SessionStatus:
        return self.carry.status

    @property
    def cancelling(self) -> bool:
        return self.status.cancel_reason is not None

    def task(self, task_id: str) -> TaskStatus:
        return self.status.task(task_id)

    def in_session(self, task_id: str) -> bool:
        return any(task.id == task_id for task in self.status.tasks)

    def mark_changed(self, entry: TaskStatus) -> None:
        """The entry changed in this step: the `changes` query sends it again to whoever saw
        an earlier revision."""
        self.status.revision += 1
        entry.revision = self.status.revision

    def track(self, plan: Plan, request: SessionRequest) -> None:
        """The parsed plan's batches and tasks, every task pending."""
        self.carry.plan = plan
        status = self.status
        status.plan_title = plan.title
        status.plan_sha256 = plan.sha256
        status.total_batches = len(plan.batches)
        status.batches = [
            BatchStatus(
                number=batch.number,
                title=batch.title,
                dependencies=batch.dependencies,
                execution_place=place_of(request, batch),
                sequential=batch.sequential,
                task_ids=[task.id for task in batch.tasks],
            )
            for batch in plan.batches
        ]
        status.tasks = [
            TaskStatus(id=task.id, title=task.title, batch=batch.number, depends_on=task.depends_on)
            for batch in plan.batches
            for task in batch.tasks
        ]
        for entry in status.tasks:
            self.mark_changed(entry)
            entry.fresh_start = request.fresh  # a merged one is found merged first, untouched
        status.tasks_total = len(status.tasks)
        status.done_in_plan = plan.done_tasks  # shown, never run: the session has no other use

    def absorb(self, entry: TaskStatus, result: TaskResult) -> None:
        """A finished task workflow's figures, added to what earlier runs of it reported."""
        self.mark_changed(entry)
        entry.branch = result.branch or entry.branch
        if result.set_aside:
            entry.set_aside.append(result.set_aside)
        entry.commit_count = len(result.commits) or entry.commit_count
        entry.lost_runs += result.lost_runs
        for run in result.agent_runs:
            entry.attempts += not run.lost
            entry.cost_usd += run.cost_usd
            entry.turns += run.turns
            entry.input_tokens += run.input_tokens
            entry.output_tokens += run.output_tokens
        # The reviews and transcripts themselves stay in the task workflow's result (`status
        # --json` fills them in): the session's status travels in every query, update and
        # continue-as-new, one entry per task.
        if result.setup:
            entry.setup = result.setup[-1].summary()
        entry.review_rounds += len(result.reviews)
        for review in result.reviews:
            entry.cost_usd += review.reviewer_cost_usd

    def recount(self) -> None:
        status = self.status
        status.tasks_completed = sum(task.state == TaskState.MERGED for task in status.tasks)
        status.cost_usd = sum(task.cost_usd for task in status.tasks)
        status.input_tokens = sum(task.input_tokens for task in status.tasks)
        status.output_tokens = sum(task.output_tokens for task in status.tasks)

    def over_budget(self) -> bool:
        """The budget is spent while work is left, and the session is not paused yet."""
        status = self.status
        budget = status.max_cost_usd
        work_left = any(task.state == TaskState.PENDING for task in status.tasks)
        return budget is not None and status.cost_usd >= budget and work_left and not status.paused

    def show_progress(self) -> None:
        """What the Web UI shows: the current details line and the search attributes."""
        status = self.status
        paused = f" — PAUSED: {status.pause_reason}" if status.paused else ""
        workflow.set_current_details(
            f"**{status.status.value}**{paused} — batch {status.current_batch} "
            f"({status.total_batches} batches), {status.tasks_completed}/{status.tasks_total} "
            f"tasks merged, ${status.cost_usd:.2f}"
        )
        self._publish()

    def _label(self) -> str:
        status = self.status
        label = "Paused" if status.paused else status.status.value.title()
        if self.cancelling and status.status in ACTIVE_SESSION_STATES:
            label = "Cancelling"
        finished = status.status not in ACTIVE_SESSION_STATES
        if finished and status.paused:
            if workflow.patched(FINISHED_NOT_PAUSED):
                label = status.status.value.title()  # a session cancelled while paused is over
            else:
                label = "Paused"  # recorded before: it stayed published as paused
        return label

    def _publish(self) -> None:
        status = self.status
        label = self._label()
        plan_name = status.plan_path.rsplit("/", 1)[-1]
        pulls = [task.pull_request.url for task in status.tasks if task.pull_request]
        published = (label, plan_name, status.repo, status.current_batch, *pulls)
        if published == self._published:
            return  # every upsert is a history event: only on change
        self._published = published
        updates: list[SearchAttributeUpdate[Any]] = [
            search_attributes.STATUS.value_set(label),
            search_attributes.PLAN.value_set(plan_name),
            search_attributes.REPO.value_set(status.repo),
        ]
        if status.current_batch is not None:
            updates.append(search_attributes.BATCH.value_set(status.current_batch))
        if pulls:  # forge mode only: sessions without a pull request publish what they did
            updates.append(search_attributes.PULL_REQUESTS.value_set(pulls))
        workflow.upsert_search_attributes(updates)

    def duration(self) -> float | None:
        status = self.status
        if status.started_at is None or status.completed_at is None:
            return None
        return (status.completed_at - status.started_at).total_seconds()

    def finish(self, state: SessionState, error: str | None = None) -> SessionStatus:
        self.status.status = state
        self.status.error = error
        self.status.completed_at = workflow.now()
        self.show_progress()
        return self.status
