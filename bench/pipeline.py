"""The full pipeline on one isolated installation: its own embedded Temporal server, state dir,
ports and task queue (tests/harness.py), a worker subprocess whose memory is sampled, and the
real starter, timed from launch to exit."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from autopilot_testing import PlanFollower, ScriptedModel
from bench.cpu import read_pid, snapshot
from bench.histories import HistoryStats, collect
from bench.repos import merges_on_main
from tests.harness import ROOT, Autopilot, autopilot


def read_status_kb(pid: int, key: str) -> int:
    """A `VmRSS`/`VmHWM`-like field of /proc/<pid>/status, in kB (0 when unreadable)."""
    # Not psutil: it has no VmHWM (the peak), and one reader serves both fields.
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's resident memory on a thread: the series and its maximum."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples_kb: list[int] = []
        self.times_s: list[float] = []  # since the sampler started, one per sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.perf_counter()
        while not self._stop.is_set():
            rss = read_status_kb(self.pid, "VmRSS")
            if rss:
                self.samples_kb.append(rss)
                self.times_s.append(time.perf_counter() - started)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class PipelineResult:
    tasks: int
    review: str
    concurrency: int
    wall_s: float
    exit_code: int
    merged: int
    session_id: str
    worker_peak_rss_kb: int  # VmHWM: the worker's high-water mark over its whole life
    worker_rss_start_kb: int  # when the worker reported ready, before any session
    worker_rss_max_sampled_kb: int  # the largest VmRSS sampled during this run
    rss_samples: list[tuple[float, int]]  # (seconds since the starter was launched, kB)
    cpu_s: dict[str, float]  # CPU seconds by process during the run (bench.cpu)
    starter_startup_s: float  # starter launched -> the session workflow started
    starter_exit_s: float  # the last session run closed -> the starter exited
    history: HistoryStats = field(default_factory=HistoryStats)
    error: str = ""

    @property
    def fixed_s(self) -> float:
        """Paid once per session, whatever its size."""
        return self.starter_startup_s + self.starter_exit_s

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.merged == self.tasks and not self.error


def starter_argv(
    plan: Path, repo: Path, review: str, concurrency: int, remote: str | None = None
) -> list[str]:
    """`remote`: run the session on that remote instead (`repo` is its bare repository, where
    the merges are counted)."""
    return [
        sys.executable,
        str(ROOT / "starter.py"),
        str(plan),
        *(["--repo", str(repo)] if remote is None else ["--remote", remote]),
        "--review",
        review,
        "--concurrency",
        str(concurrency),
    ]


def session_id_in(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("Started session ", "Attached to running session ")):
            return line.rsplit(" ", 1)[1]
    return ""


class Installation:
    """One isolated installation (tests/harness.py) with its worker running: sessions run on
    it one after the other."""

    def __init__(self, root: Path, model_env: dict[str, str]) -> None:
        self.root = root
        self._model_env = model_env
        self._stack = contextlib.ExitStack()
        self.autopilot: Autopilot | None = None
        self.worker_pid = 0
        self.rss_start_kb = 0
        self.runs = 0

    def __enter__(self) -> Installation:
        try:
            self.autopilot = self._stack.enter_context(autopilot(self.root, self._model_env))
            worker = self._start_worker(self.autopilot)
        except BaseException:
            self._stack.close()  # the server the worker started, too
            raise
        self.worker_pid = worker.pid
        self.rss_start_kb = read_status_kb(worker.pid, "VmRSS")
        return self

    @staticmethod
    def _start_worker(installation: Autopilot) -> subprocess.Popen[bytes]:
        """The worker; once more if the first one met the server still starting up (it
        answers on its port before its frontend is healthy: "Frontend is not healthy yet")."""
        try:
            return installation.start_worker()
        except AssertionError as err:
            if "not healthy" not in str(err):
                raise
            time.sleep(2.0)  # give the server's frontend a moment; a second worker connects
            return installation.start_worker()

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(
        self,
        plan: Path,
        repo: Path,
        tasks: int,
        review: str,
        concurrency: int,
        timeout_s: float,
        remote: str | None = None,
    ) -> PipelineResult:
        """The plan through the starter, timed from launch to exit; then its histories."""
        assert self.autopilot is not None, "use the installation as a context manager"
        self.runs += 1
        log = self.root / f"starter-{self.runs}.log"
        error = ""
        server_pid = read_pid(self.autopilot.state_dir / "temporal" / "server.pid")
        cpu_before = snapshot(self.worker_pid, server_pid)
        with RssSampler(self.worker_pid) as sampler, log.open("w") as out:
            launched = time.time()
            started = time.perf_counter()
            try:
                done = subprocess.run(
                    starter_argv(plan, repo, review, concurrency, remote),
                    cwd=ROOT,
                    env=self.autopilot.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                    check=False,
                )
                exit_code = done.returncode
            except subprocess.TimeoutExpired:
                exit_code, error = -1, f"the starter did not finish within {timeout_s:.0f}s"
            wall = time.perf_counter() - started
            exited = time.time()
            cpu = snapshot(self.worker_pid, server_pid).minus(cpu_before)
        if exit_code not in (0, -1):
            error = f"starter exit code {exit_code}; see {log}"
        session_id = session_id_in(log)
        history = asyncio.run(collect(self.autopilot.address, session_id, tasks + 1))
        startup = history.session_start_s - launched if history.session_start_s else 0.0
        ending = exited - history.session_close_s if history.session_close_s else 0.0
        return PipelineResult(
            tasks=tasks,
            review=review,
            concurrency=concurrency,
            wall_s=wall,
            exit_code=exit_code,
            merged=merges_on_main(repo),
            session_id=session_id,
            worker_peak_rss_kb=read_status_kb(self.worker_pid, "VmHWM"),
            worker_rss_start_kb=self.rss_start_kb,
            worker_rss_max_sampled_kb=max(sampler.samples_kb, default=0),
            rss_samples=list(zip(sampler.times_s, sampler.samples_kb, strict=True)),
            cpu_s={
                "worker": cpu["worker"],
                "agents_and_git": cpu["agents_and_git"],
                "temporal_server": cpu["temporal_server"],
                "starter": cpu["children"],
                "bench_and_model": cpu["bench_and_model"],
            },
            starter_startup_s=startup,
            starter_exit_s=ending,
            history=history,
            error=error,
        )


@contextlib.contextmanager
def scratch_installation(prefix: str) -> Iterator[tuple[Path, Installation]]:
    """A scratch folder, gone afterwards, and an installation in it whose scripted model
    follows the plan."""
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch:
        root = Path(scratch)
        with (
            ScriptedModel(PlanFollower()) as model,
            Installation(root / "installation", model.env()) as installation,
        ):
            yield root, installation


Setting = TypeVar("Setting")


def alternating(settings: Sequence[Setting], turns: int) -> Iterator[tuple[int, Setting]]:
    """(turn, setting) for every setting in each turn, in reverse order every other turn: none
    always runs first (on a warm or a cold machine)."""
    for turn in range(turns):
        for setting in settings if turn % 2 == 0 else settings[::-1]:
            yield turn, setting
