"""What `status` shows: the session's state, its batches and one entry per task."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from autopilot.models.forge import PullRequestRef
from autopilot.models.notifications import NotifyFailure
from autopilot.models.plan import DoneTask
from autopilot.models.review import ReviewResult
from autopilot.models.setup import SetupResult
from autopilot.models.site import ExecutionPlace
from autopilot.models.task import TaskState
from autopilot.models.workspace import CommitInfo


class TaskStatus(BaseModel):
    id: str
    title: str
    batch: int
    state: TaskState = TaskState.PENDING
    depends_on: list[str] = Field(default_factory=list)
    workflow_id: str = ""
    retries: int = 0  # times the operator sent it round again
    branch: str = ""
    # Its next run starts from the target's head, its branch's work set aside (`--fresh`).
    fresh_start: bool = False
    set_aside: list[str] = Field(default_factory=list)  # where earlier work is kept, oldest first
    attempts: int = 0
    commit_count: int = 0
    commits: list[CommitInfo] = Field(default_factory=list)  # filled by `status --json`
    merge_sha: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    turns: int = 0
    # The session keeps a compact record (its status travels in every query, update and
    # continue-as-new); `status --json` fills transcript, review and the lists below from the
    # task workflows' results.
    transcript: str = ""  # the latest run's
    review_rounds: int = 0
    review: str = ""  # the latest review's summary
    lost_runs: int = 0  # runs lost without a failure, all runs of this task together
    workspace_left: str = ""  # a workspace whose removal failed: `starter.py cleanup` takes it
    transcripts: list[str] = Field(default_factory=list)
    reviews: list[ReviewResult] = Field(default_factory=list)
    conflict_round: bool = False  # the branch needed a conflict round before it merged
    # The branch merged with the target's new commits was checked before it merged (times),
    # and those checks failed once, which gave it a round (verify_merged).
    merge_checks: int = 0
    merged_checks_round: bool = False
    # Forge mode: the task's pull request, and where it stands there ("waiting for checks",
    # "waiting for review", "feedback round 1").
    pull_request: PullRequestRef | None = None
    forge_phase: str = ""
    forge_rounds: int = 0  # feedback and conflict rounds the forge gave it (the most of any run)
    setup: str = ""  # the latest workspace setup, in a few words ("from cache")
    setup_runs: list[SetupResult] = Field(default_factory=list)  # filled by `status --json`
    last_error: str | None = None
    revision: int = 0  # the session's revision when this entry last changed (see changes)

    @model_serializer(mode="wrap")
    def _only_what_is_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Fields still at their defaults are left out (reading fills them in again): a
        session's status holds one entry per task, in every query, update and
        continue-as-new, and must stay far below the server's payload limit at 1,000 tasks."""
        data: dict[str, Any] = handler(self)
        return {
            key: value
            for key, value in data.items()
            if key in _ALWAYS_SHOWN or value != _TASK_STATUS_DEFAULTS.get(key, _UNSET)
        }


_UNSET = object()


_ALWAYS_SHOWN = frozenset({"id", "title", "batch", "state"})


_TASK_STATUS_DEFAULTS = {
    name: field.get_default(call_default_factory=True)
    for name, field in TaskStatus.model_fields.items()
    if not field.is_required()
}


class SessionState(StrEnum):
    PARSING = "parsing"
    RUNNING = "running"
    COMPLETED = "completed"  # every task merged
    INCOMPLETE = "incomplete"  # finished, but some tasks did not merge
    CANCELLED = "cancelled"
    FAILED = "failed"  # the session itself could not run (e.g. the plan does not parse)


ACTIVE_SESSION_STATES = frozenset({SessionState.PARSING, SessionState.RUNNING})


class BatchStatus(BaseModel):
    number: int
    title: str
    dependencies: list[int] = Field(default_factory=list)
    # "execution_mode" in payloads recorded before the rename.
    execution_place: ExecutionPlace | None = Field(
        default=None, validation_alias=AliasChoices("execution_place", "execution_mode")
    )
    sequential: bool = False
    task_ids: list[str] = Field(default_factory=list)


class SessionStatus(BaseModel):
    id: str
    status: SessionState
    repo: str
    plan_path: str
    plan_title: str | None = None
    plan_sha256: str = ""  # the snapshot this session runs, whatever the file says now
    target_branch: str
    # The commit whose .autopilot.toml the session runs with ("" : started before it was kept).
    config_commit: str = ""
    # What the latest `resume --reload-config` changed, one line per setting.
    config_changes: list[str] = Field(default_factory=list)
    concurrency: int  # the live value: the operator may change it
    current_batch: int | None = None
    total_batches: int = 0
    batches: list[BatchStatus] = Field(default_factory=list)
    tasks_completed: int = 0  # merged
    tasks_total: int = 0
    tasks: list[TaskStatus] = Field(default_factory=list)
    done_in_plan: list[DoneTask] = Field(default_factory=list)  # marked done: never run
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    max_cost_usd: float | None = None  # the budget: reaching it pauses the session
    paused: bool = False
    pause_reason: str | None = None
    cancel_reason: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    runs: int = 1  # workflow runs so far: each continue-as-new starts another
    error: str | None = None
    revision: int = 0  # counts changes to task entries; each entry keeps the one it got
    # Notifications that failed after their retries, the latest few (NOTIFY_FAILURES_KEPT).
    notify_failures: list[NotifyFailure] = Field(default_factory=list)

    def task(self, task_id: str) -> TaskStatus:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)


class SessionChanges(BaseModel):
    """The answer to the session's `changes` query: its status without the task entries, and
    the entries changed since the revision asked about (every one when asked about 0). The
    live view asks once a second; the whole status of a 1,000-task session is ~1 MB."""

    session: SessionStatus  # `tasks` left empty
    tasks: list[TaskStatus] = Field(default_factory=list)

    def applied_to(self, known: SessionStatus | None) -> SessionStatus:
        """The whole status: `known` (an earlier whole status) with the changed entries in."""
        entries = {task.id: task for task in known.tasks} if known is not None else {}
        entries.update((task.id, task) for task in self.tasks)
        return self.session.model_copy(update={"tasks": list(entries.values())})
