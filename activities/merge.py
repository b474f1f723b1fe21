"""Activity: merge a task's branch into the target branch (serialized by the session)."""

from __future__ import annotations

import structlog
from temporalio import activity

from activities.errors import git_errors_as_activity_errors
from activities.heartbeat import in_thread
from autopilot import gitops
from autopilot.models import MergeInput, MergeOutcome

log = structlog.get_logger("merge")


@activity.defn
async def merge_task(request: MergeInput) -> MergeOutcome:
    # gitops.merge_task looks for this task's merge on the target first: a retry after a
    # crash between the merge and the activity's completion does not merge twice.
    with git_errors_as_activity_errors():
        outcome = await in_thread(
            gitops.merge_task,
            request.repo,
            request.target_branch,
            request.branch,
            request.session_id,
            request.task_id,
            request.message,
        )
    log.info(
        "merge",
        merged=outcome.merged,
        already_merged=outcome.already_merged,
        conflict=outcome.conflict,
        merge_sha=outcome.merge_sha,
        target=request.target_branch,
    )
    return outcome
