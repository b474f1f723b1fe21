"""Soak: random SIGKILLs of the worker, the Temporal server and the agents during one session,
judged by git alone. See bench/README.md ("Soak").

    .venv/bin/python -m bench.soak --tasks 20 --kills 30 --seed 7
    .venv/bin/python -m bench.soak --tasks 8 --kills 10 --seed 11 --batches 2 --turn-delay 1 \
        --gap 2,5 --schedule cycle

A scratch repository, a plan of N tasks in B batches (each task creates its own file
`tasks/t<batch>_<n>.txt`), an isolated installation (tests/harness.py: its own state dir,
ports, task queue and embedded Temporal server), a worker, and the session started detached.
Then K kills at seeded random moments, each one of:

- worker: SIGKILL the worker's process group, then start a new worker;
- server: SIGKILL the embedded Temporal server, then start it again on the same SQLite file;
- claude: SIGKILL one running agent or reviewer `claude` (found through /proc: the claude
  binary, working in a task worktree under the state dir).

When the session has ended, the judge reads git: one merge per task on the target's
first-parent history, each task file added by one commit, no worktree and no unmerged task
branch left, no claude running; and the session's status: completed, not paused, and no
attempt spent by a kill ("lost is not failed"). Exit code 0 only when all of it holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any, Literal

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from autopilot.git import SESSION_TRAILER, TASK_TRAILER
from autopilot.infra import (
    Settings,
    ensure_embedded_server,
    exit_now,
    load_settings,
    search_attributes,
)
from autopilot.models import SessionState, SessionStatus, TaskState, TaskStatus
from autopilot_testing import (
    STRUCTURED_OUTPUT,
    Conversation,
    PlanFollower,
    ScriptedModel,
    SlowFollower,
)
from bench.repos import git, make_repo
from tests.harness import Autopilot, claude_bin, processes_in, wait_until, working_folder

Kind = Literal["worker", "server", "claude"]
KINDS: tuple[Kind, ...] = ("worker", "server", "claude")
Schedule = Literal["random", "cycle"]
REVIEW_MODES = ("none", "agent", "checks", "both")
# Turns of one clean run of the scripted model (autopilot_testing/scripted_model.py): the agent
# writes the file, commits with Bash, then summarises; the reviewer calls StructuredOutput,
# which ends the CLI's run (claude 2.1.197: one request per review, measured in a clean run).
AGENT_TURNS, REVIEWER_TURNS = 3, 1
# A lost run is noticed when the worker stops heartbeating; the shipped 60 s would make every
# worker kill cost a minute of waiting, and the soak is about what happens after it.
HEARTBEAT_TIMEOUT_S = 10.0
WORKER_READY_S = 90.0
PROCESS_GONE_S = 15.0


@dataclass(frozen=True)
class SoakConfig:
    tasks: int = 20
    kills: int = 30
    seed: int = 0
    batches: int = 4
    concurrency: int = 2
    turn_delay: float = 2.0  # seconds the scripted model takes per turn
    duration: float = 1800.0  # deadline for the session to end, from its start
    review: str = "agent"
    schedule: Schedule = "random"  # cycle: worker, server, claude, worker, ... (forces kinds)
    # Seconds between kills, drawn uniformly: at 3-12 s a 20-task session (2 s per turn, review
    # agent, concurrency 2; ~200 s with SIGTERMed agents) ended after 20 of its 30 kills.
    gap: tuple[float, float] = (2.0, 8.0)
    server_down: tuple[float, float] = (0.0, 3.0)  # seconds the killed server stays away
    claude_wait: float = 10.0  # how long a claude kill waits for a claude to be running
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S
    # SIGKILL, as the OOM killer sends; TERM is there to tell a wrapper's handling of KILL
    # apart from the rest of the pipeline's (bench/README.md, "Soak").
    claude_signal: Literal["KILL", "TERM"] = "KILL"


@dataclass(frozen=True)
class PlannedKill:
    """One kill of the seeded schedule, drawn before the session starts so that the same
    seed gives the same schedule however the run goes."""

    gap_s: float
    kind: Kind
    fallback: Kind  # when kind is claude and none runs
    pick: float  # which of the running claudes, as a fraction of their number
    server_down_s: float


@dataclass
class Kill:
    number: int
    at_s: float  # since the session started
    kind: Kind
    detail: str
    tasks: list[str]  # tasks with a claude running at that moment: the work it may cost
    planned: Kind  # what the schedule asked for (a claude kill falls back when none runs)


@dataclass
class ReviewerVerdict:
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class Turns:
    """Model turns (requests to the scripted model) against what a clean run needs."""

    agent: int = 0
    reviewer: int = 0
    agent_min: int = 0
    reviewer_min: int = 0
    by_task: dict[str, int] = field(default_factory=dict)  # agent + reviewer turns
    min_per_task: int = 0
    status_turns: int = 0  # sum of the tasks' `turns` in `status --json`

    @property
    def redone(self) -> int:
        """Turns beyond a clean run's, task by task (a task that failed early did fewer)."""
        return sum(max(0, count - self.min_per_task) for count in self.by_task.values())


@dataclass
class SoakResult:
    config: SoakConfig
    root: Path
    session_id: str = ""
    wall_s: float = 0.0
    kills: list[Kill] = field(default_factory=list)
    merged: int = 0
    turns: Turns = field(default_factory=Turns)
    verdict: ReviewerVerdict = field(default_factory=ReviewerVerdict)
    status: SessionStatus | None = None

    def kinds_done(self) -> Counter[str]:
        return Counter(kill.kind for kill in self.kills)


# ----------------------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------------------


def task_files(tasks: int, batches: int) -> dict[str, tuple[str, str]]:
    """task id -> (file, content), batch by batch: the sizes differ by at most one."""
    if tasks < 1 or not 1 <= batches <= tasks:
        raise ValueError(f"need 1 <= batches <= tasks (got {batches} batches, {tasks} tasks)")
    files: dict[str, tuple[str, str]] = {}
    for batch in range(1, batches + 1):
        size = tasks // batches + (batch <= tasks % batches)
        for index in range(1, size + 1):
            files[f"{batch}.{index}"] = (f"tasks/t{batch}_{index}.txt", f"task {batch}.{index}\n")
    return files


def plan_text(tasks: int, batches: int) -> str:
    lines = [f"# Soak plan: {tasks} tasks in {batches} batches", ""]
    current = 0
    for task_id, (path, content) in task_files(tasks, batches).items():
        batch = int(task_id.split(".")[0])
        if batch != current:
            current = batch
            lines += [f"## Batch {batch}: Files of batch {batch}", ""]
        lines += [
            f"### Task {task_id}: Write {path}",
            "",
            "**Files:**",
            f"- Create: `{path}`",
            "",
            "```text",
            content.rstrip("\n"),
            "```",
            "",
            f"**Commit:** soak: task {task_id}",
            "",
        ]
    return "\n".join(lines)


def kill_schedule(config: SoakConfig) -> list[PlannedKill]:
    rng = random.Random(config.seed)
    planned = []
    for number in range(config.kills):
        gap = rng.uniform(*config.gap)
        drawn: Kind = rng.choice(KINDS)
        kind: Kind = KINDS[number % len(KINDS)] if config.schedule == "cycle" else drawn
        fallback: Kind = rng.choice(("worker", "server"))
        planned.append(
            PlannedKill(gap, kind, fallback, rng.random(), rng.uniform(*config.server_down))
        )
    return planned


# ----------------------------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaudeProcess:
    pid: int
    task: str
    role: str  # agent | reviewer


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    return int(stat.rpartition(")")[2].split()[1])


def _is_claude(pid: int, binary: str) -> bool:
    if _link(Path(f"/proc/{pid}/exe")) == binary:
        return True
    argv = _cmdline(pid)
    return bool(argv) and os.path.realpath(argv[0]) == binary


def claude_processes(worktrees: Path) -> list[ClaudeProcess]:
    """The claude runs working in a task worktree: the outermost claude process of each (the
    CLI may start helpers of its own binary; killing the first one ends its whole run)."""
    binary = os.path.realpath(claude_bin())
    found = []
    for pid in processes_in(worktrees):
        if not _is_claude(pid, binary) or _is_claude(_parent(pid), binary):
            continue
        cwd = working_folder(pid, worktrees)
        if cwd is None:
            continue  # it exited since it was listed
        parts = cwd.relative_to(worktrees).parts
        task = parts[1] if len(parts) > 1 else "?"
        reviewing = any(arg.startswith("--json-schema") for arg in _cmdline(pid))
        role = "reviewer" if reviewing else "agent"
        found.append(ClaudeProcess(pid, task, role))
    return sorted(found, key=lambda proc: proc.pid)


def claude_anywhere(root: Path) -> list[str]:
    """Command lines of any claude process working under `root`."""
    binary = os.path.realpath(claude_bin())
    return [" ".join(_cmdline(pid))[:200] for pid in processes_in(root) if _is_claude(pid, binary)]


def _gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie (reaped here when it is our child)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


class Installation:
    """The harness's isolated installation with workers of our own: each in its own process
    group (the harness starts them in ours, and SIGKILLing a group would take this process
    with it), and the embedded server started by this process."""

    def __init__(self, root: Path, model_env: dict[str, str]) -> None:
        self.autopilot = Autopilot(root=root, model_env=model_env)
        self.settings: Settings = load_settings(self.autopilot.env())
        self.worker: subprocess.Popen[bytes] | None = None
        self.incidents: list[str] = []  # a worker or server that died without being killed

    @property
    def worktrees(self) -> Path:
        return self.autopilot.state_dir / "worktrees"

    @property
    def server_pid_file(self) -> Path:
        return self.autopilot.state_dir / "temporal" / "server.pid"

    def start_server(self) -> None:
        ensure_embedded_server(self.settings)

    def start_worker(self) -> None:
        # Its own process group, which a worker kill SIGKILLs whole (os.killpg).
        self.worker = self.autopilot.start_worker(own_session=True, ready_s=WORKER_READY_S)

    def kill_worker(self) -> str:
        worker = self.worker
        assert worker is not None
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=PROCESS_GONE_S)
        self.start_worker()
        return f"worker pid {worker.pid} (process group)"

    def server_pid(self) -> int | None:
        try:
            pid = int(self.server_pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        db = str(self.autopilot.state_dir / "temporal" / "autopilot.db")
        return pid if db in _cmdline(pid) else None  # never a process that reused the pid

    def kill_server(self, down_s: float) -> str:
        pid = self.server_pid()
        if pid is None:
            self.start_server()
            return "server not running: started"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: _gone(pid), PROCESS_GONE_S, f"the server (pid {pid}) to die")
        # The time the server stays away is part of the fault (activities heartbeat into
        # nothing, the worker's polls fail), not a wait for anything.
        time.sleep(down_s)
        self.start_server()
        return f"server pid {pid}, away {down_s:.1f} s"

    def check_alive(self) -> None:
        """A worker or server that died on its own is noted and started again: the session
        needs them to go on, and the report says it happened."""
        worker = self.worker
        if worker is not None and worker.poll() is not None:
            log = self.autopilot.root / f"worker-{self.autopilot.workers.index(worker)}.log"
            self.incidents.append(f"worker pid {worker.pid} exited {worker.returncode}: {log}")
            self.start_worker()
        if self.server_pid() is None:
            self.incidents.append("the server was not running: started again")
            self.start_server()

    def shutdown(self) -> None:
        self.autopilot.shutdown()


# ----------------------------------------------------------------------------------------------
# Watching the session
# ----------------------------------------------------------------------------------------------


class SessionWatch(threading.Thread):
    """Polls the session's workflow through Temporal (no worker needed) until it closes or
    shows `Paused`; rides out the server's absences by connecting again."""

    def __init__(self, settings: Settings, session_id: str) -> None:
        super().__init__(name="session-watch", daemon=True)
        self._settings = settings
        self._session_id = session_id
        self.ended = threading.Event()  # closed, or paused for an operator
        self.outcome = ""  # the closed status, or "paused"
        self._stop = threading.Event()

    def run(self) -> None:
        asyncio.run(self._poll())

    def stop(self) -> None:
        self._stop.set()

    async def _poll(self) -> None:
        # The SDK core warns on stderr at every retried call while the server is away, which
        # the soak causes on purpose: only its errors are shown.
        quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
        runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))
        client: Client | None = None
        while not self._stop.is_set():
            try:
                if client is None:
                    client = await Client.connect(
                        self._settings.temporal_address,
                        namespace=self._settings.temporal_namespace,
                        data_converter=pydantic_data_converter,
                        runtime=runtime,
                    )
                described = await client.get_workflow_handle(self._session_id).describe()
                status = described.status
                shown = described.typed_search_attributes.get(search_attributes.STATUS)
                if status not in (None, WorkflowExecutionStatus.RUNNING):
                    if status != WorkflowExecutionStatus.CONTINUED_AS_NEW:
                        self.outcome = status.name.lower()
                        self.ended.set()
                        return
                elif shown == "Paused":
                    self.outcome = "paused"
                    self.ended.set()
                    return
            except Exception:  # the server is away or restarting: ask again next round
                client = None
            await asyncio.to_thread(self._stop.wait, 1.0)  # the polling interval


# ----------------------------------------------------------------------------------------------
# The judge
# ----------------------------------------------------------------------------------------------


def first_parent(repo: Path, branch: str) -> list[tuple[str, int, str, str]]:
    """(sha, parents, session trailer, task trailer) of the branch's first-parent history."""
    fmt = (
        f"%H%x1f%P%x1f%(trailers:key={SESSION_TRAILER},valueonly,unfold,separator=%x1d)"
        f"%x1f%(trailers:key={TASK_TRAILER},valueonly,unfold,separator=%x1d)%x1e"
    )
    # Not bench.repos.git: str.strip() counts \x1c-\x1f as whitespace and would eat the
    # empty trailer fields of the last record (the initial commit).
    out = subprocess.run(
        ["git", "-C", str(repo), "log", "--first-parent", f"--format={fmt}", branch, "--"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = []
    for record in out.split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) == 4:
            sha, parents, session, task = fields
            found.append((sha, len(parents.split()), session, task))
    return found


REVIEW_TRANSCRIPT = re.compile(r"^review-round-\d+-attempt-(\d+)-")


def spent_attempts(task: TaskStatus) -> str:
    """The task's failed runs (each spends one of --max-attempts), from its status, in a soak
    (one agent round, one approving review at most): agent attempts beyond the first, and
    reviewer runs beyond the one that reviewed that were not lost. `transcripts` lists every
    agent run and each review's last run, named `review-round-R-attempt-N` for the Nth run
    of that review (workflows/task.py); lost runs of both are in `lost_runs`. A lost agent
    run without a transcript makes this count fewer reviewer failures, never more."""
    names = [Path(path).name for path in task.transcripts]
    agent_runs = sum(name.startswith("round-") for name in names)
    reviewer_runs = [int(m.group(1)) for n in names if (m := REVIEW_TRANSCRIPT.match(n))]
    reviewer_lost = task.lost_runs - max(0, agent_runs - task.attempts)
    reviewer_failed = max(0, sum(runs - 1 for runs in reviewer_runs) - reviewer_lost)
    # A task that failed spent every attempt; one that merged had its last one succeed.
    agent_failed = task.attempts if task.state == TaskState.FAILED else max(0, task.attempts - 1)
    spent = f"agent {agent_failed}, reviewer {reviewer_failed}"
    if task.state == TaskState.FAILED:
        # A task whose reviewer failed for good has no runs in its status at all.
        return f"{spent}; failed: {(task.last_error or '')[:160]}"
    return spent if agent_failed or reviewer_failed else ""


def judge(
    repo: Path,
    target: str,
    session_id: str,
    files: dict[str, tuple[str, str]],
    installation: Installation,
    status: SessionStatus | None,
    outcome: str,
) -> ReviewerVerdict:
    verdict = ReviewerVerdict()
    fail, note = verdict.failures.append, verdict.notes.append

    merged: Counter[str] = Counter()
    history = first_parent(repo, target)
    for sha, parents, session, task in history:
        if parents == 0:
            continue  # the repository's initial commit
        if parents < 2:
            fail(f"{sha[:10]} on {target}'s first-parent history is not a task merge")
        elif session != session_id or task not in files:
            fail(f"merge {sha[:10]} names session {session!r}, task {task!r}: not one of ours")
        else:
            merged[task] += 1
    for task_id in files:
        if merged[task_id] != 1:
            fail(f"task {task_id} merged {merged[task_id]} times on {target} (want 1)")

    for task_id, (path, content) in files.items():
        adds = git(repo, "log", "--all", "--diff-filter=A", "--format=%H", "--", path).split()
        if len(adds) != 1:
            fail(f"{path} (task {task_id}) added by {len(adds)} commits: {adds}")
        shown = subprocess.run(
            ["git", "-C", str(repo), "show", f"{target}:{path}"], capture_output=True, text=True
        )
        if shown.returncode != 0 or shown.stdout != content:
            fail(f"{path} on {target} is missing or not the task's content")

    worktrees = [
        line.split(" ", 1)[1]
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]
    if worktrees != [str(repo)]:
        fail(f"worktrees left: {worktrees[1:]}")
    # A clean run leaves the session's own folder (worktrees/<session>/) behind, empty: noted;
    # anything in it (a task's worktree, a file) fails.
    below = sorted(installation.worktrees.rglob("*")) if installation.worktrees.exists() else []
    left = [str(p) for p in below if p.parent != installation.worktrees or not p.is_dir()]
    if left:
        fail(f"the state dir's worktrees folder is not empty: {left[:5]}")
    elif below:
        note(f"empty session folder(s) left in the state dir's worktrees: {len(below)}")

    kept = []
    for branch in git(
        repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/autopilot/"
    ).split():
        ancestor = subprocess.run(
            ["git", "-C", str(repo), "merge-base", "--is-ancestor", branch, target]
        )
        if ancestor.returncode == 0:
            kept.append(branch)
        else:
            fail(f"task branch {branch} is not merged into {target}")
    note(f"merged task branches kept ({len(kept)}): the pipeline keeps them, `cleanup` removes")

    try:
        wait_until(
            lambda: (
                not claude_anywhere(installation.autopilot.root)
                and not processes_in(installation.worktrees)
            ),
            PROCESS_GONE_S,
            "every claude run to be gone",
        )
    except AssertionError:
        fail(f"claude processes left: {claude_anywhere(installation.autopilot.root)}")

    if outcome != "completed":
        fail(f"the session ended {outcome or 'not at all (deadline)'}")
    if status is None:
        fail("no status from `starter.py status --json`")
    else:
        if status.paused:
            fail(f"the session is paused for an operator: {status.pause_reason}")
        if status.status != SessionState.COMPLETED:
            fail(f"the session's status is {status.status.value}")
        spent = {t.id: failed for t in status.tasks if (failed := spent_attempts(t))}
        if spent:
            fail(f"kills spent attempts (lost runs must not): {spent}")
        lost = sum(t.lost_runs for t in status.tasks)
        note(f"lost runs (resumed, no attempt spent): {lost}")
    return verdict


# ----------------------------------------------------------------------------------------------
# Turns
# ----------------------------------------------------------------------------------------------


def count_turns(
    requests: Sequence[Conversation],
    files: dict[str, tuple[str, str]],
    review: str,
    status: SessionStatus | None,
) -> Turns:
    reviewed = review in ("agent", "both")
    turns = Turns(
        agent_min=AGENT_TURNS * len(files),
        reviewer_min=REVIEWER_TURNS * len(files) if reviewed else 0,
        min_per_task=AGENT_TURNS + (REVIEWER_TURNS if reviewed else 0),
    )
    for conversation in requests:
        if STRUCTURED_OUTPUT in conversation.tools:
            turns.reviewer += 1
        else:
            turns.agent += 1
        task = conversation.task()
        key = task[0] if task is not None else "?"
        turns.by_task[key] = turns.by_task.get(key, 0) + 1
    if status is not None:
        turns.status_turns = sum(task.turns for task in status.tasks)
    return turns


def redone_per_kill(kills: Sequence[Kill], turns: Turns) -> tuple[list[float], float]:
    """Each task's turns beyond a clean run, shared evenly among the kills that hit it (had
    its claude running when they happened); what no kill hit is returned apart."""
    hits: Counter[str] = Counter(task for kill in kills for task in set(kill.tasks))
    per_kill = [
        sum(
            max(0, turns.by_task.get(task, 0) - turns.min_per_task) / hits[task]
            for task in set(kill.tasks)
        )
        for kill in kills
    ]
    unattributed = sum(
        max(0, count - turns.min_per_task)
        for task, count in turns.by_task.items()
        if hits[task] == 0
    )
    return per_kill, float(unattributed)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def read_status(installation: Installation, session_id: str) -> SessionStatus | None:
    done = installation.autopilot.starter("status", session_id, "--json")
    if done.returncode != 0:
        return None
    return SessionStatus.model_validate_json(done.stdout)


def kill_claude(
    installation: Installation, pick: float, signum: signal.Signals = signal.SIGKILL
) -> ClaudeProcess | None:
    """Signal (SIGKILL) one running claude (the `pick` fraction of them); None when none runs. A run
    may end between the listing and the kill: then the listing is taken again."""
    binary = os.path.realpath(claude_bin())
    for _ in range(3):
        running = claude_processes(installation.worktrees)
        if not running:
            return None
        target = running[min(int(pick * len(running)), len(running) - 1)]
        if not _is_claude(target.pid, binary):
            continue  # it ended and the pid may be someone else's now
        try:
            os.kill(target.pid, signum)
        except ProcessLookupError:
            continue
        wait_until(partial(_gone, target.pid), PROCESS_GONE_S, f"claude {target.pid} to die")
        return target
    return None


def do_kill(
    installation: Installation, planned: PlannedKill, config: SoakConfig
) -> tuple[Kind, str, list[str], float]:
    """Carry out one planned kill: (the kind done, what was killed, the tasks it hit, when
    (time.monotonic) the signal went)."""
    if planned.kind == "claude":
        try:
            wait_until(
                lambda: claude_processes(installation.worktrees),
                config.claude_wait,
                "a claude run to kill",
                interval=0.2,
            )
        except AssertionError:
            pass  # none ran for a while (a merge, the batch's end): the fallback kind instead
        else:
            signum = signal.Signals[f"SIG{config.claude_signal}"]
            when = time.monotonic()
            killed = kill_claude(installation, planned.pick, signum)
            if killed is not None:
                detail = f"{killed.role} of task {killed.task}, pid {killed.pid}"
                return "claude", detail, [killed.task], when
    kind: Kind = planned.fallback if planned.kind == "claude" else planned.kind
    hit = sorted({proc.task for proc in claude_processes(installation.worktrees)})
    when = time.monotonic()
    if kind == "worker":
        return kind, installation.kill_worker(), hit, when
    return kind, installation.kill_server(planned.server_down_s), hit, when


def merged_tasks(repo: Path, target: str, session_id: str) -> set[str]:
    return {
        task
        for _, parents, session, task in first_parent(repo, target)
        if parents > 1 and session == session_id
    }


def save_evidence(result: SoakResult, repo: Path, requests: Sequence[Conversation]) -> None:
    """What a failed run leaves for a person: the status, the target's history, the model's
    request log (the worker logs are in the installation's dir already)."""
    if result.status is not None:
        (result.root / "status.json").write_text(result.status.model_dump_json(indent=2))
    log = git(repo, "log", "--graph", "--all", "--format=%h %p %s%n%(trailers:only,unfold)")
    (result.root / "git-log.txt").write_text(log + "\n")
    rows = [
        {
            "seq": c.seq,
            "task": (c.task() or ("?", ""))[0],
            "role": "reviewer" if STRUCTURED_OUTPUT in c.tools else "agent",
            "turn": c.turn,
            "cwd": c.cwd,
            "session": c.session_id,
        }
        for c in requests
    ]
    (result.root / "requests.json").write_text(json.dumps(rows, indent=1) + "\n")


def run_soak(config: SoakConfig, root: Path, say: bool = True) -> SoakResult:
    """One soak run in `root` (made if missing); the scratch is left there."""

    def out(line: str) -> None:
        if say:
            print(line, flush=True)

    root.mkdir(parents=True, exist_ok=True)
    result = SoakResult(config=config, root=root)
    files = task_files(config.tasks, config.batches)
    repo = make_repo(root / "repo")
    plan = root / "plan.md"
    plan.write_text(plan_text(config.tasks, config.batches))
    schedule = kill_schedule(config)
    responder = SlowFollower(config.turn_delay) if config.turn_delay > 0 else PlanFollower()
    with ScriptedModel(responder) as model:
        installation = Installation(root / "autopilot", model.env())
        try:
            installation.start_server()
            installation.start_worker()
            session = installation.autopilot.start_detached(
                plan,
                repo,
                "--no-worker",
                "--concurrency",
                str(config.concurrency),
                "--review",
                config.review,
                "--heartbeat-timeout",
                f"{config.heartbeat_timeout:g}",
            )
            result.session_id = session
            started = time.monotonic()
            deadline = started + config.duration
            out(f"session {session} started; state dir {installation.autopilot.state_dir}")
            watch = SessionWatch(installation.settings, session)
            watch.start()
            for number, planned in enumerate(schedule, 1):
                # The gap is the chaos schedule's own timer; it ends early with the session.
                if watch.ended.wait(planned.gap_s) or time.monotonic() > deadline:
                    break
                installation.check_alive()
                kind, detail, tasks, when = do_kill(installation, planned, config)
                kill = Kill(number, when - started, kind, detail, tasks, planned.kind)
                result.kills.append(kill)
                out(f"kill {number:>2} at {kill.at_s:6.1f} s: {kind:<6} {detail}")
            while not watch.ended.wait(1.0) and time.monotonic() < deadline:
                installation.check_alive()  # a worker that died by itself would stall it
            result.wall_s = time.monotonic() - started
            watch.stop()
            result.merged = len(merged_tasks(repo, "main", session) & set(files))
            result.status = read_status(installation, session)
            result.verdict = judge(
                repo, "main", session, files, installation, result.status, watch.outcome
            )
            for line in installation.incidents:
                result.verdict.notes.append(f"not killed by the soak: {line}")
        finally:
            installation.shutdown()
        requests = model.snapshot()
        if model.errors:
            result.verdict.failures.append(f"the scripted model failed: {model.errors[:3]!r}")
    result.turns = count_turns(requests, files, config.review, result.status)
    if not result.verdict.ok:
        save_evidence(result, repo, requests)
    return result


def report(result: SoakResult) -> str:
    config, turns = result.config, result.turns
    kinds = result.kinds_done()
    roles = Counter(kill.detail.split(" ", 1)[0] for kill in result.kills if kill.kind == "claude")
    lines = [
        f"seed {config.seed}: {config.tasks} tasks in {config.batches} batches, concurrency "
        f"{config.concurrency}, review {config.review}, {config.turn_delay:g} s per model turn, "
        f"schedule {config.schedule}"
        + (
            ""
            if config.claude_signal == "KILL"
            else f", claude kills with SIG{config.claude_signal}"
        ),
        f"kills: {len(result.kills)} of {config.kills}: worker {kinds['worker']}, server "
        f"{kinds['server']}, claude {kinds['claude']} (agent {roles['agent']}, reviewer "
        f"{roles['reviewer']})"
        + ("" if len(result.kills) == config.kills else "; the session ended before the rest"),
        f"time: {result.wall_s:.1f} s from the session's start to its end",
        f"tasks merged: {result.merged} of {config.tasks}",
        f"turns: agent {turns.agent} (a clean run: {turns.agent_min}), reviewer "
        f"{turns.reviewer} (clean: {turns.reviewer_min}); turns redone: {turns.redone}"
        + (f", {turns.redone / len(result.kills):.2f} per kill" if result.kills else "")
        + f"; agent turns in status: {turns.status_turns}",
    ]
    per_kill, unattributed = redone_per_kill(result.kills, turns)
    for kill, redone in zip(result.kills, per_kill, strict=True):
        hit = ", ".join(kill.tasks) or "no claude running"
        lines.append(
            f"  kill {kill.number:>2} {kill.at_s:6.1f} s {kill.kind:<6} ({hit}): "
            f"{redone:.1f} turns redone"
        )
    if unattributed:
        lines.append(f"  turns redone on tasks no kill hit: {unattributed:.0f}")
    verdict = result.verdict
    lines.append(f"verdict: {'PASS' if verdict.ok else 'FAIL'}")
    lines += [f"  FAILED: {failure}" for failure in verdict.failures]
    lines += [f"  note: {note}" for note in verdict.notes]
    if not verdict.ok:
        lines.append(
            f"  evidence: {result.root} (status.json, git-log.txt, requests.json, "
            "autopilot/worker-*.log, autopilot/state/logs/)"
        )
    return "\n".join(lines)


def seconds_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give MIN,MAX in seconds (got {text!r})") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"need 0 <= MIN <= MAX (got {text!r})")
    return low, high


def build_parser() -> argparse.ArgumentParser:
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="Random SIGKILLs during one session, judged by git (bench/README.md).",
    )

    def option(flag: str, **kwargs: Any) -> None:
        """An option for the SoakConfig field of the same name, its default the field's."""
        name = flag.removeprefix("--").replace("-", "_")
        parser.add_argument(flag, default=getattr(defaults, name), **kwargs)

    option("--tasks", type=int)
    option("--kills", type=int)
    option("--seed", type=int)
    option("--batches", type=int)
    option("--concurrency", type=int)
    option("--turn-delay", type=float, help="seconds per model turn")
    option("--duration", type=float, help="deadline for the session to end, seconds from its start")
    option("--review", choices=REVIEW_MODES)
    option(
        "--schedule",
        choices=["random", "cycle"],
        help="the kinds drawn at random, or in turn (worker, server, claude, ...)",
    )
    option(
        "--gap",
        type=seconds_range,
        metavar="MIN,MAX",
        help="seconds between kills, drawn uniformly (%(default)s)",
    )
    option(
        "--heartbeat-timeout",
        type=float,
        metavar="S",
        help="the session's --heartbeat-timeout: how soon a killed worker's runs count as lost",
    )
    option(
        "--claude-signal",
        choices=["KILL", "TERM"],
        help="the signal a claude kill sends (%(default)s)",
    )
    parser.add_argument("--work", type=Path, help="scratch directory (a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch of a passing run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = vars(args)
    config = SoakConfig(**{f.name: given[f.name] for f in fields(SoakConfig) if f.name in given})
    root = args.work or Path(tempfile.mkdtemp(prefix="autopilot-soak-"))
    result = run_soak(config, root)
    print(report(result), flush=True)
    if result.verdict.ok and not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if result.verdict.ok else 1


if __name__ == "__main__":
    exit_now(main())
