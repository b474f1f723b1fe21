"""Activities: deliver one notification to one target, and name the worker's own targets.

The worker's own targets (AUTOPILOT_NOTIFY) stay on the worker: the session learns only their
labels and count, and asks for target number i; a webhook URL is often a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import checked
from activities.heartbeat import in_thread
from autopilot.error_types import NOTIFY_FAILED, NOTIFY_REFUSED
from autopilot.infra.notify_targets import url_label
from autopilot.infra.redact import Redactor
from autopilot.models import NotifyInput
from autopilot.operate import notify

log = structlog.get_logger("notify")


class NotifyActivities:
    """Holds the installation's targets and the worker's environment (for its secrets)."""

    def __init__(self, installation: Sequence[str], env: Mapping[str, str]) -> None:
        self._installation = list(installation)
        self._env = dict(env)
        self._redactor = Redactor.from_env(env)

    @activity.defn(name="notify_installation")
    async def notify_installation(self) -> list[str]:
        """The labels of this worker's own targets: what the session may ask to notify."""
        return [url_label(url) for url in self._installation]

    @activity.defn(name="notify")
    async def notify(self, request: NotifyInput) -> None:
        checked(request.notification)
        target = request.target
        url = target.url
        if target.installation is not None:
            if target.installation >= len(self._installation):
                raise ApplicationError(
                    f"this worker has no notification target #{target.installation + 1} "
                    f"({target.label}); give every worker the same AUTOPILOT_NOTIFY",
                    type=NOTIFY_REFUSED,
                    non_retryable=True,
                )
            url = self._installation[target.installation]
        try:
            await in_thread(
                notify.deliver,
                request.notification,
                url=url,
                command=target.command,
                redactor=self._redactor,
                env=self._env,
            )
        except notify.NotifyError as err:
            message = self._redactor.scrub(str(err))  # a receiver's or command's own words
            log.warning(
                "notification not delivered",
                notify_event=request.notification.event,
                target=target.label,
                error=message,
                retryable=err.retryable,
            )
            raise ApplicationError(
                message,
                type=NOTIFY_FAILED if err.retryable else NOTIFY_REFUSED,
                non_retryable=not err.retryable,
            ) from None
        log.info(
            "notification delivered", notify_event=request.notification.event, target=target.label
        )
