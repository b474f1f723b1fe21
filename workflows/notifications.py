"""The session's notifications, sent in the background: the session never waits on one while
it works, and a notification that fails for good is logged and kept in its status.

Each notification goes to each target as an activity of its own, with retries (a receiver
that answers 500 once still gets it) and a deadline over all of them, so the end of the
session, which waits for its last notifications, waits a bounded time. The worker's own
targets are looked up once (their labels only) at the session's first notification.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from autopilot.error_types import NOTIFY_REFUSED
    from autopilot.infra.notify_targets import command_label, url_label
    from autopilot.models import (
        Notification,
        NotifyFailure,
        NotifyInput,
        NotifyTarget,
        SessionCarry,
        SessionRequest,
    )
    from workflows.task import failure_message

# Patch id (workflow.patched): sessions recorded before notifications replay without them.
NOTIFY_PATCH = "notify"
NOTIFY_ATTEMPT = timedelta(seconds=30)  # one try: the HTTP or command timeout, and a margin
# Every try of one delivery, queued ones included: the longest the session's end waits.
NOTIFY_DEADLINE = timedelta(minutes=2)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=[NOTIFY_REFUSED],
)
LOOKUP_RETRY = RetryPolicy(maximum_attempts=3)
# The status travels in every query: only the latest few failures, each error clipped.
NOTIFY_FAILURES_KEPT = 5
NOTIFY_ERROR_CHARS = 500
INSTALLATION = "the worker's AUTOPILOT_NOTIFY"


def session_targets(request: SessionRequest) -> list[NotifyTarget]:
    targets = [NotifyTarget(label=url_label(url), url=url) for url in request.notify.urls]
    if request.notify.command:
        command = request.notify.command
        targets.append(NotifyTarget(label=command_label(command), command=command))
    return targets


class Notifier:
    """Sends the session's notifications; lives in the session workflow (workflow code)."""

    def __init__(self, request: SessionRequest, state: SessionCarry) -> None:
        self._targets = session_targets(request)
        self._state = state
        self._in_flight: set[asyncio.Task[None]] = set()
        self._lookup: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return bool(self._in_flight)

    def send(self, notification: Notification | None) -> None:
        """Start delivering `notification` to every target; returns at once."""
        if notification is None:
            return
        if workflow.patched(NOTIFY_PATCH):
            sending = asyncio.create_task(self._send(notification))
            self._in_flight.add(sending)
            sending.add_done_callback(self._in_flight.discard)
        else:
            return  # recorded before notifications: the session sent none

    async def settled(self) -> None:
        """Every notification sent so far delivered or given up (each has a deadline)."""
        if self._in_flight:
            await workflow.wait_condition(lambda: not self._in_flight)

    async def _send(self, notification: Notification) -> None:
        targets = [*self._targets, *await self._installation()]
        await asyncio.gather(*(self._deliver(notification, target) for target in targets))

    async def _deliver(self, notification: Notification, target: NotifyTarget) -> None:
        try:
            await workflow.execute_activity_method(
                NotifyActivities.notify,
                NotifyInput(notification=notification, target=target),
                start_to_close_timeout=NOTIFY_ATTEMPT,
                schedule_to_close_timeout=NOTIFY_DEADLINE,
                retry_policy=NOTIFY_RETRY,
                summary=f"Notify {target.label}: {notification.event}"
                + (f" (Task {notification.task_id})" if notification.task_id else ""),
            )
        except ActivityError as err:
            self._failed(
                NotifyFailure(
                    event=notification.event,
                    target=target.label,
                    error=failure_message(err),
                    task_id=notification.task_id,
                )
            )

    async def _installation(self) -> list[NotifyTarget]:
        """The worker's own targets, by number and label (their URLs stay on the worker)."""
        if self._state.notify_installation is None:
            if self._lookup is None:
                self._lookup = asyncio.create_task(self._look_up())
            await self._lookup
        labels = self._state.notify_installation or []
        return [NotifyTarget(label=label, installation=i) for i, label in enumerate(labels)]

    async def _look_up(self) -> None:
        try:
            labels = await workflow.execute_activity_method(
                NotifyActivities.notify_installation,
                start_to_close_timeout=NOTIFY_ATTEMPT,
                schedule_to_close_timeout=NOTIFY_DEADLINE,
                retry_policy=LOOKUP_RETRY,
                summary="Notification targets of the worker",
            )
        except ActivityError as err:
            labels = []
            self._failed(
                NotifyFailure(event="lookup", target=INSTALLATION, error=failure_message(err))
            )
        self._state.notify_installation = labels

    def _failed(self, failure: NotifyFailure) -> None:
        failure.at = workflow.now()
        failure.error = failure.error[:NOTIFY_ERROR_CHARS]
        workflow.logger.warning(
            "Notification %s to %s failed: %s", failure.event, failure.target, failure.error
        )
        status = self._state.status
        status.notify_failures = [*status.notify_failures, failure][-NOTIFY_FAILURES_KEPT:]
