"""Where notifications may go: webhook URLs checked once, where they are given, and the label
a target is shown by.

A webhook URL often is a credential (a Slack or Discord webhook's path is its secret), so the
status, the logs and error messages name a URL by its label only: scheme, host and port.
"""

from __future__ import annotations

import shlex
import socket
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from autopilot.infra.host_names import private_address_reason, private_host_reason

__all__ = [
    "ALLOW_PRIVATE_SETTING",
    "NOTIFY_COMMAND_SETTING",
    "NotifyUrlError",
    "allows_private",
    "check_public",
    "check_url",
    "command_label",
    "parse_url_list",
    "private_reason",
    "private_refusal",
    "resolve",
    "url_label",
]

SCHEMES = ("http", "https")
# The installation's consent to notifications on this machine or its private network: set by
# the person in the starter's and the worker's environment, never by a repository.
ALLOW_PRIVATE_SETTING = "AUTOPILOT_NOTIFY_ALLOW_PRIVATE"
# The installation's notification command (argv, run outside any sandbox): only ever from the
# worker's own environment, never from a repository or a session's input.
NOTIFY_COMMAND_SETTING = "AUTOPILOT_NOTIFY_COMMAND"
DEFAULT_PORTS = {"http": 80, "https": 443}
Resolver = Callable[[str, int], list[str]]


class NotifyUrlError(ValueError):
    """Not a URL a notification can be POSTed to; the message says what is wrong."""


def check_url(value: str) -> str:
    """`value`, stripped, if it is an http(s) URL with a host; NotifyUrlError otherwise."""
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port out of range or not a number
    except ValueError as err:
        raise NotifyUrlError(f"{value!r} is not a URL ({err})") from None
    if parts.scheme.lower() not in SCHEMES:
        raise NotifyUrlError(
            f"{value!r} is not an http or https URL; a notification is a JSON POST to one, "
            'e.g. "https://hooks.example.com/T000/B000"'
        )
    if not parts.hostname:
        raise NotifyUrlError(f"{value!r} has no host; write it whole, e.g. https://host/path")
    if any(char.isspace() or ord(char) < 32 for char in url):
        raise NotifyUrlError(f"{value!r} contains white space or control characters")
    return url


def parse_url_list(raw: str) -> list[str]:
    """URLs separated by white space (an environment variable's value), each checked."""
    return list(dict.fromkeys(check_url(part) for part in raw.split()))


def url_label(url: str) -> str:
    """What a URL is shown by: its scheme, host and port, never its path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return f"{parts.scheme}://{netloc}"


def command_label(argv: Sequence[str]) -> str:
    """What a notify_command is shown by: its program."""
    return f"command {shlex.quote(argv[0])}" if argv else "command"


def allows_private(env: Mapping[str, str]) -> bool:
    return env.get(ALLOW_PRIVATE_SETTING, "").strip() == "1"


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` has now ([] when it does not resolve)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def private_reason(url: str, resolver: Resolver = resolve) -> str | None:
    """Why `url` points at this machine or a private network (None: it does not): its host's
    name or address, or any address the name resolves to now."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    reason = private_host_reason(host)
    if reason is not None:
        return reason
    port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 443)
    for address in resolver(host, port):
        found = private_address_reason(address)
        if found is not None:
            return f"resolves to an address that {found}"
    return None


def check_public(url: str, resolver: Resolver = resolve) -> None:
    """NotifyUrlError when `url` points at this machine or a private network."""
    reason = private_reason(url, resolver)
    if reason is not None:
        raise NotifyUrlError(private_refusal(url, reason))


def private_refusal(url: str, reason: str) -> str:
    return (
        f"{url_label(url)} {reason}; a notification there needs {ALLOW_PRIVATE_SETTING}=1 in the"
        " environment of the starter and the worker (the installation's choice, not a"
        " repository's)"
    )
