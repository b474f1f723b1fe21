"""A worker's --max-agents and --graceful-shutdown-s: flag, else variable, else default; a bad
value is refused with what to write instead."""

from __future__ import annotations

import pytest

from autopilot.infra import (
    DEFAULT_GRACEFUL_SHUTDOWN_S,
    DEFAULT_MAX_AGENTS,
    GRACEFUL_SHUTDOWN_VAR,
    MAX_AGENTS_VAR,
    ConfigError,
    WorkerOptions,
    worker_options,
)


def test_defaults() -> None:
    assert worker_options(None, None, {}) == WorkerOptions(
        DEFAULT_MAX_AGENTS, DEFAULT_GRACEFUL_SHUTDOWN_S
    )


def test_the_variables_set_an_installation_and_a_flag_wins() -> None:
    env = {MAX_AGENTS_VAR: "3", GRACEFUL_SHUTDOWN_VAR: "45.5"}
    assert worker_options(None, None, env) == WorkerOptions(3, 45.5)
    assert worker_options("1", "0", env) == WorkerOptions(1, 0.0)


@pytest.mark.parametrize(
    ("agents", "grace", "env", "message"),
    [
        ("0", None, {}, "--max-agents 0 is not allowed; use a whole number of at least 1."),
        ("two", None, {}, "--max-agents two is not allowed; use a whole number from 1 to 256."),
        ("1.5", None, {}, "--max-agents 1.5 is not allowed; use a whole number from 1 to 256."),
        (None, "-1", {}, "--graceful-shutdown-s -1 is not allowed; use a number of seconds of"),
        (None, "nan", {}, "--graceful-shutdown-s nan is not allowed; use a number of seconds"),
        (None, None, {MAX_AGENTS_VAR: "999"}, "AUTOPILOT_MAX_AGENTS=999 is not allowed; use a"),
    ],
)
def test_a_bad_value_says_what_to_write(
    agents: str | None, grace: str | None, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        worker_options(agents, grace, env)
    assert str(caught.value).startswith(message)
