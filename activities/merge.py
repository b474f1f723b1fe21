"""Activity: merge a task's branch into the target branch (serialized by the session)."""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.errors import checked, git_errors_as_activity_errors
from activities.heartbeat import in_thread
from autopilot import git as gitops
from autopilot.infra import failpoints
from autopilot.models import MergeInput, MergeOutcome
from autopilot.steps.site import site_of, workspaces

log = structlog.get_logger("merge")


@activity.defn
async def merge_task(request: MergeInput) -> MergeOutcome:
    with git_errors_as_activity_errors():
        outcome = await in_thread(merge_and_tidy, checked(request))
    log.info(
        "merge",
        merged=outcome.merged,
        already_merged=outcome.already_merged,
        conflict=outcome.conflict,
        merge_sha=outcome.merge_sha,
        target=request.target_branch,
        worktree_removed=outcome.worktree_removed,
    )
    return outcome


def merge_and_tidy(request: MergeInput) -> MergeOutcome:
    """The merge, then the task's worktree once its branch is on the target.

    The merge looks for this task's merge on the target first: a retry after a crash
    between the merge and the activity's completion does not merge twice, and removes the
    worktree if the crash came before that. A worktree that will not go does not undo a merge
    that landed: the outcome says it is still there and the session's removal step retries it.
    """
    kind = workspaces(site_of(request))
    outcome = kind.merge(request)
    failpoints.reach(failpoints.AFTER_MERGE)
    if request.worktree and outcome.merged:
        try:
            kind.remove_at(request.repo, request.worktree)
        except (gitops.GitError, OSError) as err:
            log.warning("worktree kept after the merge", worktree=request.worktree, error=str(err))
        else:
            outcome.worktree_removed = True
    return outcome
