"""A task workflow's input and result, and a task's state in its session."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from autopilot.models.agent import AgentRun, AgentSettings
from autopilot.models.checks import CheckResult
from autopilot.models.container import ContainerSettings
from autopilot.models.plan import Batch, Plan, Task
from autopilot.models.review import ReviewResult, ReviewSettings
from autopilot.models.setup import SetupResult, WorkspaceSettings
from autopilot.models.site import ExecutionPlace, TaskSite
from autopilot.models.workspace import CommitInfo

if TYPE_CHECKING:
    from autopilot.models.session import SessionRequest


class TaskRequest(BaseModel):
    session_id: str
    repo: str
    target_branch: str
    state_dir: str
    task: Task
    # Set when `task` is an outline: the activities read its body, the plan context and the
    # batch description from this snapshot (plan_snapshots.full_request).
    plan_sha256: str = ""
    plan_path: str = ""
    plan_title: str | None = None
    plan_context: str = ""
    batch_title: str = ""
    batch_description: str = ""
    agent: AgentSettings
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    # The conflict round: the branch was ready but no longer merges into the target; merge
    # the target into it, let the agent resolve, review again.
    resolve_conflict: bool = False
    # A conflict round after the branch merged with the target failed these checks
    # (verify_merged): the agent is told so, with their output.
    merged_checks: list[CheckResult] = Field(default_factory=list)
    # Set: the task's agent and checks run in a Dagger container built so (container mode).
    container: ContainerSettings | None = None
    # Start from the target's head, the task branch's work set aside (`--fresh`).
    fresh: bool = False
    # Forge mode: a round after the task's pull request failed a required check or a person
    # asked for changes; the agent's first job is to fix what this review says.
    forge_feedback: ReviewResult | None = None

    @classmethod
    def of(
        cls,
        request: SessionRequest,
        plan: Plan,
        batch: Batch,
        task: Task,
        resolve_conflict: bool = False,
        merged_checks: list[CheckResult] | None = None,
        fresh: bool = False,
        forge_feedback: ReviewResult | None = None,
    ) -> TaskRequest:
        """The input of `task`'s TaskWorkflow, as the session sends it."""
        where = {"session_id", "repo", "target_branch", "state_dir", "plan_path"}
        return cls(
            **request.model_dump(include=where),  # the session's, under the same names
            task=task,
            # An outline's texts are read from the snapshot by the task's activities.
            plan_sha256=plan.sha256 if plan.outline else "",
            plan_title=plan.title,
            plan_context=plan.context,
            batch_title="" if batch.implicit else batch.title,
            batch_description=batch.description,
            agent=request.agent,
            review=request.review,
            workspace=request.workspace,
            resolve_conflict=resolve_conflict,
            merged_checks=merged_checks or [],
            container=request.container if place_of(request, batch) == "dagger" else None,
            fresh=fresh,
            forge_feedback=forge_feedback,
        )


def place_of(request: SessionRequest, batch: Batch) -> ExecutionPlace:
    """Where a batch's tasks run: its own `**Execution Mode:**` place, else the session's."""
    return batch.execution_place or request.execution_place


class TaskState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # the task workflow works: workspace, agent, commits, review
    MERGING = "merging"
    MERGED = "merged"
    NO_CHANGES = "no_changes"  # the agent finished but left nothing to merge
    REJECTED = "rejected"  # still not approved after the last review round; branch kept
    CONFLICT = "conflict"  # does not merge even after the conflict round; branch kept
    FAILED = "failed"
    BLOCKED = "blocked"  # a dependency did not merge
    SKIPPED = "skipped"  # the operator skipped it; its dependants go on
    CANCELLED = "cancelled"  # the session was cancelled before the task finished


FINISHED_TASK_STATES = frozenset(
    {
        TaskState.MERGED,
        TaskState.NO_CHANGES,
        TaskState.REJECTED,
        TaskState.CONFLICT,
        TaskState.FAILED,
        TaskState.BLOCKED,
        TaskState.SKIPPED,
        TaskState.CANCELLED,
    }
)


# What the operator may `retry`.
RETRYABLE_TASK_STATES = frozenset(
    {
        TaskState.FAILED,
        TaskState.REJECTED,
        TaskState.CONFLICT,
        TaskState.BLOCKED,
        TaskState.NO_CHANGES,
        TaskState.SKIPPED,
    }
)


# How a task workflow hands its task back: "ready" to merge, "already_merged", "lost" (its
# runs were lost too often in a row, max_lost_runs; nothing failed: it runs again), or the
# TaskState it ended in, under that state's own value (the session reads it as TaskState).
TaskOutcome = Literal[
    "ready", "already_merged", "no_changes", "rejected", "conflict", "failed", "cancelled", "lost"
]


class TaskResult(BaseModel):
    """What a TaskWorkflow hands back to its session: a branch ready to merge, or why not."""

    task_id: str
    outcome: TaskOutcome
    branch: str = ""
    workspace_path: str = ""
    base_sha: str = ""
    commits: list[CommitInfo] = Field(default_factory=list)
    merge_sha: str | None = None
    agent_runs: list[AgentRun] = Field(default_factory=list)  # every attempt, failed ones too
    reviews: list[ReviewResult] = Field(default_factory=list)  # one per round
    error: str | None = None
    error_type: str | None = None  # AgentAuth, RepoUnusable, ...: what kind of failure
    lost_runs: int = 0  # agent and reviewer runs lost (worker gone, killed from outside)
    setup: list[SetupResult] = Field(default_factory=list)  # the workspace's setups, in order
    set_aside: str = ""  # started afresh: the branch its earlier work is kept under
    # Where it ran, for the session's steps on its workspace (merge, verify, remove). None:
    # recorded before sites were carried, or ended before its workspace was prepared.
    site: TaskSite | None = None
