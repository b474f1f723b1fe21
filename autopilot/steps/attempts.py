"""An agent's and a reviewer's attempts: how each run's Claude session is named, and whether
a run that ended badly was lost (resumed, no attempt spent) or failed (an attempt spent).

The lost/failed decision is made here alone: the activities mark the run they describe, and
the task workflow reads the same rule for a run that could not describe itself (its worker
gone, its heartbeat timed out)."""

from __future__ import annotations

import uuid

from autopilot import error_types

# Namespace for deterministic Claude session ids (one per task, round and attempt).
SESSION_NAMESPACE = uuid.UUID("6f1f7f0e-3c55-4d5e-9a43-2f0c0f7c3a11")


def agent_run_name(round_number: int, attempt: int, lost_before: int) -> str:
    """The name of an agent run: one per round and attempt, and one per run lost before it
    within the attempt (a lost run's session may be unsaved; the next gets its own)."""
    name = f"round-{round_number}-attempt-{attempt}"
    return f"{name}-run-{lost_before + 1}" if lost_before else name


def reviewer_run_name(round_number: int, attempt: int) -> str:
    return f"review-round-{round_number}-attempt-{attempt}"


def fresh_run_name(name: str) -> str:
    """The run started within the same attempt when the CLI refused to resume its session."""
    return f"{name}-fresh"


def claude_session_id(workflow_id: str | None, name: str) -> str:
    """The Claude session id of run `name` of the task workflow `workflow_id`: the same on
    every worker, so a resumed run finds the session its lost run saved."""
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{workflow_id}/{name}"))


def reviewer_attempt(counted: int, retried: int) -> int:
    """The reviewer's attempt: the workflow counts them (`counted`); histories recorded
    before it let the activity's retry policy count them (`retried`)."""
    return max(counted, retried)


def is_lost(error_type: str | None, *, timed_out: bool = False) -> bool:
    """A run lost, not failed: its worker stopped heartbeating (`timed_out`: it died, or the
    server was away), the worker stopped, or the CLI was killed by a signal the pipeline did
    not send (error_types.LOST_RUN)."""
    return timed_out or error_type in error_types.LOST_RUN


def ends_the_attempts(error_type: str | None, attempt: int, max_attempts: int) -> bool:
    """A failed run after which no attempt follows: one that cannot go better (auth, setup,
    input refused) or the last attempt allowed."""
    return error_type in error_types.AGENT_NON_RETRYABLE or attempt >= max_attempts
