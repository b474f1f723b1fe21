"""Review: the repo's checks and the agent reviewer, their inputs and results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, BaseModel, Field

from autopilot.models.agent import EGRESS_PORTS, AgentRun
from autopilot.models.checks import CheckCommand, CheckResult
from autopilot.models.container import ContainerSettings
from autopilot.models.setup import WorkspaceSettings
from autopilot.models.site import TaskSite, WorkspaceOrigin
from autopilot.models.workspace import TargetMergeInput, Workspace

if TYPE_CHECKING:
    from autopilot.models.task import TaskRequest


ReviewMode = Literal["agent", "checks", "both", "none"]


class ReviewSettings(BaseModel):
    mode: ReviewMode = "both"
    rounds: int = 3  # agent rounds per task: the first try plus rounds-1 rounds of fixes
    checks: list[CheckCommand] = Field(default_factory=list)
    # Names of the worker's environment variables the checks get besides PATH, HOME, LANG.
    check_env: list[str] = Field(default_factory=list)
    check_timeout_s: float = 900.0
    reviewer_model: str | None = None
    reviewer_prompt: str | None = None  # extra instructions for the reviewer
    reviewer_max_turns: int = 30
    on_failure: Literal["continue", "pause"] = "continue"
    # The target moves only to a tree whose checks passed as that tree: a branch whose checks
    # ran before the target moved is merged with it and checked again before it merges.
    verify_merged: bool = True

    @property
    def verifies_merges(self) -> bool:
        return self.verify_merged and self.runs_checks and bool(self.checks)

    @property
    def runs_checks(self) -> bool:
        return self.mode in ("checks", "both")

    @property
    def runs_reviewer(self) -> bool:
        return self.mode in ("agent", "both")


class ReviewerFinding(BaseModel):
    message: str
    file: str | None = None
    line: int | None = None
    severity: Literal["blocker", "major", "minor"] = "major"


class VerificationStep(BaseModel):
    step: str
    met: bool
    note: str = ""


class ReviewerVerdict(BaseModel):
    """The reviewer's answer, given through the CLI's --json-schema (StructuredOutput)."""

    verdict: Literal["approve", "request_changes"]
    summary: str
    findings: list[ReviewerFinding] = Field(default_factory=list)
    verification: list[VerificationStep] = Field(default_factory=list)


class Finding(BaseModel):
    """Something the agent has to fix, whoever found it."""

    # "ci": a required check on the forge failed; "person": a person's review asked for it.
    source: Literal["reviewer", "check", "files", "conflict", "ci", "person"]
    message: str
    file: str | None = None
    line: int | None = None


class ReviewerInput(BaseModel):
    request: TaskRequest
    workspace: Workspace
    round: int
    attempt: int = 1
    checks: list[CheckResult] = Field(default_factory=list)
    site: TaskSite | None = None  # None: recorded before sites were carried


class ReviewerRunResult(BaseModel):
    """What one run of the agent reviewer (ReviewerActivities.review_changes) returns: its
    verdict, the run and the files the diff touches. A round's ReviewResult is made from it
    and the checks (autopilot/review/verdict.py) and keeps the verdict, the run's cost and
    transcript: the rest of the run's record is not the round's."""

    verdict: ReviewerVerdict
    run: AgentRun
    changed_files: list[str] = Field(default_factory=list)  # files the task's diff touches


class ReviewResult(BaseModel):
    """One review round of a task: its checks and the reviewer's verdict, judged together."""

    round: int
    approved: bool
    summary: str
    checks: list[CheckResult] = Field(default_factory=list)
    verdict: ReviewerVerdict | None = None  # None: the agent reviewer is off
    findings: list[Finding] = Field(default_factory=list)  # what blocks approval
    untouched_files: list[str] = Field(default_factory=list)  # named in **Files:**, not changed
    reviewer_cost_usd: float = 0.0
    reviewer_transcript: str = ""


class ChecksInput(BaseModel):
    # "worktree" in payloads recorded before the rename.
    workspace_path: str = Field(validation_alias=AliasChoices("workspace_path", "worktree"))
    checks: list[CheckCommand]
    timeout_s: float
    output_dir: str
    check_env: list[str] = Field(default_factory=list)  # see ReviewSettings.check_env
    tmp_dir: str | None = None  # where each check's own TMPDIR is made (None: beside its log)
    # For its sandbox: what it must not see, and what it may reach (AgentSettings.network).
    # Empty in histories recorded before checks were sandboxed.
    repo: str = ""
    state_dir: str = ""
    network: list[str] = Field(default_factory=list)
    ports: list[int] = Field(default_factory=lambda: list(EGRESS_PORTS))  # AgentSettings.ports
    # Set: the checks run in the task's container image (container mode), not the sandbox.
    container: ContainerSettings | None = None
    # Remote mode: the workspace made again (and set up) on a worker that lacks it ("place"
    # in payloads recorded before the rename).
    origin: WorkspaceOrigin | None = Field(
        default=None, validation_alias=AliasChoices("origin", "place")
    )
    setup: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    site: TaskSite | None = None  # None: recorded before sites were carried


class VerifyMergeInput(BaseModel):
    """Merge the target into a task's branch in its workspace, then run the checks there."""

    merge: TargetMergeInput
    checks: ChecksInput


class VerifyMergeResult(BaseModel):
    """The task's branch with the target merged in, and its checks (none on a conflict)."""

    clean: bool
    conflict_files: list[str] = Field(default_factory=list)
    head_sha: str = ""
    checks: list[CheckResult] = Field(default_factory=list)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]
