"""GitHub's failures mapped, in one place, onto the forge's errors (autopilot/forge/interface).

The messages say what happened and what to fix; they never carry the token (PyGithub's
exceptions hold only the status, the response body and its headers).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests
from github.GithubException import GithubException

from autopilot.forge.interface import (
    ForgeDenied,
    ForgeError,
    ForgeRateLimited,
    ForgeRefused,
    ForgeUnavailable,
)

__all__ = ["SECONDARY_WAIT_S", "forge_error", "github_message"]

# GitHub's advice for a secondary limit without Retry-After: wait at least a minute.
SECONDARY_WAIT_S = 60.0


def github_message(exc: GithubException) -> str:
    data: Any = exc.data
    if isinstance(data, dict):
        message = str(data.get("message", ""))
        errors = data.get("errors")
        if isinstance(errors, list):
            details = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
            message = "; ".join([message, *details]) if details else message
        return message
    return str(data or "")


def _header(headers: Mapping[str, str] | None, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value)
    return ""


def _rate_limit_wait(exc: GithubException, now: float) -> float | None:
    """Seconds to wait when `exc` is a rate limit, else None."""
    if exc.status not in (403, 429):
        return None
    headers = exc.headers
    retry_after = _header(headers, "retry-after")
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            return SECONDARY_WAIT_S
    if _header(headers, "x-ratelimit-remaining") == "0":
        try:
            return max(float(_header(headers, "x-ratelimit-reset")) - now, 0.0) + 1.0
        except ValueError:
            return SECONDARY_WAIT_S
    message = github_message(exc).lower()
    if "secondary rate limit" in message or "abuse" in message:
        return SECONDARY_WAIT_S
    if exc.status == 429 or "rate limit" in message:
        return SECONDARY_WAIT_S
    return None


def forge_error(exc: Exception, what: str, repo: str) -> ForgeError:
    """The forge error for a failed call; `what` says which call (the message's start)."""
    if isinstance(exc, ForgeError):
        return exc
    if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
        return ForgeUnavailable(f"{what}: GitHub did not answer ({type(exc).__name__})")
    if not isinstance(exc, GithubException):
        raise exc
    message = github_message(exc)
    wait_s = _rate_limit_wait(exc, time.time())
    if wait_s is not None:
        return ForgeRateLimited(f"{what}: GitHub's rate limit ({message})", wait_s)
    if exc.status >= 500:
        return ForgeUnavailable(f"{what}: GitHub answered {exc.status} ({message})")
    if exc.status == 401:
        return ForgeDenied(
            f"{what}: GitHub refused the token (401 {message}): give the worker a valid "
            f"GITHUB_TOKEN or GitHub App key"
        )
    if exc.status == 403:
        return ForgeDenied(
            f"{what}: the token may not do this on {repo} (403 {message}): give it "
            f"contents:write and pull_requests:write"
        )
    return ForgeRefused(f"{what}: GitHub answered {exc.status} ({message})")
