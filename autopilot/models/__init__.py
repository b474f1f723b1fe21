"""Everything that crosses a process boundary: plan, workflow inputs and results, status.

These are the only types the workflows, activities, worker and starter exchange; the pydantic
data converter carries them through Temporal, so they must stay plain data. Each concern has
its module here; this face re-exports every public name, so callers import from
`autopilot.models`."""

from __future__ import annotations

from autopilot.models.agent import (
    EGRESS_PORTS,
    AgentInput,
    AgentProgress,
    AgentRun,
    AgentSettings,
)
from autopilot.models.checks import (
    CheckCommand,
    CheckResult,
)
from autopilot.models.container import (
    DEFAULT_CONTAINER_IMAGE,
    ContainerSettings,
)
from autopilot.models.forge import (
    DEFAULT_GITHUB_API,
    CheckState,
    ForgeCheck,
    ForgeGate,
    ForgeKind,
    ForgeMergeOutcome,
    ForgeMergeResult,
    ForgeSettings,
    GateDecision,
    GateInput,
    GateVerdict,
    PersonReview,
    PersonReviewState,
    PublishInput,
    PullRequestMergeInput,
    PullRequestRecord,
    PullRequestRef,
    PullRequestState,
    ReviewComment,
)
from autopilot.models.notifications import (
    Notification,
    NotifyEvent,
    NotifyFailure,
    NotifyInput,
    NotifySettings,
    NotifyTarget,
)
from autopilot.models.plan import (
    Batch,
    DoneTask,
    FileRef,
    IgnoredBlock,
    KeptField,
    ParsePlanInput,
    Plan,
    PlanWarning,
    Task,
)
from autopilot.models.review import (
    ChecksInput,
    Finding,
    ReviewerFinding,
    ReviewerInput,
    ReviewerRunResult,
    ReviewerVerdict,
    ReviewMode,
    ReviewResult,
    ReviewSettings,
    VerificationStep,
    VerifyMergeInput,
    VerifyMergeResult,
)
from autopilot.models.session import (
    ConfigReload,
    ResumeRequest,
    RetryRequest,
    SessionCarry,
    SessionRequest,
)
from autopilot.models.setup import (
    SetupInput,
    SetupResult,
    WorkspaceSettings,
)
from autopilot.models.site import (
    ExecutionPlace,
    TaskSite,
    WorkspaceOrigin,
)
from autopilot.models.state_dir import (
    in_state_dir,
)
from autopilot.models.status import (
    ACTIVE_SESSION_STATES,
    BatchStatus,
    SessionChanges,
    SessionState,
    SessionStatus,
    TaskStatus,
)
from autopilot.models.task import (
    FINISHED_TASK_STATES,
    RETRYABLE_TASK_STATES,
    TaskOutcome,
    TaskRequest,
    TaskResult,
    TaskState,
    place_of,
)
from autopilot.models.workspace import (
    CommitInfo,
    CommitInput,
    CommitResult,
    MergeInput,
    MergeResult,
    MergeStyle,
    RemoveWorkspaceInput,
    TargetMergeInput,
    TargetMergeResult,
    Workspace,
    WorkspaceInput,
)

# Forward references across the modules (an input names the task request it works for),
# resolved here where every name is in scope.
AgentInput.model_rebuild()
ReviewerInput.model_rebuild()
SetupInput.model_rebuild()
MergeResult.model_rebuild()
SessionCarry.model_rebuild()
WorkspaceInput.model_rebuild()
SessionRequest.model_rebuild()
SessionStatus.model_rebuild()

__all__ = [
    "ACTIVE_SESSION_STATES",
    "DEFAULT_CONTAINER_IMAGE",
    "DEFAULT_GITHUB_API",
    "EGRESS_PORTS",
    "FINISHED_TASK_STATES",
    "RETRYABLE_TASK_STATES",
    "AgentInput",
    "AgentProgress",
    "AgentRun",
    "AgentSettings",
    "Batch",
    "BatchStatus",
    "CheckCommand",
    "CheckResult",
    "CheckState",
    "ChecksInput",
    "CommitInfo",
    "CommitInput",
    "CommitResult",
    "ConfigReload",
    "ContainerSettings",
    "DoneTask",
    "ExecutionPlace",
    "FileRef",
    "Finding",
    "ForgeCheck",
    "ForgeGate",
    "ForgeKind",
    "ForgeMergeOutcome",
    "ForgeMergeResult",
    "ForgeSettings",
    "GateDecision",
    "GateInput",
    "GateVerdict",
    "IgnoredBlock",
    "KeptField",
    "MergeInput",
    "MergeResult",
    "MergeStyle",
    "Notification",
    "NotifyEvent",
    "NotifyFailure",
    "NotifyInput",
    "NotifySettings",
    "NotifyTarget",
    "ParsePlanInput",
    "PersonReview",
    "PersonReviewState",
    "Plan",
    "PlanWarning",
    "PublishInput",
    "PullRequestMergeInput",
    "PullRequestRecord",
    "PullRequestRef",
    "PullRequestState",
    "RemoveWorkspaceInput",
    "ResumeRequest",
    "RetryRequest",
    "ReviewComment",
    "ReviewMode",
    "ReviewResult",
    "ReviewSettings",
    "ReviewerFinding",
    "ReviewerInput",
    "ReviewerRunResult",
    "ReviewerVerdict",
    "SessionCarry",
    "SessionChanges",
    "SessionRequest",
    "SessionState",
    "SessionStatus",
    "SetupInput",
    "SetupResult",
    "TargetMergeInput",
    "TargetMergeResult",
    "Task",
    "TaskOutcome",
    "TaskRequest",
    "TaskResult",
    "TaskSite",
    "TaskState",
    "TaskStatus",
    "VerificationStep",
    "VerifyMergeInput",
    "VerifyMergeResult",
    "Workspace",
    "WorkspaceInput",
    "WorkspaceOrigin",
    "WorkspaceSettings",
    "in_state_dir",
    "place_of",
]
