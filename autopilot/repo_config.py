"""Review settings a project keeps in its own repository: `.autopilot.toml` at the top level.

The file is optional, and so is every key in it. Command-line flags win over the file, the
file wins over the built-in defaults:

```toml
[review]
mode = "both"              # agent | checks | both | none
rounds = 3                 # agent rounds per task (1 = no fix rounds)
checks = ["pytest -q", "ruff check ."]
check_timeout_s = 900      # seconds, per check
reviewer_model = "claude-..."       # optional
reviewer_prompt = "Also check ..."  # optional extra instructions for the reviewer
reviewer_prompt_file = "docs/review.md"  # optional, relative to the repo; or reviewer_prompt
on_failure = "continue"    # continue | pause
```

Each check is a command split like a shell splits it (quotes work) but run without a shell,
in the task's worktree; for pipes or `&&` write `sh -c '...'`. Checks given with `--check`
run after the file's, a command listed twice runs once. Anything wrong in the file stops the
run with a `RepoConfigError` that names the file, the key and what to write instead.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel

from autopilot.checks import CheckSyntaxError, parse_check
from autopilot.models import CheckCommand, ReviewMode, ReviewSettings
from autopilot.options import CHECK_TIMEOUT, REVIEW_ROUNDS, flag_value

CONFIG_FILE = ".autopilot.toml"
TABLE = "review"
# Not read past this: the prompt goes to the server in every task's request, whose payload
# limit (autopilot/payload_size.py) refuses far less anyway, with the task named.
PROMPT_FILE_LIMIT = 8 * 1024 * 1024

MODES: tuple[str, ...] = get_args(ReviewMode)
ON_FAILURE: tuple[str, ...] = get_args(ReviewSettings.model_fields["on_failure"].annotation)


class RepoConfigError(ValueError):
    """The repo's config file or a review flag is unusable; the message says what to fix."""


class RepoReviewConfig(BaseModel):
    """What `.autopilot.toml` sets; None = not set, so the caller can layer it."""

    mode: ReviewMode | None = None
    rounds: int | None = None
    checks: list[CheckCommand] | None = None
    check_timeout_s: float | None = None
    reviewer_model: str | None = None
    reviewer_prompt: str | None = None  # from reviewer_prompt, or reviewer_prompt_file's text
    on_failure: Literal["continue", "pause"] | None = None
    source: str | None = None  # the file read, when there was one


# --------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------


def load_repo_config(repo: Path) -> RepoReviewConfig:
    path = repo / CONFIG_FILE
    if not path.exists():
        return RepoReviewConfig()
    review = _review_table(path, _read_toml(path))
    values = _review_values(path, repo, review)
    return RepoReviewConfig.model_validate({**values, "source": str(path)})


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as err:
        # tomllib's message ends with "(at line L, column C)".
        raise RepoConfigError(f"{path} is not valid TOML: {err}; fix the syntax there.") from err
    except UnicodeDecodeError as err:
        raise RepoConfigError(f"{path} is not UTF-8 text; save it as UTF-8.") from err
    except OSError as err:
        raise RepoConfigError(f"cannot read {path}: {err.strerror}.") from err


def _review_table(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    for name, value in document.items():
        if name == TABLE:
            continue
        if isinstance(value, dict):
            raise RepoConfigError(
                f"{path}: unknown table [{name}]{_did_you_mean(name, [TABLE])}; "
                f"the only table is [{TABLE}]."
            )
        raise RepoConfigError(
            f"{path}: unknown top-level key {name!r}; put review settings under [{TABLE}]."
        )
    review = document.get(TABLE, {})
    if not isinstance(review, dict):
        raise RepoConfigError(f"{path}: {TABLE} must be a table; write [{TABLE}] on its own line.")
    return review


def _review_values(path: Path, repo: Path, review: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in review.items():
        reader = _READERS.get(key)
        if reader is None:
            allowed = ", ".join(sorted(_READERS))
            raise RepoConfigError(
                f"{path}: unknown key {key!r} in [{TABLE}]{_did_you_mean(key, list(_READERS))}; "
                f"allowed keys: {allowed}."
            )
        values[key] = reader(_Key(path, key), raw)
    if "reviewer_prompt" in values and "reviewer_prompt_file" in values:
        raise RepoConfigError(
            f"{path}: [{TABLE}] sets both reviewer_prompt and reviewer_prompt_file; keep one."
        )
    if "reviewer_prompt_file" in values:
        prompt_file = values.pop("reviewer_prompt_file")
        values["reviewer_prompt"] = _read_prompt_file(
            _Key(path, "reviewer_prompt_file"), repo, prompt_file
        )
    return values


def _did_you_mean(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class _Key:
    """Where a value came from, to build error messages that point at it."""

    path: Path
    key: str

    def error(self, value: object, problem: str) -> RepoConfigError:
        return RepoConfigError(f"{self.path}: [{TABLE}] {self.key} = {value!r} {problem}")


def _choice(allowed: tuple[str, ...]) -> Callable[[_Key, object], str]:
    def read(where: _Key, value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise where.error(value, f"is not allowed; use one of: {', '.join(allowed)}.")
        return value

    return read


def _rounds(where: _Key, value: object) -> int:
    # bool is an int in Python; `rounds = true` is a mistake, not 1 (Range.problem says so).
    problem = REVIEW_ROUNDS.problem(value)
    if problem is not None or not isinstance(value, int):
        raise where.error(value, f"is not allowed; use {problem} (1 = no fixes).")
    return value


def _timeout(where: _Key, value: object) -> float:
    problem = CHECK_TIMEOUT.problem(value)
    if problem is not None or not isinstance(value, int | float):
        raise where.error(value, f"is not allowed; use {problem}.")
    return float(value)


def _text(where: _Key, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(value, "is not allowed; use a non-empty string.")
    return value


def _checks(where: _Key, value: object) -> list[CheckCommand]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise where.error(value, 'is not allowed; use a list of strings, e.g. ["pytest -q"].')
    parsed: list[CheckCommand] = []
    for item in value:
        try:
            parsed.append(parse_check(item))
        except CheckSyntaxError as err:
            raise RepoConfigError(f"{where.path}: [{TABLE}] checks: {err}") from err
    return parsed


def _read_prompt_file(where: _Key, repo: Path, name: str) -> str:
    top = repo.resolve()
    target = (top / name).resolve()  # resolve() follows symlinks: a link out is caught too
    if Path(name).is_absolute() or not target.is_relative_to(top):
        raise where.error(
            name, f"points outside the repo; use a path inside {top}, relative to it."
        )
    if not target.is_file():
        raise where.error(name, f"is not a file in the repo ({target}); create it or fix the path.")
    size = target.stat().st_size
    if size > PROMPT_FILE_LIMIT:
        raise where.error(
            name,
            f"is {size / 2**20:.1f} MiB, over the {PROMPT_FILE_LIMIT // 2**20} MiB limit of a"
            " reviewer prompt; keep it to the instructions the reviewer needs.",
        )
    try:
        return target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise where.error(name, f"cannot be read as UTF-8 text ({err}).") from err


_READERS: dict[str, Callable[[_Key, Any], Any]] = {
    "mode": _choice(MODES),
    "rounds": _rounds,
    "checks": _checks,
    "check_timeout_s": _timeout,
    "reviewer_model": _text,
    "reviewer_prompt": _text,
    "reviewer_prompt_file": _text,
    "on_failure": _choice(ON_FAILURE),
}


# --------------------------------------------------------------------------------------------
# Layering: command line over file over defaults
# --------------------------------------------------------------------------------------------


def merge_review_settings(
    file_cfg: RepoReviewConfig,
    *,
    mode: str | None,
    rounds: int | None,
    checks: list[str],
    check_timeout_s: float | None,
    reviewer_model: str | None,
    reviewer_prompt: str | None,
    on_failure: str | None,
) -> ReviewSettings:
    _check_flags(mode=mode, rounds=rounds, timeout=check_timeout_s, on_failure=on_failure)
    layered = {
        "mode": _first(mode, file_cfg.mode),
        "rounds": _first(rounds, file_cfg.rounds),
        "check_timeout_s": _first(check_timeout_s, file_cfg.check_timeout_s),
        "reviewer_model": _first(reviewer_model, file_cfg.reviewer_model),
        "reviewer_prompt": _first(reviewer_prompt, file_cfg.reviewer_prompt),
        "on_failure": _first(on_failure, file_cfg.on_failure),
    }
    settings = {key: value for key, value in layered.items() if value is not None}
    settings["checks"] = _dedupe([*(file_cfg.checks or []), *_parse_flag_checks(checks)])
    return ReviewSettings.model_validate(settings)


def _first(*values: object) -> object:
    return next((value for value in values if value is not None), None)


def _check_flags(
    *, mode: str | None, rounds: int | None, timeout: float | None, on_failure: str | None
) -> None:
    if mode is not None and mode not in MODES:
        raise RepoConfigError(f"--review {mode!r} is not allowed; use one of: {', '.join(MODES)}.")
    for flag, value, limits in (
        ("--review-rounds", rounds, REVIEW_ROUNDS),
        ("--check-timeout", timeout, CHECK_TIMEOUT),
    ):
        problem = None if value is None else limits.problem(value)
        if problem is not None:
            raise RepoConfigError(f"{flag} {flag_value(value)} is not allowed; use {problem}.")
    if on_failure is not None and on_failure not in ON_FAILURE:
        raise RepoConfigError(
            f"--on-failure {on_failure!r} is not allowed; use one of: {', '.join(ON_FAILURE)}."
        )


def _parse_flag_checks(commands: list[str]) -> list[CheckCommand]:
    parsed: list[CheckCommand] = []
    for command in commands:
        try:
            parsed.append(parse_check(command))
        except CheckSyntaxError as err:
            raise RepoConfigError(f"--check: {err}") from err
    return parsed


def _dedupe(checks: list[CheckCommand]) -> list[CheckCommand]:
    """Drop a check whose command text came earlier: the file and a flag may name the same one."""
    seen: set[str] = set()
    kept: list[CheckCommand] = []
    for check in checks:
        if check.command not in seen:
            seen.add(check.command)
            kept.append(check)
    return kept
