"""The session's notifications as messages: built from its status, pure (no I/O), so the
session workflow builds them and sends them through the notify activity, which completes,
scrubs and delivers them (autopilot/notifications/delivery.py)."""

from __future__ import annotations

from autopilot.notifications.messages import (
    REASON_LIMIT,
    clip,
    paused,
    pull_request_event,
    resume_command,
    retry_command,
    session_ended,
    task_ended,
)

__all__ = [
    "REASON_LIMIT",
    "clip",
    "paused",
    "pull_request_event",
    "resume_command",
    "retry_command",
    "session_ended",
    "task_ended",
]
