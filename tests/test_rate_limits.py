"""Waiting for a usage limit's reset time, as the CLI states it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from autopilot.agent import DEFAULT_WAIT_S, MAX_WAIT_S, MIN_WAIT_S, seconds_until_reset

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


@pytest.mark.reliability(
    "Rate or usage limit",
    "the CLI's 'resets <time>' wording is turned into the wait before the retry",
)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("You've hit your limit · resets 3pm (UTC)", 3600),
        ("You've hit your limit · resets 3:30pm (UTC)", 5400),
        ("You've hit your limit · resets at 15:00 (UTC)", 3600),
        ("You've hit your limit · resets 1pm (UTC)", MAX_WAIT_S),  # tomorrow, 23 h: capped
        ("You've hit your limit · resets 4pm (Europe/Paris)", 3600),  # 15:00 UTC
        ("usage limit · resets in 2 hours", 7200),
        ("limit reached, resets in 45 minutes", 2700),
        (f"Claude AI usage limit reached|{int(NOW.timestamp()) + 900}", 900),
    ],
)
def test_reset_times(text: str, expected: float) -> None:
    assert seconds_until_reset(text, NOW) == pytest.approx(expected)


def test_unknown_wording_waits_the_default_and_bounds_hold() -> None:
    assert seconds_until_reset("429 Too Many Requests", NOW) == DEFAULT_WAIT_S
    assert seconds_until_reset("resets in 0 minutes", NOW) == MIN_WAIT_S
    assert seconds_until_reset("resets in 99 hours", NOW) == MAX_WAIT_S
    assert seconds_until_reset("resets 3pm (Not/AZone)", NOW.replace(hour=14)) == 3600
