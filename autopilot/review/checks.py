"""The repository's own check commands (`pytest -q`, `ruff check .`), run in a task's workspace.

A check is an argv, split like a shell would split it but never run by one: a user who wants
pipes or `&&` writes `sh -c '...'`. Each check runs blocking (the caller puts it in a thread)
in its own session, so a timeout, or a check that leaves processes behind, can be cleaned up
by killing the whole process group. Its stdout and stderr go, interleaved, to one log file;
the result carries the log's tail for findings and status.

The code a check runs is partly the agent's, so a check gets a minimal environment (PATH,
HOME, LANG, its own TMPDIR, and the variables the repo names in `check_env`), and its output is
scrubbed of the worker's secret values on its way to the log (autopilot/infra/redact.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from autopilot.agent import allowed_env, kill_tree
from autopilot.infra import Redactor, StreamScrubber, make_private_dir, open_private, untrusted_fs
from autopilot.models import CheckCommand, CheckResult

TAIL_CHARS = 4000
_NOTE_PREFIX = "[autopilot]"
_SLUG_CHARS = 40
_CHUNK = 64 * 1024
# After the check is over, at most this much more output is read: what its killed processes
# left in the pipe (a pipe holds 64 KiB to 1 MiB), not a stream from one that escaped.
_DRAIN_LIMIT = 4 * 1024 * 1024


def _worker_env() -> dict[str, str]:
    return dict(os.environ)


@dataclass(frozen=True)
class CheckEnv:
    """Where a check's environment comes from: the worker's own (`base`), of which it gets
    what allowed_env.CHECK allows and the `passed` names (`check_env`; an unset one is simply
    absent), and the folder its private TMPDIR is made in (None: beside its log)."""

    base: Mapping[str, str] = field(default_factory=_worker_env)
    passed: tuple[str, ...] = ()
    tmp_root: Path | None = None
    # The sandbox a check runs in: (argv, its TMPDIR) -> the argv that runs it there, and
    # what its environment needs for that (activities/checks.py makes it). None: as it is.
    confine: Callable[[list[str], Path], tuple[list[str], dict[str, str]]] | None = None

    def variables(self, tmpdir: Path) -> dict[str, str]:
        # HOME is the worker's: the user's toolchains and their caches live there (cargo,
        # rustup, go, uv, ~/.local/bin), and a fake one would not hide its files from a check
        # that runs as the same user anyway; keeping files out of reach is the sandbox's job.
        env = allowed_env.pick(self.base, allowed_env.CHECK)
        env |= {name: self.base[name] for name in self.passed if name in self.base}
        env["TMPDIR"] = str(tmpdir)
        return env


@contextlib.contextmanager
def private_tmpdir(root: Path) -> Iterator[Path]:
    """A fresh, empty TMPDIR for one check, removed with everything in it when the check ends.

    Not the shared /tmp: there a check would see (and could plant files for) other users,
    other tasks' checks and the worker, and whatever it leaves would pile up. Under the state
    dir it is the one place besides the workspace a check writes to, which a sandbox can allow.
    The name stays short: a Unix socket path (multiprocessing, test databases) is at most 107
    bytes."""
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="check-", dir=root))
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            untrusted_fs.remove_path(path)


def run_check(
    workspace: Path,
    check: CheckCommand,
    timeout_s: float,
    output_path: Path,
    env: CheckEnv | None = None,
    redactor: Redactor | None = None,
) -> CheckResult:
    env = env or CheckEnv()
    redactor = redactor or Redactor.from_env(env.base)
    make_private_dir(output_path.parent)
    started = time.monotonic()
    with private_tmpdir(env.tmp_root or output_path.parent) as tmpdir:
        argv, variables = check.argv, env.variables(tmpdir)
        missing = shutil.which(argv[0], path=variables.get("PATH")) is None
        if env.confine is not None and not missing:  # missing: said plainly, not by bwrap
            argv, extra = env.confine(argv, tmpdir)
            variables |= extra
        exit_code, timed_out, start_error = _run_to_file(
            workspace, argv, timeout_s, output_path, variables, redactor
        )
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
    workspace: Path,
    argv: list[str],
    timeout_s: float,
    output_path: Path,
    env: dict[str, str],
    redactor: Redactor,
) -> tuple[int | None, bool, str | None]:
    """Run argv with its output, scrubbed, in output_path: (exit code, timed out, why it did
    not start). OSError when the log cannot be written (a full disk)."""
    with open_private(output_path, "wb") as output:
        try:
            process = subprocess.Popen(
                argv,
                cwd=workspace,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own group: one kill reaches its children
            )
        except OSError as err:
            return None, False, _describe_start_error(err, argv)
        assert process.stdout is not None
        log = _ScrubbedLog(output, redactor.stream())
        with _copying(process.stdout, log):
            code, timed_out = _wait(process, timeout_s)
        if log.error is not None:
            raise log.error
        return code, timed_out, None


def _wait(process: subprocess.Popen[bytes], timeout_s: float) -> tuple[int | None, bool]:
    """Wait for the check, then kill its group: (exit code, timed out)."""
    try:
        code = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        process.wait()
        return None, True
    # Anything it left running in its group (a server started with `&`) goes too.
    _kill_group(process.pid)
    return code, False


class _ScrubbedLog:
    """The check's log, written scrubbed. A write that fails (a full disk) is kept, and the
    rest of the output is read and dropped: a check blocked on a full pipe would only time out."""

    def __init__(self, output: IO[bytes], scrubber: StreamScrubber) -> None:
        self._output = output
        self._scrubber = scrubber
        self.error: OSError | None = None

    def feed(self, chunk: bytes) -> None:
        self._write(self._scrubber.feed(chunk))

    def close(self) -> None:
        self._write(self._scrubber.close())

    def _write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            self._output.write(data)
            self._output.flush()  # the log can be followed while the check runs
        except OSError as err:
            self.error = err


@contextlib.contextmanager
def _copying(source: IO[bytes], log: _ScrubbedLog) -> Iterator[None]:
    """Copy the check's output to its log in a thread while the body waits for the check;
    when the body is done (the check and its group are gone), the copy finishes."""
    stop_read, stop_write = os.pipe()
    copier = threading.Thread(
        target=_copy, args=(source.fileno(), stop_read, log), name="check-output", daemon=True
    )
    copier.start()
    try:
        yield
    finally:
        os.write(stop_write, b"x")
        copier.join()
        os.close(stop_read)
        os.close(stop_write)
        source.close()


def _copy(source: int, stop: int, log: _ScrubbedLog) -> None:
    """Until the pipe closes, or `stop` says the check is over: then read what is left in the
    pipe without waiting, since a process that escaped the group may hold it open forever."""
    with selectors.DefaultSelector() as selector:
        selector.register(source, selectors.EVENT_READ)
        selector.register(stop, selectors.EVENT_READ)
        while True:
            ready = {key.fd for key, _ in selector.select()}
            if stop in ready:
                _drain(source, log)
                break
            chunk = os.read(source, _CHUNK)
            if not chunk:
                break
            log.feed(chunk)
    log.close()


def _drain(source: int, log: _ScrubbedLog) -> None:
    os.set_blocking(source, False)
    read = 0
    while read < _DRAIN_LIMIT:
        try:
            chunk = os.read(source, _CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            return
        read += len(chunk)
        log.feed(chunk)


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


def check_log_name(index: int, command: str, kind: str = "check") -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", command.lower()).strip("-")[:_SLUG_CHARS].strip("-")
    return f"{kind}-{index}-{slug or kind}.log"


def run_checks(
    workspace: Path,
    checks: list[CheckCommand],
    timeout_s: float,
    output_dir: Path,
    on_progress: Callable[[str], None] | None = None,
    env: CheckEnv | None = None,
) -> list[CheckResult]:
    """Every check in order, even after one fails: the agent gets to fix all failures at once."""
    env = env or CheckEnv()
    # The worker's secrets, check_env's among them (they come from the same environment).
    redactor = Redactor.from_env(env.base)
    results: list[CheckResult] = []
    for index, check in enumerate(checks, start=1):
        if on_progress is not None:
            on_progress(check.command)
        log = output_dir / check_log_name(index, check.command)
        results.append(run_check(workspace, check, timeout_s, log, env, redactor))
    return results
