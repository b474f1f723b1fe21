"""The run_agent activity in a Temporal ActivityEnvironment: the real CLI in a real workspace."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.agent import AgentActivities
from activities.reviewer import ReviewerActivities
from autopilot.agent import GATEWAY_PORT, Egress, Sandbox, detect_sandbox
from autopilot.git import prepare_workspace
from autopilot.models import (
    AgentInput,
    AgentProgress,
    AgentRun,
    AgentSettings,
    CommitInput,
    FileRef,
    ReviewerInput,
    Task,
    TaskRequest,
)
from autopilot.steps.attempts import SESSION_NAMESPACE
from autopilot.steps.site import workspace_inside
from autopilot_testing import (
    HttpError,
    Reviewer,
    ScriptedModel,
    Text,
    ToolCall,
    ToolUses,
    script,
)
from tests.gitutil import git, head, isolate_git, make_repo
from tests.harness import claude_bin, clean_env, commands_in, processes_in, wait_gone, wait_until

RUN_TIMEOUT_S = 60.0
GONE_TIMEOUT_S = 15.0
SESSION, TASK_ID, WORKFLOW_ID = "sess-1", "3.1", "task-wf-3.1"
SID = str(uuid.uuid5(SESSION_NAMESPACE, f"{WORKFLOW_ID}/round-1-attempt-1"))

BODY = """Add a greeting helper.

**Files:**
- Create: `pkg/greet.py`

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```

**Commit:** `feat: greeting`"""


@dataclass
class Setup:
    root: Path
    worktree: Path
    state_dir: Path
    job: AgentInput
    worker_env: dict[str, str]  # what the worker read from its own environment at start
    egress: Egress

    def activities(self, sandbox: Sandbox | None = None) -> AgentActivities:
        return AgentActivities(
            claude_bin(), sandbox or detect_sandbox(), self.egress, self.worker_env
        )

    def reviewer(self) -> ReviewerActivities:
        return ReviewerActivities(claude_bin(), detect_sandbox(), self.egress, self.worker_env)

    def with_settings(self, **settings: Any) -> AgentInput:
        request = self.job.request.model_copy(update={"agent": AgentSettings(**settings)})
        return self.job.model_copy(update={"request": request})


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as server:
        yield server
    assert server.errors == [], f"responder raised: {server.errors!r}"


@pytest_asyncio.fixture
async def egress(model: ScriptedModel) -> AsyncIterator[Egress]:
    """The worker's egress proxy, holding the scripted model's key (as a worker holds the
    real one), in the test's own event loop."""
    with tempfile.TemporaryDirectory(prefix="egress-") as folder:
        proxy = await Egress(Path(folder) / "egress.sock", model.env()).start()
        yield proxy
        await proxy.close()


@pytest.fixture
def setup(
    tmp_path: Path, model: ScriptedModel, egress: Egress, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Setup]:
    home = tmp_path / "home"
    isolate_git(monkeypatch, home)
    repo = make_repo(tmp_path / "repo")
    state_dir = tmp_path / "state"
    workspace = prepare_workspace(repo, "main", state_dir, SESSION, TASK_ID)
    worktree = Path(workspace.path)
    task = Task(
        id=TASK_ID,
        title="Greeting",
        batch=1,
        body=BODY,
        files=[FileRef(action="create", path="pkg/greet.py", line=7)],
        commit_message="feat: greeting",
        line=5,
    )
    request = TaskRequest(
        session_id=SESSION,
        repo=str(repo),
        target_branch="main",
        state_dir=str(state_dir),
        task=task,
        plan_title="Demo plan",
        plan_context="A small demo project.",
        agent=AgentSettings(),
    )
    worker_env = clean_env()
    worker_env.update(model.env())
    worker_env.update(
        HOME=str(home),
        CLAUDE_CONFIG_DIR=str(tmp_path / "claude-config"),
        SECRET_TOKEN="must-not-reach-the-agent",
    )
    yield Setup(
        tmp_path,
        worktree,
        state_dir,
        AgentInput(request=request, workspace=workspace),
        worker_env,
        egress,
    )
    for pid in processes_in(tmp_path):  # a failed test must not leak its processes
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def activity_environment(heartbeats: list[Any]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=WORKFLOW_ID, attempt=1)
    env.on_heartbeat = lambda *details: heartbeats.extend(details)
    return env


async def run_agent(env: ActivityEnvironment, setup: Setup, job: AgentInput) -> AgentRun:
    async with asyncio.timeout(RUN_TIMEOUT_S):
        return await env.run(setup.activities().run_agent, job)


async def test_run_agent_does_the_task_and_reports_progress(
    setup: Setup, model: ScriptedModel
) -> None:
    heartbeats: list[Any] = []

    run = await run_agent(activity_environment(heartbeats), setup, setup.job)

    # The agent worked in the worktree, on its branch.
    greet = setup.worktree / "pkg" / "greet.py"
    assert greet.read_text() == 'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n'
    assert git(setup.worktree, "log", "-1", "--format=%s") == "feat: greeting"

    transcript = (
        setup.state_dir / "transcripts" / SESSION / TASK_ID / f"round-1-attempt-1-{SID}.jsonl"
    )
    assert run.session_id == SID and run.attempt == 1
    assert run.is_error is False and run.subtype == "success"
    assert "Task 3.1" in run.result_text
    assert run.cost_usd > 0
    assert run.turns >= 3
    assert run.input_tokens > 0 and run.output_tokens > 0
    assert run.duration_s > 0
    assert run.transcript_path == str(transcript)
    assert '"type":"result"' in transcript.read_text().splitlines()[-1].replace(" ", "")

    # What the model was told, and from where.
    requests = model.snapshot()
    prompt = requests[0].prompt
    assert f"<task>\n{BODY}\n</task>" in prompt
    assert "\nTask 3.1: Greeting\n" in prompt
    assert "`autopilot/sess-1/3.1`" in prompt
    assert "<plan-context>\nA small demo project.\n</plan-context>" in prompt
    # The CLI works in the sandbox's fixed path of the workspace, not where it is here.
    assert requests[0].cwd == str(workspace_inside(setup.job.request.repo)) == "/workspace/repo"
    assert {c.session_id for c in requests} == {SID}

    # Heartbeats carried the live progress.
    assert heartbeats and all(isinstance(h, AgentProgress) for h in heartbeats)
    assert {h.session_id for h in heartbeats} == {SID}
    assert {h.transcript_path for h in heartbeats} == {str(transcript)}
    turns = [h.turns for h in heartbeats]
    assert turns == sorted(turns) and turns[-1] == 3
    assert heartbeats[-1].last_event == "result/success"
    assert heartbeats[-1].cost_usd == run.cost_usd
    assert not processes_in(setup.worktree)


def leaves_a_file(*more_commands: str) -> ToolUses:
    """The agent writes its file and does not commit it (then runs `more_commands`)."""
    command = "mkdir -p pkg && printf 'X = 1\\n' > pkg/x.py"
    return ToolUses([ToolCall("Bash", {"command": " && ".join([command, *more_commands])})])


def commit_of(setup: Setup) -> CommitInput:
    return CommitInput(
        workspace_path=str(setup.worktree),
        base_sha=setup.job.workspace.base_sha,
        session_id=SESSION,
        task_id=TASK_ID,
        message="feat: greeting",
    )


async def test_run_agent_commits_what_the_agent_left(setup: Setup, model: ScriptedModel) -> None:
    model.responder = script(leaves_a_file(), Text("done"))
    job = setup.job.model_copy(update={"commit": commit_of(setup)})

    run = await run_agent(activity_environment([]), setup, job)

    assert run.commit is not None
    assert run.commit.committed_leftovers and not run.commit.no_changes
    assert [commit.subject for commit in run.commit.commits] == ["feat: greeting"]
    assert run.commit.head_sha == head(setup.worktree)
    assert git(setup.worktree, "show", "HEAD:pkg/x.py") == "X = 1"
    assert git(setup.worktree, "status", "--porcelain") == ""


async def test_a_commit_that_fails_after_the_run_is_left_to_the_commit_step(
    setup: Setup, model: ScriptedModel
) -> None:
    # a fresh index.lock: git refuses to commit, as while another git command runs there
    lock = 'touch "$(git rev-parse --git-dir)/index.lock"'
    model.responder = script(leaves_a_file(lock), Text("done"))
    job = setup.job.model_copy(update={"commit": commit_of(setup)})

    run = await run_agent(activity_environment([]), setup, job)

    assert not run.is_error and run.commit is None  # the agent's work is not a failed attempt
    assert head(setup.worktree) == setup.job.workspace.base_sha
    assert (setup.worktree / "pkg" / "x.py").read_text() == "X = 1\n"


async def test_worker_environment_is_filtered_for_the_agent(
    setup: Setup, model: ScriptedModel
) -> None:
    model.responder = script(
        ToolUses([ToolCall("Bash", {"command": "env > seen-env.txt"})]), Text("done")
    )

    await run_agent(activity_environment([]), setup, setup.job)

    seen = (setup.worktree / "seen-env.txt").read_text()
    assert "must-not-reach-the-agent" not in seen
    assert f"PATH={claude_bin().parent}{os.pathsep}" in seen
    # The model API through the sandbox's gateway: the key stays with the worker's proxy,
    # which puts it in each request; the agent holds only its run's token.
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{GATEWAY_PORT}" in seen
    key = model.env()["ANTHROPIC_API_KEY"]
    assert f"ANTHROPIC_API_KEY={key}" not in seen and key not in seen
    assert {conversation.api_key for conversation in model.snapshot()} == {key}


API_KEY = "sk-ant-test-0123456789abcdef"
TOKEN = "must-not-reach-the-agent"  # the fixture's SECRET_TOKEN


async def test_secrets_are_scrubbed_from_the_transcript_and_the_run(
    setup: Setup, model: ScriptedModel
) -> None:
    setup.worker_env["ANTHROPIC_API_KEY"] = API_KEY  # the scripted model takes any key
    model.responder = script(
        ToolUses([ToolCall("Bash", {"command": "printenv ANTHROPIC_API_KEY"})]),
        Text(f"Done. The key is {API_KEY} and the token {TOKEN}."),
    )

    run = await run_agent(activity_environment([]), setup, setup.job)

    # The agent never holds the key (its gateway token instead); the model's answer names it,
    # and what is stored and reported has markers instead.
    assert API_KEY not in model.snapshot()[-1].last_tool_results[0]
    marked = "[redacted ANTHROPIC_API_KEY]"
    assert run.result_text == f"Done. The key is {marked} and the token [redacted SECRET_TOKEN]."
    transcript = Path(run.transcript_path).read_text()
    assert API_KEY not in transcript and TOKEN not in transcript
    assert transcript.count(marked) >= 1  # the answer
    assert API_KEY not in Path(run.transcript_path).with_suffix(".stderr").read_text()


async def test_secrets_are_scrubbed_from_the_reviewers_verdict_and_transcript(
    setup: Setup, model: ScriptedModel
) -> None:
    setup.worker_env["ANTHROPIC_API_KEY"] = API_KEY
    model.responder = Reviewer(
        [
            {
                "verdict": "request_changes",
                "summary": f"The code prints {API_KEY}.",
                "findings": [{"message": f"remove {TOKEN}", "severity": "blocker"}],
            }
        ]
    )
    job = ReviewerInput(request=setup.job.request, workspace=setup.job.workspace, round=1)

    outcome = await activity_environment([]).run(setup.reviewer().review_changes, job)

    assert outcome.verdict.summary == "The code prints [redacted ANTHROPIC_API_KEY]."
    assert outcome.verdict.findings[0].message == "remove [redacted SECRET_TOKEN]"
    transcript = Path(outcome.run.transcript_path).read_text()
    assert API_KEY not in transcript and TOKEN not in transcript


@pytest.mark.parametrize(
    ("error", "error_type", "non_retryable", "delay"),
    [
        (HttpError(401, "authentication_error", "invalid x-api-key"), "AgentAuth", True, None),
        (
            HttpError(429, "rate_limit_error", "slow down"),
            "AgentRateLimited",
            False,
            timedelta(seconds=60),
        ),
    ],
    ids=["401", "429"],
)
async def test_api_failures_become_typed_application_errors(
    setup: Setup,
    model: ScriptedModel,
    error: HttpError,
    error_type: str,
    non_retryable: bool,
    delay: timedelta | None,
) -> None:
    model.responder = script(error)

    with pytest.raises(ApplicationError) as caught:
        await run_agent(activity_environment([]), setup, setup.job)

    failure = caught.value
    assert failure.type == error_type
    assert failure.non_retryable is non_retryable
    if error_type == "AgentAuth":
        assert "ANTHROPIC_API_KEY" in failure.message
    # The failed attempt rides in the details, for the task workflow to record and to decide
    # when to try again.
    (failed,) = failure.details
    assert isinstance(failed, AgentRun) and failed.session_id == SID and failed.attempt == 1
    assert failed.is_error and failed.error_type == error_type and failed.error == failure.message
    assert failed.retry_after_s == (delay.total_seconds() if delay else None)
    assert Path(failed.transcript_path).is_file()


@pytest.mark.reliability(
    "Agent exceeds its attempt's time limit",
    "real CLI whose model keeps it busy past attempt_timeout_s: AgentTimedOut (retryable), "
    "the process tree killed",
)
async def test_agent_over_its_time_limit_is_stopped_and_retryable(
    setup: Setup, model: ScriptedModel
) -> None:
    # The idle watchdog is far away (60 s): what stops this run is the attempt's own limit.
    never = threading.Event()
    model.responder = script(
        ToolUses([ToolCall("Bash", {"command": "true", "description": "x"})], delay_s=0.5),
        Text("never sent", hold=never),
    )
    job = setup.with_settings(attempt_timeout_s=3.0, idle_timeout_s=60.0, heartbeat_timeout_s=9.0)
    try:
        with pytest.raises(ApplicationError) as caught:
            await run_agent(activity_environment([]), setup, job)
    finally:
        never.set()
    assert caught.value.type == "AgentTimedOut"
    assert caught.value.non_retryable is False
    assert "ran longer than its 3s limit" in caught.value.message
    await wait_gone(setup.worktree)


async def test_hung_agent_is_a_retryable_error_and_leaves_nothing(
    setup: Setup, model: ScriptedModel
) -> None:
    never = threading.Event()
    model.responder = script(Text("never sent", hold=never))
    # 5 s: longer than the CLI's own start on a loaded machine, so the silence is the model's.
    job = setup.with_settings(idle_timeout_s=5.0, heartbeat_timeout_s=3.0)
    heartbeats: list[Any] = []
    try:
        with pytest.raises(ApplicationError) as caught:
            await run_agent(activity_environment(heartbeats), setup, job)
    finally:
        never.set()

    assert caught.value.type == "AgentHung"
    assert caught.value.non_retryable is False
    assert len(model.snapshot()) == 1
    # The timer kept heartbeating while the agent was silent (every heartbeat_timeout_s / 3),
    # beyond the one heartbeat per stream event.
    transcript = (
        setup.state_dir / "transcripts" / SESSION / TASK_ID / f"round-1-attempt-1-{SID}.jsonl"
    )
    assert len(heartbeats) >= len(transcript.read_text().splitlines()) + 2
    await wait_gone(setup.worktree)


@pytest.mark.skipif(shutil.which("setsid") is None, reason="setsid not installed")
async def test_cancelled_activity_kills_the_agents_whole_tree(
    setup: Setup, model: ScriptedModel
) -> None:
    never = threading.Event()
    model.responder = script(
        ToolUses(
            [
                ToolCall(
                    "Bash", {"command": "sleep 3001", "description": "x", "run_in_background": True}
                ),
                ToolCall("Bash", {"command": "setsid -f sleep 3002", "description": "daemon"}),
            ]
        ),
        Text("never sent", hold=never),
    )
    env = activity_environment([])
    task = asyncio.create_task(run_agent(env, setup, setup.job))
    try:
        await asyncio.to_thread(model.wait_for, lambda c: c.turn == 1, RUN_TIMEOUT_S)
        await asyncio.to_thread(
            wait_until,
            lambda: {"sleep 3001 ", "sleep 3002 "} <= set(commands_in(setup.worktree)),
            GONE_TIMEOUT_S,
            "both background sleeps to run",
        )

        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        never.set()

    await wait_gone(setup.worktree)


async def test_missing_binary_is_a_non_retryable_setup_error(setup: Setup) -> None:
    activities = AgentActivities(
        setup.root / "no-claude", detect_sandbox(), setup.egress, setup.worker_env
    )

    with pytest.raises(ApplicationError) as caught:
        await activity_environment([]).run(activities.run_agent, setup.job)

    assert caught.value.type == "AgentSetup"
    assert caught.value.non_retryable is True
    assert "no-claude" in caught.value.message


@pytest.mark.reliability(
    "`--resume` of a Claude session the CLI never saved (its run was killed at once)",
    "real CLI answers 'No conversation found': a fresh session runs in the same attempt",
)
async def test_a_refused_resume_starts_a_fresh_session_in_the_same_attempt(
    setup: Setup, model: ScriptedModel
) -> None:
    never_saved = str(uuid.uuid4())
    job = setup.job.model_copy(update={"resume_session": never_saved})

    run = await run_agent(activity_environment([]), setup, job)

    assert run.resume_refused and not run.is_error and run.attempt == 1
    assert run.session_id != never_saved
    assert Path(run.transcript_path).name.startswith("round-1-attempt-1-fresh-")
    # The fresh session was told the worktree may hold an interrupted run's work.
    assert "Your previous run on this task was interrupted" in model.snapshot()[0].prompt
    assert (setup.worktree / "pkg" / "greet.py").is_file()
