"""Running git: one command at a time, argv only, no hook, a short environment; the
errors and the machine's git.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_USER_NAME = "CC3 Autopilot"
DEFAULT_USER_EMAIL = "autopilot@localhost"
DEFAULT_IDENTITY = {"user.name": DEFAULT_USER_NAME, "user.email": DEFAULT_USER_EMAIL}
MIN_GIT_VERSION = (2, 38, 0)  # `git merge-tree --write-tree`


class GitError(Exception):
    """A git operation failed; the message says what, where, and git's own words."""


class RepoError(GitError):
    """The repository cannot be used for a session; the message says how to fix it."""


class GitTimeout(GitError):
    """A git command did not finish in the time it was given (a remote that does not answer);
    it and everything it started were killed."""


# What our git commands see of the worker's environment: where things are, the locale, which
# config files and identity the user chose. Nothing else: an API key has no business there.
_GIT_ENV_KEPT = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "LANG",
        "LANGUAGE",
        "LC_ALL",
        "LC_CTYPE",
        "LC_MESSAGES",
        "TZ",
        "TMPDIR",
        "SSH_AUTH_SOCK",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_SYSTEM",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    }
)
# Every git command of ours runs no hook and no fsmonitor command, whatever a repository's
# config says: in a workspace that config is the agent's to write.
_GIT = ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false"]


def _git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _GIT_ENV_KEPT}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def run_git(
    cwd: str | Path,
    args: Sequence[str],
    *,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `git -C cwd args...` and return the result whatever its exit status.

    `env`: variables added to the short environment (a transport's settings). `timeout`: after
    that many seconds git and whatever it started (ssh, a remote helper) are killed and
    GitTimeout is raised."""
    command = [*_GIT, "-C", str(cwd), *args]
    full_env = _git_env() | dict(env or {})
    try:
        if timeout is not None:
            return _run_bounded(command, full_env, stdin, timeout, cwd, args)
        return subprocess.run(
            command, capture_output=True, text=True, input=stdin, env=full_env, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH; install git >= 2.38") from exc


def _run_bounded(
    command: list[str],
    env: dict[str, str],
    stdin: str | None,
    timeout: float,
    cwd: str | Path,
    args: Sequence[str],
) -> subprocess.CompletedProcess[str]:
    # A process group of its own: on timeout the ssh or remote helper git started goes too,
    # and nothing is left holding the pipes. Never the worker's stdin: nothing may prompt.
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise GitTimeout(
                f"`git {' '.join(args)}` in {cwd} did not finish within {timeout:g} s "
                "and was stopped"
            ) from None
        return subprocess.CompletedProcess(command, proc.returncode, out, err)


def git_failure_message(
    cwd: str | Path, args: Sequence[str], proc: subprocess.CompletedProcess[str]
) -> str:
    output = (proc.stderr.strip() or proc.stdout.strip() or "(no output)")[-2000:]
    message = f"`git {' '.join(args)}` failed in {cwd} (exit {proc.returncode}): {output}"
    return message + _full_disk_hint([str(cwd), *args])


LOW_SPACE_BYTES = 4 * 1024 * 1024


def _full_disk_hint(places: Sequence[str]) -> str:
    """Git says "unable to write file" when a disk is full; say which disk, and what to do."""
    for place in places:
        path = Path(place)
        if not path.is_absolute():
            continue
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            free = shutil.disk_usage(path).free
        except OSError:
            continue
        if free < LOW_SPACE_BYTES:
            return (
                f"; the disk holding {path} is full ({free // 1024} KB free): free some space "
                "there (or move AUTOPILOT_STATE_DIR); the step is retried"
            )
    return ""


def git_output(
    cwd: str | Path,
    *args: str,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """Run git and return its stdout; raise GitError on a non-zero exit (see `run_git`)."""
    proc = run_git(cwd, args, stdin=stdin, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise GitError(git_failure_message(cwd, args, proc))
    return proc.stdout


def run_git_bytes(
    cwd: str | Path, args: Sequence[str], *, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Like `run_git`, with bytes output: diffs, file contents and `-z` paths need not be UTF-8."""
    try:
        return subprocess.run(
            [*_GIT, "-C", str(cwd), *args],
            capture_output=True,
            input=stdin,
            env=_git_env(),
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH; install git >= 2.38") from exc


def git_output_bytes(cwd: str | Path, *args: str) -> bytes:
    """Run git and return its stdout as bytes; raise GitError on a non-zero exit."""
    proc = run_git_bytes(cwd, args)
    if proc.returncode != 0:
        shown = subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
        )
        raise GitError(git_failure_message(cwd, args, shown))
    return proc.stdout


def nul_separated_paths(out: bytes) -> list[bytes]:
    return [path for path in out.split(b"\0") if path]


def shown_path(path: bytes) -> str:
    """A repository path as text for people and models (never fails on odd bytes)."""
    return path.decode("utf-8", "replace")


def configured_identity(cwd: str | Path) -> dict[str, str]:
    """The user.name / user.email git would use in `cwd` (the last of each that is set and not
    blank), in one git call."""
    proc = run_git_bytes(cwd, ["config", "-z", "--get-regexp", r"^user\.(name|email)$"])
    found: dict[str, str] = {}
    for entry in proc.stdout.decode("utf-8", "replace").split("\0"):
        key, _, value = entry.partition("\n")
        if key in DEFAULT_IDENTITY and value.strip():
            found[key] = value.strip()
    return found


def _missing_identity(cwd: str | Path) -> dict[str, str]:
    """Our default for each of user.name / user.email the repository has not configured."""
    configured = configured_identity(cwd)
    return {key: default for key, default in DEFAULT_IDENTITY.items() if key not in configured}


def identity_args(cwd: str | Path) -> list[str]:
    """`-c user.name=… -c user.email=…` defaults for whatever the repo has not configured."""
    return [
        arg for key, value in _missing_identity(cwd).items() for arg in ("-c", f"{key}={value}")
    ]


def identity_env(cwd: str | Path) -> dict[str, str]:
    """Environment variables giving an agent's own `git commit` in `cwd` our default author
    and committer, for whatever identity the repository has not configured (else empty)."""
    missing = _missing_identity(cwd)
    env: dict[str, str] = {}
    if "user.name" in missing:
        env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = missing["user.name"]
    if "user.email" in missing:
        env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = missing["user.email"]
    return env


def git_version() -> tuple[int, int, int]:
    """The installed git's version, e.g. (2, 39, 5)."""
    out = git_output(".", "--version")
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if found is None:
        raise GitError(f"cannot read the git version from `git --version`: {out.strip()!r}")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def require_git(min: tuple[int, int, int] = MIN_GIT_VERSION) -> tuple[int, int, int]:
    """Return the git version, or raise GitError if it is older than `min`."""
    version = git_version()
    if version < min:
        have = ".".join(map(str, version))
        need = ".".join(map(str, min))
        raise GitError(
            f"git {have} is too old: CC3 Autopilot needs git >= {need} "
            "(for `git merge-tree --write-tree`); install a newer git and try again"
        )
    return version
