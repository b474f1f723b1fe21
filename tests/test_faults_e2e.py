"""Faults, by killing real processes: nothing stuck, nothing lost, nothing done twice.

The worker killed between a merge and the activity's completion, the Temporal server killed
mid-session, a person committing to the target branch while the session runs, bad
credentials, and a plan file edited under a running session.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.infra import AFTER_MERGE, FAILPOINTS_ENV
from autopilot.models import SessionState, TaskState
from autopilot_testing import (
    STRUCTURED_OUTPUT,
    Conversation,
    HttpError,
    PlanFollower,
    Reply,
    ScriptedModel,
)
from tests.gitutil import commit_file, git
from tests.harness import Autopilot, autopilot, processes_in, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(400)]

PLAN = """\
# Two tasks

### Task 1: First

**Files:**
- Create: `first.txt`

```
first
```

### Task 2: Second

**Files:**
- Create: `second.txt`

```
second
```
"""


class HoldTask:
    """The plan follower, holding one task's first agent reply until released."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.release = threading.Event()
        self.follower = PlanFollower()
        self._held = False

    def __call__(self, conversation: Conversation) -> Reply:
        reply = self.follower(conversation)
        task = conversation.task()
        agent = STRUCTURED_OUTPUT not in conversation.tools
        if task and task[0] == self.task_id and agent and not self._held:
            self._held = True
            reply.hold = self.release
        return reply


def write_plan(tmp_path: Path, text: str = PLAN) -> Path:
    plan = tmp_path / "plan.md"
    plan.write_text(text)
    return plan


def worker_pid(installation: Autopilot) -> int:
    return int((installation.state_dir / "logs" / "worker.pid").read_text())


@pytest.mark.reliability(
    "Worker SIGKILLed between a merge and the activity's completion",
    (
        "a git reference-transaction hook holds the merge after the target ref moved;"
        " the worker is SIGKILLed there; the retried merge finds the task's trailers "
        "on the target: one merge, same sha"
    ),
)
def test_worker_killed_between_merge_and_completion(tmp_path: Path, repo: Path) -> None:
    """The worker stops just after the target ref moved (a failpoint: our git runs no hook)
    and dies there. The retried merge finds the task's merge on the target and does not merge
    again."""
    marker = tmp_path / "merged-once"
    plan = write_plan(tmp_path)
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        installation.extra_env[FAILPOINTS_ENV] = f"{AFTER_MERGE}={marker}"
        session = installation.start_detached(plan, repo, "--heartbeat-timeout", "4")
        wait_until(marker.exists, 180, "the first merge to move the target")
        first_merge = gitops.list_merges(str(repo), "main", session)
        assert [task for task, _ in first_merge] == ["1"]
        os.kill(worker_pid(installation), signal.SIGKILL)

        installation.start_worker()
        done = installation.starter("watch", session)
        assert done.returncode == 0, done.stdout + done.stderr
        merges = gitops.list_merges(str(repo), "main", session)
        assert [task for task, _ in merges] == ["1", "2"]  # task 1 merged exactly once
        assert merges[0] == first_merge[0]
        assert git(repo, "status", "--porcelain") == ""


@pytest.mark.reliability(
    "Temporal dev server SIGKILLed mid-session, restarted on the same database",
    (
        "SIGKILL the embedded server while an agent works; the next starter command "
        "restarts it on the same SQLite file; the worker reconnects; the session "
        "completes"
    ),
)
def test_temporal_server_killed_mid_session(tmp_path: Path, repo: Path) -> None:
    holder = HoldTask("1")
    plan = write_plan(tmp_path)
    with (
        ScriptedModel(holder) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(plan, repo)
        wait_until(lambda: any(c.task() == ("1", "First") for c in model.snapshot()), 120, "1")
        server_pid = int((installation.state_dir / "temporal" / "server.pid").read_text())
        os.kill(server_pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{server_pid}").exists(), 30, "the server to die")
        holder.release.set()  # the agent finishes while the server is down

        # The next command finds no server and starts it again on the same database; the
        # worker reconnects by itself and the session carries on.
        done = installation.starter("watch", session)
        assert done.returncode == 0, done.stdout + done.stderr
        assert [t for t, _ in gitops.list_merges(str(repo), "main", session)] == ["1", "2"]
        assert installation.status(session).status == SessionState.COMPLETED


@pytest.mark.reliability(
    "A person commits to the target branch while the session runs",
    (
        "commit to main while task 1 runs; task 2 branches from the new head; both "
        "merge; the person's commit is kept"
    ),
)
def test_a_person_commits_to_the_target_while_it_runs(tmp_path: Path, repo: Path) -> None:
    holder = HoldTask("1")
    plan = write_plan(tmp_path)
    with (
        ScriptedModel(holder) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(plan, repo)
        wait_until(lambda: any(c.task() == ("1", "First") for c in model.snapshot()), 120, "1")
        human = commit_file(repo, "human.txt", "mine\n", "a person's own commit")
        holder.release.set()
        done = installation.starter("watch", session)
        assert done.returncode == 0, done.stdout + done.stderr

        assert (repo / "human.txt").read_text() == "mine\n"  # nothing lost or reverted
        assert git(repo, "merge-base", "--is-ancestor", human, "main", check=False) == ""
        second = gitops.branch_name(session, "2")
        # Task 2 started after the person's commit: it branched from the new head.
        ancestor = git(repo, "merge-base", "--is-ancestor", human, second, check=False)
        assert ancestor == ""
        assert [t for t, _ in gitops.list_merges(str(repo), "main", session)] == ["1", "2"]


class BadCredentials:
    def __call__(self, conversation: Conversation) -> Reply:
        return HttpError(401, "authentication_error", "invalid x-api-key")


@pytest.mark.reliability(
    "Bad credentials (API 401)",
    (
        "every request answers 401: the first task fails once (not retried), the "
        "session pauses with what to fix, no other task is tried"
    ),
)
def test_bad_credentials_pause_the_session_with_what_to_fix(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    with (
        ScriptedModel(BadCredentials()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(plan, repo)
        wait_until(lambda: installation.status(session).paused, 120, "the pause")
        status = installation.status(session)
        assert status.task("1").state == TaskState.FAILED
        assert status.task("2").state == TaskState.PENDING  # no crash loop over every task
        reason = status.pause_reason or ""
        assert "AgentAuth" in reason and "ANTHROPIC_API_KEY" in reason
        assert f"`starter.py retry {session} 1`" in reason
        assert f"`starter.py resume {session}`" in reason
        assert len(model.snapshot()) == 1  # one request: not retried
        assert installation.starter("cancel", session).returncode == 0
        assert installation.starter("watch", session).returncode == 1


@pytest.mark.reliability(
    "The plan file changes while the session runs",
    (
        "edit the plan mid-session: `status` says the file changed, the session "
        "finishes its parsed snapshot"
    ),
)
def test_the_plan_file_changing_under_a_session(tmp_path: Path, repo: Path) -> None:
    holder = HoldTask("1")
    plan = write_plan(tmp_path)
    with (
        ScriptedModel(holder) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(plan, repo)
        wait_until(lambda: any(c.task() == ("1", "First") for c in model.snapshot()), 120, "1")
        plan.write_text(PLAN.replace("### Task 2: Second", "### Task 2: Renamed"))
        shown = installation.starter("status", session)
        assert "the plan file changed since this session parsed it" in shown.stdout
        holder.release.set()
        assert installation.starter("watch", session).returncode == 0
        titles = [task.title for task in installation.status(session).tasks]
        assert titles == ["First", "Second"]  # the snapshot, not the edited file
        assert not processes_in(installation.state_dir)
