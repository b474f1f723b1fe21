"""Review settings a project keeps in its own repository: `.autopilot.toml` at the top level.

The file is optional, and so is every key in it. Command-line flags win over the file, the
file wins over the built-in defaults:

```toml
[review]
mode = "both"              # agent | checks | both | none
rounds = 3                 # agent rounds per task (1 = no fix rounds)
checks = ["pytest -q", "ruff check ."]
check_env = ["DATABASE_URL"]  # variables the checks get besides PATH, HOME, LANG, TMPDIR
check_timeout_s = 900      # seconds, per check
reviewer_model = "claude-..."       # optional
reviewer_prompt = "Also check ..."  # optional extra instructions for the reviewer
reviewer_prompt_file = "docs/review.md"  # optional, relative to the repo; or reviewer_prompt
on_failure = "continue"    # continue | pause
verify_merged = true       # check a branch merged with the target's new commits before merging

[sandbox]
network = ["pypi.org", "files.pythonhosted.org"]  # what agents and checks may reach

[notify]
notify = ["https://hooks.example.com/T000/B000"]  # each gets a JSON POST (http/https only)
notify_command = ["notify-send", "Autopilot"]  # argv, no shell: JSON on stdin, text last

[workspace]
setup = ["uv sync", "npm ci"]      # run in each new workspace before the agent, like checks
setup_timeout_s = 900              # seconds, per setup command
cache_key = ["uv.lock", "package-lock.json"]  # files whose contents key the setup's cache
cache_dirs = [".venv", "node_modules"]        # what the setup makes, copied from the cache
copy = [".env.test", "config/local.toml"]     # files copied in from your checkout

[container]
image = "node:22.12.0-bookworm-slim"  # with node and npm; the agent and the checks run in it
packages = ["git", "ca-certificates"] # apt-get installed as root first; [] for none
user = "node"                         # the non-root user the CLI runs as
home = "/home/node"                   # that user's home (absolute)
engine_timeout_s = 900                # seconds, each engine call but the run itself
```

Each check is a command split like a shell splits it (quotes work) but run without a shell,
in the task's worktree; for pipes or `&&` write `sh -c '...'`. Checks given with `--check`
run after the file's, a command listed twice runs once. A check's environment is PATH, HOME,
LANG, a TMPDIR of its own and the worker's variables that `check_env` names (see
autopilot/review/checks.py); nothing else of the worker's. `--notify URL` flags add to the
file's `notify` (autopilot/operate/notify.py says what is sent). Setup commands are split and
run the same way (autopilot/setup/steps.py). The [workspace] paths are relative to the top of
the repository, without `..`, never in `.git`; `cache_dirs` needs `setup`, `cache_key` needs
`cache_dirs`. Anything wrong in the file stops the run with a `RepoConfigError` that names the
file, the key and what to write instead. [container] is read by container mode
(autopilot/agent/container.py); a key left out keeps ContainerSettings' default.

What may be set, and each value's type and range, is one strict pydantic model, `ReviewTable`:
the file's [review] table and the review flags go through it, and its validation errors become
those messages (a "did you mean" for an unknown key). The numeric ranges are in
autopilot/infra/options.py, with the other flags' ranges.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from autopilot.git.runner import _GIT_LOCATION_VARS
from autopilot.infra.notify_targets import NotifyUrlError, check_url
from autopilot.infra.options import (
    CHECK_TIMEOUT,
    ENGINE_TIMEOUT,
    REVIEW_ROUNDS,
    SETUP_TIMEOUT,
    STRICT,
    did_you_mean,
    flag_value,
    not_allowed,
)
from autopilot.models import (
    CheckCommand,
    ContainerSettings,
    NotifySettings,
    ReviewMode,
    ReviewSettings,
    WorkspaceSettings,
)
from autopilot.review.checks import CheckSyntaxError, parse_check
from autopilot.setup.paths import relative_path

CONFIG_FILE = ".autopilot.toml"
TABLE = "review"
SANDBOX = "sandbox"
NOTIFY = "notify"
WORKSPACE = "workspace"
CONTAINER = "container"
# Not read past this: the prompt goes to the server in every task's request, whose payload
# limit (autopilot/infra/payload_size.py) refuses far less anyway, with the task named.
PROMPT_FILE_LIMIT = 8 * 1024 * 1024

OnFailure = Literal["continue", "pause"]
MODES: tuple[str, ...] = get_args(ReviewMode)
ON_FAILURE: tuple[str, ...] = get_args(OnFailure)


class RepoConfigError(ValueError):
    """The repo's config file or a review flag is unusable; the message says what to fix."""


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")
    return value


_Text = Annotated[str, AfterValidator(_not_blank)]

# What a shell accepts as a variable name; anything else cannot be exported to a check.
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BAD_ENV_NAME = "env_name"
_GIT_LOCATION = "git_location"


def _env_name(value: str) -> str:
    if not _ENV_NAME_RE.fullmatch(value):
        raise PydanticCustomError(_BAD_ENV_NAME, "not an environment variable name")
    if value in _GIT_LOCATION_VARS:
        # The worker drops these for every git it runs: they would point git in a check at
        # another repository than the task's worktree.
        raise PydanticCustomError(_GIT_LOCATION, "points git at another repository")
    return value


_EnvName = Annotated[str, AfterValidator(_env_name)]

# A host name, or `*.` and one: what the sandbox's egress proxy matches (autopilot/agent/egress.py).
_DOMAIN_RE = re.compile(
    r"(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}"
)


def _domain(value: str) -> str:
    if not _DOMAIN_RE.fullmatch(value):
        raise ValueError("not a domain")
    return value.lower()


_Domain = Annotated[str, AfterValidator(_domain)]
_BAD_URL = "notify_url"


def _url(value: str) -> str:
    try:
        return check_url(value)
    except NotifyUrlError as err:
        raise PydanticCustomError(_BAD_URL, str(err)) from None


_Url = Annotated[str, AfterValidator(_url)]
_RelativePath = Annotated[str, AfterValidator(relative_path)]


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("not absolute")
    return value


_AbsolutePath = Annotated[str, AfterValidator(_not_blank), AfterValidator(_absolute)]


class ReviewTable(BaseModel):
    """What may be set in [review], and in the review flags: None = not set."""

    model_config = STRICT

    mode: ReviewMode | None = None
    rounds: Annotated[int, REVIEW_ROUNDS.field()] | None = None
    checks: list[str] | None = None
    check_env: list[_EnvName] | None = None
    check_timeout_s: Annotated[float, CHECK_TIMEOUT.field()] | None = None
    reviewer_model: _Text | None = None
    reviewer_prompt: _Text | None = None
    reviewer_prompt_file: _Text | None = None
    on_failure: OnFailure | None = None
    verify_merged: bool | None = None


class SandboxTable(BaseModel):
    """What may be set in [sandbox]."""

    model_config = STRICT

    network: list[_Domain] | None = None


class NotifyTable(BaseModel):
    """What may be set in [notify]."""

    model_config = STRICT

    notify: list[_Url] | None = None
    notify_command: Annotated[list[_Text], Field(min_length=1)] | None = None


class WorkspaceTable(BaseModel):
    """What may be set in [workspace]."""

    model_config = STRICT

    setup: list[str] | None = None
    setup_timeout_s: Annotated[float, SETUP_TIMEOUT.field()] | None = None
    cache_key: list[_RelativePath] | None = None
    cache_dirs: list[_RelativePath] | None = None
    copy_files: list[_RelativePath] | None = Field(default=None, alias="copy")


class ContainerTable(BaseModel):
    """What may be set in [container]."""

    model_config = STRICT

    image: _Text | None = None
    packages: list[_Text] | None = None
    user: _Text | None = None
    home: _AbsolutePath | None = None
    engine_timeout_s: Annotated[float, ENGINE_TIMEOUT.field()] | None = None


class _ConfigFile(BaseModel):
    """The whole file: [review], [sandbox], [notify], [workspace] and [container]."""

    model_config = ConfigDict(extra="forbid", strict=True)

    review: ReviewTable = Field(default_factory=ReviewTable)
    sandbox: SandboxTable = Field(default_factory=SandboxTable)
    notify: NotifyTable = Field(default_factory=NotifyTable)
    workspace: WorkspaceTable = Field(default_factory=WorkspaceTable)
    container: ContainerTable = Field(default_factory=ContainerTable)


_TABLES: dict[str, type[BaseModel]] = {
    TABLE: ReviewTable,
    SANDBOX: SandboxTable,
    NOTIFY: NotifyTable,
    WORKSPACE: WorkspaceTable,
    CONTAINER: ContainerTable,
}


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    return lambda _error: f"one of: {', '.join(allowed)}"


def _fixed(rule: str) -> Callable[[str], str]:
    return lambda _error: rule


def _env_names_rule(error_type: str) -> str:
    if error_type == _GIT_LOCATION:
        return (
            f"names other than {', '.join(_GIT_LOCATION_VARS)}: they would point git in a check"
            " at another repository than the task's worktree"
        )
    return (
        "a list of environment variable names (letters, digits and _, not starting with a"
        ' digit), e.g. ["DATABASE_URL"]'
    )


# What to write instead, by key and pydantic error type.
_RULES: dict[str, Callable[[str], str]] = {
    "mode": _choice(MODES),
    "rounds": REVIEW_ROUNDS.rule,
    "checks": _fixed('a list of strings, e.g. ["pytest -q"]'),
    "check_env": _env_names_rule,
    "check_timeout_s": CHECK_TIMEOUT.rule,
    "reviewer_model": _fixed("a non-empty string"),
    "reviewer_prompt": _fixed("a non-empty string"),
    "reviewer_prompt_file": _fixed("a non-empty string"),
    "on_failure": _choice(ON_FAILURE),
    "verify_merged": _fixed("true or false"),
    "network": _fixed('a list of domains, e.g. ["pypi.org", "*.npmjs.org"]'),
    "notify": _fixed('a list of http or https URLs, e.g. ["https://hooks.example.com/T000/B000"]'),
    "notify_command": _fixed(
        'a command as a list of arguments, run without a shell, e.g. ["notify-send", "Autopilot"]'
    ),
    "setup": _fixed('a list of strings, e.g. ["uv sync", "npm ci"]'),
    "setup_timeout_s": SETUP_TIMEOUT.rule,
    "cache_key": _fixed(
        'a list of paths relative to the top of the repository, without "..", not in .git,'
        ' e.g. ["uv.lock", "package-lock.json"]'
    ),
    "cache_dirs": _fixed(
        'a list of paths relative to the top of the repository, without "..", not in .git,'
        ' e.g. [".venv", "node_modules"]'
    ),
    "copy": _fixed(
        'a list of paths relative to the top of the repository, without "..", not in .git,'
        ' e.g. [".env.test", "config/local.toml"]'
    ),
    "image": _fixed('an image reference, e.g. "node:22.12.0-bookworm-slim"'),
    "packages": _fixed('a list of Debian package names, e.g. ["git", "ca-certificates"]'),
    "user": _fixed('a non-empty user name, e.g. "node"'),
    "home": _fixed('an absolute path, e.g. "/home/node"'),
    "engine_timeout_s": ENGINE_TIMEOUT.rule,
}
_FLAGS = {
    "mode": "--review",
    "rounds": "--review-rounds",
    "check_timeout_s": "--check-timeout",
    "on_failure": "--on-failure",
    "verify_merged": "--verify-merged",
}


class RepoReviewConfig(BaseModel):
    """What `.autopilot.toml` sets; None = not set, so the caller can layer it."""

    mode: ReviewMode | None = None
    rounds: int | None = None
    checks: list[CheckCommand] | None = None
    check_env: list[str] | None = None
    check_timeout_s: float | None = None
    reviewer_model: str | None = None
    reviewer_prompt: str | None = None  # from reviewer_prompt, or reviewer_prompt_file's text
    on_failure: OnFailure | None = None
    verify_merged: bool | None = None
    network: list[str] = Field(default_factory=list)  # [sandbox] network
    notify: NotifySettings = Field(default_factory=NotifySettings)  # [notify]
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)  # [workspace]
    container: ContainerSettings = Field(default_factory=ContainerSettings)  # [container]
    source: str | None = None  # the file read, when there was one


# --------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------


def load_repo_config(repo: Path) -> RepoReviewConfig:
    path = repo / CONFIG_FILE
    if not path.exists():
        return RepoReviewConfig()
    document = _read_toml(path)
    try:
        whole = _ConfigFile.model_validate(document)
    except ValidationError as err:
        raise RepoConfigError(f"{path}: {_file_problem(err, document)}") from None
    table = whole.review
    values = table.model_dump(exclude_none=True)
    values["network"] = list(dict.fromkeys(whole.sandbox.network or []))
    values["notify"] = NotifySettings(
        urls=list(dict.fromkeys(whole.notify.notify or [])),
        command=whole.notify.notify_command or [],
    )
    if "reviewer_prompt" in values and "reviewer_prompt_file" in values:
        raise RepoConfigError(
            f"{path}: [{TABLE}] sets both reviewer_prompt and reviewer_prompt_file; keep one."
        )
    if table.reviewer_prompt_file is not None:
        values["reviewer_prompt"] = _read_prompt_file(
            path, repo, values.pop("reviewer_prompt_file")
        )
    if table.checks is not None:
        values["checks"] = _parse_checks(table.checks, f"{path}: [{TABLE}] checks")
    values["workspace"] = _workspace_settings(path, whole.workspace)
    values["container"] = ContainerSettings.model_validate(
        whole.container.model_dump(exclude_none=True)
    )
    return RepoReviewConfig.model_validate({**values, "source": str(path)})


def _workspace_settings(path: Path, table: WorkspaceTable) -> WorkspaceSettings:
    where = f"{path}: [{WORKSPACE}]"
    setup = _parse_checks(table.setup or [], f"{where} setup")
    if table.cache_dirs and not setup:
        raise RepoConfigError(
            f"{where} names cache_dirs but no setup: the cache keeps what the setup commands "
            "make; add them (setup = [...]) or remove cache_dirs."
        )
    if table.cache_key and not table.cache_dirs:
        raise RepoConfigError(
            f"{where} names cache_key but no cache_dirs: say which folders the setup makes "
            '(cache_dirs = [".venv"]) or remove cache_key.'
        )
    settings: dict[str, Any] = {
        "setup": setup,
        "cache_key": list(dict.fromkeys(table.cache_key or [])),
        "cache_dirs": list(dict.fromkeys(table.cache_dirs or [])),
        "copy_files": list(dict.fromkeys(table.copy_files or [])),
    }
    if table.setup_timeout_s is not None:
        settings["setup_timeout_s"] = table.setup_timeout_s
    overlapping = set(settings["copy_files"]) & set(settings["cache_dirs"])
    if overlapping:
        raise RepoConfigError(
            f"{where} names {', '.join(sorted(overlapping))} in both copy and cache_dirs; "
            "keep it in one."
        )
    return WorkspaceSettings.model_validate(settings)


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


def _file_problem(err: ValidationError, document: Mapping[str, Any]) -> str:
    """The first validation error of the file, as what to fix."""
    error = err.errors()[0]
    loc = [str(part) for part in error["loc"]]
    table = loc[0]
    if table not in _TABLES:  # an extra top-level entry
        listed = [f"[{name}]" for name in _TABLES]
        names = ", ".join(listed[:-1]) + " and " + listed[-1]
        if isinstance(error["input"], dict):
            hint = did_you_mean(table, list(_TABLES))
            return f"unknown table [{table}]{hint}; the tables are {names}."
        either = " or ".join(f"[{name}]" for name in _TABLES)
        return f"unknown top-level key {table!r}; put it under its table, {either}."
    if len(loc) == 1:
        return f"{table} must be a table; write [{table}] on its own line."
    key = loc[1]
    if error["type"] == "extra_forbidden":
        allowed = sorted(field.alias or name for name, field in _TABLES[table].model_fields.items())
        return (
            f"unknown key {key!r} in [{table}]{did_you_mean(key, allowed)}; "
            f"allowed keys: {', '.join(allowed)}."
        )
    value = document[table][key]  # the whole value, not only the list item that is wrong
    return not_allowed(f"[{table}] {key} =", repr(value), _RULES[key](error["type"]))


def _read_prompt_file(path: Path, repo: Path, name: str) -> str:
    def error(problem: str) -> RepoConfigError:
        return RepoConfigError(f"{path}: [{TABLE}] reviewer_prompt_file = {name!r} {problem}")

    top = repo.resolve()
    target = (top / name).resolve()  # resolve() follows symlinks: a link out is caught too
    if Path(name).is_absolute() or not target.is_relative_to(top):
        raise error(f"points outside the repo; use a path inside {top}, relative to it.")
    if not target.is_file():
        raise error(f"is not a file in the repo ({target}); create it or fix the path.")
    size = target.stat().st_size
    if size > PROMPT_FILE_LIMIT:
        raise error(
            f"is {size / 2**20:.1f} MiB, over the {PROMPT_FILE_LIMIT // 2**20} MiB limit of a"
            " reviewer prompt; keep it to the instructions the reviewer needs."
        )
    try:
        return target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"cannot be read as UTF-8 text ({err}).") from err


def _parse_checks(commands: list[str], where: str) -> list[CheckCommand]:
    parsed: list[CheckCommand] = []
    for command in commands:
        try:
            parsed.append(parse_check(command))
        except CheckSyntaxError as err:
            raise RepoConfigError(f"{where}: {err}") from err
    return parsed


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
    verify_merged: bool | None = None,
) -> ReviewSettings:
    flags = {"mode": mode, "rounds": rounds, "check_timeout_s": check_timeout_s}
    flags["on_failure"] = on_failure
    flags["verify_merged"] = verify_merged
    given = {key: value for key, value in flags.items() if value is not None}
    try:
        table = ReviewTable.model_validate(given)
    except ValidationError as err:
        error = err.errors()[0]
        key = str(error["loc"][0])
        rule = _RULES[key](error["type"])
        raise RepoConfigError(not_allowed(_FLAGS[key], flag_value(given[key]), rule)) from None
    layered = {
        "mode": _first(table.mode, file_cfg.mode),
        "rounds": _first(table.rounds, file_cfg.rounds),
        "check_timeout_s": _first(table.check_timeout_s, file_cfg.check_timeout_s),
        "reviewer_model": _first(reviewer_model, file_cfg.reviewer_model),
        "reviewer_prompt": _first(reviewer_prompt, file_cfg.reviewer_prompt),
        "on_failure": _first(table.on_failure, file_cfg.on_failure),
        "verify_merged": _first(table.verify_merged, file_cfg.verify_merged),
    }
    settings = {key: value for key, value in layered.items() if value is not None}
    settings["checks"] = _dedupe([*(file_cfg.checks or []), *_parse_checks(checks, "--check")])
    settings["check_env"] = list(dict.fromkeys(file_cfg.check_env or []))
    return ReviewSettings.model_validate(settings)


def merge_notify_settings(file_cfg: RepoReviewConfig, urls: list[str]) -> NotifySettings:
    """The file's targets and the --notify URLs (after them, each once)."""
    checked = []
    for url in urls:
        try:
            checked.append(check_url(url))
        except NotifyUrlError as err:
            raise RepoConfigError(f"--notify: {err}.") from None
    return NotifySettings(
        urls=list(dict.fromkeys([*file_cfg.notify.urls, *checked])),
        command=file_cfg.notify.command,
    )


def _first(*values: object) -> object:
    return next((value for value in values if value is not None), None)


def _dedupe(checks: list[CheckCommand]) -> list[CheckCommand]:
    """Drop a check whose command text came earlier: the file and a flag may name the same one."""
    seen: set[str] = set()
    kept: list[CheckCommand] = []
    for check in checks:
        if check.command not in seen:
            seen.add(check.command)
            kept.append(check)
    return kept
