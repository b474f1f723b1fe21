"""Everything that crosses a process boundary: plan, workflow inputs and results, status.

These are the only types the workflows, activities, worker and starter exchange; the pydantic
data converter carries them through Temporal, so they must stay plain data.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

# Where a task's agent and checks run: its sandboxed workspace on the worker, or a container.
ExecutionPlace = Literal["local", "dagger"]
# How an approved branch lands on the target ([merge] style): a merge commit, or one commit.
MergeStyle = Literal["merge", "squash"]

# --------------------------------------------------------------------------------------------
# The plan, as parsed from markdown
# --------------------------------------------------------------------------------------------


class FileRef(BaseModel):
    """One entry of a task's `**Files:**` list: `- Create: path`, `- Modify: path`, `- path`."""

    action: str = ""  # lower-cased word before the colon ("create", "modify", "test"), or ""
    path: str
    line: int


class Task(BaseModel):
    id: str  # as written in the heading: "31.1", "31.1a", "1"
    title: str
    batch: int
    body: str  # everything under the heading up to the next task/batch heading, verbatim
    files: list[FileRef] = Field(default_factory=list)
    verification: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)  # task ids
    commit_message: str | None = None
    line: int  # 1-based line of the heading


class Batch(BaseModel):
    number: int
    title: str
    description: str = ""  # text between the batch heading and its first task
    dependencies: list[int] = Field(default_factory=list)  # batch numbers
    execution_mode: ExecutionPlace | None = None  # where its tasks run
    sequential: bool = False  # `**Execution Mode:** sequential`: one task at a time, in order
    tasks: list[Task] = Field(default_factory=list)
    line: int
    implicit: bool = False  # a plan without batch headings: one batch of all tasks


class KeptField(BaseModel):
    """A `**Label:** value` line autopilot does not read: it stays in the text the agent gets
    (`**Target Efficiency:** >85%`); `--dry-run` lists it so nobody thinks it was acted on."""

    line: int
    label: str  # as written, without the stars and colon
    owner: str  # "plan context", "Batch 31", "Task 31.1": whose text keeps it


class IgnoredBlock(BaseModel):
    """Text the parser kept only as context (front matter, prose outside batches and tasks)."""

    start_line: int
    end_line: int
    summary: str  # the first non-blank line, shortened


class DoneTask(BaseModel):
    """A task the plan marks complete (`(COMPLETE)` on a heading above it, or ✅): listed in the
    dry run, never run; a dependency on it is met."""

    id: str
    title: str
    line: int
    marked_by: str = ""  # the heading that marks it done; "" when the task itself is marked


class PlanWarning(BaseModel):
    """Something in a plan that runs anyway but may not do what its author meant."""

    line: int
    message: str


class Plan(BaseModel):
    path: str
    sha256: str = ""  # of the file as parsed: the session's snapshot
    title: str | None = None
    front_matter: str = ""
    context: str = ""  # prose before the first batch/task: given to the agent as plan context
    batches: list[Batch]
    ignored: list[IgnoredBlock] = Field(default_factory=list)
    # The texts (task bodies, context, batch descriptions) are left out: they stay in the
    # snapshot under the state dir (autopilot/plan/snapshots.py), read by the activities.
    outline: bool = False
    # The plan's default `**Execution Mode:**` (before the first batch), as read ("sequential",
    # "parallel, local"); "" when the plan sets none. Each batch already has it applied.
    execution_mode: str = ""
    execution_mode_line: int = 0
    kept_fields: list[KeptField] = Field(default_factory=list)
    done_tasks: list[DoneTask] = Field(default_factory=list)
    warnings: list[PlanWarning] = Field(default_factory=list)

    def task_count(self) -> int:
        return sum(len(batch.tasks) for batch in self.batches)


# --------------------------------------------------------------------------------------------
# Git results
# --------------------------------------------------------------------------------------------


class CommitInfo(BaseModel):
    sha: str
    subject: str


class Workspace(BaseModel):
    """A task's worktree and branch, prepared from the target branch head."""

    path: str
    branch: str
    base_sha: str  # target head the branch started from
    already_merged: bool = False  # a merge commit for this session+task is already on target
    merge_sha: str | None = None  # set when already_merged
    set_aside: str = ""  # started afresh: the branch its earlier work is kept under


class CommitOutcome(BaseModel):
    commits: list[CommitInfo]  # base..branch head, oldest first
    head_sha: str
    committed_leftovers: bool  # we committed what the agent left uncommitted
    no_changes: bool  # branch has no commits and the tree no changes


class MergeOutcome(BaseModel):
    merged: bool
    merge_sha: str | None = None
    already_merged: bool = False  # found on target by its trailers: nothing was done twice
    conflict: bool = False
    conflict_files: list[str] = Field(default_factory=list)
    message: str = ""
    # The task's worktree went with the merge (MergeInput.worktree): no removal step follows.
    worktree_removed: bool = False
    # MergeInput.verified_only: the target has commits the branch lacks, nothing was merged.
    target_moved: bool = False
    # The branch merged with the target's new commits failed these checks (verify_merged).
    failed_checks: list[CheckResult] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------------------------


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
    commit: CommitOutcome | None = None


# --------------------------------------------------------------------------------------------
# Review: the repo's checks and the agent reviewer
# --------------------------------------------------------------------------------------------

ReviewMode = Literal["agent", "checks", "both", "none"]


class CheckCommand(BaseModel):
    """One check as the user wrote it, and the argv it runs (no shell unless they wrote one)."""

    command: str
    argv: list[str]


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


class CheckResult(BaseModel):
    command: str
    passed: bool
    exit_code: int | None = None  # None: it could not start, or timed out
    timed_out: bool = False
    duration_s: float = 0.0
    output_tail: str = ""  # the end of stdout+stderr, for findings and status
    output_path: str = ""  # the whole output, kept under the state dir


# --------------------------------------------------------------------------------------------
# Workspace setup: [workspace] in .autopilot.toml
# --------------------------------------------------------------------------------------------


class WorkspaceSettings(BaseModel):
    """How a new task workspace is made ready before the agent starts (autopilot/setup/)."""

    setup: list[CheckCommand] = Field(default_factory=list)  # run like checks, in order
    setup_timeout_s: float = 900.0  # per command
    cache_key: list[str] = Field(default_factory=list)  # files whose contents key the cache
    cache_dirs: list[str] = Field(default_factory=list)  # what the setup makes, reused
    # Run like setup, after a cache restore: what the cached dirs still need in this workspace.
    after_restore: list[CheckCommand] = Field(default_factory=list)
    copy_files: list[str] = Field(default_factory=list)  # `copy`: from the user's checkout

    @property
    def active(self) -> bool:
        return bool(self.setup or self.copy_files)

    @property
    def keep_out(self) -> list[str]:
        """Paths the task's commits must never hold: copied in, or made by the setup."""
        return [*self.copy_files, *self.cache_dirs]


class SetupResult(BaseModel):
    """One setup of a task's workspace: its commands' results, or the cache it came from."""

    key: str = ""  # the cache key (sha256 of the commands and cache_key files)
    from_cache: bool = False  # the cached dirs were copied in; no command ran
    unchanged: bool = False  # after a conflict round: the cache_key files did not change
    commands: list[CheckResult] = Field(default_factory=list)  # in order, up to a failed one
    copied: list[str] = Field(default_factory=list)  # `copy` files put in the workspace
    duration_s: float = 0.0
    error: str | None = None  # why it failed, for a person

    def summary(self) -> str:
        """A few words for the session's compact status."""
        if self.error is not None:
            failed = next((run for run in self.commands if not run.passed), None)
            return f"failed: {failed.command[:60]}" if failed else "failed"
        if self.from_cache:
            return "from cache"
        if self.commands:
            return f"ran {len(self.commands)} command(s) in {self.duration_s:.1f} s"
        return f"copied {len(self.copied)} file(s)"


class ReviewerFinding(BaseModel):
    message: str
    file: str | None = None
    line: int | None = None
    severity: Literal["blocker", "major", "minor"] = "major"


class VerificationStep(BaseModel):
    step: str
    met: bool
    note: str = ""


class Verdict(BaseModel):
    """The reviewer's answer, given through the CLI's --json-schema (StructuredOutput)."""

    verdict: Literal["approve", "request_changes"]
    summary: str
    findings: list[ReviewerFinding] = Field(default_factory=list)
    verification: list[VerificationStep] = Field(default_factory=list)


class Finding(BaseModel):
    """Something the agent has to fix, whoever found it."""

    source: Literal["reviewer", "check", "files", "conflict"]
    message: str
    file: str | None = None
    line: int | None = None


class ReviewerOutcome(BaseModel):
    verdict: Verdict
    run: AgentRun
    changed_files: list[str] = Field(default_factory=list)  # files the task's diff touches


class ReviewResult(BaseModel):
    round: int
    approved: bool
    summary: str
    checks: list[CheckResult] = Field(default_factory=list)
    verdict: Verdict | None = None  # None: the agent reviewer is off
    findings: list[Finding] = Field(default_factory=list)  # what blocks approval
    untouched_files: list[str] = Field(default_factory=list)  # named in **Files:**, not changed
    reviewer_cost_usd: float = 0.0
    reviewer_transcript: str = ""


# --------------------------------------------------------------------------------------------
# Container mode: [container] in .autopilot.toml (autopilot/agent/container.py)
# --------------------------------------------------------------------------------------------

# Pinned by exact tag: Node for the CLI, Debian's apt-get for git. Another image must have
# node, npm and git (and `packages = []` when it has no apt-get).
DEFAULT_CONTAINER_IMAGE = "node:22.12.0-bookworm-slim"


class ContainerSettings(BaseModel):
    """How a task's agent and checks run in a Dagger container."""

    image: str = DEFAULT_CONTAINER_IMAGE
    # Installed with apt-get as root before anything else; [] for an image without apt-get.
    packages: list[str] = Field(default_factory=lambda: ["git", "ca-certificates"])
    # The CLI runs as this user so that its permission flags behave as documented (as root it
    # refuses some of them); the node images have `node` (uid 1000).
    user: str = "node"
    home: str = "/home/node"  # the user's home: Claude's config and sessions live there
    # Unread: the workspace is at the sandbox's fixed path (TaskSite.inside, steps/site.py); kept
    # so that recorded settings still load.
    workdir: str = "/workspace"
    # Each engine call but the run itself (ids, secrets, the image build, the export).
    engine_timeout_s: float = 900.0
    connect_timeout_s: float = 10.0


# --------------------------------------------------------------------------------------------
# Workflows: inputs, results, status
# --------------------------------------------------------------------------------------------


class SessionRequest(BaseModel):
    session_id: str
    repo: str  # absolute path of the user's repository, or a remote's URL (remote mode)
    plan_path: str  # absolute path of the plan file (on the starter's machine)
    target_branch: str
    start_batch: int | None = None
    end_batch: int | None = None
    concurrency: int = 1
    # Where the tasks' agents and checks run: in their sandboxed workspace on the worker, or
    # in a Dagger container; a batch's `**Execution Mode:**` place wins over it.
    mode: ExecutionPlace = "local"
    container: ContainerSettings = Field(default_factory=ContainerSettings)  # for "dagger"
    # Absolute: worktrees, transcripts and logs live there, shared by the starter and the
    # workers of one machine. "" in remote mode: each worker uses its own (on_this_worker).
    state_dir: str
    # Remote mode: the plan file's text. Its workers do not read the starter's disk, so the
    # session parses this and keeps the whole plan (no snapshot under a shared state dir).
    plan_text: str = ""
    agent: AgentSettings = Field(default_factory=AgentSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    merge_style: MergeStyle = "merge"  # [merge] style
    # Each task not merged yet starts from the target's head, its branch's work set aside
    # (`starter.py PLAN --fresh`, a rerun that must not build on rejected work).
    fresh: bool = False
    max_cost_usd: float | None = None
    # Where the session's notifications go (--notify, [notify] in .autopilot.toml); the
    # worker's own (AUTOPILOT_NOTIFY) are added by the session when it first notifies.
    notify: NotifySettings = Field(default_factory=lambda: NotifySettings())
    # The target branch's commit whose .autopilot.toml gave the settings above, read once by
    # the starter (autopilot/operate/committed_config.py); "" for sessions started before.
    config_commit: str = ""
    # Continue as new before the history grows past this many events. Temporal's hard limit is
    # 50,000, but a replay (worker restart, cache eviction) runs the whole history, and the
    # worker's memory grows with the run: measured on a 1,000-task bench session, replaying its
    # 9,844-event first run took 14 s of CPU, and the worker grew ~35 kB per task through the
    # run and ~55 MB more at its end. At 4,000 events a run holds ~215 tasks.
    history_limit: int = 4_000
    # The same in bytes of history: Temporal warns at 10 MB and refuses a run at 50 MB.
    history_bytes_limit: int = 8 * 1024 * 1024
    carry: SessionCarry | None = None  # set by continue-as-new: where the last run stopped


class SessionCarry(BaseModel):
    """The session's whole state: what it hands to its next run when it continues as new."""

    # None when the plan is an outline of a snapshot: the next run reads it again by its hash.
    plan: Plan | None = None
    status: SessionStatus
    skip_requested: list[str] = Field(default_factory=list)  # skips not yet carried out
    # Tasks whose approved branch conflicted with the target: their conflict round is next.
    conflict_due: list[str] = Field(default_factory=list)
    # Of those, the ones whose branch merged cleanly but failed checks with the target's new
    # commits (verify_merged): the checks that failed, for the round's agent.
    merged_checks_failed: dict[str, list[CheckResult]] = Field(default_factory=dict)
    # Labels of the worker's own notification targets (AUTOPILOT_NOTIFY), looked up at the
    # session's first notification; None: not yet. Their URLs stay on the worker.
    notify_installation: list[str] | None = None
    # Tasks that ended on a setup error (SETUP_ERRORS): `resume --reload-config` retries them.
    setup_failed: list[str] = Field(default_factory=list)


class RetryRequest(BaseModel):
    """The `retry` update's argument (a bare task id, as sent before `fresh`, still is one)."""

    task_id: str
    fresh: bool = False  # start from the target's head, the task branch's work set aside


class ResumeRequest(BaseModel):
    max_cost_usd: float | None = None  # a new budget, when the old one paused the session


class ConfigReload(ResumeRequest):
    """`resume --reload-config`: the settings of the target's `.autopilot.toml` at
    `config_commit`, layered under the session's flags as a start layers them. Tasks started
    after it (retried ones too) run with them; tasks already running keep theirs."""

    config_commit: str
    review: ReviewSettings
    workspace: WorkspaceSettings
    container: ContainerSettings
    network: list[str]  # [sandbox] network
    ports: list[int]  # [sandbox] ports
    changes: list[str]  # what changed, one line each, as the starter showed it


def in_state_dir(state_dir: str, *parts: str) -> str:
    """A path under a session's state dir as the session names it: absolute, or relative to
    each worker's own state dir when the session names none (remote mode, on_this_worker)."""
    return posixpath.join(state_dir, *parts)


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
    ) -> TaskRequest:
        """The input of `task`'s TaskWorkflow, as the session sends it."""
        return cls(
            session_id=request.session_id,
            repo=request.repo,
            target_branch=request.target_branch,
            state_dir=request.state_dir,
            task=task,
            # An outline's texts are read from the snapshot by the task's activities.
            plan_sha256=plan.sha256 if plan.outline else "",
            plan_path=request.plan_path,
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
        )


def place_of(request: SessionRequest, batch: Batch) -> ExecutionPlace:
    """Where a batch's tasks run: its own `**Execution Mode:**` place, else the session's."""
    return batch.execution_mode or request.mode


class TaskState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # the task workflow works: worktree, agent, commits, review
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
    workspace_left: str = ""  # a worktree whose removal failed: `starter.py cleanup` takes it
    transcripts: list[str] = Field(default_factory=list)
    reviews: list[ReviewResult] = Field(default_factory=list)
    conflict_round: bool = False  # the branch needed a conflict round before it merged
    # The branch merged with the target's new commits was checked before it merged (times),
    # and those checks failed once, which gave it a round (verify_merged).
    merge_checks: int = 0
    merged_checks_round: bool = False
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
    execution_mode: ExecutionPlace | None = None
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


# --------------------------------------------------------------------------------------------
# Notifications (autopilot/notifications/delivery.py)
# --------------------------------------------------------------------------------------------

NotifyEvent = Literal[
    "session_paused",
    "budget_reached",
    "task_failed",
    "task_rejected",
    "task_conflict",
    "session_ended",
]


class NotifySettings(BaseModel):
    """A session's notification targets: webhook URLs (each gets a JSON POST)."""

    urls: list[str] = Field(default_factory=list)
    # Only in sessions started before the command became the worker's own setting
    # (AUTOPILOT_NOTIFY_COMMAND): kept so their histories replay; the worker refuses to run it.
    command: list[str] = Field(default_factory=list)


class NotifyTarget(BaseModel):
    """One place a notification goes: a URL, a command, or the worker's own target number
    `installation` (its URL is read on the worker, never sent through Temporal)."""

    label: str  # what status and the logs show: never a URL's path (it may be its secret)
    url: str = ""
    command: list[str] = Field(default_factory=list)
    installation: int | None = None


class Notification(BaseModel):
    """The JSON body of a notification. `text` reads as a chat message (Slack, Mattermost and
    most webhook receivers show it; Discord shows `content`, the same text); the rest is for
    programs. The session fills in the facts; the activity adds the target branch's head and
    the texts, and scrubs secrets."""

    event: NotifyEvent
    text: str = ""
    content: str = ""
    session_id: str
    status: str  # the session's: running (paused), completed, incomplete, cancelled, failed
    repo: str
    target_branch: str
    plan: str
    reason: str | None = None  # why it paused, why the task ended so, why the session failed
    resume_command: str | None = None
    task_id: str | None = None
    task_title: str | None = None
    task_state: str | None = None
    branch: str | None = None  # the task's branch, kept when it did not merge
    retry_command: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)  # tasks by state
    tasks_total: int = 0
    tasks_merged: int = 0
    cost_usd: float = 0.0
    max_cost_usd: float | None = None
    duration_s: float | None = None
    head_sha: str | None = None  # the target branch's head when the session ended


class NotifyInput(BaseModel):
    notification: Notification
    target: NotifyTarget


class NotifyFailure(BaseModel):
    """A notification that failed for good, as `status` shows it."""

    event: NotifyEvent | Literal["lookup"]
    target: str  # the target's label
    error: str
    task_id: str | None = None
    at: datetime | None = None


# --------------------------------------------------------------------------------------------
# Activity inputs
# --------------------------------------------------------------------------------------------


class ParsePlanInput(BaseModel):
    plan_path: str
    start_batch: int | None = None
    end_batch: int | None = None
    # Given: the parsed plan is kept there as a snapshot and the result is its outline.
    state_dir: str | None = None
    sha256: str = ""  # load_plan: the snapshot to read again
    plan_text: str = ""  # remote mode: the plan itself (SessionRequest.plan_text)


class WorkspaceInput(BaseModel):
    repo: str
    target_branch: str
    state_dir: str
    session_id: str
    task_id: str
    # Start from the target's head: the task branch's work is set aside (autopilot/git/fresh.py).
    fresh: bool = False
    site: TaskSite | None = None  # None: recorded before sites were carried


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
    # session, told to look at what the worktree holds before going on.
    after_loss: bool = False
    lost_before: int = 0  # runs of this attempt lost so far: each run gets a session of its own
    # Commit what the agent leaves, in the same activity: a round trip less per round.
    commit: CommitInput | None = None
    site: TaskSite | None = None  # None: recorded before sites were carried


class ReviewerInput(BaseModel):
    request: TaskRequest
    workspace: Workspace
    round: int
    attempt: int = 1
    checks: list[CheckResult] = Field(default_factory=list)
    site: TaskSite | None = None  # None: recorded before sites were carried


class TaskPlace(BaseModel):
    """What a worker needs to make a task's workspace again when it has none (remote mode,
    where a task's steps may each run on another machine): the remote's task branch, or the
    commit the task started from."""

    session_id: str
    task_id: str
    target_branch: str
    base_sha: str

    @classmethod
    def of(cls, request: TaskRequest, workspace: Workspace) -> TaskPlace:
        return cls(
            session_id=request.session_id,
            task_id=request.task.id,
            target_branch=request.target_branch,
            base_sha=workspace.base_sha,
        )

    @classmethod
    def of_workspace(cls, request: WorkspaceInput, workspace: Workspace) -> TaskPlace:
        return cls(
            session_id=request.session_id,
            task_id=request.task_id,
            target_branch=request.target_branch,
            base_sha=workspace.base_sha,
        )


class TaskSite(BaseModel):
    """Where a task runs, decided once by autopilot/steps/site.py when the task workflow
    prepares the task, and carried in every step's input: no step works it out again."""

    repo: str  # the session's repository: an absolute path (local) or a remote's URL
    kind: Literal["local", "remote"]  # its workspaces' kind (autopilot/git/kinds.py)
    place: ExecutionPlace = "local"  # the agent and checks in the sandbox, or a container
    inside: str  # the workspace's fixed path inside the sandbox and the container
    workspace: str = ""  # the workspace's path where it was prepared ("": not yet)
    # Remote: what a worker that lacks the workspace needs to make it again.
    make_again: TaskPlace | None = None

    @property
    def remote(self) -> bool:
        return self.kind == "remote"

    def prepared(self, path: str, make_again: TaskPlace) -> TaskSite:
        """The same site once its workspace is prepared at `path`."""
        return self.model_copy(update={"workspace": path, "make_again": make_again})


class ChecksInput(BaseModel):
    worktree: str
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
    # Remote mode: the workspace made again (and set up) on a worker that lacks it.
    place: TaskPlace | None = None
    setup: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    site: TaskSite | None = None  # None: recorded before sites were carried


class SetupInput(BaseModel):
    """Make a task's workspace ready (autopilot/setup/steps.py), in the checks' sandbox."""

    worktree: str
    repo: str
    state_dir: str
    settings: WorkspaceSettings
    output_dir: str  # the commands' logs
    check_env: list[str] = Field(default_factory=list)  # see ReviewSettings.check_env
    network: list[str] = Field(default_factory=list)  # see AgentSettings.network
    ports: list[int] = Field(default_factory=lambda: list(EGRESS_PORTS))  # AgentSettings.ports
    # Only a workspace still at a commit of this branch, unchanged, fills the cache ("": never).
    target_branch: str = ""
    place: TaskPlace | None = None  # remote mode: the workspace made again where it is missing
    site: TaskSite | None = None  # None: recorded before sites were carried

    @classmethod
    def of(
        cls, request: TaskRequest, workspace: Workspace, step: str, site: TaskSite | None = None
    ) -> SetupInput:
        """The setup of `request`'s workspace, its logs under checks/<session>/<task>/<step>."""
        return cls(
            worktree=workspace.path,
            repo=request.repo,
            state_dir=request.state_dir,
            settings=request.workspace,
            output_dir=in_state_dir(
                request.state_dir, "checks", request.session_id, request.task.id, step
            ),
            check_env=request.review.check_env,
            network=request.agent.network,
            ports=request.agent.ports,
            target_branch=request.target_branch,
            place=TaskPlace.of(request, workspace),
            site=site,
        )


class TargetMergeInput(BaseModel):
    worktree: str
    target_branch: str
    session_id: str
    task_id: str
    repo: str = ""  # the user's repository, where the target is ("": recorded before)
    base_sha: str = ""  # remote mode: where the workspace starts when it is made again
    site: TaskSite | None = None  # None: recorded before sites were carried

    @classmethod
    def at(cls, place: TaskPlace, repo: str, worktree: str) -> TargetMergeInput:
        return cls(
            worktree=worktree,
            target_branch=place.target_branch,
            session_id=place.session_id,
            task_id=place.task_id,
            repo=repo,
            base_sha=place.base_sha,
        )

    @property
    def place(self) -> TaskPlace:
        return TaskPlace(
            session_id=self.session_id,
            task_id=self.task_id,
            target_branch=self.target_branch,
            base_sha=self.base_sha,
        )


class TargetMerge(BaseModel):
    """The target branch merged into a task's branch, in its worktree (the conflict round)."""

    clean: bool
    conflict_files: list[str] = Field(default_factory=list)
    already_up_to_date: bool = False
    head_sha: str = ""


class CommitInput(BaseModel):
    worktree: str
    base_sha: str
    session_id: str
    task_id: str
    message: str
    # The user's repository: the commits are brought back there ("": recorded before
    # workspaces had repositories of their own, when the branch was shared).
    repo: str = ""
    # Never committed, and a branch whose commits hold them is not brought back
    # (WorkspaceSettings.keep_out).
    keep_out: list[str] = Field(default_factory=list)
    # The task's **Files:** paths: the protected paths among them it may change
    # (autopilot/infra/protected_paths.py).
    named_files: list[str] = Field(default_factory=list)
    # Remote mode, a conflict round: a worker that lacks the workspace makes it again with
    # this target merged in, as the round's first step left it.
    conflict_target: str = ""
    # Remote mode: the agent's own activity commits in the workspace it ran in (its work is
    # there, nowhere else); the workflow's commit step finds or makes the workspace first.
    in_place: bool = False
    site: TaskSite | None = None  # None: recorded before sites were carried


class MergeInput(BaseModel):
    repo: str
    target_branch: str
    branch: str
    session_id: str
    task_id: str
    message: str
    # Removed in the same activity once the branch is on the target, which saves the session
    # a step per task. None (and in histories recorded before it): the session removes it.
    worktree: str | None = None
    # Merge only a branch that holds the target's head: the merge's tree is then the branch's,
    # whose checks passed. Otherwise nothing is merged (MergeOutcome.target_moved).
    verified_only: bool = False
    style: MergeStyle = "merge"
    site: TaskSite | None = None  # None: recorded before sites were carried


class VerifyMergeInput(BaseModel):
    """Merge the target into a task's branch in its workspace, then run the checks there."""

    merge: TargetMergeInput
    checks: ChecksInput


class MergeVerification(BaseModel):
    """The task's branch with the target merged in, and its checks (none on a conflict)."""

    clean: bool
    conflict_files: list[str] = Field(default_factory=list)
    head_sha: str = ""
    checks: list[CheckResult] = Field(default_factory=list)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]


class RemoveWorkspaceInput(BaseModel):
    repo: str
    state_dir: str
    session_id: str
    task_id: str
    site: TaskSite | None = None  # None: recorded before sites were carried


# Forward references (a session carries its own status and plan across continue-as-new).
MergeOutcome.model_rebuild()
SessionCarry.model_rebuild()
AgentInput.model_rebuild()
WorkspaceInput.model_rebuild()
SessionRequest.model_rebuild()
SessionStatus.model_rebuild()
