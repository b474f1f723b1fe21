"""When may we call the model again? Read from the CLI's words for a rate or usage limit.

The CLI says "You've hit your limit · resets 3pm (Europe/Paris)" (older versions: "Claude AI
usage limit reached|<epoch>"); an API 429 says nothing. Waiting for the stated reset, instead of
retrying every few seconds, is what keeps a night's session from hammering a closed door.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_WAIT_S = 60.0  # nothing said: wait a minute, then the workflow's backoff grows
MIN_WAIT_S, MAX_WAIT_S = 30.0, 12 * 3600.0

_EPOCH = re.compile(r"\|(\d{10})\b")
_IN = re.compile(r"resets? in (\d+)\s*(h|hours?|m|min|minutes?)\b", re.I)
_AT = re.compile(r"resets?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?(?:\s*\(([^)]+)\))?", re.I)


def _zone(name: str | None, fallback: tzinfo) -> tzinfo:
    if not name:
        return fallback
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return fallback


def seconds_until_reset(text: str, now: datetime) -> float:
    """Seconds to wait, from the limit message; `now` must be timezone-aware."""
    wait: float | None = None
    if match := _EPOCH.search(text):
        wait = int(match.group(1)) - now.timestamp()
    elif match := _IN.search(text):
        amount, unit = int(match.group(1)), match.group(2).lower()
        wait = amount * (3600 if unit.startswith("h") else 60)
    elif match := _AT.search(text):
        hour, minute = int(match.group(1)), int(match.group(2) or 0)
        meridiem = (match.group(3) or "").lower()
        if meridiem == "pm" and hour < 12:
            hour += 12
        elif meridiem == "am" and hour == 12:
            hour = 0
        if hour < 24 and minute < 60:
            local_now = now.astimezone(_zone(match.group(4), now.tzinfo or UTC))
            reset = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if reset <= local_now:
                reset += timedelta(days=1)  # "resets 3pm" said at 4pm means tomorrow
            wait = (reset - local_now).total_seconds()
    if wait is None:
        return DEFAULT_WAIT_S
    return min(max(wait, MIN_WAIT_S), MAX_WAIT_S)
