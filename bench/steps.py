"""The baseline's phases beside the pipeline's activities: the same plain functions."""

from __future__ import annotations

from collections.abc import Mapping

ACTIVITY_OF_PHASE = {
    "prepare": "prepare_workspace",
    "agent": "run_agent",
    "commit": "commit_changes",
    "merge": "merge_task",
    "remove": "remove_workspace",
}
# Steps the pipeline does inside another activity, one round trip less each: the agent's
# activity commits what it left, a landed merge takes the worktree along. The step's own
# activity runs only when that failed.
DONE_BY = {"commit_changes": "run_agent", "remove_workspace": "merge_task"}


def host_of(activity: str, ran: Mapping[str, float]) -> str:
    """The activity that did this step's work in a run (`ran`: activity -> time)."""
    return activity if activity in ran or activity not in DONE_BY else DONE_BY[activity]


def overhead_by_activity(
    phases: Mapping[str, float], activities: Mapping[str, float]
) -> dict[str, float]:
    """Each activity's time minus the baseline phases whose work it does (ms per task)."""
    overhead: dict[str, float] = {}
    for phase, activity in ACTIVITY_OF_PHASE.items():
        host = host_of(activity, activities)
        overhead[host] = overhead.get(host, activities.get(host, 0.0)) - phases[phase]
    return overhead
