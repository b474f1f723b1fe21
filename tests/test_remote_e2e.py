"""Remote mode across machines, simulated on one box through a real network transport.

Three workers, each with its own state dir and home, each in a mount namespace of its own
where the user's checkout is an empty directory: they share nothing but the remote (served by
`git daemon` on loopback) and one Temporal dev server. A 12-task session at concurrency 4;
one worker is killed with SIGKILL mid-run and another stopped with SIGTERM; a fourth worker
joins. Judged by the remote alone: every task merged exactly once, nothing left there but the
target branch; the user's checkout never touched.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.models import SessionState, TaskState
from autopilot_testing import (
    Conversation,
    HoldFirst,
    PlanFollower,
    Reply,
    ScriptedModel,
    ToolCall,
    ToolUses,
)
from tests.git_daemon import git_daemon
from tests.gitutil import git
from tests.harness import autopilot, wait_until
from tests.machines import checkout_state, own_mount_namespace, served_remote, start_machine
from tests.test_worker_capacity_e2e import agent_events, plan_of

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(480)]

TASKS = 12
HELD = 3  # the first runs wait on the model: one on each worker (each takes one agent)


class HoldFirstRuns:
    """The plan follower, holding the first answer of the first `count` tasks asked until
    `release` is set: that many agents are running, and stay so, while the test acts."""

    def __init__(self, count: int) -> None:
        self.release = threading.Event()
        self._follower = PlanFollower()
        self._count = count
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, conversation: Conversation) -> Reply:
        reply = self._follower(conversation)
        task = conversation.task()
        with self._lock:
            if task is not None and len(self._held) < self._count and task[0] not in self._held:
                self._held.add(task[0])
                reply.hold = self.release
        return reply


@pytest.mark.reliability(
    "Three workers on separate machines share only a git remote; one SIGKILLed, one SIGTERMed",
    "12 tasks at concurrency 4 over git daemon, each worker with its own state dir and no view "
    "of the user's checkout: every worker ran agents, every task merged exactly once on the "
    "remote, nothing left there but main, no attempt spent on the lost runs",
)
def test_workers_that_share_only_a_remote_merge_every_task_once(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(TASKS))
    checkout_before = checkout_state(repo)
    holder = HoldFirstRuns(HELD)
    machines = tmp_path / "machines"
    with (
        served_remote(tmp_path, repo) as remote,
        ScriptedModel(holder) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        url, bare = remote.url, remote.bare
        wrap = own_mount_namespace(repo)
        if wrap:  # what a worker's machine shows of the user's checkout: nothing
            shown = subprocess.run([*wrap, "ls", "-A", str(repo)], capture_output=True, text=True)
            assert (shown.returncode, shown.stdout) == (0, "")
        assert installation.starter("list").returncode == 0  # the one Temporal server
        workers = [
            start_machine(installation, machines, f"m{n}", repo, "--max-agents", "1")
            for n in range(3)
        ]
        started = installation.starter(
            str(plan),
            "--remote",
            url,
            "--detach",
            "--no-worker",
            "--concurrency",
            "4",
            "--review",
            "none",
            "--heartbeat-timeout",
            "10",
        )
        assert started.returncode == 0, started.stdout + started.stderr
        session = started.stdout.split("session ", 1)[1].split()[0]

        def running(index: int) -> bool:
            events = agent_events(installation.worker_log(index))
            return events.count("starting") > len(events) - events.count("starting")

        wait_until(lambda: all(running(n) for n in range(3)), 180, "an agent on every worker")
        workers[0].send_signal(signal.SIGKILL)
        workers[1].send_signal(signal.SIGTERM)
        assert workers[1].wait(timeout=60) == 0
        workers[0].wait(timeout=30)
        start_machine(installation, machines, "m3", repo, "--max-agents", "2")
        holder.release.set()

        done = installation.starter("watch", session, timeout=400)
        assert done.returncode == 0, done.stdout + done.stderr
        status = installation.status(session)

    # The session: complete, one attempt per task, the lost runs not counted against them.
    assert status.status == SessionState.COMPLETED
    assert {task.state for task in status.tasks} == {TaskState.MERGED}
    assert {task.attempts for task in status.tasks} == {1}
    assert sum(task.lost_runs for task in status.tasks) >= 2
    # Judged by the remote: each task merged exactly once, every file there, nothing left.
    merges = Counter(task for task, _ in gitops.list_merges(str(bare), "main", session))
    assert merges == Counter({str(n): 1 for n in range(1, TASKS + 1)})
    tree = git(bare, "ls-tree", "--name-only", "main").splitlines()
    assert {f"file{n}.txt" for n in range(1, TASKS + 1)} <= set(tree)
    assert remote.branches() == ["main"]
    assert remote.task_refs() == []
    # Each machine worked from its own cache of the remote, never from the user's checkout.
    for n in range(3):
        assert "agent starting" in installation.worker_log(n).read_text()
        assert list((machines / f"m{n}" / "state" / "remotes").glob("*.git"))
    assert checkout_state(repo) == checkout_before


def test_a_remote_given_as_a_path_runs_with_the_starter_s_own_worker(
    tmp_path: Path, repo: Path
) -> None:
    """One machine, the embedded defaults: `--remote <path of a bare repository>` starts the
    background worker as usual, and the session merges on the remote, not in a checkout."""
    bare = tmp_path / "shared.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(bare))
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(2))
    before = checkout_state(repo)
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--remote", str(bare), "--review", "none")
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]
    merges = Counter(task for task, _ in gitops.list_merges(str(bare), "main", session))
    assert merges == Counter({"1": 1, "2": 1})
    assert git(bare, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    assert checkout_state(repo) == before


@pytest.mark.reliability(
    "The remote goes away while an agent works, and comes back",
    "remote mode: the agent's work cannot be pushed and the next runs cannot reach the remote "
    "(RemoteAway): lost runs, no attempt spent; the task resumes "
    "in its workspace once the remote answers, and merges exactly once",
)
def test_a_remote_that_was_away_costs_no_attempt(tmp_path: Path, repo: Path) -> None:
    holder = HoldFirst()
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(1))
    served = tmp_path / "served"
    served.mkdir()
    bare = served / "project.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(bare))
    with (
        ScriptedModel(holder) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        with git_daemon(served) as daemon:
            url, port = daemon.url("project.git"), daemon.port
            assert installation.starter("list").returncode == 0
            start_machine(installation, tmp_path / "machines", "m0", repo)
            started = installation.starter(
                str(plan), "--remote", url, "--detach", "--no-worker", "--review", "none"
            )
            assert started.returncode == 0, started.stdout + started.stderr
            session = started.stdout.split("session ", 1)[1].split()[0]
            wait_until(lambda: model.snapshot(), 120, "the agent to ask the model")
        holder.release.set()  # the agent finishes while the remote is away
        log = installation.worker_log(0)
        wait_until(lambda: "work was not pushed" in log.read_text(), 120, "the push to fail")
        with git_daemon(served, port=port):
            done = installation.starter("watch", session)
            assert done.returncode == 0, done.stdout + done.stderr
            status = installation.status(session)
    task = status.tasks[0]
    assert (task.state, task.attempts) == (TaskState.MERGED, 1)
    assert task.lost_runs >= 1
    assert [t for t, _ in gitops.list_merges(str(bare), "main", session)] == ["1"]
    assert git(bare, "for-each-ref", "--format=%(refname)") == "refs/heads/main"


class PushesBehindTheBack:
    """A hostile agent in remote mode: before its task, it tries to reach the remote and the
    worker's cache of it directly."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.follower = PlanFollower()

    def attack(self) -> str:
        cache = 'C=$(dirname "$(cat .git/objects/info/alternates)")'
        tries = {
            "PUSH": f"git push {self.url} HEAD:refs/heads/main",
            "BRANCH": f"git push {self.url} HEAD:refs/heads/evil",
            "CACHEREF": 'git -C "$C" update-ref refs/heads/main HEAD',
            "CACHEOBJ": 'touch "$C/objects/evil"',
            "CACHECONFIG": 'git -C "$C" config remote.origin.url /tmp/evil',
        }
        lines = [cache] + [
            f"({command}) >/dev/null 2>&1 && echo {name}-DONE || echo {name}-BLOCKED"
            for name, command in tries.items()
        ]
        return "\n".join(lines)

    def __call__(self, conversation: Conversation) -> Reply:
        if conversation.turn == 0 and not conversation.side_call:
            return ToolUses([ToolCall("Bash", {"command": self.attack(), "description": "x"})])
        return self.follower(conversation)


@pytest.mark.reliability(
    "a hostile agent in remote mode pushes to the remote and writes the worker's cache of it",
    "every attempt is refused by the sandbox (no network, the cache read-only or hidden); only "
    "the task's merge lands on the remote's main",
)
def test_a_hostile_agent_cannot_reach_the_remote_or_the_cache(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(1))
    with served_remote(tmp_path, repo) as remote:
        agent = PushesBehindTheBack(remote.url)
        with (
            ScriptedModel(agent) as model,
            autopilot(tmp_path / "autopilot", model.env()) as installation,
        ):
            done = installation.starter(str(plan), "--remote", remote.url, "--review", "none")
            assert done.returncode == 0, done.stdout + done.stderr
            conversations = model.snapshot()
        results = "\n".join(r for c in conversations for r in c.last_tool_results)
        for name in ("PUSH", "BRANCH", "CACHEREF", "CACHEOBJ", "CACHECONFIG"):
            assert f"{name}-BLOCKED" in results and f"{name}-DONE" not in results, results
        assert remote.branches() == ["main"]
        log = git(remote.bare, "log", "--first-parent", "--format=%s", "main").splitlines()
        assert log == ["Merge task 1: File 1", "initial"]
        [cache] = (installation.state_dir / "remotes").glob("*.git")
        assert git(cache, "config", "remote.origin.url") == remote.url
        assert not (cache / "objects" / "evil").exists()
