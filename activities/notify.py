"""Activities: deliver one notification to one target, and name the worker's own targets.

The worker's own targets (AUTOPILOT_NOTIFY, then AUTOPILOT_NOTIFY_COMMAND) stay on the worker:
the session learns only their labels and count, and asks for target number i; a webhook URL is
often a credential. A command is run only when it is the worker's own: one in the session's
input (an older starter's [notify] notify_command from the repository) is refused, as it would
run outside the sandbox. A URL to this machine or a private network is refused at send time
too, unless the worker's AUTOPILOT_NOTIFY_ALLOW_PRIVATE=1 (autopilot/notifications/delivery.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import checked
from activities.heartbeat import in_thread
from autopilot.error_types import NOTIFY_FAILED, NOTIFY_REFUSED
from autopilot.infra.notify_targets import (
    NOTIFY_COMMAND_SETTING,
    allows_private,
    command_label,
    url_label,
)
from autopilot.infra.redact import Redactor
from autopilot.models import NotifyInput, NotifyTarget
from autopilot.notifications import delivery as notify

log = structlog.get_logger("notify")


class NotifyActivities:
    """Holds the installation's targets and the worker's environment (for its secrets)."""

    def __init__(
        self, installation: Sequence[str], env: Mapping[str, str], command: Sequence[str] = ()
    ) -> None:
        self._installation = [NotifyTarget(label=url_label(url), url=url) for url in installation]
        if command:
            self._installation.append(
                NotifyTarget(label=command_label(command), command=list(command))
            )
        self._env = dict(env)
        self._redactor = Redactor.from_env(env)
        self._allow_private = allows_private(env)

    @activity.defn(name="notify_installation")
    async def notify_installation(self) -> list[str]:
        """The labels of this worker's own targets: what the session may ask to notify."""
        return [target.label for target in self._installation]

    @activity.defn(name="notify")
    async def notify(self, request: NotifyInput) -> None:
        checked(request.notification)
        target = self._own_target(request.target)
        try:
            await in_thread(
                notify.deliver,
                request.notification,
                url=target.url,
                command=target.command,
                redactor=self._redactor,
                env=self._env,
                allow_private=self._allow_private,
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

    def _own_target(self, target: NotifyTarget) -> NotifyTarget:
        """What to deliver to: the worker's own target by its number, a session's URL as it
        is; never a command the session names."""
        if target.installation is not None:
            if target.installation >= len(self._installation):
                raise ApplicationError(
                    f"this worker has no notification target #{target.installation + 1} "
                    f"({target.label}); give every worker the same AUTOPILOT_NOTIFY and "
                    f"{NOTIFY_COMMAND_SETTING}",
                    type=NOTIFY_REFUSED,
                    non_retryable=True,
                )
            return self._installation[target.installation]
        if target.command:
            raise ApplicationError(
                f"{target.label} is not run: it came with the session (a notify_command in the"
                " repository's .autopilot.toml), and would run outside the sandbox; set "
                f"{NOTIFY_COMMAND_SETTING} in the worker's environment instead",
                type=NOTIFY_REFUSED,
                non_retryable=True,
            )
        return target
