"""Run one `claude -p` process and read its stream-json output.

Plain asyncio, no Temporal: the activity wraps this with heartbeats and error types. The
rules measured on this CLI: a run without a `result` event failed, whatever its exit code;
`is_error` decides success, never `subtype` alone. And the pipeline's own rule: a run finished
only with exit code 0 and exactly one `result` event. The stream is data: anything the run
started may write to the CLI's stdout, so a second `result` line (a forged verdict) fails the
run instead of deciding it.

The transcript and the stderr log are scrubbed of the worker's secrets as they are written
(autopilot/infra/redact.py); the stream state, and so everything reported back, is read from the
scrubbed events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NotRequired, TypedDict, Unpack

from autopilot.agent.process_guard import RUN_MARKER, kill_tree
from autopilot.agent.rate_limits import seconds_until_reset
from autopilot.infra import NO_SECRETS, Redactor, StreamScrubber, make_private_dir, open_private
from autopilot.models import AgentProgress

STREAM_LINE_LIMIT = 64 * 1024 * 1024  # a tool result echoing a big file is one line
STDERR_CHUNK = 64 * 1024
# How long stderr may stay open once the CLI has exited and its stdout is closed: only a
# process it left behind with its stderr can hold it, and that one's output is not waited for.
STDERR_DRAIN_S = 5.0
# The CLI's answer to `--resume` of a session it never wrote (measured on 2.1.197).
RESUME_REFUSED = "No conversation found"
# Signals that end a process from outside (a person, the OOM killer, a dying container). The
# pipeline's own kills (hung, timed out, cancelled) are raised before the run is classified.
OUTSIDE_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
# util-linux before 2.40 (util-linux#2614): `unshare --fork` whose child a signal killed
# exits 1 with this line instead of re-raising the signal.
UNSHARE_LOST_SIGNAL = "sigprocmask unblock failed"


class AgentFailure(Exception):
    """The run failed. `kind` says how, so the caller can decide whether retrying helps."""

    # auth: credentials/billing, retrying cannot help. rate_limit, overloaded, api: the
    # service. hung: no output for too long. no_result: the CLI died on its own. killed: a
    # signal from outside ended it (not the agent's failure). resume_refused: `--resume` of a
    # session the CLI never saved. error: is_error for another reason (e.g. max turns).
    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s
        # What the run did before it failed (turns, cost, session id), set by run_claude.
        self.state = StreamState(session_id="")
        self.duration_s = 0.0


@dataclass
class StreamState:
    session_id: str
    message_ids: set[str] = field(default_factory=set)
    input_tokens: int = 0
    output_tokens: int = 0
    error_kind: str = ""  # the `error` field of the last assistant message, if any
    saved: bool = False  # the CLI announced its session (init event): a resume can find it
    last_event: str = ""
    result: dict[str, Any] | None = None
    results: int = 0  # result events seen: the CLI writes one, a forger another

    def progress(self, transcript: Path) -> AgentProgress:
        cost = float(self.result.get("total_cost_usd") or 0.0) if self.result else 0.0
        return AgentProgress(
            session_id=self.session_id,
            turns=len(self.message_ids),
            cost_usd=cost,
            last_event=self.last_event,
            transcript_path=str(transcript),
            session_saved=self.saved,
        )

    def absorb(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type", ""))
        subtype = event.get("subtype")
        self.last_event = f"{kind}/{subtype}" if subtype else kind
        if kind == "system" and subtype == "init" and event.get("session_id"):
            self.session_id = str(event["session_id"])
            self.saved = True
        elif kind == "assistant":
            message = event.get("message") or {}
            if message.get("id") and message["id"] not in self.message_ids:
                self.message_ids.add(str(message["id"]))
                usage = message.get("usage") or {}
                self.input_tokens += int(usage.get("input_tokens") or 0)
                self.output_tokens += int(usage.get("output_tokens") or 0)
            if event.get("error"):
                self.error_kind = str(event["error"])
        elif kind == "result":
            self.result = event
            self.results += 1


def killed_by_signal(returncode: int | None) -> bool:
    """Did a signal end the process: -N from asyncio, or 128+N from a shell or wrapper
    (`unshare --kill-child` reports its child's signal that way)."""
    if returncode is None:
        return False
    number = -returncode if returncode < 0 else returncode - 128
    return number in OUTSIDE_SIGNALS


def classify(state: StreamState, returncode: int | None, stderr_tail: str) -> AgentFailure | None:
    """None when the run succeeded; otherwise what went wrong, in words a person can act on."""
    result = state.result
    if result is None and (killed_by_signal(returncode) or UNSHARE_LOST_SIGNAL in stderr_tail):
        return AgentFailure(
            "killed",
            f"claude was killed by a signal from outside (exit code {returncode}, last event: "
            f"{state.last_event or 'none'}); the run resumes",
        )
    if result is None:
        return AgentFailure(
            "no_result",
            f"claude exited with code {returncode} without a result event "
            f"(last event: {state.last_event or 'none'}); stderr: {stderr_tail or '(empty)'}",
        )
    if state.results > 1:
        return AgentFailure(
            "error",
            f"the run's output held {state.results} result events where the CLI writes one: "
            "something the run started wrote into its stream, so no result of it counts",
        )
    if not result.get("is_error"):
        return _exit_after_success(returncode)
    text = str(result.get("result") or result.get("subtype") or "")
    if not result.get("num_turns") and RESUME_REFUSED in f"{text}\n{stderr_tail}":
        return AgentFailure("resume_refused", f"the CLI has no such session to resume: {text}")
    status = result.get("api_error_status")
    kind = state.error_kind
    if kind in ("authentication_failed", "billing_error", "oauth_org_not_allowed") or status in (
        401,
        403,
    ):
        return AgentFailure(
            "auth",
            f"the Claude CLI could not authenticate ({kind or status}): {text}. Set "
            "ANTHROPIC_API_KEY for the worker or log in with `claude` once, then retry the task.",
        )
    if kind == "rate_limit" or status == 429 or "hit your limit" in text.lower():
        wait = seconds_until_reset(text, datetime.now(UTC))
        return AgentFailure(
            "rate_limit", f"rate or usage limit: {text}; retrying in {wait:.0f}s", wait
        )
    if kind in ("server_error", "overloaded") or (isinstance(status, int) and status >= 500):
        return AgentFailure("overloaded", f"the model API failed ({kind or status}): {text}")
    subtype = str(result.get("subtype") or "")
    return AgentFailure("error", f"the agent ended with an error ({subtype}): {text}")


def _exit_after_success(returncode: int | None) -> AgentFailure | None:
    """A success result counts only when the CLI then exits 0: a signal from outside after it
    is a lost run, any other exit code a failed one."""
    if returncode == 0:
        return None
    if killed_by_signal(returncode):
        return AgentFailure(
            "killed",
            f"claude was killed by a signal from outside after its result (exit code "
            f"{returncode}); the run resumes",
        )
    return AgentFailure(
        "error",
        f"claude reported success but exited with code {returncode}; a finished run exits 0",
    )


async def _read_stream(
    stream: asyncio.StreamReader,
    transcript: Path,
    state: StreamState,
    idle_timeout_s: float,
    on_progress: Callable[[AgentProgress], None],
    redactor: Redactor,
) -> None:
    with open_private(transcript, "ab") as out:
        while True:
            try:
                line = await asyncio.wait_for(stream.readline(), timeout=idle_timeout_s)
            except TimeoutError:
                raise AgentFailure(
                    "hung", f"claude printed nothing for {idle_timeout_s:.0f}s; it was stopped"
                ) from None
            if not line:
                return
            # stream-json is one event a line: a whole line holds any secret it holds.
            line = redactor.scrub_bytes(line)
            out.write(line)
            out.flush()
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # not an event (the CLI may print a warning line); kept in transcript
            if isinstance(event, dict):
                state.absorb(event)
                on_progress(state.progress(transcript))


class ClaudeRun(TypedDict):
    """A CLI run's own arguments, the same wherever it runs (here, or in a container)."""

    env: Mapping[str, str]  # the agent's environment
    prompt: str
    session_id: str
    transcript: Path  # the stream, as it came (redacted); stderr beside it
    idle_timeout_s: float  # silence longer than this is a hang
    on_progress: Callable[[AgentProgress], None]
    redactor: NotRequired[Redactor]  # NO_SECRETS when not given


async def run_claude(
    argv: list[str], *, cwd: Path, **claude: Unpack[ClaudeRun]
) -> tuple[StreamState, float]:
    """Run the CLI to its end. Returns the stream state and the wall time; raises AgentFailure.

    On cancellation, a hang or any error the whole process tree is killed before returning.
    """
    transcript, redactor = claude["transcript"], claude.get("redactor", NO_SECRETS)
    make_private_dir(transcript.parent)
    stderr_path = transcript.with_suffix(".stderr")
    state = StreamState(session_id=claude["session_id"])
    # Every process of this run inherits the marker, even one that left the process tree
    # (`setsid -f`, a double fork): without a PID namespace that is how kill_tree finds it.
    marker = uuid.uuid4().hex
    started = time.monotonic()
    # stderr through a pipe of our own, not asyncio's: process.wait() waits for asyncio's
    # pipes to close as well, and a process the CLI left behind may hold its stderr.
    stderr_read, stderr_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env={**claude["env"], RUN_MARKER: marker},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr_write,
            start_new_session=True,  # its own process group, away from the worker's signals
            limit=STREAM_LINE_LIMIT,
        )
    except BaseException:
        os.close(stderr_read)
        raise
    finally:
        os.close(stderr_write)  # the CLI has its own copy; ours would keep the pipe open
    assert process.stdin is not None and process.stdout is not None
    # Closed on the way out even if the copy never started (cancelled at once).
    with os.fdopen(stderr_read, "rb", buffering=0) as stderr_pipe:
        stderr = asyncio.create_task(_copy_stderr(stderr_pipe, stderr_path, redactor.stream()))
        try:
            try:
                process.stdin.write(claude["prompt"].encode())
                await process.stdin.drain()
                process.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass  # it exited without reading the prompt: its output and exit code say why
            await _read_stream(
                process.stdout,
                transcript,
                state,
                claude["idle_timeout_s"],
                claude["on_progress"],
                redactor,
            )
            returncode = await process.wait()
            await _finish_stderr(stderr)
        except AgentFailure as hung:
            kill_tree(process.pid, marker)
            await process.wait()
            await _finish_stderr(stderr)
            hung.state, hung.duration_s = state, time.monotonic() - started
            raise
        except BaseException:
            kill_tree(process.pid, marker)
            await process.wait()
            stderr.cancel()
            await asyncio.gather(stderr, return_exceptions=True)
            raise
    failure = classify(state, returncode, _tail(stderr_path))
    if failure:
        failure.state, failure.duration_s = state, time.monotonic() - started
        raise failure
    return state, time.monotonic() - started


async def _copy_stderr(pipe: BinaryIO, path: Path, scrubber: StreamScrubber) -> None:
    """The CLI's stderr into its log, scrubbed: it is not line-oriented, so by chunks, with a
    secret split between two of them still caught."""
    stream = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), pipe
    )
    try:
        with open_private(path, "wb") as out:
            try:
                while chunk := await stream.read(STDERR_CHUNK):
                    out.write(scrubber.feed(chunk))
                    out.flush()
            finally:
                out.write(scrubber.close())
    finally:
        transport.close()


async def _finish_stderr(copy: asyncio.Task[None]) -> None:
    """Let the stderr copy reach the end of its stream, bounded by STDERR_DRAIN_S."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(copy, STDERR_DRAIN_S)  # a timeout cancels it: what it read stays


def _tail(path: Path, limit: int = 600) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except OSError:
        return ""
