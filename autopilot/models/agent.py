"""The coding agent: its settings, its runs and its activity's input."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from autopilot.models.site import TaskSite
from autopilot.models.workspace import CommitInput, CommitResult, Workspace

if TYPE_CHECKING:
    from autopilot.models.review import ReviewResult
    from autopilot.models.task import TaskRequest


# The ports a sandbox's granted domains may be reached on unless `.autopilot.toml` says
# otherwise ([sandbox] ports; autopilot/agent/egress.py).
EGRESS_PORTS = (443, 80)


class AgentSettings(BaseModel):
    max_turns: int = 40
    model: str | None = None  # None: the CLI's default
    allowed_tools: list[str] = Field(
        default_factory=lambda: ["Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "Bash"]
    )
    permission_mode: str = "acceptEdits"
    attempt_timeout_s: float = 3600.0  # one agent run, start to close
    idle_timeout_s: float = 900.0  # no stream event for this long: the agent is hung
    heartbeat_timeout_s: float = 60.0  # no heartbeat for this long: the worker is gone
    max_attempts: int = 3
    # Runs of one task lost in a row (worker gone, killed from outside) before the session is
    # paused with the reason: a crash loop shows, and still nothing is counted as failed.
    max_lost_runs: int = 20
    # What the agent and the checks may reach from their sandbox besides the model API
    # ([sandbox] network in .autopilot.toml; autopilot/agent/egress.py).
    network: list[str] = Field(default_factory=list)
    # The ports those may be reached on ([sandbox] ports in .autopilot.toml).
    ports: list[int] = Field(default_factory=lambda: list(EGRESS_PORTS))


class AgentProgress(BaseModel):
    """Heartbeat details of a running agent: what the UI and the starter show live."""

    session_id: str
    attempt: int = 1
    turns: int = 0
    cost_usd: float = 0.0
    last_event: str = ""
    transcript_path: str = ""
    # The CLI announced the session (its init event): a run cut off later can be resumed.
    session_saved: bool = False


class AgentRun(BaseModel):
    """One attempt of the agent on a task, successful or not (failures ride in error details)."""

    session_id: str
    attempt: int
    is_error: bool
    error: str | None = None  # why the attempt failed, for a person
    error_type: str | None = None  # AgentAuth, AgentHung, ... (see activities/agent.py)
    retry_after_s: float | None = None  # the service asked us to wait this long
    subtype: str = ""
    result_text: str = ""
    cost_usd: float = 0.0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    duration_s: float = 0.0
    transcript_path: str = ""
    # `--resume` was refused (the CLI never saved that session) and a fresh session ran instead.
    resume_refused: bool = False
    session_saved: bool = False  # the CLI announced the session: it can be resumed
    # The run was lost, not failed (worker gone, killed from outside): no attempt was spent.
    lost: bool = False
    # The commit made in the same activity right after a successful run (AgentInput.commit).
    # None: no such commit (not asked, a failed run, or the commit failed): the task
    # workflow's own commit step follows, as in histories recorded before.
    commit: CommitResult | None = None


class AgentInput(BaseModel):
    request: TaskRequest
    workspace: Workspace
    attempt: int = 1  # counted by the task workflow, which owns the agent's retries
    round: int = 1
    # What the agent is asked: the task itself, fixes after a review, or a conflict to resolve.
    purpose: Literal["task", "fix", "conflict", "merged_checks"] = "task"
    review: ReviewResult | None = None  # for "fix": the review to act on
    conflict_files: list[str] = Field(default_factory=list)  # for "conflict"
    resume_session: str | None = None  # continue this Claude session instead of a new one
    # An earlier run of this attempt was lost before the CLI saved its session: a fresh
    # session, told to look at what the workspace holds before going on.
    after_loss: bool = False
    lost_before: int = 0  # runs of this attempt lost so far: each run gets a session of its own
    # Commit what the agent leaves, in the same activity: a round trip less per round.
    commit: CommitInput | None = None
    site: TaskSite | None = None  # None: recorded before sites were carried
