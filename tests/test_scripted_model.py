"""The scripted model server, driven by the real Claude Code CLI in throwaway git repos."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autopilot_testing import (
    Conversation,
    HttpError,
    PlanFollower,
    ScriptedModel,
    Text,
    ToolCall,
    ToolUses,
    by_task,
    parse_task,
    script,
)
from tests.harness import claude_bin

CLAUDE_BIN = claude_bin()  # the pinned CLI; missing means set-up is broken: fail, never skip
CLAUDE_FLAGS = [
    "-p",
    "--output-format=stream-json",
    "--verbose",
    "--permission-mode=acceptEdits",
    "--allowedTools=Read,Write,Edit,Bash",
    "--max-turns=10",
]
RUN_TIMEOUT_S = 60.0

# ----------------------------------------------------------------------------------------------
# Harness
# ----------------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    repo: Path
    env: dict[str, str]  # isolated base environment, without the model's variables

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.repo, env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout


@dataclass
class Run:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        results = [e for e in self.events if e.get("type") == "result"]
        assert len(results) == 1, f"expected one result event, got {self.events!r} {self.stderr}"
        return results[0]


def _clean_environ() -> dict[str, str]:
    """os.environ without anything that could point claude at a real account or git elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "CLAUDE", "GIT_"))
        and k not in ("API_TIMEOUT_MS", "DISABLE_AUTOUPDATER")
    }


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    home, config, repo = tmp_path / "home", tmp_path / "claude-config", tmp_path / "repo"
    for directory in (home, config, repo):
        directory.mkdir()
    env = _clean_environ()
    env.update(HOME=str(home), CLAUDE_CONFIG_DIR=str(config), GIT_CONFIG_NOSYSTEM="1")
    box = Sandbox(repo=repo, env=env)
    box.git("init", "-q")
    box.git("config", "user.name", "Test User")
    box.git("config", "user.email", "test@example.invalid")
    box.git("config", "commit.gpgsign", "false")
    (repo / "README.md").write_text("# Sandbox\n")
    box.git("add", "README.md")
    box.git("commit", "-q", "-m", "Initial commit")
    return box


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as server:
        yield server
    assert server.errors == [], f"responder raised: {server.errors!r}"


def start_claude(
    model: ScriptedModel, box: Sandbox, prompt: str, **env: str
) -> subprocess.Popen[str]:
    """Start claude with the prompt on stdin (variadic flags cannot swallow it there)."""
    proc_env = {**box.env, **model.env(), **env}
    with tempfile.TemporaryFile("w+") as stdin:
        stdin.write(prompt)
        stdin.seek(0)
        return subprocess.Popen(
            [str(CLAUDE_BIN), *CLAUDE_FLAGS],
            cwd=box.repo,
            env=proc_env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def finish(proc: subprocess.Popen[str]) -> Run:
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    return Run(proc.returncode, events, stderr)


def run_claude(model: ScriptedModel, box: Sandbox, prompt: str, **env: str) -> Run:
    return finish(start_claude(model, box, prompt, **env))


GREETING_PROMPT = """You are working on a plan.

Task 3.1: Greeting

<task>
### Task 3.1: Greeting

Add a greeting helper.

**Files:**
- Create: `pkg/greet.py`

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```
</task>
"""


# ----------------------------------------------------------------------------------------------
# With the real CLI
# ----------------------------------------------------------------------------------------------


def test_plan_follower_writes_and_commits(model: ScriptedModel, sandbox: Sandbox) -> None:
    run = run_claude(model, sandbox, GREETING_PROMPT)

    result = run.result
    assert run.returncode == 0, run.stderr
    assert result["is_error"] is False
    assert result["num_turns"] >= 3
    assert "Task 3.1" in result["result"]
    assert result["total_cost_usd"] > 0  # plausible usage numbers reached the cost report
    written = sandbox.repo / "pkg" / "greet.py"
    assert written.read_text() == 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
    assert sandbox.git("log", "-1", "--format=%s").strip() == "Task 3.1: Greeting"
    assert sandbox.git("status", "--porcelain") == ""

    conversations = model.snapshot()
    assert [c.turn for c in conversations] == [0, 1, 2]
    assert all(c.cwd == str(sandbox.repo) for c in conversations)
    assert conversations[0].prompt.startswith("You are working on a plan.")
    assert {"Bash", "Write", "Edit", "Read"} <= set(conversations[0].tools)
    assert any("pkg/greet.py" in text for text in conversations[1].last_tool_results)
    assert not conversations[1].is_error_result
    assert len(conversations[2].last_tool_results) == 1  # the commit's Bash output
    assert len({c.session_id for c in conversations}) == 1
    assert model.side_calls == []


def test_plan_follower_reads_existing_file_before_rewriting_it(
    model: ScriptedModel, sandbox: Sandbox
) -> None:
    prompt = (
        "Task 4: Readme\n<task>\n**Files:**\n- Modify: `README.md:1-3`\n\n"
        "```markdown\n# Sandbox\n\nNow documented.\n```\n\n**Commit:** `docs: it's documented`\n"
        "</task>\n"
    )
    run = run_claude(model, sandbox, prompt)

    assert run.result["is_error"] is False, run.events
    assert (sandbox.repo / "README.md").read_text() == "# Sandbox\n\nNow documented.\n"
    assert sandbox.git("log", "-1", "--format=%s").strip() == "docs: it's documented"
    assert not any(c.is_error_result for c in model.snapshot())


def test_script_runs_bash_then_answers(model: ScriptedModel, sandbox: Sandbox) -> None:
    model.responder = script(
        ToolUses([ToolCall("Bash", {"command": "echo hi > out.txt"})]), Text("ok")
    )

    run = run_claude(model, sandbox, "Say hi into a file.")

    assert run.returncode == 0, run.stderr
    assert run.result["is_error"] is False
    assert run.result["result"] == "ok"
    assert (sandbox.repo / "out.txt").read_text() == "hi\n"
    tool_uses = [
        block
        for event in run.events
        if event.get("type") == "assistant"
        for block in event["message"]["content"]
        if block.get("type") == "tool_use"
    ]
    assert [b["name"] for b in tool_uses] == ["Bash"]


def test_authentication_error_ends_in_error_result(model: ScriptedModel, sandbox: Sandbox) -> None:
    model.responder = script(HttpError(401, "authentication_error", "invalid x-api-key"))

    run = run_claude(model, sandbox, "Anything.")

    assert run.returncode != 0
    assert run.result["is_error"] is True
    assert run.result.get("api_error_status") == 401
    kinds = [e.get("error") for e in run.events if e.get("type") == "assistant"]
    assert "authentication_failed" in kinds


def test_overloaded_is_not_retried_with_max_retries_zero(
    model: ScriptedModel, sandbox: Sandbox
) -> None:
    model.responder = script(HttpError(529, "overloaded_error", "Overloaded"))

    run = run_claude(model, sandbox, "Anything.", CLAUDE_CODE_MAX_RETRIES="0")

    assert run.returncode != 0
    assert run.result["is_error"] is True
    assert run.result.get("api_error_status") == 529
    assert len(model.snapshot()) == 1  # the CLI did not retry


def test_held_reply_freezes_the_agent_until_released(
    model: ScriptedModel, sandbox: Sandbox
) -> None:
    release = threading.Event()
    model.responder = script(Text("released", hold=release))

    proc = start_claude(model, sandbox, "Wait for me.")
    try:
        held = model.wait_for(lambda c: c.turn == 0, timeout=RUN_TIMEOUT_S)
        assert held.prompt == "Wait for me."
        assert proc.poll() is None, "claude finished while its model reply was held"
    finally:
        release.set()
    run = finish(proc)

    assert run.returncode == 0, run.stderr
    assert run.result["is_error"] is False
    assert run.result["result"] == "released"


def test_by_task_routes_each_task_to_its_script(tmp_path: Path, model: ScriptedModel) -> None:
    model.responder = by_task(
        {
            "1.2": script(ToolUses([ToolCall("Bash", {"command": "echo one > one.txt"})])),
            "7a": script(Text("seven")),
        },
        default=script(Text("default")),
    )
    boxes = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        repo = tmp_path / name / "repo"
        repo.mkdir()
        env = {
            **_clean_environ(),
            "HOME": str(tmp_path / name),
            "CLAUDE_CONFIG_DIR": str(tmp_path / name),
        }
        boxes.append(Sandbox(repo=repo, env=env))
    prompts = ["Task 1.2: Add farewell\nbody", "## Task 7a: Seven\nbody", "No task here."]

    procs = [start_claude(model, box, p) for box, p in zip(boxes, prompts, strict=True)]
    runs = [finish(proc) for proc in procs]  # all three ran against one server concurrently

    assert [r.result["result"] for r in runs] == ["done", "seven", "default"]
    assert all(r.result["is_error"] is False for r in runs)
    assert (boxes[0].repo / "one.txt").read_text() == "one\n"
    assert not (boxes[1].repo / "one.txt").exists()
    assert {c.task() for c in model.snapshot()} == {("1.2", "Add farewell"), ("7a", "Seven"), None}


# ----------------------------------------------------------------------------------------------
# The server without the CLI
# ----------------------------------------------------------------------------------------------


def _post(model: ScriptedModel, path: str, body: dict[str, Any]) -> tuple[int, str, str]:
    host_port = model.base_url.removeprefix("http://")
    conn = http.client.HTTPConnection(host_port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read().decode()
    finally:
        conn.close()


def _agent_body(stream: bool, prompt: str = "Task 9: Nine") -> dict[str, Any]:
    return {
        "model": "claude-test",
        "stream": stream,
        "system": [{"type": "text", "text": " - Primary working directory: /tmp/somewhere"}],
        "tools": [{"name": "Bash"}, {"name": "Write"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>\n"},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
    }


def _sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_stream_has_the_real_api_event_sequence(model: ScriptedModel) -> None:
    model.responder = script(
        ToolUses([ToolCall("Bash", {"command": "true"}), ToolCall("Bash", {"command": "x"})], "hi")
    )

    status, ctype, text = _post(model, "/v1/messages?beta=true", _agent_body(stream=True))

    assert (status, ctype.split(";")[0]) == (200, "text/event-stream")
    events = _sse_events(text)
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == 3 == names.count("content_block_stop")
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["model"] == "claude-test"
    assert start["usage"]["input_tokens"] > 0
    blocks = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b["type"] for b in blocks] == ["text", "tool_use", "tool_use"]
    assert blocks[1]["id"] != blocks[2]["id"]
    partial = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["index"] == 1
    )
    assert json.loads(partial) == {"command": "true"}
    delta = next(d for n, d in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0

    conversation = model.snapshot()[0]
    assert conversation.prompt == "Task 9: Nine"  # the harness reminder is not prompt text
    assert conversation.cwd == "/tmp/somewhere"
    assert conversation.task() == ("9", "Nine")


def test_plain_json_answers_errors_and_other_paths(model: ScriptedModel) -> None:
    model.responder = script(
        Text("plain"), HttpError(429, "rate_limit_error", "slow", {"retry-after": "3"})
    )

    status, _, text = _post(model, "/v1/messages", _agent_body(stream=False))
    assert status == 200
    message = json.loads(text)
    assert message["content"] == [{"type": "text", "text": "plain"}]
    assert message["stop_reason"] == "end_turn" and message["usage"]["output_tokens"] > 0

    body = _agent_body(stream=False)
    body["messages"] += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True}
            ],
        },
    ]
    status, _, text = _post(model, "/v1/messages", body)
    assert status == 429
    assert json.loads(text) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow"},
    }
    second = model.snapshot()[1]
    assert (second.turn, second.last_tool_results, second.is_error_result) == (1, ["boom"], True)

    status, _, text = _post(model, "/v1/messages/count_tokens?beta=true", _agent_body(False))
    assert status == 200 and json.loads(text)["input_tokens"] > 0
    assert _post(model, "/api/anything", {})[:3:2] == (200, "{}")
    assert len(model.snapshot()) == 2


def test_side_calls_get_schema_answers_and_stay_out_of_requests(model: ScriptedModel) -> None:
    title_call = {  # the shape of 2.1.197's session-title request
        "model": "claude-test",
        "stream": False,
        "system": [{"type": "text", "text": "Generate a concise, sentence-case title"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<session>x</session>"}]}
        ],
        "output_config": {
            "format": {
                "type": "json_schema",
                "schema": {"type": "object", "properties": {"title": {"type": "string"}}},
            }
        },
    }

    status, _, text = _post(model, "/v1/messages?beta=true", title_call)

    assert status == 200
    answer = json.loads(json.loads(text)["content"][0]["text"])
    assert isinstance(answer["title"], str) and answer["title"]
    assert model.snapshot() == []
    assert len(model.side_calls) == 1 and model.side_calls[0].side_call


def test_wait_for_times_out_with_a_useful_message(model: ScriptedModel) -> None:
    with pytest.raises(TimeoutError, match="0 request"):
        model.wait_for(lambda c: True, timeout=0.2)


def test_stop_does_not_hang_on_a_held_reply() -> None:
    never = threading.Event()
    server = ScriptedModel(script(Text("never", hold=never))).start()
    outcome: list[object] = []

    def client() -> None:
        try:
            outcome.append(_post(server, "/v1/messages", _agent_body(stream=True)))
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    server.wait_for(lambda c: c.turn == 0, timeout=10)
    started = time.monotonic()
    server.stop()
    thread.join(timeout=10)

    assert time.monotonic() - started < 3
    assert not thread.is_alive()
    assert outcome and not isinstance(outcome[0], tuple)  # the held request got no answer


# ----------------------------------------------------------------------------------------------
# Reading plans
# ----------------------------------------------------------------------------------------------


def _conversation(prompt: str, cwd: str = "/work/repo") -> Conversation:
    return Conversation.parse(
        {
            "model": "m",
            "system": f" - Primary working directory: {cwd}",
            "tools": [{"name": "Write"}],
            "messages": [{"role": "user", "content": prompt}],
        }
    )


def test_parse_task_reads_files_blocks_and_commit() -> None:
    prompt = (
        "Intro mentions nothing.\nTask 2.3b: Many files\n<task>\n**Files:**\n"
        "- Create: `src/a.py:12-30`\n- Modify: src/b.py (small change)\n- `docs/c.md`\n"
        "- **Test:** `tests/test_a.py`\n\nText after.\n- not/a/file.py\n\n"
        "```python\nA = 1\n```\n\n~~~\nB = 2\n~~~\n\n```\nextra\n```\n"
        "**Commit:** \"feat: many 'files'\"\n</task>\n"
    )

    spec = parse_task(prompt)

    assert (spec.id, spec.title) == ("2.3b", "Many files")
    assert spec.files == ["src/a.py", "src/b.py", "docs/c.md", "tests/test_a.py"]
    assert spec.code_blocks == ["A = 1\n", "B = 2\n", "extra\n"]
    assert spec.commit_message == "feat: many 'files'"
    writes = dict(PlanFollower.writes(spec, "/r"))
    assert writes["/r/src/a.py"] == "A = 1\n"
    assert writes["/r/src/b.py"] == "B = 2\n"
    assert writes["/r/docs/c.md"] == "extra\n"
    assert writes["/r/tests/test_a.py"] == "# Created by Task 2.3b: Many files\n"
    # In the sandbox's fixed path, not on this machine: the plan says which files exist.
    assert spec.modified == {"src/b.py"}


def test_plan_follower_reads_a_file_to_modify_where_it_cannot_look(tmp_path: Path) -> None:
    prompt = (
        "Task 1.1: Change\n<task>\n**Files:**\n- Modify: `calc/core.py`\n- Create: `new.py`\n\n"
        "```python\nA = 1\n```\n\n```python\nB = 2\n```\n</task>\n"
    )
    inside = "/workspace/never-on-this-machine"
    reply = PlanFollower()(
        Conversation.parse(
            {
                "messages": [{"role": "user", "content": prompt}],
                "system": f" - Primary working directory: {inside}\n",
                "tools": [],
            }
        )
    )
    assert isinstance(reply, ToolUses)
    assert [(c.name, c.input) for c in reply.calls] == [
        ("Read", {"file_path": f"{inside}/calc/core.py"})
    ]


def test_parse_task_create_path_and_its_code_block() -> None:
    prompt = (
        "Task 3.1: Created files\n<task>\n**Files:**\n- Modify: `README.md`\n\n"
        "Run this first:\n```bash\npytest -q\n```\n\n"
        "Create `src/a.py`:\n\n```python\nA = 1\n```\n\n**Expected:** green\n\n"
        "Create `tests/test_a.py`:\n````python\nfrom a import A\n```\n````\n</task>\n"
    )
    spec = parse_task(prompt)
    assert spec.files == ["src/a.py", "tests/test_a.py", "README.md"]
    writes = dict(PlanFollower.writes(spec, "/r"))
    assert writes["/r/src/a.py"] == "A = 1\n"
    assert writes["/r/tests/test_a.py"] == "from a import A\n```\n"
    assert writes["/r/README.md"] == "Created by Task 3.1: Created files\n"  # no block of its own


def test_parse_task_inline_file_and_fallbacks() -> None:
    inline = parse_task("Task 5: Inline\n**File:** `lib/x.js`\n")
    assert inline.files == ["lib/x.js"] and inline.code_blocks == []
    assert inline.commit_message == "Task 5: Inline"
    assert PlanFollower.writes(inline, "/r") == [("/r/lib/x.js", "// Created by Task 5: Inline\n")]

    bare = parse_task("### Task 6.1: No files at all\nJust think.\n")
    assert PlanFollower.writes(bare, "/r") == [("/r/TASK-6.1.md", "# Task 6.1: No files at all\n")]


def test_plan_follower_turns_and_error_reporting(tmp_path: Path) -> None:
    prompt = "Task 8: Quote\n<task>\n**Files:**\n- new.txt\n**Commit:** it's done\n</task>"
    follower = PlanFollower()
    conversation = _conversation(prompt, cwd=str(tmp_path))

    first = follower(conversation)
    assert isinstance(first, ToolUses)
    assert first.calls == [
        ToolCall(
            "Write",
            {"file_path": str(tmp_path / "new.txt"), "content": "Created by Task 8: Quote\n"},
        )
    ]

    conversation.messages += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "a", "name": "Write", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "a", "content": "no", "is_error": True}
            ],
        },
    ]
    second = follower(conversation)
    assert isinstance(second, ToolUses)
    command = second.calls[0].input["command"]
    assert second.calls[0].name == "Bash"
    done = subprocess.run(
        ["bash", "-c", command.replace("git add -A && git commit -q -m", "printf %s")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "it's done"

    conversation.messages += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "b", "name": "Bash", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "b", "content": "ok"}]},
    ]
    final = follower(conversation)
    assert isinstance(final, Text)
    assert "new.txt" in final.text and "error" in final.text and "no" in final.text
