"""Notifications: the session's targets, the message body and the notify activity's input
(autopilot/notifications/)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

NotifyEvent = Literal[
    "session_paused",
    "budget_reached",
    "task_failed",
    "task_rejected",
    "task_conflict",
    "session_ended",
    # Forge mode: a task's pull request was opened, waits for people's approval, merged.
    "pull_request_opened",
    "pull_request_waiting",
    "pull_request_merged",
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
    pull_request_number: int | None = None  # forge mode: the task's pull request
    pull_request_url: str | None = None


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
