"""A worker's own capacity and how it stops, from its flags or, for an installation that sets
them once (deploy/), from the environment: the flag wins.

- `--max-agents N` (AUTOPILOT_MAX_AGENTS): agent and reviewer runs this worker takes at once.
  The session's `--concurrency` stays the cap over all workers.
- `--graceful-shutdown-s S` (AUTOPILOT_GRACEFUL_SHUTDOWN_S): after SIGTERM the worker takes no
  new work and lets its running agents finish for up to S seconds; what is still running then
  is handed over (the run counts as lost, never as failed, and resumes elsewhere).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass

from autopilot.infra.config import ConfigError
from autopilot.infra.options import SECONDS, WEEK_S, WHOLE, Range

MAX_AGENTS_VAR = "AUTOPILOT_MAX_AGENTS"
GRACEFUL_SHUTDOWN_VAR = "AUTOPILOT_GRACEFUL_SHUTDOWN_S"
MAX_AGENTS = Range(WHOLE, 1, 256)
GRACEFUL_SHUTDOWN = Range(SECONDS, 0, WEEK_S)
# As many as one worker ran before the cap existed (its activity slots): a single machine
# behaves as it did unless told otherwise.
DEFAULT_MAX_AGENTS = 32
DEFAULT_GRACEFUL_SHUTDOWN_S = 120.0


@dataclass(frozen=True)
class _Option:
    flag: str
    metavar: str
    var: str  # the environment's name for it, read when the flag is not given
    rule: Range
    default: float
    what: str  # its help, before the default


_AGENTS = _Option(
    "--max-agents",
    "N",
    MAX_AGENTS_VAR,
    MAX_AGENTS,
    DEFAULT_MAX_AGENTS,
    "agent and reviewer runs this worker takes at once; the session's --concurrency caps them "
    "over all workers",
)
_GRACE = _Option(
    "--graceful-shutdown-s",
    "S",
    GRACEFUL_SHUTDOWN_VAR,
    GRACEFUL_SHUTDOWN,
    DEFAULT_GRACEFUL_SHUTDOWN_S,
    "after SIGTERM, how long running agents may finish before they are handed over",
)


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """The worker's flags, each with the variable that sets it when the flag is not given."""
    for option in (_AGENTS, _GRACE):
        parser.add_argument(
            option.flag,
            metavar=option.metavar,
            help=f"{option.what} (default: {option.var}, else {option.default:g})",
        )


@dataclass(frozen=True)
class WorkerOptions:
    max_agents: int = DEFAULT_MAX_AGENTS
    graceful_shutdown_s: float = DEFAULT_GRACEFUL_SHUTDOWN_S


def _number(raw: str, whole: bool) -> float | None:
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read(flag: str | None, variable: str | None, option: _Option) -> float | None:
    """The flag's value, else the variable's, checked against the option's rule; None when
    neither is set."""
    if flag is not None:
        given, where = flag, option.flag
    else:
        given, where = (variable or "").strip(), option.var
    if not given:
        return None
    value = _number(given, option.rule.whole)
    problem = option.rule.rule() if value is None else option.rule.problem(value)
    if problem is not None:
        shown = f"{where} {given}" if where.startswith("--") else f"{where}={given}"
        raise ConfigError(f"{shown} is not allowed; use {problem}.")
    return value


def worker_options(
    max_agents: str | None, graceful_shutdown_s: str | None, env: Mapping[str, str]
) -> WorkerOptions:
    # Each variable read by its name here, where a reader of the code (and the deploy files'
    # test) finds it.
    agents = _read(max_agents, env.get(MAX_AGENTS_VAR), _AGENTS)
    grace = _read(graceful_shutdown_s, env.get(GRACEFUL_SHUTDOWN_VAR), _GRACE)
    return WorkerOptions(
        max_agents=DEFAULT_MAX_AGENTS if agents is None else int(agents),
        graceful_shutdown_s=DEFAULT_GRACEFUL_SHUTDOWN_S if grace is None else float(grace),
    )
