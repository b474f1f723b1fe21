"""Settings read from the environment, in one place, so every process agrees on them.

Kept by hand, not pydantic-settings: a few variables, and what is not plain parsing (`~`
against the given environment's HOME, creating the state dir private and checking it is
writable) would stay code anyway, next to a new dependency.
"""

from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from autopilot.infra.notify_targets import (
    NOTIFY_COMMAND_SETTING,
    NotifyUrlError,
    allows_private,
    check_public,
    parse_url_list,
)
from autopilot.infra.private_files import make_private_dir, tighten_dir

DEFAULT_TASK_QUEUE = "autopilot"
DEFAULT_TEMPORAL_PORT = 7233
DEFAULT_UI_PORT = 8233
UI_SETTING = "AUTOPILOT_TEMPORAL_UI"
UI_CHOICES = {"on": True, "off": False}
NOTIFY_SETTING = "AUTOPILOT_NOTIFY"


class ConfigError(Exception):
    """A setting is unusable; the message says which one and what to set instead."""


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    task_queue: str
    # Embedded mode: no TEMPORAL_ADDRESS, so we start (or reuse) a dev server on loopback.
    embedded: bool
    temporal_address: str
    temporal_namespace: str
    ui_port: int
    # The embedded server's Web UI; off: the server starts headless (no UI port at all).
    ui_enabled: bool = True
    # The installation's own notification targets (AUTOPILOT_NOTIFY): every session the worker
    # runs notifies them too. Read by the worker only; they never travel through Temporal.
    notify: tuple[str, ...] = ()
    # The installation's notification command (AUTOPILOT_NOTIFY_COMMAND): argv, run by the
    # worker outside any sandbox, so it comes from the person's environment alone.
    notify_command: tuple[str, ...] = ()

    @property
    def ui_url(self) -> str:
        if self.embedded and self.ui_enabled:
            return f"http://127.0.0.1:{self.ui_port}"
        return ""

    def path(self, *parts: str) -> Path:
        """A path under the state dir, its parent created (0700)."""
        target = self.state_dir.joinpath(*parts)
        make_private_dir(target.parent)
        return target


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    # isdecimal, not isdigit: "²" is a digit that int() rejects.
    if not (raw.isascii() and raw.isdecimal()) or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}={raw!r} is not a TCP port; set it to a number from 1 to 65535.")
    return int(raw)


def _ui_enabled(env: Mapping[str, str]) -> bool:
    raw = env.get(UI_SETTING, "").strip()
    if not raw:
        return True
    if raw.lower() not in UI_CHOICES:
        raise ConfigError(
            f"{UI_SETTING}={raw!r} is neither on nor off; set it to off to run the embedded "
            "Temporal server without its Web UI, or on (the default)."
        )
    return UI_CHOICES[raw.lower()]


def _notify_urls(env: Mapping[str, str]) -> tuple[str, ...]:
    try:
        urls = tuple(parse_url_list(env.get(NOTIFY_SETTING, "")))
    except NotifyUrlError as err:
        raise ConfigError(
            f"{NOTIFY_SETTING}: {err}; set it to http(s) URLs separated by spaces, or unset it."
        ) from None
    if not allows_private(env):
        for url in urls:
            try:
                check_public(url)
            except NotifyUrlError as err:
                raise ConfigError(f"{NOTIFY_SETTING}: {err}.") from None
    return urls


def _notify_command(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get(NOTIFY_COMMAND_SETTING, "")
    try:
        return tuple(shlex.split(raw))
    except ValueError as err:
        raise ConfigError(
            f"{NOTIFY_COMMAND_SETTING}={raw!r} cannot be split into arguments ({err}); quote it"
            " as a shell would, e.g. 'notify-send Autopilot', or unset it."
        ) from None


def _make_private(state_dir: Path) -> None:
    """Transcripts, logs and check output are for the owner's eyes: a state dir that lets
    others in (made by an older version, or by hand) is closed to them."""
    try:
        tighten_dir(state_dir)
    except OSError as err:
        raise ConfigError(
            f"cannot make the state directory {state_dir} private (mode 700): {err.strerror}; "
            "it holds transcripts and logs, so it must be yours alone: set "
            "AUTOPILOT_STATE_DIR to a directory you own."
        ) from err


def state_dir_of(env: Mapping[str, str]) -> Path:
    """The state dir `env` names (AUTOPILOT_STATE_DIR, else ~/.autopilot), absolute."""
    # HOME from `env` too, so settings computed for another environment use that home.
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    raw_state_dir = env.get("AUTOPILOT_STATE_DIR", "").strip()
    if raw_state_dir == "~" or raw_state_dir.startswith("~/"):
        state_dir = home / raw_state_dir[2:]
    else:
        state_dir = Path(raw_state_dir).expanduser() if raw_state_dir else home / ".autopilot"
    return state_dir.resolve()


@functools.cache
def own_state_dir() -> Path:
    """This process's own state dir (the worker made it private when it started)."""
    return state_dir_of(os.environ)


def on_this_worker(path: str) -> Path:
    """A path a session names, as this worker uses it. A local session names absolute paths
    in the state dir its starter and workers share; a remote session's workers share no disk,
    so it names paths relative to each worker's own state dir ("" is the state dir itself)."""
    return Path(path) if os.path.isabs(path) else own_state_dir() / path


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    state_dir = state_dir_of(env)
    try:
        make_private_dir(state_dir)
    except OSError as err:
        raise ConfigError(
            f"cannot create the state directory {state_dir}: {err.strerror}; "
            "set AUTOPILOT_STATE_DIR to a writable directory."
        ) from err
    # mkdir(exist_ok=True) succeeds on an existing read-only directory: check we can write.
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the state directory {state_dir} is not writable; "
            "set AUTOPILOT_STATE_DIR to a writable directory."
        )
    _make_private(state_dir)
    address = env.get("TEMPORAL_ADDRESS", "").strip()
    embedded = not address
    if embedded:
        address = f"127.0.0.1:{_port(env, 'AUTOPILOT_TEMPORAL_PORT', DEFAULT_TEMPORAL_PORT)}"
    return Settings(
        state_dir=state_dir,
        task_queue=env.get("AUTOPILOT_TASK_QUEUE", "").strip() or DEFAULT_TASK_QUEUE,
        embedded=embedded,
        temporal_address=address,
        temporal_namespace=env.get("TEMPORAL_NAMESPACE", "").strip() or "default",
        ui_port=_port(env, "AUTOPILOT_TEMPORAL_UI_PORT", DEFAULT_UI_PORT),
        ui_enabled=_ui_enabled(env),
        notify=_notify_urls(env),
        notify_command=_notify_command(env),
    )


def forge_task_queue(task_queue: str) -> str:
    """The queue of forge mode's watches of pull requests: each waits (for checks, for people)
    holding an activity slot, so they get a worker of their own, wide and cheap (they sleep,
    heartbeating), and never crowd the git steps and checks out of `task_queue`'s slots."""
    return f"{task_queue}-forge"


def agent_task_queue(task_queue: str) -> str:
    """The queue of the agent's and the reviewer's runs: polled by every worker of the
    installation with at most its `--max-agents` of them at once, so a session's agents go to
    the machines that have room, while its git steps and checks stay on `task_queue`."""
    return f"{task_queue}-agents"
