"""A scripted Anthropic Messages API server: the one stand-in for the model, in the tests, the
benchmark and `./dev demo` without credentials (hence a package of its own beside the product,
which never imports it, rather than a module under tests/).

The real Claude Code CLI is pointed at it (`ScriptedModel.env()`), sends its requests here and
runs the tool calls we answer with for real. A *responder* decides each answer from the parsed
conversation; `script`, `by_task`, `PlanFollower` and `Reviewer` build responders.

Stdlib only: a `ThreadingHTTPServer` on 127.0.0.1 in a daemon thread.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

JsonObj = dict[str, Any]

# ----------------------------------------------------------------------------------------------
# Replies
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: JsonObj


@dataclass
class Text:
    """An `end_turn` answer."""

    text: str
    delay_s: float = field(default=0.0, kw_only=True)
    hold: threading.Event | None = field(default=None, kw_only=True)


@dataclass
class ToolUses:
    """A `tool_use` answer: optional text, then one tool_use block per call (unique ids)."""

    calls: list[ToolCall]
    text: str = ""
    delay_s: float = field(default=0.0, kw_only=True)
    hold: threading.Event | None = field(default=None, kw_only=True)


@dataclass
class HttpError:
    """An HTTP error with an Anthropic-style body `{"type":"error","error":{...}}`."""

    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = field(default=0.0, kw_only=True)
    hold: threading.Event | None = field(default=None, kw_only=True)


Reply = Text | ToolUses | HttpError


# ----------------------------------------------------------------------------------------------
# Conversations (one per request)
# ----------------------------------------------------------------------------------------------

# CLI 2.1.197 states it in the system prompt's "# Environment" section as
# " - Primary working directory: /abs/path"; older versions wrote "Working directory: ...".
_CWD_RES = [
    re.compile(rf"^\s*-?\s*{label}:\s*(/\S.*?)\s*$", re.M)
    for label in ("Primary working directory", "Working directory")
]
_REMINDER_RE = re.compile(r"^\s*<system-reminder>.*</system-reminder>\s*$", re.S)
_TASK_LINE_RE = re.compile(
    r"^[#>*\s]*Task\s+([A-Za-z0-9][\w.\-]*?)\s*:\s*(.*?)[*\s]*$", re.M | re.IGNORECASE
)


def _block_text(content: Any) -> str:
    """Text of a message/tool_result `content`: a string or a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(b.get("text", ""))
            for b in content
            if isinstance(b, dict) and b.get("type") == "text"
        ]
        return "\n".join(parts)
    return ""


@dataclass
class Conversation:
    """One request to `/v1/messages`, parsed."""

    system: str
    messages: list[JsonObj]
    tools: list[str]
    model: str
    cwd: str | None
    prompt: str
    turn: int
    last_tool_results: list[str]
    is_error_result: bool
    side_call: bool = False
    stream: bool = False
    session_id: str | None = None  # the CLI's X-Claude-Code-Session-Id header
    api_key: str = ""  # the x-api-key header: the worker's key, put there by its egress proxy
    authorization: str = ""  # the Authorization header (a token, or a Claude login's)
    seq: int = 0  # arrival number over all requests to /v1/messages (main and side calls)
    body: JsonObj = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, body: JsonObj, headers: dict[str, str] | None = None) -> Conversation:
        system_raw = body.get("system", "")
        system = _block_text(system_raw) if not isinstance(system_raw, str) else system_raw
        raw_messages = body.get("messages")
        messages: list[JsonObj] = (
            [m for m in raw_messages if isinstance(m, dict)]
            if isinstance(raw_messages, list)
            else []
        )
        raw_tools = body.get("tools")
        tools = (
            [str(t.get("name", "")) for t in raw_tools if isinstance(t, dict)]
            if isinstance(raw_tools, list)
            else []
        )
        cwd_match = next((m for m in (r.search(system) for r in _CWD_RES) if m), None)
        prompt = ""
        for message in messages:
            if message.get("role") == "user":
                prompt = _prompt_text(message.get("content"))
                break
        results: list[str] = []
        is_error = False
        for message in reversed(messages):
            role = message.get("role")
            if role == "system":  # the CLI interleaves role "system" messages; skip them
                continue
            if role == "user":
                for text, err in _tool_results(message):
                    results.append(text)
                    is_error = is_error or err
            break
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        return cls(
            system=system,
            messages=messages,
            tools=tools,
            model=str(body.get("model", "")),
            cwd=cwd_match.group(1) if cwd_match else None,
            prompt=prompt,
            turn=sum(1 for m in messages if m.get("role") == "assistant"),
            last_tool_results=results,
            is_error_result=is_error,
            stream=bool(body.get("stream", False)),
            session_id=lowered.get("x-claude-code-session-id"),
            api_key=lowered.get("x-api-key", ""),
            authorization=lowered.get("authorization", ""),
            body=body,
        )

    def all_tool_results(self) -> list[tuple[str, bool]]:
        """(text, is_error) of every tool_result in the conversation, in order."""
        return [r for m in self.messages if m.get("role") == "user" for r in _tool_results(m)]

    def task(self) -> tuple[str, str] | None:
        """(id, title) from the first `Task <id>: <title>` line of the prompt, if any."""
        return find_task_line(self.prompt)


def _prompt_text(content: Any) -> str:
    """User text of a message, without the harness's `<system-reminder>`-only blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            text = str(block.get("text", ""))
            if not _REMINDER_RE.match(text):
                parts.append(text)
    return "\n".join(parts)


def _tool_results(message: JsonObj) -> Iterator[tuple[str, bool]]:
    content = message.get("content")
    if not isinstance(content, list):
        return
    for block in content:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            yield _block_text(block.get("content", "")), bool(block.get("is_error", False))


def find_task_line(text: str) -> tuple[str, str] | None:
    match = _TASK_LINE_RE.search(text)
    if match is None:
        return None
    return match.group(1), match.group(2).strip()


Responder = Callable[[Conversation], Reply]


def _is_side_call(conversation: Conversation) -> bool:
    """Requests that are not an agent conversation. The main agent (and any subagent) sends its
    tool list and a system prompt stating the working directory; the CLI's helper calls (in
    2.1.197: session-title generation, sent unless nonessential traffic is disabled) send
    neither."""
    return not conversation.tools and conversation.cwd is None


def _side_call_reply(conversation: Conversation) -> Text:
    """A short answer; JSON matching the schema when the call asks for structured output."""
    output_config = conversation.body.get("output_config")
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    if isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict):
        return Text(json.dumps(_sample_for_schema(fmt["schema"])))
    return Text("Scripted session")


def _sample_for_schema(schema: JsonObj) -> Any:
    kind = schema.get("type")
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        return {k: _sample_for_schema(v) for k, v in props.items() if isinstance(v, dict)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "Scripted session"


# ----------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------


class _Aborted(Exception):
    """The server is stopping while a reply was held or delayed."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    model: ScriptedModel

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients drop connections (the CLI's HEAD preflight, killed processes): not our error.
        # Anything else is a bug in this module and must fail the test that hit it.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            with self.model._cond:
                self.model.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read what they need from `requests`."""

    def do_HEAD(self) -> None:
        self._drain()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._drain()
        self._send_json(200, {})

    def do_POST(self) -> None:
        raw = self._drain()
        model = self.server.model
        path = self.path.split("?", 1)[0].rstrip("/")
        model._note_path(self.command, self.path)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": _estimate_tokens(raw)})
            return
        if path != "/v1/messages":
            self._send_json(200, {})
            return
        conversation = Conversation.parse(body, dict(self.headers.items()))
        try:
            reply = model._answer(conversation)
            self._wait(reply)
        except _Aborted:
            self.close_connection = True
            return
        if isinstance(reply, HttpError):
            self._send_error(reply)
        elif conversation.stream:
            self._send_stream(conversation, reply, _estimate_tokens(raw))
        else:
            self._send_message(conversation, reply, _estimate_tokens(raw))

    # -- helpers ---------------------------------------------------------------------------

    def _drain(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _wait(self, reply: Reply) -> None:
        stopping = self.server.model._stopping
        if reply.hold is not None:
            while not reply.hold.wait(0.05):
                if stopping.is_set():
                    raise _Aborted
        if reply.delay_s > 0 and stopping.wait(reply.delay_s):
            raise _Aborted
        if stopping.is_set():
            raise _Aborted

    def _send_json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_scripted_{self.server.model._next_id()}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error(self, reply: HttpError) -> None:
        body = {"type": "error", "error": {"type": reply.error_type, "message": reply.message}}
        self._send_json(reply.status, body, reply.headers)

    def _send_message(
        self, conversation: Conversation, reply: Text | ToolUses, tokens: int
    ) -> None:
        content = self.server.model._content_blocks(reply)
        out_tokens = _estimate_tokens(json.dumps(content).encode())
        self._send_json(
            200,
            {
                "id": f"msg_scripted_{self.server.model._next_id()}",
                "type": "message",
                "role": "assistant",
                "model": conversation.model,
                "content": content,
                "stop_reason": "tool_use" if isinstance(reply, ToolUses) else "end_turn",
                "stop_sequence": None,
                "usage": _usage(tokens, out_tokens),
            },
        )

    def _send_stream(self, conversation: Conversation, reply: Text | ToolUses, tokens: int) -> None:
        content = self.server.model._content_blocks(reply)
        out_tokens = _estimate_tokens(json.dumps(content).encode())
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_scripted_{self.server.model._next_id()}")
        self.end_headers()
        message: JsonObj = {
            "id": f"msg_scripted_{self.server.model._next_id()}",
            "type": "message",
            "role": "assistant",
            "model": conversation.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(tokens, 1),
        }
        self._event("message_start", {"type": "message_start", "message": message})
        self._event("ping", {"type": "ping"})
        for index, block in enumerate(content):
            if block["type"] == "text":
                start: JsonObj = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": t} for t in _pieces(block["text"])]
            else:
                start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                deltas = [
                    {"type": "input_json_delta", "partial_json": p}
                    for p in _pieces(json.dumps(block["input"]))
                ]
            self._event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            for delta in deltas:
                self._event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            self._event("content_block_stop", {"type": "content_block_stop", "index": index})
        stop_reason = "tool_use" if isinstance(reply, ToolUses) else "end_turn"
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": out_tokens},
            },
        )
        self._event("message_stop", {"type": "message_stop"})
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _event(self, name: str, data: JsonObj) -> None:
        chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.flush()


def _estimate_tokens(raw: bytes) -> int:
    return max(1, len(raw) // 4)


def _usage(input_tokens: int, output_tokens: int) -> JsonObj:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _pieces(text: str, size: int = 64) -> list[str]:
    """Split streamed text into a few deltas, as the real API does; at least one piece."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class ScriptedModel:
    """The scripted Messages API server. Use as a context manager or call start()/stop()."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.responder: Responder = responder if responder is not None else PlanFollower()
        self.requests: list[Conversation] = []  # main conversations, in arrival order
        self.side_calls: list[Conversation] = []  # requests without tools (helper calls)
        self.paths: list[tuple[str, str]] = []  # (method, path) of every POST
        self.errors: list[BaseException] = []  # raised by responders or by this server
        self.base_url = ""
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ScriptedModel:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.model = self
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # releases held and delayed replies
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- for tests -------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment a `claude` subprocess needs to talk only to this server."""
        if not self.base_url:
            raise RuntimeError("ScriptedModel is not started")
        return {
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": "scripted-model",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
        }

    def snapshot(self) -> list[Conversation]:
        """A copy of `requests`, taken under the lock."""
        with self._cond:
            return list(self.requests)

    def wait_for(self, predicate: Callable[[Conversation], bool], timeout: float) -> Conversation:
        """Block until a recorded main request satisfies `predicate`; return the first one."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                for conversation in self.requests[checked:]:
                    if predicate(conversation):
                        return conversation
                checked = len(self.requests)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.is_set():
                    seen = "; ".join(
                        f"#{c.seq} turn={c.turn} prompt={c.prompt[:40]!r}" for c in self.requests
                    )
                    state = "stopped" if self._stopping.is_set() else f"{timeout:.1f}s passed"
                    raise TimeoutError(
                        f"no request matched within the deadline ({state}); "
                        f"{len(self.requests)} request(s) seen: [{seen}], "
                        f"{len(self.side_calls)} side call(s), "
                        f"errors: {self.errors!r}"
                    )
                self._cond.wait(remaining)

    # -- used by the handler ---------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self._ids)

    def _note_path(self, method: str, path: str) -> None:
        with self._cond:
            self.paths.append((method, path))

    def _answer(self, conversation: Conversation) -> Reply:
        conversation.side_call = _is_side_call(conversation)
        with self._cond:
            conversation.seq = self._next_id()
            (self.side_calls if conversation.side_call else self.requests).append(conversation)
            self._cond.notify_all()
        if conversation.side_call:
            return _side_call_reply(conversation)
        try:
            return self.responder(conversation)
        except Exception as exc:  # a broken script must be visible, not hang the CLI
            with self._cond:
                self.errors.append(exc)
            return HttpError(500, "api_error", f"scripted responder failed: {exc!r}")

    def _content_blocks(self, reply: Text | ToolUses) -> list[JsonObj]:
        blocks: list[JsonObj] = []
        if reply.text:
            blocks.append({"type": "text", "text": reply.text})
        if isinstance(reply, ToolUses):
            for call in reply.calls:
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": f"toolu_scripted_{self._next_id():06d}",
                        "name": call.name,
                        "input": call.input,
                    }
                )
        if not blocks:
            blocks.append({"type": "text", "text": ""})
        return blocks


# ----------------------------------------------------------------------------------------------
# Responders
# ----------------------------------------------------------------------------------------------


def script(*replies: Reply) -> Responder:
    """Answer reply i at turn i; after the last one, `Text("done")`."""

    def respond(conversation: Conversation) -> Reply:
        if conversation.turn < len(replies):
            return replies[conversation.turn]
        return Text("done")

    return respond


def by_task(mapping: dict[str, Responder], default: Responder) -> Responder:
    """Pick a responder by the id of the first `Task <id>: <title>` line of the prompt."""

    def respond(conversation: Conversation) -> Reply:
        task = conversation.task()
        chosen = mapping.get(task[0], default) if task is not None else default
        return chosen(conversation)

    return respond


_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_FILES_RE = re.compile(r"^\s*\*\*Files?:?\*\*:?\s*(.*)$", re.IGNORECASE)
_COMMIT_RE = re.compile(r"^\s*\*\*Commit(?: message)?:?\*\*:?\s*(.+?)\s*$", re.IGNORECASE | re.M)
_ITEM_RE = re.compile(r"^\s*[-*+]\s+(.*)$")
_LABEL_RE = re.compile(r"^(?:\*\*)?[A-Za-z][A-Za-z ]*?:(?:\*\*)?\s+(.*)$")
_CHANGE_LABEL_RE = re.compile(r"^\s*(?:\*\*)?(?:modify|update|edit)\b", re.I)
_LINES_SUFFIX_RE = re.compile(r":\d+(?:-\d+)?$")
# "Create `path`:" on a line of its own, its content in the fenced block that follows.
_CREATE_RE = re.compile(r"^\s*(?:create|modify|update|edit|add|write)\s+`([^`]+)`\s*:\s*$", re.I)


@dataclass
class TaskSpec:
    """What PlanFollower reads from a prompt."""

    id: str
    title: str
    files: list[str]
    code_blocks: list[str]
    commit_message: str
    # Files the plan says to change (`Modify:`, `Update:`, `Edit:`): they exist before the task.
    modified: frozenset[str] = frozenset()


def _task_region(prompt: str) -> str:
    lines = prompt.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "<task>")
    except StopIteration:
        return prompt
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip() == "</task>"), len(lines)
    )
    return "\n".join(lines[start + 1 : end])


def _clean_path(text: str) -> str | None:
    text = text.strip()
    label = _LABEL_RE.match(text)
    if label is not None and "`" not in text[: label.start(1)]:
        text = label.group(1).strip()
    tick = re.search(r"`([^`]+)`", text)
    path = tick.group(1).strip() if tick else (text.split() or [""])[0]
    path = _LINES_SUFFIX_RE.sub("", path.strip("*\"'"))
    return path or None


def _split_code(lines: list[str]) -> tuple[list[str], list[str]]:
    """(code blocks, the lines outside any block)."""
    blocks: list[str] = []
    outside: list[str] = []
    fence: str | None = None
    body: list[str] = []
    for line in lines:
        if fence is None:
            match = _FENCE_RE.match(line)
            if match is not None and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                fence, body = match.group(1), []
            else:
                outside.append(line)
        else:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) == {fence[0]}:
                blocks.append("".join(f"{b}\n" for b in body))
                fence = None
            else:
                body.append(line)
    if fence is not None:  # an unclosed block runs to the end
        blocks.append("".join(f"{b}\n" for b in body))
    return blocks, outside


def _created_files(lines: list[str]) -> list[tuple[str, str]]:
    """(path, content) of each `Create `path`:` line whose next non-blank line opens a code
    block: that block is the file's content."""
    created: list[tuple[str, str]] = []
    pending: str | None = None
    number = 0
    while number < len(lines):
        line = lines[number]
        fence = _FENCE_RE.match(line)
        if fence is not None and not (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            body, number = [], number + 1
            marker = fence.group(1)
            while number < len(lines):
                stripped = lines[number].strip()
                if stripped.startswith(marker) and set(stripped) == {marker[0]}:
                    break
                body.append(lines[number])
                number += 1
            if pending is not None:
                created.append((pending, "".join(f"{b}\n" for b in body)))
            pending = None
        elif line.strip():
            match = _CREATE_RE.match(line)
            pending = _LINES_SUFFIX_RE.sub("", match.group(1).strip()) if match else None
        number += 1
    return created


def parse_task(prompt: str) -> TaskSpec:
    """Read task id/title, files, code blocks and commit message from an agent prompt. Files
    given as `Create `path`:` + a code block come first, each with its own block; then the
    `**Files:**` list's, code block i for file i."""
    task = find_task_line(prompt)
    task_id, title = task if task is not None else ("unknown", "Untitled task")
    region = _task_region(prompt)
    blocks, outside = _split_code(region.splitlines())
    files: list[str] = []
    modified: set[str] = set()
    in_list = False
    for line in outside:
        header = _FILES_RE.match(line)
        if header is not None:
            in_list = True
            inline = header.group(1).strip()
            if inline:
                for part in inline.split(","):
                    path = _clean_path(part)
                    if path:
                        files.append(path)
                in_list = False
            continue
        if in_list:
            item = _ITEM_RE.match(line)
            if item is not None:
                path = _clean_path(item.group(1))
                if path:
                    files.append(path)
                    if _CHANGE_LABEL_RE.match(item.group(1)):
                        modified.add(path)
            elif line.strip():
                in_list = False
    commit = _COMMIT_RE.search("\n".join(outside))
    message = commit.group(1).strip().strip("`").strip() if commit else ""
    if len(message) >= 2 and message[0] == message[-1] and message[0] in "\"'":
        message = message[1:-1]
    created = _created_files(region.splitlines())
    if created:
        paths = [path for path, _ in created]
        files = paths + [path for path in files if path not in paths]
        blocks = [content for _, content in created]
    return TaskSpec(
        id=task_id,
        title=title,
        files=list(dict.fromkeys(files)),
        code_blocks=blocks,
        commit_message=message or f"Task {task_id}: {title}",
        modified=frozenset(modified),
    )


STRUCTURED_OUTPUT = "StructuredOutput"  # the tool the CLI adds when run with --json-schema
_VERIFY_RE = re.compile(r"^\s*\*\*(?:Verification|Verify):?\*\*:?\s*(.*)$", re.IGNORECASE)
_STEP_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?(.*\S)\s*$")


def verification_steps(prompt: str) -> list[str]:
    """The `**Verification:**` steps of the prompt's task region (a list, or one inline step)."""
    _, outside = _split_code(_task_region(prompt).splitlines())
    steps: list[str] = []
    in_list = False
    for line in outside:
        header = _VERIFY_RE.match(line)
        if header is not None:
            inline = header.group(1).strip()
            if inline:
                steps.append(inline)
            in_list = not inline
            continue
        if in_list:
            item = _STEP_RE.match(line)
            if item is not None:
                steps.append(item.group(1))
            elif line.strip():
                in_list = False
    return steps


def complete_verdict(verdict: JsonObj, prompt: str) -> JsonObj:
    """`verdict` with what the CLI's schema check requires filled in: an approval by default,
    no findings, and every verification step of the task (met when approving)."""
    full = copy.deepcopy(verdict)
    full.setdefault("verdict", "approve")
    approve = full["verdict"] == "approve"
    full.setdefault("summary", "Looks good" if approve else "Changes are needed")
    full.setdefault("findings", [])
    if "verification" not in full:
        full["verification"] = [{"step": s, "met": approve} for s in verification_steps(prompt)]
    return full


class Reviewer:
    """A reviewer for conversations run with --json-schema: it calls StructuredOutput with a
    verdict, then ends with a short Text.

    Each review session (the CLI's session id) gets its own verdict, fixed for the session:
    the next of `verdicts` (the last one repeats), or what `verdicts(conversation)` returns;
    by default an approval. Missing keys are completed by `complete_verdict`.
    """

    MAX_ATTEMPTS = 3  # StructuredOutput calls the CLI rejected before giving up

    def __init__(
        self, verdicts: list[JsonObj] | Callable[[Conversation], JsonObj] | None = None
    ) -> None:
        self._verdicts = verdicts
        self._lock = threading.Lock()  # the server answers requests on several threads
        self._sessions: dict[str, JsonObj] = {}
        self.given: list[JsonObj] = []  # every session's verdict, in the order first asked

    def __call__(self, conversation: Conversation) -> Reply:
        calls = [i for name, i in _tool_calls_made(conversation) if name == STRUCTURED_OUTPUT]
        if calls and not conversation.is_error_result:
            return Text(f"Review finished: {calls[-1].get('verdict', '?')}.")
        if len(calls) >= self.MAX_ATTEMPTS:
            return Text("The verdict was rejected by the schema check; giving up.")
        verdict = self.verdict_for(conversation)
        return ToolUses([ToolCall(STRUCTURED_OUTPUT, verdict)], text="Reviewed the change.")

    def verdict_for(self, conversation: Conversation) -> JsonObj:
        key = conversation.session_id or conversation.prompt
        with self._lock:
            if key not in self._sessions:
                if callable(self._verdicts):
                    raw = self._verdicts(conversation)
                elif self._verdicts:
                    raw = self._verdicts[min(len(self.given), len(self._verdicts) - 1)]
                else:
                    raw = {}
                verdict = complete_verdict(raw, conversation.prompt)
                self._sessions[key] = verdict
                self.given.append(verdict)
            return copy.deepcopy(self._sessions[key])


_COMMENT_PREFIX = {
    ".py": "# ",
    ".sh": "# ",
    ".toml": "# ",
    ".yaml": "# ",
    ".yml": "# ",
    ".rb": "# ",
    ".js": "// ",
    ".ts": "// ",
    ".go": "// ",
    ".rs": "// ",
    ".java": "// ",
    ".c": "// ",
    ".h": "// ",
    ".css": "/* ",
}


def _generated_content(path: str, spec: TaskSpec) -> str:
    note = f"Created by Task {spec.id}: {spec.title}"
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        return json.dumps({"created_by": f"Task {spec.id}"}) + "\n"
    prefix = _COMMENT_PREFIX.get(ext)
    if prefix is None:
        return note + "\n"
    return f"{prefix}{note}{' */' if prefix == '/* ' else ''}\n"


class PlanFollower:
    """A small, sensible agent: write the task's files, commit, summarise.

    Reads the `<task>`...`</task>` region of the prompt (or the whole prompt) and, by what it
    has already done in the conversation:
    1. Write code block i to file i of the task's `**Files:**` list (turn 0). Files that already
       exist on disk are Read first (one extra turn), since the CLI refuses to overwrite a file
       it has not read.
    2. Commit with one Bash call: `git add -A && git commit -q -m <message>` (turn 1).
    3. Answer with a summary, mentioning any tool_result that came back with is_error.

    A conversation run with --json-schema (a review) goes to `reviewer`. A fix or conflict
    round (the latest prompt has `<findings>`, in a fresh or a resumed session) rewrites the
    task's files the findings name from their code blocks (Read first), commits (which also
    concludes a merge in progress) and summarises.
    """

    def __init__(self, reviewer: Reviewer | None = None) -> None:
        self.reviewer = reviewer if reviewer is not None else Reviewer()

    def __call__(self, conversation: Conversation) -> Reply:
        if STRUCTURED_OUTPUT in conversation.tools:
            return self.reviewer(conversation)
        start, latest = _latest_prompt(conversation)
        findings = _tag_region(latest, "findings")
        if findings is not None:
            return self._fix(conversation, latest, findings, start)
        spec = parse_task(conversation.prompt)
        writes = self.writes(spec, conversation.cwd)
        used = [name for name, _ in _tool_calls_made(conversation)]
        if "Write" not in used:
            existing = [path for path, _ in writes if _exists(path, spec, conversation.cwd)]
            if existing and "Read" not in used:
                calls = [ToolCall("Read", {"file_path": path}) for path in existing]
                return ToolUses(calls, text=f"Reading the files Task {spec.id} changes.")
            calls = [ToolCall("Write", {"file_path": p, "content": c}) for p, c in writes]
            return ToolUses(calls, text=f"Working on Task {spec.id}: {spec.title}.")
        if "Bash" not in used:
            command = f"git add -A && git commit -q -m {shlex.quote(spec.commit_message)}"
            call = ToolCall("Bash", {"command": command, "description": "Commit the task"})
            return ToolUses([call])
        names = ", ".join(os.path.relpath(p, conversation.cwd or "/") for p, _ in writes)
        summary = f"Task {spec.id}: {spec.title}: wrote {names} and committed."
        errors = [text for text, err in conversation.all_tool_results() if err]
        if errors:
            summary += f" A tool reported an error: {errors[0].strip()[:300]}"
        return Text(summary)

    def _fix(self, conversation: Conversation, prompt: str, findings: str, start: int) -> Reply:
        spec = parse_task(prompt)
        named = _named_paths(findings)
        # Only files with a code block of their own: rewriting one with generated filler
        # would not fix anything.
        targets = [
            write
            for index, write in enumerate(self.writes(spec, conversation.cwd) if spec.files else [])
            if index < len(spec.code_blocks) and _normal_path(spec.files[index]) in named
        ]
        used = [name for name, _ in _tool_calls_made(conversation, since=start)]
        if targets and "Write" not in used:
            # Always Read in this round: after a merge or in a resumed session the CLI's record
            # of an earlier Read is stale, and Write refuses a file changed since it was read.
            # The task wrote them in an earlier round: there, even where this machine cannot
            # look (the sandbox's fixed path).
            on_host = not _elsewhere(conversation.cwd)
            existing = [path for path, _ in targets if not on_host or os.path.isfile(path)]
            if existing and "Read" not in used:
                calls = [ToolCall("Read", {"file_path": path}) for path in existing]
                return ToolUses(
                    calls, text=f"Reading the files the findings of Task {spec.id} name."
                )
            calls = [ToolCall("Write", {"file_path": p, "content": c}) for p, c in targets]
            return ToolUses(calls, text=f"Fixing Task {spec.id}: {spec.title}.")
        conflict = "[conflict]" in findings
        if "Bash" not in used:
            what = "resolve merge conflicts" if conflict else "address review findings"
            message = f"Task {spec.id}: {what}"
            command = f"git add -A && git commit -q -m {shlex.quote(message)}"
            return ToolUses([ToolCall("Bash", {"command": command, "description": "Commit"})])
        names = ", ".join(os.path.relpath(p, conversation.cwd or "/") for p, _ in targets)
        done = f"rewrote {names}" if targets else "found no file of the task to rewrite"
        summary = f"Task {spec.id}: {spec.title}: {done} and committed."
        errors = [
            text
            for message in conversation.messages[start:]
            if message.get("role") == "user"
            for text, err in _tool_results(message)
            if err
        ]
        if errors:
            summary += f" A tool reported an error: {errors[0].strip()[:300]}"
        return Text(summary)

    @staticmethod
    def writes(spec: TaskSpec, cwd: str | None) -> list[tuple[str, str]]:
        """(absolute path, content) of each file the task writes."""
        base = cwd or os.getcwd()
        if not spec.files:
            safe_id = re.sub(r"[^\w.\-]", "_", spec.id)
            return [(os.path.join(base, f"TASK-{safe_id}.md"), f"# Task {spec.id}: {spec.title}\n")]
        result = []
        for index, path in enumerate(spec.files):
            content = (
                spec.code_blocks[index]
                if index < len(spec.code_blocks)
                else _generated_content(path, spec)
            )
            result.append((os.path.normpath(os.path.join(base, path)), content))
        return result


def _elsewhere(cwd: str | None) -> bool:
    """Is the CLI's working directory not on this machine as it names it (the sandbox's fixed
    path, /workspace/<name>)? Then what is there cannot be looked at from here."""
    return cwd is not None and not os.path.isdir(cwd)


def _exists(path: str, spec: TaskSpec, cwd: str | None) -> bool:
    """Does the task's file exist before it writes it: looked at where it can be, else what
    the plan says (a file to modify exists)."""
    if cwd is None or not _elsewhere(cwd):
        return os.path.isfile(path)
    relative = os.path.relpath(path, cwd)
    return any(os.path.normpath(name) == relative for name in spec.modified)


class SlowFollower:
    """The plan follower, every reply (agent and reviewer turns) taking `delay_s`: runs that
    can overlap do."""

    def __init__(self, delay_s: float) -> None:
        self._follower = PlanFollower()
        self._delay_s = delay_s

    def __call__(self, conversation: Conversation) -> Reply:
        reply = self._follower(conversation)
        reply.delay_s = self._delay_s
        return reply


class HoldFirst:
    """The plan follower, holding its first answer (the first to a conversation `when` accepts)
    until `release` is set: the session stays running (an agent waits on the model) while a
    test does something else."""

    def __init__(self, when: Callable[[Conversation], bool] = lambda _: True) -> None:
        self.release = threading.Event()
        self._follower = PlanFollower()
        self._when = when
        self._held = False

    def __call__(self, conversation: Conversation) -> Reply:
        reply = self._follower(conversation)
        if not self._held and self._when(conversation):
            self._held = True
            reply.hold = self.release
        return reply


def _tool_calls_made(conversation: Conversation, since: int = 0) -> list[tuple[str, JsonObj]]:
    """(name, input) of every tool_use in the assistant messages from index `since` on."""
    calls: list[tuple[str, JsonObj]] = []
    for message in conversation.messages[since:]:
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                tool_input = block.get("input")
                calls.append(
                    (str(block.get("name", "")), tool_input if isinstance(tool_input, dict) else {})
                )
    return calls


def _latest_prompt(conversation: Conversation) -> tuple[int, str]:
    """(message index, text) of the last user message that states a task. A resumed session
    brings its earlier rounds along; the new round's prompt is the last such message."""
    for index in range(len(conversation.messages) - 1, -1, -1):
        message = conversation.messages[index]
        if message.get("role") == "user":
            text = _prompt_text(message.get("content"))
            if find_task_line(text) is not None:
                return index, text
    return 0, conversation.prompt


def _tag_region(text: str, tag: str) -> str | None:
    """The lines between `<tag>` and `</tag>` lines, or None without an opening line."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == f"<{tag}>")
    except StopIteration:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() == f"</{tag}>"), None)
    return "\n".join(lines[start + 1 : end])


_PATH_TOKEN_RE = re.compile(r"[\w./-]+")


def _normal_path(path: str) -> str:
    path = path.strip()
    while path.startswith("./"):
        path = path[2:]
    return os.path.normpath(path) if path else ""


def _named_paths(text: str) -> set[str]:
    """Every path-like word of `text` (`pkg/a.py:3` and `./pkg/a.py.` give `pkg/a.py`)."""
    return {_normal_path(token.rstrip(".")) for token in _PATH_TOKEN_RE.findall(text)} - {""}
