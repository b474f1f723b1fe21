"""A worker's capacity and how it stops, with real worker processes and real signals.

- `--max-agents N`: a worker runs at most N agents at once, and a session spreads its agents
  over the workers that have room.
- SIGTERM: the worker takes no new work, lets its running agent finish within the grace
  period, and hands over what still runs when the grace ends: lost, never failed, resumed on
  the next worker. Judged by git: every task merged exactly once.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.models import SessionState, TaskState
from autopilot_testing import HoldFirst, ScriptedModel, SlowFollower
from tests.gitutil import git
from tests.harness import Autopilot, autopilot, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(300)]


def plan_of(count: int) -> str:
    tasks = "\n".join(
        f"### Task {n}: File {n}\n\n**Files:**\n- Create: `file{n}.txt`\n\n```\nfile {n}\n```\n"
        for n in range(1, count + 1)
    )
    return f"# {count} tasks\n\n{tasks}"


def agent_events(log: Path) -> list[str]:
    """The worker's agent runs as they started and ended, in order."""
    return re.findall(
        r"agent (starting|finished|failed|handed over)", log.read_text(errors="replace")
    )


def most_at_once(events: list[str]) -> int:
    running = peak = 0
    for event in events:
        running += 1 if event == "starting" else -1
        peak = max(peak, running)
    return peak


def merged_tasks(repo: Path, session: str) -> list[str]:
    return [task for task, _ in gitops.list_merges(str(repo), "main", session)]


def finish_on_a_new_worker(
    installation: Autopilot, session: str, repo: Path, lost_runs: int
) -> None:
    """Another worker takes the session over: the task merged exactly once, one attempt."""
    installation.start_worker()
    done = installation.starter("watch", session)
    assert done.returncode == 0, done.stdout + done.stderr
    status = installation.status(session)
    task = status.tasks[0]
    assert status.status == SessionState.COMPLETED
    assert (task.state, task.attempts, task.lost_runs) == (TaskState.MERGED, 1, lost_runs)
    assert merged_tasks(repo, session) == ["1"]
    assert git(repo, "status", "--porcelain") == ""


def test_max_agents_caps_each_worker_and_the_session_spreads_over_them(
    tmp_path: Path, repo: Path
) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(4))
    with (
        ScriptedModel(SlowFollower(delay_s=1.0)) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        for _ in range(2):
            installation.start_worker("--max-agents", "1")
        session = installation.start_detached(plan, repo, "--concurrency", "4", "--review", "none")
        done = installation.starter("watch", session)
        assert done.returncode == 0, done.stdout + done.stderr

        runs = [agent_events(installation.worker_log(i)) for i in range(2)]
        assert [most_at_once(events) for events in runs] == [1, 1], runs  # the cap
        assert all("starting" in events for events in runs), runs  # both had work
        assert sum(events.count("finished") for events in runs) == 4
        assert sorted(merged_tasks(repo, session)) == ["1", "2", "3", "4"]


def start_held_session(
    installation: Autopilot, model: ScriptedModel, plan: Path, repo: Path
) -> str:
    session = installation.start_detached(plan, repo, "--review", "none")
    wait_until(
        lambda: any(c.task() == ("1", "File 1") for c in model.snapshot()),
        120,
        "the agent to ask the model",
    )
    return session


@pytest.mark.reliability(
    "Worker stopped with SIGTERM while its agent works (grace long enough)",
    "SIGTERM mid-run with --graceful-shutdown-s 60: the worker takes no new work, its agent "
    "finishes there, the worker exits 0; the next worker merges; no run lost",
)
def test_sigterm_lets_the_running_agent_finish(tmp_path: Path, repo: Path) -> None:
    holder = HoldFirst()
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(1))
    with (
        ScriptedModel(holder) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        first = installation.start_worker("--graceful-shutdown-s", "60")
        session = start_held_session(installation, model, plan, repo)
        first.send_signal(signal.SIGTERM)
        log = installation.worker_log(0)
        wait_until(lambda: "worker stopping" in log.read_text(), 30, "the worker to stop polling")
        assert first.poll() is None  # its agent still runs, within the grace
        holder.release.set()
        assert first.wait(timeout=60) == 0
        assert agent_events(log) == ["starting", "finished"]

        finish_on_a_new_worker(installation, session, repo, lost_runs=0)


@pytest.mark.reliability(
    "Worker stopped with SIGTERM and its grace period ends before the agent does",
    "SIGTERM mid-run with --graceful-shutdown-s 1: the agent is handed over as RunLost "
    "(a lost run, no attempt spent), the next worker resumes it; merged exactly once",
)
def test_sigterm_hands_over_what_the_grace_period_did_not_finish(
    tmp_path: Path, repo: Path
) -> None:
    holder = HoldFirst()
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(1))
    with (
        ScriptedModel(holder) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        first = installation.start_worker("--graceful-shutdown-s", "1")
        session = start_held_session(installation, model, plan, repo)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0  # the grace ended: the agent was handed over
        assert agent_events(installation.worker_log(0)) == ["starting", "handed over"]

        holder.release.set()  # the held reply goes to a CLI that is gone
        finish_on_a_new_worker(installation, session, repo, lost_runs=1)
