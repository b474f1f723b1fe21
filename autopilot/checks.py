"""The repository's own check commands (`pytest -q`, `ruff check .`), run in a task's worktree.

A check is an argv, split like a shell would split it but never run by one: a user who wants
pipes or `&&` writes `sh -c '...'`. Each check runs blocking (the caller puts it in a thread)
in its own session, so a timeout, or a check that leaves processes behind, can be cleaned up
by killing the whole process group. Its stdout and stderr go, interleaved, to one log file;
the result carries the log's tail for findings and status.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from autopilot.gitops import _GIT_LOCATION_VARS
from autopilot.models import CheckCommand, CheckResult
from autopilot.private_files import make_private_dir, open_private
from autopilot.process_guard import kill_tree

TAIL_CHARS = 4000
_NOTE_PREFIX = "[autopilot]"
_SLUG_CHARS = 40


class CheckSyntaxError(ValueError):
    """A check command cannot be split into an argv; the message says which and how to fix it."""


def parse_check(command: str) -> CheckCommand:
    text = command.strip()
    if not text:
        raise CheckSyntaxError(f"check {command!r} is empty; write a command such as 'pytest -q'.")
    if "\0" in text:  # exec cannot pass it; fail here rather than at run time
        raise CheckSyntaxError(f"check {command!r} contains a NUL character; remove it.")
    try:
        argv = shlex.split(text)
    except ValueError as err:
        raise CheckSyntaxError(
            f"check {command!r} cannot be split into arguments ({err}); {_split_fix(err)}"
        ) from err
    return CheckCommand(command=text, argv=argv)


def _split_fix(err: ValueError) -> str:
    if "escaped" in str(err):  # shlex: "No escaped character", a backslash at the very end
        return "remove the trailing backslash or double it."
    return "close the quote, or escape a literal quote with a backslash."


def check_env() -> dict[str, str]:
    """The worker's environment (checks need the user's toolchain), minus the variables that
    would point git in the check at another repository than the worktree."""
    return {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}


def run_check(
    worktree: Path, check: CheckCommand, timeout_s: float, output_path: Path
) -> CheckResult:
    make_private_dir(output_path.parent)
    started = time.monotonic()
    exit_code, timed_out, start_error = _run_to_file(worktree, check.argv, timeout_s, output_path)
    duration = time.monotonic() - started
    if start_error is not None:
        _append_note(output_path, f"{_NOTE_PREFIX} could not start: {start_error}")
    elif timed_out:
        _append_note(
            output_path, f"{_NOTE_PREFIX} stopped after {timeout_s:g} s: the check timed out."
        )
    return CheckResult(
        command=check.command,
        passed=exit_code == 0,
        exit_code=exit_code,
        timed_out=timed_out,
        duration_s=duration,
        output_tail=read_tail(output_path),
        output_path=str(output_path),
    )


def _run_to_file(
    worktree: Path, argv: list[str], timeout_s: float, output_path: Path
) -> tuple[int | None, bool, str | None]:
    """Run argv with its output in output_path: (exit code, timed out, why it did not start)."""
    with open_private(output_path, "wb") as output:
        try:
            process = subprocess.Popen(
                argv,
                cwd=worktree,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=check_env(),
                start_new_session=True,  # its own group: one kill reaches its children
            )
        except OSError as err:
            return None, False, _describe_start_error(err, argv)
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            kill_tree(process.pid)
            process.wait()
            return None, True, None
        # Anything it left running in its group (a server started with `&`) goes too.
        _kill_group(process.pid)
        return code, False, None


def _describe_start_error(err: OSError, argv: list[str]) -> str:
    where = err.filename if err.filename is not None else argv[0]
    reason = err.strerror or str(err)
    return f"{reason}: {where}"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already empty (its id is not reused while a member lives)


def _append_note(path: Path, note: str) -> None:
    """Add a line of ours to the log, on a line of its own."""
    prefix = b"\n" if _ends_mid_line(path) else b""
    with open_private(path, "ab") as log:
        log.write(prefix + note.encode() + b"\n")


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as log:
        if log.seek(0, os.SEEK_END) == 0:
            return False
        log.seek(-1, os.SEEK_END)
        return log.read(1) != b"\n"


def read_tail(path: Path, chars: int = TAIL_CHARS) -> str:
    """The last `chars` characters of a log, decoded leniently (checks print any bytes)."""
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - 4 * chars))  # a UTF-8 character is at most 4 bytes
            data = log.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")[-chars:]


def check_log_name(index: int, command: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", command.lower()).strip("-")[:_SLUG_CHARS].strip("-")
    return f"check-{index}-{slug or 'check'}.log"


def run_checks(
    worktree: Path,
    checks: list[CheckCommand],
    timeout_s: float,
    output_dir: Path,
    on_progress: Callable[[str], None] | None = None,
) -> list[CheckResult]:
    """Every check in order, even after one fails: the agent gets to fix all failures at once."""
    results: list[CheckResult] = []
    for index, check in enumerate(checks, start=1):
        if on_progress is not None:
            on_progress(check.command)
        log = output_dir / check_log_name(index, check.command)
        results.append(run_check(worktree, check, timeout_s, log))
    return results
