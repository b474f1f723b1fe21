"""The agent reviewer and the fix/conflict prompts: the real Claude Code CLI against the scripted
model, in throw-away git repositories."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autopilot.agent import (
    AgentFailure,
    StreamState,
    agent_environment,
    claude_argv,
    conflict_prompt,
    fix_prompt,
    model_route,
    run_claude,
    task_prompt,
)
from autopilot.models import (
    AgentSettings,
    CheckResult,
    FileRef,
    Finding,
    ReviewerVerdict,
    ReviewResult,
    ReviewSettings,
    Task,
    TaskRequest,
    VerificationStep,
)
from autopilot.plan import parse_plan
from autopilot.review import (
    VERDICT_SCHEMA,
    parse_verdict,
    reviewer_argv,
    reviewer_prompt,
    untouched_files,
)
from autopilot_testing import (
    STRUCTURED_OUTPUT,
    Conversation,
    PlanFollower,
    Reviewer,
    ScriptedModel,
    Text,
    ToolCall,
    ToolUses,
    parse_task,
    script,
    verification_steps,
)
from tests.gitutil import commit_file, git, isolate_git, make_repo
from tests.harness import claude_bin, clean_env

RUN_TIMEOUT_S = 60.0  # one CLI run; they take 1-3 s

GREET = 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
PLAN = f"""# Greeting plan

### Task 3.1: Greeting

Add a greeting helper.

**Files:**
- Create: `pkg/greet.py`
- Modify: `./README.md`

```python
{GREET}```

**Verification:**
- `python -c "import pkg.greet"` exits 0
- greet("Ada") returns "Hello, Ada!"

**Commit:** Add greeting helper
"""
TASK = parse_plan(PLAN, "/plan.md").batches[0].tasks[0]
STEPS = ['`python -c "import pkg.greet"` exits 0', 'greet("Ada") returns "Hello, Ada!"']


def request_for(repo: Path, task: Task = TASK) -> TaskRequest:
    return TaskRequest(
        session_id="s1",
        repo=str(repo),
        target_branch="main",
        state_dir=str(repo.parent / "state"),
        task=task,
        plan_title="Greeting plan",
        agent=AgentSettings(),
    )


@dataclass
class Box:
    root: Path
    repo: Path
    env: dict[str, str]

    async def run(self, argv: list[str], prompt: str, session_id: str) -> StreamState:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            state, _ = await run_claude(
                argv,
                cwd=self.repo,
                env=self.env,
                prompt=prompt,
                session_id=session_id,
                transcript=self.root / "transcripts" / f"{uuid.uuid4()}.jsonl",
                idle_timeout_s=RUN_TIMEOUT_S,
                on_progress=lambda progress: None,
            )
        return state

    async def review(self, prompt: str, settings: ReviewSettings | None = None) -> StreamState:
        sid = str(uuid.uuid4())
        return await self.run(
            reviewer_argv(claude_bin(), settings or ReviewSettings(), sid), prompt, sid
        )

    async def work(self, prompt: str, session_id: str, resume: bool = False) -> StreamState:
        argv = claude_argv(claude_bin(), AgentSettings(max_turns=10), session_id, resume=resume)
        return await self.run(argv, prompt, session_id)

    def diff(self) -> tuple[str, list[str]]:
        return (
            git(self.repo, "diff", "main...HEAD"),
            git(self.repo, "diff", "--name-only", "main...HEAD").splitlines(),
        )


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as server:
        yield server
    assert server.errors == [], f"responder raised: {server.errors!r}"


@pytest.fixture
def box(tmp_path: Path, model: ScriptedModel, monkeypatch: pytest.MonkeyPatch) -> Box:
    home = tmp_path / "home"
    isolate_git(monkeypatch, home)
    repo = make_repo(tmp_path / "repo")
    base = clean_env()
    base.update(model.env())
    base.update(HOME=str(home))
    config = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude-config")}
    return Box(
        root=tmp_path,
        repo=repo,
        env=agent_environment(claude_bin(), base, model_route(base) | config),
    )


@pytest.fixture
def task_branch(box: Box) -> Box:
    """The repo on branch `task`, one commit ahead of main: the task's work, to review."""
    git(box.repo, "checkout", "-q", "-b", "task")
    commit_file(box.repo, "pkg/greet.py", GREET, "Add greeting helper")
    return box


def review_prompt_for(box: Box, **overrides: Any) -> str:
    diff, changed = box.diff()
    arguments: dict[str, Any] = {
        "diff": diff,
        "changed_files": changed,
        "checks": [],
        "untouched_files": untouched_files(TASK, changed),
        "extra_instructions": None,
    }
    arguments.update(overrides)
    return reviewer_prompt(request_for(box.repo), **arguments)


def tree_state(repo: Path) -> tuple[str, str]:
    return git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain", "--ignored")


# ---------------------------------------------------------------------------------------------
# The reviewer run
# ---------------------------------------------------------------------------------------------


def test_reviewer_argv_is_read_only_and_carries_the_schema() -> None:
    settings = ReviewSettings(reviewer_max_turns=7)
    argv = reviewer_argv(Path("/bin/claude"), settings, "sid-1")

    schema = next(a for a in argv if a.startswith("--json-schema="))
    assert json.loads(schema.removeprefix("--json-schema=")) == VERDICT_SCHEMA
    assert argv == [
        "/bin/claude",
        "-p",
        "--output-format=stream-json",
        "--verbose",
        schema,
        "--session-id=sid-1",
        "--max-turns=7",
        "--tools=Read,Glob,Grep",
        "--allowedTools=Read,Glob,Grep",
        "--disallowedTools=Write,Edit,NotebookEdit,Bash",
        "--permission-mode=default",
        "--setting-sources=user",  # no hook or setting of the workspace's
        "--strict-mcp-config",  # no MCP server of the workspace's .mcp.json
    ]
    with_model = reviewer_argv(Path("/c"), ReviewSettings(reviewer_model="opus"), "s")
    assert with_model[-1] == "--model=opus"
    # ReviewerVerdict and the schema agree: the schema's required keys are the model's fields.
    assert set(VERDICT_SCHEMA["required"]) == set(ReviewerVerdict.model_fields)


async def test_reviewer_run_returns_the_verdict_the_model_sent(
    task_branch: Box, model: ScriptedModel
) -> None:
    sent = {
        "verdict": "approve",
        "summary": "Greeting works",
        "findings": [{"message": "docstring would help", "severity": "minor"}],
        "verification": [{"step": s, "met": True, "note": "checked"} for s in STEPS],
    }
    model.responder = Reviewer([sent])
    before = tree_state(task_branch.repo)
    prompt = review_prompt_for(task_branch)

    state = await task_branch.review(prompt)

    assert parse_verdict(state.result) == ReviewerVerdict.model_validate(sent)
    first = model.snapshot()[0]
    # --tools offers only the read-only tools, plus the CLI's StructuredOutput for the schema.
    assert set(first.tools) == {"Read", "Glob", "Grep", STRUCTURED_OUTPUT}
    (tool,) = [t for t in first.body["tools"] if t["name"] == STRUCTURED_OUTPUT]
    assert tool["input_schema"] == VERDICT_SCHEMA
    assert "Task 3.1: Greeting" in first.prompt
    assert f"<task>\n{TASK.body}\n</task>" in first.prompt
    assert '+    return f"Hello, {name}!"' in first.prompt and "<diff>" in first.prompt
    assert tree_state(task_branch.repo) == before


async def test_reviewer_that_tries_to_write_or_run_commands_is_refused(
    task_branch: Box, model: ScriptedModel
) -> None:
    repo = task_branch.repo
    model.responder = script(
        ToolUses(
            [
                ToolCall("Write", {"file_path": str(repo / "evil.txt"), "content": "x"}),
                ToolCall("Bash", {"command": "touch bashed.txt", "description": "Touch"}),
                ToolCall(
                    "Edit",
                    {
                        "file_path": str(repo / "README.md"),
                        "old_string": "hello",
                        "new_string": "bye",
                    },
                ),
                ToolCall("Read", {"file_path": str(repo / "pkg" / "greet.py")}),
            ]
        ),
        ToolUses(
            [
                ToolCall(
                    STRUCTURED_OUTPUT,
                    {"verdict": "approve", "summary": "ok", "findings": [], "verification": []},
                )
            ]
        ),
        Text("done"),
    )
    before = tree_state(repo)

    state = await task_branch.review(review_prompt_for(task_branch))

    results = model.snapshot()[1].all_tool_results()
    assert [err for _, err in results] == [True, True, True, False]
    assert all("No such tool available" in text for text, _ in results[:3]), results
    assert "Hello" in results[3][0]  # reading works
    assert not (repo / "evil.txt").exists() and not (repo / "bashed.txt").exists()
    assert tree_state(repo) == before
    assert parse_verdict(state.result).verdict == "approve"


def hooks_settings(marker_dir: Path) -> str:
    """A `.claude/settings.json` whose hooks each leave a marker file named after their event."""
    events = ("SessionStart", "UserPromptSubmit", "PreToolUse", "Stop")
    hook = {
        event: [
            {
                "matcher": "*",
                "hooks": [{"type": "command", "command": f"touch {marker_dir}/{event}"}],
            }
        ]
        for event in events
    }
    return json.dumps({"hooks": hook})


async def test_reviewer_loads_no_hook_or_mcp_server_the_workspace_holds(
    task_branch: Box, model: ScriptedModel
) -> None:
    repo, markers = task_branch.repo, task_branch.root / "markers"
    markers.mkdir()
    (repo / ".claude").mkdir()
    (repo / ".claude" / "settings.json").write_text(hooks_settings(markers))
    (repo / ".claude" / "settings.local.json").write_text(hooks_settings(markers))
    server = {"command": "sh", "args": ["-c", f"touch {markers}/mcp; sleep 5"]}
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"planted": server}}))
    git(repo, "add", "-A", "-f")
    git(repo, "commit", "-q", "-m", "The agent's leftovers")
    model.responder = Reviewer([{"verdict": "approve", "summary": "ok"}])

    state = await task_branch.review(review_prompt_for(task_branch))

    assert parse_verdict(state.result).verdict == "approve"
    assert sorted(path.name for path in markers.iterdir()) == []
    (transcript,) = (task_branch.root / "transcripts").glob("*.jsonl")
    events = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert not [e for e in events if str(e.get("subtype", "")).startswith("hook_")]
    (init,) = [e for e in events if e.get("subtype") == "init"]
    assert init.get("mcp_servers") == []

    # The control: the same workspace without the reviewer's flags runs those hooks.
    model.responder = script(Text("Nothing to do."))
    await task_branch.work("Say hello.", str(uuid.uuid4()))
    assert {"SessionStart", "UserPromptSubmit", "Stop"} <= {p.name for p in markers.iterdir()}


async def test_reviewer_without_a_verdict_is_an_agent_failure(
    task_branch: Box, model: ScriptedModel
) -> None:
    # The CLI asks once more for StructuredOutput, then ends "successfully" without one.
    model.responder = lambda conversation: Text("It all looks fine to me.")

    state = await task_branch.review(review_prompt_for(task_branch))

    assert state.result is not None and state.result["is_error"] is False
    with pytest.raises(AgentFailure) as caught:
        parse_verdict(state.result)
    assert caught.value.kind == "error"
    assert "no verdict" in str(caught.value) and "looks fine" in str(caught.value)


async def test_request_changes_verdict_is_parsed_with_findings(
    task_branch: Box, model: ScriptedModel
) -> None:
    reviewer = Reviewer(
        lambda conversation: {
            "verdict": "request_changes",
            "summary": "README not updated",
            "findings": [
                {"message": "Document greet()", "file": "README.md", "line": 1, "severity": "major"}
            ],
        }
    )
    model.responder = reviewer

    state = await task_branch.review(review_prompt_for(task_branch))

    verdict = parse_verdict(state.result)
    assert verdict.verdict == "request_changes"
    assert verdict.summary == "README not updated"
    assert [(f.file, f.line, f.severity) for f in verdict.findings] == [("README.md", 1, "major")]
    # The responder filled in the task's steps, unmet since it asks for changes.
    assert verdict.verification == [VerificationStep(step=s, met=False) for s in STEPS]
    assert reviewer.given[0]["verification"] == [{"step": s, "met": False} for s in STEPS]


async def test_plan_follower_reviews_with_approval_of_every_step(
    task_branch: Box, model: ScriptedModel
) -> None:
    assert isinstance(model.responder, PlanFollower)  # the default, as in the demo

    state = await task_branch.review(review_prompt_for(task_branch))

    verdict = parse_verdict(state.result)
    assert (verdict.verdict, verdict.summary, verdict.findings) == ("approve", "Looks good", [])
    assert [(v.step, v.met) for v in verdict.verification] == [(s, True) for s in TASK.verification]


@pytest.mark.parametrize(
    ("event", "words"),
    [
        (None, "without a result"),
        ({"type": "result", "result": ""}, "without calling StructuredOutput"),
        ({"structured_output": None, "result": "meh"}, "it said: meh"),
        ({"structured_output": ["approve"]}, "not an object"),
        ({"structured_output": {"verdict": "maybe", "summary": "x"}}, "verdict:"),
        ({"structured_output": {"verdict": "approve"}}, "summary:"),
    ],
)
def test_parse_verdict_rejects_missing_or_invalid_output(
    event: dict[str, Any] | None, words: str
) -> None:
    with pytest.raises(AgentFailure) as caught:
        parse_verdict(event)
    assert caught.value.kind == "error"
    assert "the reviewer gave no verdict" in str(caught.value)
    assert words in str(caught.value)


def test_parse_verdict_accepts_a_json_string() -> None:
    verdict = parse_verdict({"structured_output": '{"verdict":"approve","summary":"ok"}'})
    assert verdict == ReviewerVerdict(verdict="approve", summary="ok")


# ---------------------------------------------------------------------------------------------
# Files the diff does not touch, and the reviewer's prompt
# ---------------------------------------------------------------------------------------------


def test_untouched_files_normalises_and_compares_posix_paths() -> None:
    refs = ["./pkg/a.py", "pkg/b.py", "docs/", "src/**.ts", "pkg//c.py", "pkg/b.py"]
    task = TASK.model_copy(update={"files": [FileRef(path=p, line=1) for p in refs]})

    assert untouched_files(task, ["pkg/a.py", "docs/x/intro.md", "./pkg/c.py"]) == [
        "pkg/b.py",
        "src/**.ts",
    ]
    assert (
        untouched_files(task, ["pkg/b.py", "src/app/main.ts", "pkg/a.py", "pkg/c.py", "docs/a"])
        == []
    )
    assert untouched_files(TASK, []) == ["pkg/greet.py", "README.md"]
    assert untouched_files(TASK.model_copy(update={"files": []}), ["x"]) == []


def test_reviewer_prompt_has_everything_the_review_needs(tmp_path: Path) -> None:
    checks = [
        CheckResult(
            command="pytest -q",
            passed=False,
            exit_code=1,
            output_tail="E   assert 1 == 2\n1 failed",
        ),
        CheckResult(command="ruff check .", passed=True, exit_code=0),
        CheckResult(command="slow", passed=False, timed_out=True),
    ]
    prompt = reviewer_prompt(
        request_for(tmp_path),
        "diff --git a/pkg/greet.py b/pkg/greet.py\n+def greet",
        ["pkg/greet.py"],
        checks,
        ["README.md"],
        "Be strict about docstrings.",
    )

    assert parse_task(prompt).id == "3.1"  # the scripted model routes by this line
    assert "code reviewer" in prompt and "read-only" in prompt
    assert f"<task>\n{TASK.body}\n</task>" in prompt
    assert "<diff>\ndiff --git a/pkg/greet.py b/pkg/greet.py\n+def greet\n</diff>" in prompt
    assert "Files the change touches: pkg/greet.py" in prompt
    assert (
        "- `pytest -q`: FAILED (exit code 1)" in prompt and "E   assert 1 == 2\n1 failed" in prompt
    )
    assert "- `ruff check .`: passed" in prompt
    assert "- `slow`: FAILED (timed out)" in prompt
    for n, step in enumerate(STEPS, 1):
        assert f"{n}. {step}" in prompt
    assert "`verification`" in prompt
    assert "not touched by the diff" in prompt and "\n- README.md\n" in prompt
    assert "<instructions>\nBe strict about docstrings.\n</instructions>" in prompt
    assert '"approve" only if' in prompt and '"request_changes"' in prompt
    # The scripted reviewer finds the same steps in the task region as the plan parser did.
    assert verification_steps(prompt) == TASK.verification == STEPS

    bare = reviewer_prompt(request_for(tmp_path), "", [], [], [], "  ")
    assert "No checks were run" in bare and "<instructions>" not in bare
    assert "not touched by the diff" not in bare


# ---------------------------------------------------------------------------------------------
# The worker's fix and conflict prompts
# ---------------------------------------------------------------------------------------------


def review_result() -> ReviewResult:
    return ReviewResult(
        round=1,
        approved=False,
        summary="greet returns the wrong text",
        checks=[
            CheckResult(
                command="pytest -q", passed=False, exit_code=1, output_tail="AssertionError: 'hi'"
            ),
            CheckResult(command="ruff check .", passed=True, exit_code=0, output_tail="All good"),
        ],
        verdict=ReviewerVerdict(
            verdict="request_changes",
            summary="greet returns the wrong text",
            verification=[
                VerificationStep(step=STEPS[0], met=True),
                VerificationStep(step=STEPS[1], met=False, note="returns 'hi'"),
            ],
        ),
        findings=[
            Finding(
                source="reviewer",
                message="greet must return Hello, name!",
                file="pkg/greet.py",
                line=2,
            ),
            Finding(source="check", message="`pytest -q` failed"),
        ],
        untouched_files=["README.md"],
    )


def test_reviewer_prompt_points_out_protected_paths_the_task_changes(tmp_path: Path) -> None:
    changed = ["pkg/greet.py", ".github/workflows/ci.yml", ".claude/settings.json"]
    prompt = reviewer_prompt(request_for(tmp_path), "diff", changed, [], [], None)
    flagged = prompt.split("more rights than the task's code", 1)[1].split("\n\n", 1)[0]
    assert "- .github/workflows/ci.yml\n- .claude/settings.json" in flagged
    assert "pkg/greet.py" not in flagged and "blocker" in flagged

    plain = reviewer_prompt(request_for(tmp_path), "diff", ["pkg/greet.py"], [], [], None)
    assert "more rights" not in plain


def test_fix_prompt_lists_what_to_fix_and_the_task(tmp_path: Path) -> None:
    prompt = fix_prompt(request_for(tmp_path), review_result())

    assert parse_task(prompt).id == "3.1"
    assert parse_task(prompt).files == ["pkg/greet.py", "./README.md"]
    assert "review of round 1" in prompt and "requested changes" in prompt
    findings = prompt.split("<findings>\n", 1)[1].split("\n</findings>", 1)[0]
    assert "- [reviewer] pkg/greet.py:2: greet must return Hello, name!" in findings
    assert "- [check] `pytest -q` failed" in findings
    assert "- [files] README.md: named in the task's **Files:** list" in findings
    assert "AssertionError: 'hi'" in findings and "All good" not in prompt
    assert f"  - {STEPS[1]}: returns 'hi'" in findings and STEPS[0] not in findings
    assert "in this worktree" in prompt and "Commit" in prompt and "Add greeting helper" in prompt
    assert prompt.rstrip().endswith(f"<task>\n{TASK.body}\n</task>")


def test_conflict_prompt_names_the_files_and_how_to_conclude(tmp_path: Path) -> None:
    prompt = conflict_prompt(request_for(tmp_path), "main", ["pkg/greet.py", "README.md"])

    assert parse_task(prompt).id == "3.1"
    assert "`main`" in prompt and "merged into this branch" in prompt
    assert "<findings>\n- [conflict] pkg/greet.py: merge conflict\n- [conflict] README.md" in prompt
    assert "both sides' intent" in prompt and "conflict marker" in prompt
    assert "verification" in prompt and "concludes the merge" in prompt
    assert f"<task>\n{TASK.body}\n</task>" in prompt


def test_task_prompt_is_unchanged_by_the_new_prompts(tmp_path: Path) -> None:
    prompt = task_prompt(request_for(tmp_path), "autopilot/s1/3.1")
    assert "<findings>" not in prompt and "Task 3.1: Greeting" in prompt


# ---------------------------------------------------------------------------------------------
# The scripted model's reviewer and fixer
# ---------------------------------------------------------------------------------------------


def conversation(
    prompt: str, session: str, tools: list[str], messages: list[Any] | None = None
) -> Conversation:
    body = {
        "system": "x",
        "tools": [{"name": t} for t in tools],
        "messages": [{"role": "user", "content": prompt}, *(messages or [])],
    }
    return Conversation.parse(body, {"X-Claude-Code-Session-Id": session})


def test_reviewer_responder_gives_one_verdict_per_session_in_order() -> None:
    reviewer = Reviewer([{"verdict": "request_changes", "summary": "no"}, {"verdict": "approve"}])
    prompt = f"Task 3.1: Greeting\n<task>\n{TASK.body}\n</task>"
    tools = ["Read", STRUCTURED_OUTPUT]

    replies = [reviewer(conversation(prompt, s, tools)) for s in ("a", "a", "b", "c")]

    verdicts = [r.calls[0].input for r in replies if isinstance(r, ToolUses)]
    assert [v["verdict"] for v in verdicts] == [
        "request_changes",
        "request_changes",
        "approve",
        "approve",
    ]
    assert verdicts[0]["verification"] == [{"step": s, "met": False} for s in STEPS]
    assert verdicts[2] == {
        "verdict": "approve",
        "summary": "Looks good",
        "findings": [],
        "verification": [{"step": s, "met": True} for s in STEPS],
    }
    assert len(reviewer.given) == 3

    answered = [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": STRUCTURED_OUTPUT, "input": verdicts[0]}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    assert isinstance(reviewer(conversation(prompt, "a", tools, answered)), Text)


def tool_uses_after(conversation: Conversation, marker: str) -> list[str]:
    """Names of the tool calls made after the last message that contains `marker`."""
    start = max(i for i, m in enumerate(conversation.messages) if marker in json.dumps(m))
    return [
        block["name"]
        for message in conversation.messages[start:]
        if message["role"] == "assistant" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_use"
    ]


async def test_plan_follower_fixes_the_named_file_in_a_resumed_session(
    box: Box, model: ScriptedModel
) -> None:
    repo, sid = box.repo, str(uuid.uuid4())
    git(repo, "checkout", "-q", "-b", "task")
    await box.work(task_prompt(request_for(repo), "task"), sid)
    assert (repo / "pkg" / "greet.py").read_text() == GREET
    commit_file(repo, "pkg/greet.py", "def greet(name):\n    return 'hi'\n", "broken")
    first_round = len(model.snapshot())

    state = await box.work(fix_prompt(request_for(repo), review_result()), sid, resume=True)

    assert (repo / "pkg" / "greet.py").read_text() == GREET
    assert git(repo, "log", "-1", "--format=%s") == "Task 3.1: address review findings"
    assert git(repo, "status", "--porcelain") == ""
    second = model.snapshot()[first_round:]
    assert {c.session_id for c in second} == {sid}
    assert "Task 3.1: Greeting" in second[0].prompt  # the first prompt: it is one session
    # README.md is named too but has no code block of its own: left alone.
    assert tool_uses_after(second[-1], "<findings>") == ["Read", "Write", "Bash"]
    assert state.result is not None and "error" not in state.result["result"]


async def test_plan_follower_resolves_a_conflict_in_a_fresh_session(
    box: Box, model: ScriptedModel
) -> None:
    repo = box.repo
    commit_file(repo, "pkg/greet.py", "def greet(name):\n    return name\n", "start")
    git(repo, "checkout", "-q", "-b", "task")
    commit_file(repo, "pkg/greet.py", "def greet(name):\n    return 'task'\n", "task side")
    git(repo, "checkout", "-q", "main")
    main_head = commit_file(
        repo, "pkg/greet.py", "def greet(name):\n    return 'main'\n", "main side"
    )
    git(repo, "checkout", "-q", "task")
    git(repo, "merge", "-q", "main", check=False)
    assert "<<<<<<<" in (repo / "pkg" / "greet.py").read_text()

    await box.work(conflict_prompt(request_for(repo), "main", ["pkg/greet.py"]), str(uuid.uuid4()))

    assert (repo / "pkg" / "greet.py").read_text() == GREET
    assert git(repo, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False) == ""
    assert git(repo, "rev-parse", "HEAD^2") == main_head  # the merge was concluded
    assert git(repo, "log", "-1", "--format=%s") == "Task 3.1: resolve merge conflicts"
    assert git(repo, "status", "--porcelain") == ""
