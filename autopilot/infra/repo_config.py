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
network = ["pypi.org", "files.pythonhosted.org"]  # public domains agents and checks may reach
ports = [443, 80]          # the ports those are reached on (these two unless set)

[notify]
notify = ["https://hooks.example.com/T000/B000"]  # each gets a JSON POST (http/https only)

[workspace]
setup = ["uv sync", "npm ci"]      # run in each new workspace before the agent, like checks
setup_timeout_s = 900              # seconds, per setup command
cache_key = ["uv.lock", "package-lock.json"]  # files whose contents key the setup's cache
cache_dirs = [".venv", "node_modules"]        # what the setup makes, copied from the cache
after_restore = ["npm rebuild"]    # run like setup, after the cached dirs were copied in
copy = [".env.test", "config/local.toml"]     # files copied in from your checkout

[container]
image = "node:22.12.0-bookworm-slim"  # with node and npm; the agent and the checks run in it
packages = ["git", "ca-certificates"] # apt-get installed as root first; [] for none
user = "node"                         # the non-root user the CLI runs as
home = "/home/node"                   # that user's home (absolute)
engine_timeout_s = 900                # seconds, each engine call but the run itself
allow_root = false                    # true: user may be root (the default refuses it)

[merge]
style = "merge"            # merge | squash | rebase (rebase: forge mode only)

[forge]                    # forge mode (remote mode on GitHub): each task a pull request
kind = "github"            # or --forge github
repo = "OWNER/NAME"        # else read off the remote's URL
api_url = "https://github.example.com/api/v3"  # GitHub Enterprise (api.github.com unless set)
labels = ["autopilot"]     # put on each pull request
require_approval = 1       # approving reviews by people before the merge (0)
app_id = "12345"           # a GitHub App instead of GITHUB_TOKEN: its id, and its key file
private_key_file = "/etc/autopilot/app.pem"  # on each worker and the starter
installation_id = "678"    # optional: looked up on the repository
poll_s = 10                # the pull request's gate read after this many seconds, then
poll_max_s = 300           # backing off to this
rounds = 3                 # feedback rounds the forge may give a task (failing checks, reviews)
```

Each check is a command split like a shell splits it (quotes work) but run without a shell,
in the task's workspace; for pipes or `&&` write `sh -c '...'`. Checks given with `--check`
run after the file's, a command listed twice runs once. A check's environment is PATH, HOME,
LANG, a TMPDIR of its own and the worker's variables that `check_env` names (see
autopilot/review/checks.py); nothing else of the worker's. `--notify URL` flags add to the
file's `notify` (autopilot/notifications says what is sent). Setup commands are split and
run the same way (autopilot/setup/steps.py), and so are the `after_restore` commands, after
a cache restore. The [workspace] paths are relative to the top of the repository, without
`..`, never in `.git`; `cache_dirs` needs `setup`, `cache_key` and `after_restore` need
`cache_dirs`. Anything wrong in the file stops the run with a `RepoConfigError` that names the
file, the key and what to write instead. [container] is read by container mode
(autopilot/agent/container.py); a key left out keeps ContainerSettings' default. [merge]
style "squash" lands each approved task as one commit on the target (autopilot/git/merge.py).

The file is data a task can change, so it grants nothing a sandboxed task could not do:
`network` names public domains only and `check_env` no model credential (the rules are in
autopilot/infra/host_names.py and the egress proxy's CREDENTIALS), and `[notify]
notify_command`, which would run outside the sandbox, is refused: the worker's
AUTOPILOT_NOTIFY_COMMAND replaces it. The starter reads the file from a commit, not from a
work tree (autopilot/operate/committed_config.py).

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

from autopilot.infra.check_commands import CheckSyntaxError, parse_check
from autopilot.infra.container_rules import (
    ROOT_USERS,
    ContainerValueError,
    OptionNotPackage,
    check_image,
    check_package,
    check_user,
)
from autopilot.infra.host_names import HostNameRefused, check_grant
from autopilot.infra.input_files import BOM, FileTooBig, InputFileError, read_regular
from autopilot.infra.notify_targets import (
    NOTIFY_COMMAND_SETTING,
    NotifyUrlError,
    check_public,
    check_url,
)
from autopilot.infra.options import (
    CHECK_TIMEOUT,
    ENGINE_TIMEOUT,
    FORGE_POLL,
    FORGE_ROUNDS,
    REQUIRED_APPROVALS,
    REVIEW_ROUNDS,
    SETUP_TIMEOUT,
    STRICT,
    did_you_mean,
    flag_value,
    not_allowed,
)
from autopilot.infra.repo_paths import relative_path
from autopilot.infra.reserved_env import CREDENTIALS, GIT_LOCATION_VARS
from autopilot.models import (
    EGRESS_PORTS,
    CheckCommand,
    ContainerSettings,
    ForgeSettings,
    MergeStyle,
    NotifySettings,
    ReviewMode,
    ReviewSettings,
    WorkspaceSettings,
)

CONFIG_FILE = ".autopilot.toml"
TABLE = "review"
SANDBOX = "sandbox"
NOTIFY = "notify"
WORKSPACE = "workspace"
CONTAINER = "container"
MERGE = "merge"
FORGE = "forge"
# Not read past this: the prompt goes to the server in every task's request, whose payload
# limit (autopilot/plan/payload_size.py) refuses far less anyway, with the task named.
PROMPT_FILE_LIMIT = 8 * 1024 * 1024
# Settings, not data: a bigger file is not one.
CONFIG_SIZE_LIMIT = 1024 * 1024

OnFailure = Literal["continue", "pause"]
MODES: tuple[str, ...] = get_args(ReviewMode)
ON_FAILURE: tuple[str, ...] = get_args(OnFailure)
MERGE_STYLES: tuple[str, ...] = get_args(MergeStyle)


NOTIFY_COMMAND_MOVED = (
    f"[{NOTIFY}] notify_command is not read from the repository any more: a command there"
    " would run on the worker outside the sandbox, and any task can edit the file. Remove it"
    f" and set the command in the worker's environment instead: {NOTIFY_COMMAND_SETTING}="
    "'notify-send Autopilot' (split like a shell splits it, run without one)."
)


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
_MODEL_CREDENTIAL = "model_credential"


def _env_name(value: str) -> str:
    if not _ENV_NAME_RE.fullmatch(value):
        raise PydanticCustomError(_BAD_ENV_NAME, "not an environment variable name")
    if value in GIT_LOCATION_VARS:
        # The worker drops these for every git it runs: they would point git in a check at
        # another repository than the task's workspace.
        raise PydanticCustomError(_GIT_LOCATION, "points git at another repository")
    if value in CREDENTIALS:
        # The model's credential stays with the worker's egress proxy; a check that got it
        # could hand it to anything the repository runs.
        raise PydanticCustomError(_MODEL_CREDENTIAL, "is the model's credential")
    return value


_EnvName = Annotated[str, AfterValidator(_env_name)]


def _typed_errors(
    check: Callable[[str], str], *typed: tuple[type[ValueError], str]
) -> Callable[[str], str]:
    """`check` as a validator: its error of a class listed (the first that fits) is reported
    with that error type and the check's message."""

    def validate(value: str) -> str:
        try:
            return check(value)
        except tuple(refused for refused, _ in typed) as err:
            error_type = next(name for refused, name in typed if isinstance(err, refused))
            raise PydanticCustomError(error_type, str(err)) from None

    return validate


_NETWORK_NAME = "network_name"
# The name rule is shared with the notification targets (autopilot/infra/host_names.py).
_Domain = Annotated[
    str, AfterValidator(_typed_errors(check_grant, (HostNameRefused, _NETWORK_NAME)))
]
# The ports the granted domains are reached on ([sandbox] ports): one at least, or nothing in
# `network` could be reached at all.
_Ports = Annotated[list[Annotated[int, Field(ge=1, le=65535)]], Field(min_length=1)]
_BAD_URL = "notify_url"
_Url = Annotated[str, AfterValidator(_typed_errors(check_url, (NotifyUrlError, _BAD_URL)))]
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
    ports: _Ports | None = None


class NotifyTable(BaseModel):
    """What may be set in [notify]."""

    model_config = STRICT

    notify: list[_Url] | None = None
    # Refused whatever its value (NOTIFY_COMMAND_MOVED, in load_repo_config): named here so
    # that the message says where the command goes now, not "unknown key".
    notify_command: Any = None


class WorkspaceTable(BaseModel):
    """What may be set in [workspace]."""

    model_config = STRICT

    setup: list[str] | None = None
    setup_timeout_s: Annotated[float, SETUP_TIMEOUT.field()] | None = None
    cache_key: list[_RelativePath] | None = None
    cache_dirs: list[_RelativePath] | None = None
    after_restore: list[str] | None = None
    copy_files: list[_RelativePath] | None = Field(default=None, alias="copy")


def _container_rule(check: Callable[[str], str], error_type: str) -> Callable[[str], str]:
    """`check` as a validator whose errors have `error_type` (their rule is in _RULES)."""
    return _typed_errors(
        check, (OptionNotPackage, _PACKAGE_OPTION), (ContainerValueError, error_type)
    )


_PACKAGE_OPTION = "package_option"
_Package = Annotated[str, AfterValidator(_container_rule(check_package, "package_name"))]
_User = Annotated[str, AfterValidator(_container_rule(check_user, "user_name"))]
_Image = Annotated[str, AfterValidator(_container_rule(check_image, "image_reference"))]


class ContainerTable(BaseModel):
    """What may be set in [container]."""

    model_config = STRICT

    image: _Image | None = None
    packages: list[_Package] | None = None
    user: _User | None = None
    allow_root: bool | None = None  # user may be root: the README's non-root promise waived
    home: _AbsolutePath | None = None
    engine_timeout_s: Annotated[float, ENGINE_TIMEOUT.field()] | None = None


class MergeTable(BaseModel):
    """What may be set in [merge]."""

    model_config = STRICT

    style: MergeStyle | None = None


_RepoName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
_ApiUrl = Annotated[str, Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")]
_Label = Annotated[str, Field(min_length=1, max_length=50)]


class ForgeTable(BaseModel):
    """What may be set in [forge]."""

    model_config = STRICT

    kind: Literal["github"] | None = None
    repo: _RepoName | None = None
    api_url: _ApiUrl | None = None
    labels: list[_Label] | None = None
    require_approval: Annotated[int, REQUIRED_APPROVALS.field()] | None = None
    app_id: Annotated[str, AfterValidator(_not_blank)] | None = None
    private_key_file: _AbsolutePath | None = None
    installation_id: Annotated[str, AfterValidator(_not_blank)] | None = None
    poll_s: Annotated[float, FORGE_POLL.field()] | None = None
    poll_max_s: Annotated[float, FORGE_POLL.field()] | None = None
    rounds: Annotated[int, FORGE_ROUNDS.field()] | None = None


class _ConfigFile(BaseModel):
    """The whole file: [review], [sandbox], [notify], [workspace], [container], [merge],
    [forge]."""

    model_config = ConfigDict(extra="forbid", strict=True)

    review: ReviewTable = Field(default_factory=ReviewTable)
    sandbox: SandboxTable = Field(default_factory=SandboxTable)
    notify: NotifyTable = Field(default_factory=NotifyTable)
    workspace: WorkspaceTable = Field(default_factory=WorkspaceTable)
    container: ContainerTable = Field(default_factory=ContainerTable)
    merge: MergeTable = Field(default_factory=MergeTable)
    forge: ForgeTable = Field(default_factory=ForgeTable)


_TABLES: dict[str, type[BaseModel]] = {
    TABLE: ReviewTable,
    SANDBOX: SandboxTable,
    NOTIFY: NotifyTable,
    WORKSPACE: WorkspaceTable,
    CONTAINER: ContainerTable,
    MERGE: MergeTable,
    FORGE: ForgeTable,
}


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    return lambda _error: f"one of: {', '.join(allowed)}"


def _fixed(rule: str) -> Callable[[str], str]:
    return lambda _error: rule


def _env_names_rule(error_type: str) -> str:
    if error_type == _MODEL_CREDENTIAL:
        return (
            f"names other than {', '.join(CREDENTIALS)}: the model's credentials stay with the"
            " worker and never reach the repository's checks"
        )
    if error_type == _GIT_LOCATION:
        return (
            f"names other than {', '.join(GIT_LOCATION_VARS)}: they would point git in a check"
            " at another repository than the task's workspace"
        )
    return (
        "a list of environment variable names (letters, digits and _, not starting with a"
        ' digit), e.g. ["DATABASE_URL"]'
    )


# Errors whose own message says why an entry is refused.
_REASONED = frozenset({_NETWORK_NAME, _MODEL_CREDENTIAL})

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
    "network": _fixed('a list of public domains, e.g. ["pypi.org", "*.npmjs.org"]'),
    "ports": _fixed("a non-empty list of port numbers from 1 to 65535, e.g. [443, 80, 8443]"),
    "notify": _fixed('a list of http or https URLs, e.g. ["https://hooks.example.com/T000/B000"]'),
    "setup": _fixed('a list of strings, e.g. ["uv sync", "npm ci"]'),
    "setup_timeout_s": SETUP_TIMEOUT.rule,
    "after_restore": _fixed('a list of strings, e.g. ["npm rebuild"]'),
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
    "image": _fixed(
        "an image reference ([registry/]name[:tag][@digest], no spaces), e.g. "
        '"node:22.12.0-bookworm-slim"'
    ),
    "packages": lambda error_type: (
        (
            "package names, never options (apt-get would obey a value starting with -), "
            if error_type == _PACKAGE_OPTION
            else ""
        )
        + 'a list of Debian package names, e.g. ["git", "ca-certificates"]'
    ),
    "user": _fixed('a user name (letters, digits, ., _ and -, not starting with -), e.g. "node"'),
    "allow_root": _fixed("true or false"),
    "home": _fixed('an absolute path, e.g. "/home/node"'),
    "engine_timeout_s": ENGINE_TIMEOUT.rule,
    "style": _choice(MERGE_STYLES),
    "kind": _choice(("github",)),
    "repo": _fixed('the repository as OWNER/NAME, e.g. "octo-org/octo-repo"'),
    "api_url": _fixed('an http or https URL, e.g. "https://github.example.com/api/v3"'),
    "labels": _fixed('a list of label names (1 to 50 characters), e.g. ["autopilot"]'),
    "require_approval": REQUIRED_APPROVALS.rule,
    "app_id": _fixed("a non-empty string"),
    "private_key_file": _fixed('an absolute path, e.g. "/etc/autopilot/app.pem"'),
    "installation_id": _fixed("a non-empty string"),
    "poll_s": FORGE_POLL.rule,
    "poll_max_s": FORGE_POLL.rule,
    # A key two tables share: its rule in the one table where it differs.
    f"{FORGE}.rounds": FORGE_ROUNDS.rule,
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
    ports: list[int] = Field(default_factory=lambda: list(EGRESS_PORTS))  # [sandbox] ports
    notify: NotifySettings = Field(default_factory=NotifySettings)  # [notify]
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)  # [workspace]
    container: ContainerSettings = Field(default_factory=ContainerSettings)  # [container]
    merge_style: MergeStyle = "merge"  # [merge] style
    forge: ForgeSettings = Field(default_factory=ForgeSettings)  # [forge]
    source: str | None = None  # the file read, when there was one


# --------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------


def load_repo_config(repo: Path) -> RepoReviewConfig:
    path = repo / CONFIG_FILE
    document = _read_toml(path)
    if document is None:
        return RepoReviewConfig()
    try:
        whole = _ConfigFile.model_validate(document)
    except ValidationError as err:
        raise RepoConfigError(f"{path}: {_file_problem(err, document)}") from None
    if whole.notify.notify_command is not None:
        raise RepoConfigError(f"{path}: {NOTIFY_COMMAND_MOVED}")
    table = whole.review
    values = table.model_dump(exclude_none=True)
    values["network"] = list(dict.fromkeys(whole.sandbox.network or []))
    values["ports"] = _ports(whole.sandbox)
    values["notify"] = NotifySettings(urls=list(dict.fromkeys(whole.notify.notify or [])))
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
    values["container"] = _container_settings(path, whole.container)
    values["merge_style"] = whole.merge.style or "merge"
    values["forge"] = ForgeSettings.model_validate(whole.forge.model_dump(exclude_none=True))
    return RepoReviewConfig.model_validate({**values, "source": str(path)})


def _ports(table: SandboxTable) -> list[int]:
    return list(dict.fromkeys(table.ports)) if table.ports is not None else list(EGRESS_PORTS)


def _container_settings(path: Path, table: ContainerTable) -> ContainerSettings:
    if table.user in ROOT_USERS and not table.allow_root:
        raise RepoConfigError(
            f"{path}: [{CONTAINER}] user = {table.user!r} runs the agent as root in its "
            "container, and the agent's permission flags behave as documented only for a "
            'non-root user; give the image\'s non-root user (e.g. "node"), or set '
            "allow_root = true to accept it."
        )
    return ContainerSettings.model_validate(
        table.model_dump(exclude_none=True, exclude={"allow_root"})
    )


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
    after_restore = _parse_checks(table.after_restore or [], f"{where} after_restore")
    if after_restore and not table.cache_dirs:
        raise RepoConfigError(
            f"{where} names after_restore but no cache_dirs: its commands run after a cache "
            'restore, and without cache_dirs there is none; add cache_dirs = [".venv"] or '
            "remove after_restore."
        )
    settings: dict[str, Any] = {
        "setup": setup,
        "after_restore": after_restore,
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


def _read_toml(path: Path) -> dict[str, Any] | None:
    """The file's document; None when there is no file. Its kind and size are checked before
    it is read: a FIFO there would hang the starter."""
    try:
        raw = read_regular(path, CONFIG_SIZE_LIMIT)
    except FileNotFoundError:
        return None
    except InputFileError as err:
        raise RepoConfigError(
            f"{path} {err}; {CONFIG_FILE} must be a text file of settings"
        ) from None
    if raw.startswith(BOM):
        raise RepoConfigError(
            f"{path} starts with a byte order mark (BOM, bytes EF BB BF), which TOML does not "
            "allow; save it as UTF-8 without a BOM."
        )
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as err:
        # tomllib's message ends with "(at line L, column C)".
        raise RepoConfigError(f"{path} is not valid TOML: {err}; fix the syntax there.") from err
    except UnicodeDecodeError as err:
        raise RepoConfigError(f"{path} is not UTF-8 text; save it as UTF-8.") from err


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
    if error["type"] in _REASONED:  # one entry of a list, and why it is refused
        return f"[{table}] {key} entry {error['input']!r} {error['msg']}. " + not_allowed(
            f"[{table}] {key} =", repr(document[table][key]), _rule(table, key)(error["type"])
        )
    value = document[table][key]  # the whole value, not only the list item that is wrong
    return not_allowed(f"[{table}] {key} =", repr(value), _rule(table, key)(error["type"]))


def _rule(table: str, key: str) -> Callable[[str], str]:
    return _RULES.get(f"{table}.{key}", _RULES[key])


def _read_prompt_file(path: Path, repo: Path, name: str) -> str:
    def error(problem: str) -> RepoConfigError:
        return RepoConfigError(f"{path}: [{TABLE}] reviewer_prompt_file = {name!r} {problem}")

    top = repo.resolve()
    target = (top / name).resolve()  # resolve() follows symlinks: a link out is caught too
    if Path(name).is_absolute() or not target.is_relative_to(top):
        raise error(f"points outside the repo; use a path inside {top}, relative to it.")
    try:
        raw = read_regular(target, PROMPT_FILE_LIMIT)
    except FileNotFoundError:
        raise error(f"is not a file in the repo ({target}); create it or fix the path.") from None
    except FileTooBig as err:
        raise error(
            f"{err} of a reviewer prompt; keep it to the instructions the reviewer needs."
        ) from None
    except InputFileError as err:
        raise error(f"({target}) {err}; name a text file.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
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


def merge_notify_settings(
    file_cfg: RepoReviewConfig, urls: list[str], *, allow_private: bool = False
) -> NotifySettings:
    """The file's targets and the --notify URLs (after them, each once). Without
    `allow_private` (the installation's AUTOPILOT_NOTIFY_ALLOW_PRIVATE), none may point at this
    machine or a private network, by address or by what its name resolves to now."""
    checked = []
    for url in urls:
        try:
            checked.append(check_url(url))
        except NotifyUrlError as err:
            raise RepoConfigError(f"--notify: {err}.") from None
    if not allow_private:
        for url in file_cfg.notify.urls:
            _public(url, f"{file_cfg.source}: [{NOTIFY}] notify")
        for url in checked:
            _public(url, "--notify")
    return NotifySettings(urls=list(dict.fromkeys([*file_cfg.notify.urls, *checked])))


def _public(url: str, where: str) -> None:
    try:
        check_public(url)
    except NotifyUrlError as err:
        raise RepoConfigError(f"{where}: {err}.") from None


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
