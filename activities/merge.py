"""Activity: merge a task's branch into the target branch (serialized by the session)."""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.errors import checked, git_errors_as_activity_errors
from activities.heartbeat import in_thread
from autopilot import git as gitops
from autopilot.infra import failpoints
from autopilot.models import MergeInput, MergeResult
from autopilot.steps.site import site_of, workspaces

log = structlog.get_logger("merge")


@activity.defn
async def merge_task(request: MergeInput) -> MergeResult:
    with git_errors_as_activity_errors():
        outcome = await in_thread(merge_and_tidy, checked(request))
    shown = {"merged", "already_merged", "conflict", "merge_sha", "workspace_removed"}
    log.info("merge", target=request.target_branch, **outcome.model_dump(include=shown))
    return outcome


def merge_and_tidy(request: MergeInput) -> MergeResult:
    """The merge, then the task's workspace once its branch is on the target.

    The merge looks for this task's merge on the target first: a retry after a crash
    between the merge and the activity's completion does not merge twice, and removes the
    workspace if the crash came before that. A workspace that will not go does not undo a merge
    that landed: the outcome says it is still there and the session's removal step retries it.
    """
    kind = workspaces(site_of(request))
    outcome = kind.merge(request)
    failpoints.reach(failpoints.AFTER_MERGE)
    if request.workspace_path and outcome.merged:
        try:
            kind.remove_at(request.repo, request.workspace_path)
        except (gitops.GitError, OSError) as err:
            log.warning(
                "workspace kept after the merge",
                workspace_path=request.workspace_path,
                error=str(err),
            )
        else:
            outcome.workspace_removed = True
    return outcome
