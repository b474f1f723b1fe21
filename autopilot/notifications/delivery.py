"""Notifications: a person told when a session needs them (paused, a task failed, rejected or
conflicting, the budget reached) and when it ended.

The session builds each notification from its status (autopilot/notifications: `paused`,
`task_ended`, `session_ended`, pure); the notify activity shows its
repository without credentials (`shown`), adds the target branch's head (`with_head`) and the
chat text (`with_text`), scrubs the worker's secret values (`scrubbed`) and delivers it
(`deliver`): a JSON POST to a webhook URL, or a command run argv-style with the JSON on stdin
and the text as its last argument. A `NotifyError` says
whether another attempt can help.
"""

from __future__ import annotations

import http.client
import os
import shlex
import signal
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from autopilot.git import GitError, shown_url
from autopilot.infra import Redactor, private_address_reason, private_refusal, resolve, url_label
from autopilot.models import Notification
from autopilot.notifications import clip
from autopilot.steps.site import kept_work, target_head

__all__ = [
    "COMMAND_TIMEOUT_S",
    "HTTP_TIMEOUT_S",
    "NotifyError",
    "command_env",
    "deliver",
    "post",
    "run_command",
    "scrubbed",
    "shown",
    "with_head",
    "with_text",
]

HTTP_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 20.0
# Discord refuses a `content` over 2,000 characters; the whole failure stays in `reason`.
TEXT_LIMIT = 1900
REASON_IN_TEXT = 600
ERROR_BODY_CHARS = 300
# HTTP answers that may mean "later": a timeout, too early, too many, any server error.
RETRYABLE_STATUS = frozenset({408, 425, 429})
# Besides PATH, HOME and LANG, what a desktop notifier (notify-send) needs to find the desktop.
COMMAND_VARS = (
    "PATH",
    "HOME",
    "LANG",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
)


class NotifyError(Exception):
    """A delivery failed; `retryable`: another attempt later may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


# --------------------------------------------------------------------------------------------
# What the session sends (pure: called in the workflow)
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The body as sent (in the activity)
# --------------------------------------------------------------------------------------------


def shown(notification: Notification) -> Notification:
    """The repository without credentials (a session from before URLs were checked)."""
    return notification.model_copy(update={"repo": shown_url(notification.repo)})


def with_head(notification: Notification) -> Notification:
    """A session's end with the target branch's head as git has it now (None when the repo
    or the branch cannot be read: the notification still goes)."""
    if notification.event != "session_ended":
        return notification
    try:
        head = target_head(notification.repo, notification.target_branch)
    except GitError:
        head = None
    return notification.model_copy(update={"head_sha": head})


def _duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _progress(n: Notification) -> str:
    return f"{n.tasks_merged} of {n.tasks_total} tasks merged, ${n.cost_usd:.2f}"


def _where(n: Notification) -> str:
    plan = n.plan.rsplit("/", 1)[-1]
    return f"Plan {plan} on {n.repo}, target branch `{n.target_branch}`."


_TASK_ENDINGS = {
    "task_failed": "failed",
    "task_rejected": "was rejected by its review",
    "task_conflict": "conflicts with the target branch",
}
_PULL_REQUEST_EVENTS = {
    "pull_request_opened": "is up for review as",
    "pull_request_waiting": "waits for people's approval on",
    "pull_request_merged": "merged through",
}
_SESSION_ENDINGS = {
    "completed": "completed",
    "incomplete": "ended incomplete",
    "cancelled": "was cancelled",
    "failed": "failed",
}


def _text(n: Notification) -> str:
    session = f"Autopilot session `{n.session_id}`"
    reason = clip(n.reason, REASON_IN_TEXT)
    if n.event == "session_paused":
        lines = [
            f"{session} paused: {reason}",
            f"Resume it with `{n.resume_command}`",
            f"{_progress(n)} so far. {_where(n)}",
        ]
    elif n.event == "budget_reached":
        budget = f" of ${n.max_cost_usd:.2f}" if n.max_cost_usd is not None else ""
        lines = [
            f"{session} reached its budget: ${n.cost_usd:.2f}{budget} spent, no new task starts.",
            f"Resume it with a higher budget: `{n.resume_command}`",
            f"{_progress(n)} so far. {_where(n)}",
        ]
    elif n.event in _TASK_ENDINGS:
        kept = f" {kept_work(n.repo, n.branch)}" if n.branch else ""
        lines = [
            f"Autopilot: Task {n.task_id} ({n.task_title}) {_TASK_ENDINGS[n.event]} in session "
            f"`{n.session_id}`: {reason}",
            f"Run it again with `{n.retry_command}`.{kept}",
            _where(n),
        ]
    elif n.event in _PULL_REQUEST_EVENTS:
        lines = [
            f"Autopilot: Task {n.task_id} ({n.task_title}) {_PULL_REQUEST_EVENTS[n.event]} "
            f"pull request #{n.pull_request_number}: {n.pull_request_url}",
            f"{_progress(n)} in session `{n.session_id}`. {_where(n)}",
        ]
    else:
        others = ", ".join(
            f"{count} {state}" for state, count in n.counts.items() if state != "merged"
        )
        took = f" in {_duration(n.duration_s)}" if n.duration_s is not None else ""
        ending = _SESSION_ENDINGS.get(n.status, f"ended {n.status}")
        why = f" ({reason})" if reason else ""
        head = f"`{n.target_branch}` is at {n.head_sha[:12]}." if n.head_sha else ""
        lines = [
            f"{session} {ending}{why}: {n.tasks_merged} of {n.tasks_total} tasks merged"
            f"{f' ({others})' if others else ''}{took}, ${n.cost_usd:.2f}.",
            f"{_where(n)} {head}".rstrip(),
        ]
    return clip("\n".join(lines), TEXT_LIMIT) or ""


def with_text(notification: Notification) -> Notification:
    """The notification with its chat text, as `text` and (for Discord) `content`."""
    text = _text(notification)
    return notification.model_copy(update={"text": text, "content": text})


def _scrub(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.scrub(value)
    if isinstance(value, dict):
        return {key: _scrub(item, redactor) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, redactor) for item in value]
    return value


def scrubbed(notification: Notification, redactor: Redactor) -> Notification:
    """Every text of the notification with the worker's secret values replaced."""
    return Notification.model_validate(_scrub(notification.model_dump(), redactor))


# --------------------------------------------------------------------------------------------
# Delivery (blocking: the activity runs it in a thread)
# --------------------------------------------------------------------------------------------


class _PrivateAddress(OSError):
    """The target's name resolved to this machine or a private network."""


def _connect_checked(
    host: str, port: int, timeout: float | None, allow_private: bool
) -> socket.socket:
    """A connection to an address of `host` that was checked before it was dialled: the name
    is resolved once, here, so a second answer (DNS rebinding) cannot swap the address."""
    addresses = resolve(host, port)
    if not addresses:
        raise OSError(f"{host} does not resolve")
    if not allow_private:
        for address in addresses:
            reason = private_address_reason(address)
            if reason is not None:
                raise _PrivateAddress(f"resolves to an address that {reason}")
    last: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as err:
            last = err
    raise last or OSError(f"cannot connect to {host}")


class _CheckedHTTP(http.client.HTTPConnection):
    allow_private = False

    def connect(self) -> None:
        self.sock = _connect_checked(self.host, self.port, self.timeout, self.allow_private)


class _CheckedHTTPS(http.client.HTTPSConnection):
    allow_private = False

    def connect(self) -> None:
        raw = _connect_checked(self.host, self.port, self.timeout, self.allow_private)
        # The certificate is checked against the name, though the address was dialled.
        self.sock = ssl.create_default_context().wrap_socket(raw, server_hostname=self.host)


def post(
    url: str, data: bytes, timeout_s: float = HTTP_TIMEOUT_S, *, allow_private: bool = False
) -> None:
    """POST `data` as JSON to `url`; any 2xx answer is a delivery. No proxy and no redirect
    is followed: each would dial an address that was not checked. Without `allow_private`,
    an address of this machine or a private network is refused (not retryable)."""
    label = url_label(url)
    parts = urlsplit(url)
    https = parts.scheme.lower() == "https"
    kind = _CheckedHTTPS if https else _CheckedHTTP
    connection = kind(parts.hostname or "", parts.port, timeout=timeout_s)
    connection.allow_private = allow_private
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"Content-Type": "application/json", "User-Agent": "cc3-autopilot"}
    try:
        connection.request("POST", target, body=data, headers=headers)
        answer = connection.getresponse()
        said = answer.read(ERROR_BODY_CHARS)
    except _PrivateAddress as err:
        raise NotifyError(private_refusal(url, str(err)), retryable=False) from None
    except (http.client.HTTPException, OSError) as err:
        raise NotifyError(f"POST to {label} failed: {err}", retryable=True) from None
    finally:
        connection.close()
    if not 200 <= answer.status < 300:
        _refused(label, answer.status, answer.reason, answer.getheader("Location", ""), said)


def _refused(label: str, code: int, reason: str, location: str, body: bytes) -> NoReturn:
    if 300 <= code < 400:
        raise NotifyError(
            f"{label} answered HTTP {code}, a redirect"
            + (f" to {url_label(location)}" if location.startswith(("http://", "https://")) else "")
            + "; give the URL it redirects to",
            retryable=False,
        )
    said = body.decode("utf-8", "replace").strip()
    message = f"{label} answered HTTP {code} {reason}" + (f": {said}" if said else "")
    raise NotifyError(message, retryable=code in RETRYABLE_STATUS or code >= 500)


def command_env(env: Mapping[str, str]) -> dict[str, str]:
    """A notify_command's environment: the basics and what finds the desktop, nothing else of
    the worker's (its credentials stay out)."""
    return {name: env[name] for name in COMMAND_VARS if name in env}


def run_command(
    argv: Sequence[str],
    data: bytes,
    text: str,
    env: Mapping[str, str],
    timeout_s: float = COMMAND_TIMEOUT_S,
) -> None:
    """Run argv + [text] without a shell, `data` on its stdin, in its own process group (all
    of it is killed at the timeout). Exit status 0 is a delivery."""
    shown = shlex.quote(argv[0])
    with tempfile.TemporaryFile() as output:  # a file, not a pipe: a left child cannot hang us
        try:
            proc = subprocess.Popen(
                [*argv, text],
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=command_env(env),
                cwd="/",
                start_new_session=True,
            )
        except OSError as err:
            raise NotifyError(
                f"notify_command {shown} cannot start: {err.strerror or err}; give a program on "
                "the worker's PATH or an absolute path",
                retryable=False,
            ) from None
        try:
            proc.communicate(data, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise NotifyError(
                f"notify_command {shown} did not finish in {timeout_s:g}s", retryable=True
            ) from None
        if proc.returncode != 0:
            output.seek(0)
            said = output.read(ERROR_BODY_CHARS).decode("utf-8", "replace").strip()
            raise NotifyError(
                f"notify_command {shown} exited with {proc.returncode}"
                + (f": {said}" if said else ""),
                retryable=True,
            )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def deliver(
    notification: Notification,
    *,
    url: str = "",
    command: Sequence[str] = (),
    redactor: Redactor,
    env: Mapping[str, str],
    allow_private: bool = False,
) -> Notification:
    """Send the notification, completed and scrubbed, to a URL or a command; returns the
    body as sent. NotifyError when it could not be delivered."""
    body = scrubbed(with_text(with_head(shown(notification))), redactor)
    data = body.model_dump_json().encode()
    if command:
        run_command(command, data, body.text, env)
    else:
        post(url, data, allow_private=allow_private)
    return body
