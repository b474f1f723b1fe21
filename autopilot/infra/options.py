"""The numbers a run takes and their ranges: one source for the flags and `.autopilot.toml`.

Every number is finite and inside a documented range (README, "Limits"): a `nan` timeout would
make the session fail to decode its own input, `1e300` seconds overflows a timedelta, `1e-9`
turns the heartbeat loop into a busy loop, and a negative budget pauses the session at once.

The ranges are pydantic constraints (`Range.field`), so a model made of them validates strictly;
`OptionError.from_validation` turns pydantic's first error into a message a person can act on:
`--concurrency 0 is not allowed; use a whole number of at least 1.`
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from autopilot.models import AgentSettings

__all__ = [
    "AGENT_TIMEOUT",
    "BATCH_NUMBER",
    "CHECK_TIMEOUT",
    "CONCURRENCY",
    "ENGINE_TIMEOUT",
    "HEARTBEAT_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_ATTEMPTS",
    "MAX_COST_USD",
    "MAX_TURNS",
    "REVIEW_ROUNDS",
    "SETUP_TIMEOUT",
    "OptionError",
    "Range",
    "RunNumbers",
    "did_you_mean",
    "flag_value",
    "not_allowed",
]

WEEK_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Range:
    """What a number must be: `kind` says what to write ("a whole number"), low..high the
    bounds (low itself excluded when `low_open`: "greater than 0")."""

    kind: str
    low: int
    high: int
    low_open: bool = False

    @property
    def whole(self) -> bool:
        return self.kind == WHOLE

    def field(self) -> Any:
        """The constraints, for a pydantic field: `Annotated[int, RANGE.field()]`."""
        if self.low_open:
            return Field(gt=self.low, le=self.high)
        return Field(ge=self.low, le=self.high)

    def rule(self, error_type: str = "") -> str:
        """What to write instead, for a pydantic error type (which side was crossed)."""
        low = f"greater than {self.low}" if self.low_open else f"of at least {self.low}"
        if error_type in ("greater_than", "greater_than_equal"):
            return f"{self.kind} {low}"
        if error_type == "less_than_equal":
            return f"{self.kind} of at most {self.high}"
        if self.low_open:
            return f"{self.kind} {low} and at most {self.high}"
        return f"{self.kind} from {self.low} to {self.high}"

    def problem(self, value: object) -> str | None:
        """What to write instead of `value`, or None if it is in range (for values that do not
        come through a model, such as a subcommand's argument)."""
        kinds = (int,) if self.whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            return self.rule()
        if value < self.low or (self.low_open and value == self.low):
            return self.rule("greater_than")
        if value > self.high:
            return self.rule("less_than_equal")
        return None


# The AutopilotBatch search attribute is a Temporal Int: a signed 64-bit integer.
BATCH_NUMBER_MAX = 2**63 - 1
WHOLE, SECONDS, DOLLARS = "a whole number", "a number of seconds", "an amount of US dollars"
CONCURRENCY = Range(WHOLE, 1, 64)
BATCH_NUMBER = Range(WHOLE, 0, BATCH_NUMBER_MAX)
MAX_TURNS = Range(WHOLE, 1, 1000)
MAX_ATTEMPTS = Range(WHOLE, 1, 100)
AGENT_TIMEOUT = Range(SECONDS, 1, WEEK_S)
IDLE_TIMEOUT = Range(SECONDS, 1, WEEK_S)
HEARTBEAT_TIMEOUT = Range(SECONDS, 1, 3600)
MAX_COST_USD = Range(DOLLARS, 0, 1_000_000, low_open=True)
REVIEW_ROUNDS = Range(WHOLE, 1, 20)
CHECK_TIMEOUT = Range(SECONDS, 0, WEEK_S, low_open=True)
SETUP_TIMEOUT = Range(SECONDS, 0, WEEK_S, low_open=True)
ENGINE_TIMEOUT = Range(SECONDS, 0, WEEK_S, low_open=True)
REQUIRED_APPROVALS = Range(WHOLE, 0, 100)  # [forge] require_approval
FORGE_POLL = Range(SECONDS, 0, 24 * 3600, low_open=True)  # [forge] poll_s, poll_max_s
FORGE_ROUNDS = Range(WHOLE, 0, 20)  # [forge] rounds: 0, the forge's feedback ends the task

# strict: `rounds = true` is a mistake, not 1, and "60" is no number; no inf or nan.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class OptionError(ValueError):
    """A value out of its range or of the wrong type; the message says what to write."""

    @classmethod
    def from_validation(
        cls,
        err: ValidationError,
        ranges: Mapping[str, Range],
        name: Callable[[str], str],
        shown: Callable[[object], str],
    ) -> OptionError:
        """The first error of `err`, as `<name> <value> is not allowed; use <rule>.`"""
        error: ErrorDetails = err.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        value = shown(error["input"])
        if field in ranges:
            rule = ranges[field].rule(error["type"])
            return cls(not_allowed(name(field), value, rule))
        return cls(not_allowed(name(field), value, error["msg"].lower()))


def not_allowed(name: str, value: str, rule: str) -> str:
    """The one wording of a value refused, for flags and `.autopilot.toml` keys alike."""
    return f"{name} {value} is not allowed; use {rule}."


def did_you_mean(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def flag_value(value: object) -> str:
    """A value as the user typed it on the command line: `0`, `nan`, `'fast'`."""
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


_AGENT = AgentSettings()


class RunNumbers(BaseModel):
    """The numeric flags of a run (the review ones come with `.autopilot.toml`'s)."""

    model_config = STRICT

    start_batch: Annotated[int, BATCH_NUMBER.field()] | None = None
    end_batch: Annotated[int, BATCH_NUMBER.field()] | None = None
    concurrency: Annotated[int, CONCURRENCY.field()] = 1
    max_turns: Annotated[int, MAX_TURNS.field()] = _AGENT.max_turns
    agent_timeout: Annotated[float, AGENT_TIMEOUT.field()] = _AGENT.attempt_timeout_s
    idle_timeout: Annotated[float, IDLE_TIMEOUT.field()] = _AGENT.idle_timeout_s
    heartbeat_timeout: Annotated[float, HEARTBEAT_TIMEOUT.field()] = _AGENT.heartbeat_timeout_s
    max_attempts: Annotated[int, MAX_ATTEMPTS.field()] = _AGENT.max_attempts
    max_cost_usd: Annotated[float, MAX_COST_USD.field()] | None = None

    def agent_settings(self, model: str | None) -> AgentSettings:
        """The agent's settings these flags give (the model is a name: no range)."""
        values = {field: getattr(self, flag) for flag, field in AGENT_FIELDS.items()}
        return AgentSettings.model_validate({**values, "model": model})

    @classmethod
    def from_flags(cls, values: Mapping[str, object]) -> RunNumbers:
        """Validated flags (argparse's dest names); `OptionError` naming the flag."""
        try:
            return cls.model_validate(values)
        except ValidationError as err:
            raise OptionError.from_validation(
                err, RUN_RANGES, lambda field: "--" + field.replace("_", "-"), flag_value
            ) from None


# RunNumbers' names of the agent's flags, and AgentSettings' own.
AGENT_FIELDS = {
    "max_turns": "max_turns",
    "agent_timeout": "attempt_timeout_s",
    "idle_timeout": "idle_timeout_s",
    "heartbeat_timeout": "heartbeat_timeout_s",
    "max_attempts": "max_attempts",
}
RUN_RANGES: dict[str, Range] = {
    "start_batch": BATCH_NUMBER,
    "end_batch": BATCH_NUMBER,
    "concurrency": CONCURRENCY,
    "max_turns": MAX_TURNS,
    "agent_timeout": AGENT_TIMEOUT,
    "idle_timeout": IDLE_TIMEOUT,
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
    "max_attempts": MAX_ATTEMPTS,
    "max_cost_usd": MAX_COST_USD,
}
