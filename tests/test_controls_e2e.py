"""Operating a running session through the real server, with the starter's commands as a
person would type them: pause, concurrency, skip, resume, cancel, retry, the budget, search
attributes, the Web UI's HTTP API and the log lines."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from autopilot import git as gitops
from autopilot.infra import temporal_cli
from autopilot.models import SessionState, TaskState
from autopilot_testing import (
    STRUCTURED_OUTPUT,
    Conversation,
    HttpError,
    PlanFollower,
    Reply,
    Reviewer,
    ScriptedModel,
)
from tests.gitutil import git
from tests.harness import Autopilot, autopilot, processes_in, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def plan_text(*tasks: tuple[str, str]) -> str:
    """A one-batch plan; each task writes <id>.txt. (id, depends-on or "")."""
    parts = ["# Controls\n\n## Batch 1: All\n"]
    for task_id, depends in tasks:
        parts.append(f"\n### Task {task_id}: Write {task_id}\n")
        if depends:
            parts.append(f"\n**Depends on:** Task {depends}\n")
        parts.append(f"\n**Files:**\n- Create: `t{task_id}.txt`\n\n```\n{task_id}\n```\n")
    return "".join(parts)


class Holds:
    """Plan follower whose first agent reply for chosen tasks waits for a release."""

    def __init__(self, *held: str) -> None:
        self.release = {task_id: threading.Event() for task_id in held}
        self.follower = PlanFollower()
        self._seen: set[str] = set()

    def __call__(self, conversation: Conversation) -> Reply:
        reply = self.follower(conversation)
        task = conversation.task()
        if task and STRUCTURED_OUTPUT not in conversation.tools and task[0] in self.release:
            if task[0] not in self._seen:
                self._seen.add(task[0])
                reply.hold = self.release[task[0]]
        return reply

    def release_all(self) -> None:
        for event in self.release.values():
            event.set()


def asked(model: ScriptedModel, task_id: str) -> bool:
    return any(
        (c.task() or ("",))[0] == task_id and STRUCTURED_OUTPUT not in c.tools
        for c in model.snapshot()
    )


async def sessions_with(installation: Autopilot, query: str) -> list[str]:
    client = await Client.connect(installation.address, data_converter=pydantic_data_converter)
    return [execution.id async for execution in client.list_workflows(query)]


@pytest.mark.reliability(
    "session cancelled while agents run (after pause, skip, resume)",
    "real session via starter commands: running agents stopped, worktrees removed, branches "
    "kept, merged work stays; invalid commands refused (exit 2)",
)
def test_pause_concurrency_skip_resume_cancel(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text(("1.1", ""), ("1.2", ""), ("1.3", ""), ("1.4", ""), ("1.5", "1.4")))
    holds = Holds("1.1", "1.2", "1.4")
    with (
        ScriptedModel(holds) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(plan, repo)
        wait_until(lambda: asked(model, "1.1"), 120, "task 1.1 to start")

        # Pause: the running task finishes and merges, nothing new starts.
        paused = installation.starter("pause", session, "--reason", "lunch")
        assert paused.returncode == 0, paused.stderr
        assert "PAUSED: lunch" in paused.stdout
        assert asyncio.run(sessions_with(installation, "AutopilotStatus = 'Paused'")) == [session]
        holds.release["1.1"].set()
        wait_until(
            lambda: installation.status(session).task("1.1").state == TaskState.MERGED,
            120,
            "1.1 to merge while paused",
        )
        status = installation.status(session)
        assert [t.state for t in status.tasks[1:]] == [TaskState.PENDING] * 4
        assert not asked(model, "1.2")
        refused = installation.starter("pause", session)
        assert refused.returncode == 2 and "already paused" in refused.stderr

        # Concurrency and skip while paused; skipping a finished task is refused.
        assert installation.starter("concurrency", session, "2").returncode == 0
        # The README's temporal CLI line does the same as `starter.py skip`.
        cli = subprocess.run(
            [
                str(temporal_cli()),
                "workflow",
                "update",
                "execute",
                "--address",
                installation.address,
                "--workflow-id",
                session,
                "--name",
                "skip",
                "--input",
                '"1.3"',
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stdout + cli.stderr
        wrong = installation.starter("skip", session, "1.1")
        assert wrong.returncode == 2 and "Task 1.1 is already merged" in wrong.stderr
        unknown = installation.starter("retry", session, "9.9")
        assert unknown.returncode == 2 and "no Task 9.9" in unknown.stderr
        status = installation.status(session)
        assert status.concurrency == 2
        assert status.task("1.3").state == TaskState.SKIPPED

        # Resume: two agents at once (1.2 and 1.4, both held).
        assert installation.starter("resume", session).returncode == 0
        wait_until(lambda: asked(model, "1.2") and asked(model, "1.4"), 120, "1.2 and 1.4")
        assert asyncio.run(sessions_with(installation, "AutopilotStatus = 'Running'")) == [session]
        worktrees = installation.state_dir / "worktrees"
        assert processes_in(worktrees)

        # Cancel: the held agents are stopped and their workspaces go; they committed
        # nothing, so nothing of them reaches the repository.
        cancelled = installation.starter("cancel", session, "--reason", "enough")
        assert cancelled.returncode == 0, cancelled.stderr
        final = installation.starter("watch", session)
        assert final.returncode == 1, final.stdout + final.stderr
        status = installation.status(session)
        assert status.status == SessionState.CANCELLED
        states = {task.id: task.state for task in status.tasks}
        assert states == {
            "1.1": TaskState.MERGED,
            "1.2": TaskState.CANCELLED,
            "1.3": TaskState.SKIPPED,
            "1.4": TaskState.CANCELLED,
            "1.5": TaskState.CANCELLED,
        }
        wait_until(lambda: not processes_in(worktrees), 30, "the agents to be gone")
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
        for task_id in ("1.2", "1.4"):
            branch = gitops.branch_name(session, task_id)
            assert git(repo, "branch", "--list", branch) == ""
        assert [t for t, _ in gitops.list_merges(str(repo), "main", session)] == ["1.1"]
        late = installation.starter("resume", session)
        assert late.returncode == 2 and "has finished (cancelled)" in late.stderr
        holds.release_all()


class FailFirst:
    """Bad credentials for task 2.1's first agent run; the plan follower otherwise."""

    def __init__(self) -> None:
        self.follower = PlanFollower()
        self.failed = False

    def __call__(self, conversation: Conversation) -> Reply:
        task = conversation.task()
        if (
            task
            and task[0] == "2.1"
            and not self.failed
            and STRUCTURED_OUTPUT not in conversation.tools
        ):
            self.failed = True
            return HttpError(401, "authentication_error", "invalid x-api-key")
        return self.follower(conversation)


@pytest.mark.reliability(
    "bad credentials with --on-failure pause; cost budget reached",
    "real session: paused with the reason, dependant blocked, retry merges both; budget pause "
    "resumes only with a higher --max-cost-usd",
)
def test_on_failure_pause_then_retry_and_budget(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text(("2.1", ""), ("2.2", "2.1")))
    with (
        ScriptedModel(FailFirst()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(plan, repo, "--on-failure", "pause")
        wait_until(lambda: installation.status(session).paused, 120, "the failure to pause it")
        status = installation.status(session)
        assert status.task("2.1").state == TaskState.FAILED
        # A setup error (the model's auth) says so, and which commands fit.
        reason = status.pause_reason or ""
        assert reason.startswith("Task 2.1 cannot run on this setup (AgentAuth): ")
        assert reason.endswith(
            f"`starter.py retry {session} 2.1` and `starter.py resume {session}`"
        )
        assert status.task("2.2").state == TaskState.BLOCKED

        # Retry the failed task: its blocked dependant comes back with it.
        retried = installation.starter("retry", session, "2.1")
        assert retried.returncode == 0, retried.stderr
        status = installation.status(session)
        assert status.task("2.1").retries == 1 and status.task("2.2").retries == 1
        assert installation.starter("resume", session).returncode == 0
        done = installation.starter("watch", session)
        assert done.returncode == 0, done.stdout + done.stderr
        merges = [t for t, _ in gitops.list_merges(str(repo), "main", session)]
        assert merges == ["2.1", "2.2"]
        assert (repo / "t2.2.txt").read_text() == "2.2\n"

    # The budget: reaching it pauses the session; resuming needs a higher one.
    plan.write_text(plan_text(("3.1", ""), ("3.2", "")))
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot-budget", model.env()) as installation,
    ):
        session = installation.start_detached(plan, repo, "--max-cost-usd", "0.01")
        wait_until(lambda: installation.status(session).paused, 120, "the budget pause")
        status = installation.status(session)
        assert "budget reached" in (status.pause_reason or "")
        assert status.task("3.1").state == TaskState.MERGED
        assert status.task("3.2").state == TaskState.PENDING
        refused = installation.starter("resume", session)
        assert refused.returncode == 2 and "higher --max-cost-usd" in refused.stderr
        assert installation.starter("resume", session, "--max-cost-usd", "1000").returncode == 0
        assert installation.starter("watch", session).returncode == 0


def test_visibility_ui_api_list_and_logs(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text(("4.1", "")))
    secret = "sk-ant-test-DO-NOT-LOG-4f1e9c"
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", {**model.env(), "ANTHROPIC_API_KEY": secret}) as ap,
    ):
        done = ap.starter(str(plan), "--repo", str(repo))
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]

        # Search attributes: the finished session is found by status, plan and repo.
        query = (
            "AutopilotStatus = 'Completed' AND AutopilotPlan = 'plan.md' "
            f"AND AutopilotRepo = '{repo}'"
        )
        assert asyncio.run(sessions_with(ap, query)) == [session]
        listed = ap.starter("list", "--all", "--json")
        rows = json.loads(listed.stdout)
        assert rows[0]["id"] == session and rows[0]["status"] == "Completed"

        # The Web UI's HTTP API (served on the UI port) answers for the session.
        url = f"http://127.0.0.1:{ap.ui_port}/api/v1/namespaces/default/workflows/{session}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            body = json.loads(response.read())
        assert session in json.dumps(body)

        # Log lines carry the ids; the API key is in no log, transcript or history.
        lines = [
            json.loads(line)
            for line in (ap.state_dir / "logs" / "worker.jsonl").read_text().splitlines()
        ]
        finished = [line for line in lines if line.get("event") == "agent finished"]
        assert finished and finished[0]["task_id"] == "4.1"
        assert finished[0]["session_id"] == session and finished[0]["attempt"] == 1
        assert finished[0]["workflow_id"] == f"{session}/task-4.1"
        for path in ap.state_dir.rglob("*"):
            if path.is_file() and path.suffix in (".jsonl", ".log", ".stderr", ".json"):
                assert secret not in path.read_text(errors="replace"), path
        history = ap.starter("status", session, "--json").stdout
        assert secret not in history


def test_cleanup_removes_merged_branches_and_keeps_the_rest(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text(("5.1", ""), ("5.2", "")))
    reject_52 = Reviewer(
        lambda c: (
            {"verdict": "request_changes", "summary": "no", "findings": []}
            if (c.task() or ("",))[0] == "5.2"
            else {"verdict": "approve", "summary": "ok"}
        )
    )
    with (
        ScriptedModel(PlanFollower(reviewer=reject_52)) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo), "--review-rounds", "1")
        assert done.returncode == 1, done.stdout + done.stderr  # 5.2 was rejected
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        merged, failed = (gitops.branch_name(session, task) for task in ("5.1", "5.2"))
        assert git(repo, "rev-parse", "--verify", "-q", failed)

        dry = installation.starter("cleanup", "--repo", str(repo), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"would delete branch: {merged}" in dry.stdout
        assert f"keep: {failed} (not merged" in dry.stdout
        assert git(repo, "rev-parse", "--verify", "-q", merged)  # a dry run changes nothing

        real = installation.starter("cleanup", "--repo", str(repo))
        assert real.returncode == 0, real.stderr
        assert git(repo, "branch", "--list", merged) == ""
        assert git(repo, "branch", "--list", failed).strip().endswith(failed)
        everything = installation.starter(
            "cleanup", "--repo", str(repo), "--include-unmerged", "--keep", "nothing*"
        )
        assert everything.returncode == 0, everything.stderr
        assert git(repo, "branch", "--list", "autopilot/*") == ""
        assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
