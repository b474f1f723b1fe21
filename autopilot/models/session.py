"""A session workflow's input, what it carries across continue-as-new, and its updates'
arguments."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field

from autopilot.models.agent import AgentSettings
from autopilot.models.checks import CheckResult
from autopilot.models.container import ContainerSettings
from autopilot.models.forge import ForgeSettings, PullRequestRecord
from autopilot.models.notifications import NotifySettings
from autopilot.models.plan import Plan
from autopilot.models.review import ReviewSettings
from autopilot.models.setup import WorkspaceSettings
from autopilot.models.site import ExecutionPlace
from autopilot.models.status import SessionStatus
from autopilot.models.workspace import MergeStyle


class SessionRequest(BaseModel):
    session_id: str
    repo: str  # absolute path of the user's repository, or a remote's URL (remote mode)
    plan_path: str  # absolute path of the plan file (on the starter's machine)
    target_branch: str
    start_batch: int | None = None
    end_batch: int | None = None
    concurrency: int = 1
    # Where the tasks' agents and checks run: in their sandboxed workspace on the worker, or
    # in a Dagger container; a batch's `**Execution Mode:**` place wins over it ("mode" in
    # sessions started before the rename).
    execution_place: ExecutionPlace = Field(
        default="local", validation_alias=AliasChoices("execution_place", "mode")
    )
    container: ContainerSettings = Field(default_factory=ContainerSettings)  # for "dagger"
    # Absolute: workspaces, transcripts and logs live there, shared by the starter and the
    # workers of one machine. "" in remote mode: each worker uses its own (on_this_worker).
    state_dir: str
    # Remote mode: the plan file's text. Its workers do not read the starter's disk, so the
    # session parses this and keeps the whole plan (no snapshot under a shared state dir).
    plan_text: str = ""
    agent: AgentSettings = Field(default_factory=AgentSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    merge_style: MergeStyle = "merge"  # [merge] style
    # Forge mode (remote mode on GitHub): each ready task lands as a pull request, merged
    # through the forge's gate. Inactive by default, and in sessions started before it.
    forge: ForgeSettings = Field(default_factory=ForgeSettings)
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
    # Forge mode: each task's pull request once opened, by task id. A task whose pull request
    # is open when the session continues as new goes on watching it in the next run.
    pull_requests: dict[str, PullRequestRecord] = Field(default_factory=dict)


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
