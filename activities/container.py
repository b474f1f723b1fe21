"""What container mode's activities share: the engine, found for each run, and its failures
as the error types the workflows decide on."""

from __future__ import annotations

import os
from collections.abc import Mapping

from temporalio.exceptions import ApplicationError

from autopilot.agent.container_access import (
    EngineAccess,
    EngineError,
    EngineUnavailable,
    engine_preflight,
)
from autopilot.error_types import CONTAINER_SETUP


def engine_or_setup_error(env: Mapping[str, str] | None = None) -> EngineAccess:
    """The engine this run uses. None reachable (it went away mid-session): a setup error,
    which ends the task at once and pauses the session with the reason (SETUP_ERRORS)."""
    try:
        return engine_preflight(os.environ if env is None else env)
    except EngineUnavailable as err:
        raise ApplicationError(
            f"container mode: {err}", type=CONTAINER_SETUP, non_retryable=True
        ) from err


def engine_error(err: EngineError) -> ApplicationError:
    """A lost or timed-out engine is a lost run (LOST_RUN: resumed, no attempt spent); an
    image the engine cannot build is a setup error."""
    return ApplicationError(
        str(err), type=err.error_type, non_retryable=err.error_type == CONTAINER_SETUP
    )
