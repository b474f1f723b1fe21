"""What each notification says, built from the session's status: why it paused and the
command that resumes it, which task ended how and the command that retries it, how the session
ended. Pure, so the session workflow calls it. The repository is as the status has it; the
notify activity shows it without credentials (`shown_url`) when it completes the message."""

from __future__ import annotations

import math
import shlex
from typing import Any

from autopilot.models import Notification, NotifyEvent, SessionStatus, TaskState, TaskStatus

STARTER = "python starter.py"
REASON_LIMIT = 4000
TASK_EVENTS: dict[TaskState, NotifyEvent] = {
    TaskState.FAILED: "task_failed",
    TaskState.REJECTED: "task_rejected",
    TaskState.CONFLICT: "task_conflict",
}


def resume_command(
    session_id: str, budget: float | None = None, *, reload_config: bool = False
) -> str:
    """`reload_config`: the fix is a commit of .autopilot.toml, which only that flag reads."""
    flag = " --reload-config" if reload_config else ""
    command = f"{STARTER} resume{flag} {shlex.quote(session_id)}"
    return command if budget is None else f"{command} --max-cost-usd {budget:.2f}"


def retry_command(session_id: str, task_id: str) -> str:
    return f"{STARTER} retry {shlex.quote(session_id)} {shlex.quote(task_id)}"


def _facts(status: SessionStatus, event: NotifyEvent) -> dict[str, Any]:
    """What every notification says about its session."""
    counts: dict[str, int] = {}
    for task in status.tasks:
        counts[task.state.value] = counts.get(task.state.value, 0) + 1
    return {
        "event": event,
        "session_id": status.id,
        "status": status.status.value,
        "repo": status.repo,
        "target_branch": status.target_branch,
        "plan": status.plan_path,
        "counts": {state.value: counts[state.value] for state in TaskState if state in counts},
        "tasks_total": status.tasks_total,
        "tasks_merged": status.tasks_completed,
        "cost_usd": round(status.cost_usd, 4),
        "max_cost_usd": status.max_cost_usd,
    }


def clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def paused(
    status: SessionStatus, *, budget_reached: bool = False, reload_config: bool = False
) -> Notification:
    """The session paused: why, and the command that resumes it (with a higher budget when
    the budget paused it: twice what was spent or budgeted, in whole cents, so that `resume`
    accepts it)."""
    budget = status.max_cost_usd
    higher = None
    if budget_reached and budget is not None:
        higher = math.ceil(200 * max(status.cost_usd, budget)) / 100
    return Notification(
        **_facts(status, "budget_reached" if budget_reached else "session_paused"),
        reason=clip(status.pause_reason, REASON_LIMIT),
        resume_command=resume_command(status.id, higher, reload_config=reload_config),
    )


def task_ended(status: SessionStatus, task: TaskStatus) -> Notification | None:
    """A task failed, was rejected or conflicts: why, its kept branch and how to retry it.
    None for any other end."""
    event = TASK_EVENTS.get(task.state)
    if event is None:
        return None
    return Notification(
        **_facts(status, event),
        reason=clip(task.last_error, REASON_LIMIT),
        task_id=task.id,
        task_title=task.title,
        task_state=task.state.value,
        branch=task.branch or None,
        retry_command=retry_command(status.id, task.id),
    )


def session_ended(status: SessionStatus, duration_s: float | None) -> Notification:
    reason = status.error or status.cancel_reason
    return Notification(
        **_facts(status, "session_ended"),
        reason=clip(reason, REASON_LIMIT),
        duration_s=None if duration_s is None else round(duration_s, 1),
    )


def pull_request_event(
    status: SessionStatus, task: TaskStatus, event: NotifyEvent
) -> Notification | None:
    """Forge mode: the task's pull request was opened, waits for approving reviews, or
    merged; with its number and link. None when the task has no pull request."""
    pull = task.pull_request
    if pull is None:
        return None
    return Notification(
        **_facts(status, event),
        reason=clip(task.forge_phase, REASON_LIMIT) or None,
        task_id=task.id,
        task_title=task.title,
        task_state=task.state.value,
        pull_request_number=pull.number,
        pull_request_url=pull.url,
    )
