"""The failure kinds that travel as Temporal ApplicationError types, named once.

Activities raise them, workflows decide on them: whether a retry can help, whether the failure
spends the task's `--max-attempts`, whether every other task would fail the same way.
"""

from __future__ import annotations

# The agent failed: these spend the task's attempts.
AGENT_AUTH = "AgentAuth"  # credentials or billing: retrying cannot help
AGENT_RATE_LIMITED = "AgentRateLimited"
AGENT_API_ERROR = "AgentApiError"
AGENT_HUNG = "AgentHung"
AGENT_TIMED_OUT = "AgentTimedOut"
AGENT_DIED = "AgentDied"  # exited without a result event, not by a signal from outside
AGENT_ERROR = "AgentError"  # ended with is_error for another reason (max turns, ...)
AGENT_SETUP = "AgentSetup"  # the CLI cannot be started on this worker
REVIEWER_CHANGED_TREE = "ReviewerChangedTree"

# The run was lost, not failed: these never spend an attempt; the message says what happened.
# The run's process or its worker went away: the worker stopped heartbeating (died, or the
# server was away), the CLI died of a signal the pipeline did not send, the worker was told to
# stop (SIGTERM) and its grace period ran out, or container mode's Dagger engine went away or
# ran a call past its hard timeout (autopilot/agent/container_engine.py).
RUN_LOST = "RunLost"
# Remote mode: the remote did not answer, before the run (this worker could not find or make
# the task's workspace) or after it (the agent's work could not be pushed). The next run, here
# or elsewhere, goes on from the remote.
REMOTE_AWAY = "RemoteAway"
# What the lost types were before they were folded into the two above: failures recorded in
# histories still carry them, and the task workflow decides on them when it replays.
LEGACY_LOST_TYPES = frozenset(
    {
        "AgentLost",
        "AgentKilled",
        "WorkerStopped",
        "EngineLost",
        "EngineTimedOut",
        "WorkNotPushed",
        "WorkspaceUnavailable",
    }
)
# The container could not be made (image not pulled, packages or the CLI not installed):
# every other task would meet it too.
CONTAINER_SETUP = "ContainerSetup"

# Git and the plan.
REPO_UNUSABLE = "RepoUnusable"
GIT_ERROR = "GitError"
CONFLICTS_REMAIN = "ConflictsRemain"
# The target's checkout has the user's files in the merge's way, or a rebase/merge under way:
# the merge is refused until they act, then `retry`.
CHECKOUT_IN_THE_WAY = "CheckoutInTheWay"
# The task's commits hold a file the workspace setup put there (`copy`, `cache_dirs`): the
# branch is not brought back, a retry of the step cannot help.
WORKSPACE_FILES_COMMITTED = "WorkspaceFilesCommitted"
FILES_TOO_LARGE = "FilesTooLarge"  # the agent left a file too big to commit
CONTROL_REFUSED = "ControlRefused"  # an operator's update the session's state does not allow
# The task's changes touch a protected path (CI, .claude/, .mcp.json, .autopilot.toml) its
# plan entry does not name: the branch is not brought back, and no attempt can change that.
PROTECTED_PATHS_CHANGED = "ProtectedPathsChanged"
# [workspace] setup failed (a command, a `copy` file missing or tracked): not the agent's doing.
WORKSPACE_SETUP_FAILED = "WorkspaceSetupFailed"
PLAN_INVALID = "PlanInvalid"
# An activity's input names a repository, path, branch or id that the starter would have
# refused (autopilot/git/input_check.py): a workflow input is data, checked again on workers.
INPUT_REFUSED = "InputRefused"
PLAN_SNAPSHOT_MISSING = "PlanSnapshotMissing"

# Forge mode: the forge refused the worker's token (401, 403 not a rate limit): every task
# would meet it, so the session pauses with what to fix; or the forge said no to a request a
# person has to look at (404, 422): the task fails with the forge's words.
FORGE_DENIED = "ForgeDenied"
FORGE_REFUSED = "ForgeRefused"
# A 5xx, a timeout, a refused connection: the step is retried after the retry policy's backoff.
FORGE_UNAVAILABLE = "ForgeUnavailable"

# Notifications: another attempt may deliver it (a 5xx, a timeout, a command's non-zero exit),
# or it cannot (a 4xx, a redirect, a command that does not start).
NOTIFY_FAILED = "NotifyFailed"
NOTIFY_REFUSED = "NotifyRefused"

# Retrying the agent cannot fix these: the task ends at once with the message.
AGENT_NON_RETRYABLE = frozenset(
    # REPO_UNUSABLE, WORKSPACE_SETUP_FAILED: a remote session's run that had to make its
    # workspace again first. INPUT_REFUSED: the same input is refused again. PROTECTED_PATHS_
    # CHANGED: a remote session's agent activity commits, and its branch holds the change
    # whatever the next attempt does.
    {
        AGENT_AUTH,
        AGENT_SETUP,
        CONTAINER_SETUP,
        REPO_UNUSABLE,
        WORKSPACE_SETUP_FAILED,
        INPUT_REFUSED,
        PROTECTED_PATHS_CHANGED,
    }
)
# Every other task would meet these too: they pause the session, whatever the policy.
SETUP_ERRORS = frozenset(
    {
        AGENT_AUTH,
        AGENT_SETUP,
        REPO_UNUSABLE,
        PLAN_SNAPSHOT_MISSING,
        WORKSPACE_SETUP_FAILED,
        CONTAINER_SETUP,
        INPUT_REFUSED,
    }
)
# Of those, the ones a fixed `.autopilot.toml` cures ([workspace] setup): the pause says
# `resume --reload-config`, which retries the tasks that met a setup error. (CONTAINER_SETUP
# may be the engine's or [container]'s: its pause names both ways.)
CONFIG_ERRORS = frozenset({WORKSPACE_SETUP_FAILED})
# A run that ended with one of these was lost: it resumes and is not counted as a failure.
LOST_RUN = frozenset({RUN_LOST, REMOTE_AWAY}) | LEGACY_LOST_TYPES
