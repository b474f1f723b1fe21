"""Where notifications may go: webhook URLs checked once, where they are given, and the label
a target is shown by.

A webhook URL often is a credential (a Slack or Discord webhook's path is its secret), so the
status, the logs and error messages name a URL by its label only: scheme, host and port.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["NotifyUrlError", "check_url", "command_label", "parse_url_list", "url_label"]

SCHEMES = ("http", "https")


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
