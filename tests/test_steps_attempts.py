"""Runs' names and the lost/failed decision, without Temporal."""

from __future__ import annotations

from autopilot import error_types
from autopilot.steps.attempts import (
    agent_run_name,
    claude_session_id,
    ends_the_attempts,
    fresh_run_name,
    is_lost,
    reviewer_attempt,
    reviewer_run_name,
)


def test_each_run_has_a_name_of_its_own() -> None:
    assert agent_run_name(1, 1, 0) == "round-1-attempt-1"
    assert agent_run_name(2, 3, 1) == "round-2-attempt-3-run-2"
    assert fresh_run_name("round-1-attempt-1") == "round-1-attempt-1-fresh"
    assert reviewer_run_name(2, 1) == "review-round-2-attempt-1"


def test_a_session_id_is_the_same_on_every_worker() -> None:
    assert claude_session_id("wf", "round-1-attempt-1") == claude_session_id(
        "wf", "round-1-attempt-1"
    )
    assert claude_session_id("wf", "a") != claude_session_id("wf", "b")


def test_an_old_history_counts_the_reviewer_by_the_retry_policy() -> None:
    assert reviewer_attempt(1, 3) == 3 and reviewer_attempt(2, 1) == 2


def test_a_run_is_lost_when_its_worker_or_the_cli_went_away() -> None:
    assert is_lost(error_types.RUN_LOST) and is_lost(error_types.REMOTE_AWAY)
    # Failures recorded before the lost types were folded still read as lost on replay.
    assert all(is_lost(legacy) for legacy in error_types.LEGACY_LOST_TYPES)
    assert is_lost(None, timed_out=True)
    assert not is_lost(error_types.AGENT_HUNG) and not is_lost(None)


def test_no_attempt_follows_a_run_that_cannot_go_better_or_the_last() -> None:
    assert ends_the_attempts(error_types.AGENT_AUTH, 1, 3)
    assert ends_the_attempts(error_types.AGENT_HUNG, 3, 3)
    assert not ends_the_attempts(error_types.AGENT_HUNG, 2, 3)
