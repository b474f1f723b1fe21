"""End to end: the real starter, worker, embedded Temporal dev server and claude CLI, with the
scripted model, on a fresh repository. Crash recovery kills the worker with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from autopilot import git as gitops
from autopilot.infra import temporal_cli
from autopilot.models import SessionState, TaskState
from autopilot.steps.site import workspace_inside
from autopilot_testing import Conversation, HoldFirst, PlanFollower, ScriptedModel
from tests.gitutil import git
from tests.harness import Autopilot, autopilot, processes_in, wait_until
from workflows.session import SessionWorkflow
from workflows.task import TaskWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

PLAN = """\
# Five tasks in two batches

Shared context for every task: keep it simple.

## Batch 1: Basics

### Task 1.1: Alpha module

**Files:**
- Create: `alpha.py`

```python
ALPHA = 1
```

### Task 1.2: Beta uses alpha

**Depends on:** Task 1.1

**Files:**
- Create: `beta.py`

```python
from alpha import ALPHA

BETA = ALPHA + 1
```

### Task 1.3: Notes

**Files:**
- Create: `docs/notes.md`

```markdown
# Notes
```

## Batch 2: More

**Dependencies:** Batch 1

### Task 2.1: Gamma

**Files:**
- Create: `gamma.py`

```python
GAMMA = 3
```

**Commit:** feat: gamma

### Task 2.2: Delta

**Files:**
- Create: `delta.py`

```python
DELTA = 4
```
"""
EXPECTED_FILES = {
    "alpha.py": "ALPHA = 1",
    "beta.py": "BETA = ALPHA + 1",
    "docs/notes.md": "# Notes",
    "gamma.py": "GAMMA = 3",
    "delta.py": "DELTA = 4",
}
TASK_IDS = ["1.1", "1.2", "1.3", "2.1", "2.2"]


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.md"
    path.write_text(PLAN)
    return path


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(PlanFollower()) as server:
        yield server


def merged_tasks(repo: Path, session_id: str) -> list[str]:
    return [task_id for task_id, _ in gitops.list_merges(str(repo), "main", session_id)]


def session_id_from(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("Started session ", "Attached to running session ")):
            return line.rsplit(" ", 1)[1]
    raise AssertionError(f"no session id in starter output:\n{output}")


def assert_work_landed(repo: Path, installation: Autopilot, session_id: str) -> None:
    merges = merged_tasks(repo, session_id)
    assert sorted(merges) == TASK_IDS, merges  # each task merged exactly once
    assert merges.index("1.1") < merges.index("1.2")  # the dependency merged first
    assert max(merges.index(t) for t in ("1.1", "1.2", "1.3")) < min(
        merges.index(t) for t in ("2.1", "2.2")
    )  # batch order
    for name, content in EXPECTED_FILES.items():
        assert content in (repo / name).read_text(), name
    # No commit was made twice: one commit per task subject on the target's history.
    subjects = git(repo, "log", "--no-merges", "--format=%s", "main").splitlines()
    assert len(subjects) == len(set(subjects)), subjects
    assert git(repo, "status", "--porcelain") == ""
    # No leftover worktree: only the user's checkout remains.
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    leftover = list((installation.state_dir / "worktrees").rglob("*.py"))
    assert leftover == [], leftover


async def replay_all(installation: Autopilot) -> int:
    """Replay every recorded history with the current workflow code; fails on nondeterminism."""
    client = await Client.connect(installation.address, data_converter=pydantic_data_converter)
    replayer = Replayer(
        workflows=[SessionWorkflow, TaskWorkflow], data_converter=pydantic_data_converter
    )
    replayed = 0
    async for history in client.list_workflows().map_histories():
        await replayer.replay_workflow(history)  # raises on any nondeterminism
        replayed += 1
    return replayed


@pytest.mark.reliability(
    "the same plan started again after it finished",
    "real session, then the same starter command: same session id, every task found merged, "
    "no agent run, nothing merged twice",
)
def test_plan_runs_end_to_end(tmp_path: Path, repo: Path, plan: Path, model: ScriptedModel) -> None:
    with autopilot(tmp_path / "autopilot", model.env()) as installation:
        done = installation.starter(str(plan), "--repo", str(repo), "--concurrency", "2")
        assert done.returncode == 0, done.stdout + done.stderr
        session_id = session_id_from(done.stdout)
        assert "Started a background worker" in done.stdout
        assert_work_landed(repo, installation, session_id)

        status = installation.status(session_id)
        assert status.status == SessionState.COMPLETED
        assert status.tasks_completed == status.tasks_total == 5
        merges = dict(gitops.list_merges(str(repo), "main", session_id))
        for task in status.tasks:
            assert task.state == TaskState.MERGED
            assert task.merge_sha == merges[task.id]
            assert task.branch == gitops.branch_name(session_id, task.id)
            assert task.commits and task.commit_count and task.attempts == 1
            assert task.started_at and task.completed_at and task.turns >= 2
            assert all(Path(path).is_file() for path in task.transcripts)

        # The recorded histories replay deterministically with this code.
        assert asyncio.run(replay_all(installation)) == 6  # the session and its five tasks

        # The README's `temporal workflow query` line answers with the same status.
        cli = subprocess.run(
            [
                str(temporal_cli()),
                "workflow",
                "query",
                "--address",
                installation.address,
                "--workflow-id",
                session_id,
                "--name",
                "status",
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert '"status": "completed"' in cli.stdout and '"tasks_completed": 5' in cli.stdout

        # Starting the same plan again finds every task merged and runs no agent.
        requests_before = len(model.requests)
        again = installation.starter(str(plan), "--repo", str(repo), "--concurrency", "2")
        assert again.returncode == 0, again.stdout + again.stderr
        assert session_id_from(again.stdout) == session_id
        assert len(model.requests) == requests_before
        assert sorted(merged_tasks(repo, session_id)) == TASK_IDS  # still one merge per task


def read_lines_in_background(process: subprocess.Popen[str]) -> list[str]:
    """Collect a process's stdout lines as they come (the list grows while it runs)."""
    lines: list[str] = []
    assert process.stdout is not None
    stream = process.stdout

    def pump() -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _task_1_3_after_its_file(conversation: Conversation) -> bool:
    """Task 1.3's second model call: its file is written by then."""
    task = conversation.task()
    return task is not None and task[0] == "1.3" and conversation.turn == 1


@pytest.mark.chaos
@pytest.mark.reliability(
    "worker SIGKILLed while an agent runs",
    "real session; SIGKILL the worker mid-agent, start another: the agent dies with it, the "
    "attempt is retried after the heartbeat timeout, each task merged once",
)
def test_worker_killed_mid_agent_recovers(tmp_path: Path, repo: Path, plan: Path) -> None:
    freeze = HoldFirst(when=_task_1_3_after_its_file)
    with (
        ScriptedModel(freeze) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        first = installation.start_worker()
        starter = installation.spawn_starter(
            str(plan),
            "--repo",
            str(repo),
            "--concurrency",
            "2",
            "--no-worker",
            "--heartbeat-timeout",
            "4",
        )
        lines = read_lines_in_background(starter)
        frozen = model.wait_for(
            lambda c: c.task() is not None and c.task()[0] == "1.3" and c.turn == 1,  # type: ignore[index]
            timeout=180,
        )
        # The CLI sees the sandbox's fixed path; its processes are found by the folder here.
        assert frozen.cwd == str(workspace_inside(str(repo)))
        [worktree] = (installation.state_dir / "worktrees").glob("*/1.3")
        assert processes_in(worktree), "the agent should be running in the task's worktree"
        # The starter's live view shows the agent's progress from its heartbeats.
        wait_until(
            lambda: any(
                "Task 1.3 (Notes): running — agent (task), round 1, attempt 1, turn 1" in x
                for x in lines
            ),
            60,
            f"the live view to show task 1.3's turn; saw {lines}",
        )

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        # The agent (and anything it started) dies with the worker: no orphan.
        wait_until(lambda: not processes_in(worktree), 20, "the orphaned agent to die")
        freeze.release.set()  # the frozen HTTP answer is for a dead client now

        installation.start_worker()
        assert starter.wait(timeout=300) == 0, "\n".join(lines)
        out = "\n".join(lines)
        session_id = session_id_from(out)
        assert_work_landed(repo, installation, session_id)
        runs = {
            task.id: (task.attempts, task.lost_runs)
            for task in installation.status(session_id).tasks
        }
        # The killed worker's run was lost, not failed: it spent no attempt.
        assert runs["1.3"] == (1, 1), runs
        # The second attempt resumed the first one's Claude session instead of starting over.
        transcripts = sorted((installation.state_dir / "transcripts").rglob("round-1-attempt-*"))
        task_13 = [path for path in transcripts if path.parent.name == "1.3"]
        first_events = [
            json.loads(path.read_text().splitlines()[0])
            for path in task_13
            if path.suffix == ".jsonl"
        ]
        assert len(first_events) == 2
        assert first_events[0]["session_id"] == first_events[1]["session_id"]
        resumed = [c for c in model.snapshot() if "was interrupted" in json.dumps(c.messages)]
        assert resumed and resumed[0].task() == ("1.3", "Notes")
        assert not [pid for pid in processes_in(installation.state_dir) if pid != os.getpid()]
