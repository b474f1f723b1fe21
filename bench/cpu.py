"""CPU time spent by the processes of a run (psutil), to tell orchestration work from the
agents' own: the worker itself, what it ran (the agents and git: children it waited for), the
Temporal server, the starter, and this process (the scripted model answers on its threads)."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

import psutil


def process_cpu_s(pid: int) -> tuple[float, float]:
    """(own, waited-for children's) CPU seconds of `pid`; zeros when it cannot be read."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0, 0.0
    return times.user + times.system, times.children_user + times.children_system


def own_cpu_s() -> tuple[float, float]:
    """(this process, its waited-for children) CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class CpuSnapshot:
    worker: float = 0.0
    agents_and_git: float = 0.0  # the worker's children: claude CLI runs, git, checks
    temporal_server: float = 0.0
    bench_and_model: float = 0.0  # this process: the scripted model, the baseline's loop
    children: float = 0.0  # this process's children: the starter, or the baseline's agents

    def minus(self, earlier: CpuSnapshot) -> dict[str, float]:
        return {
            name: round(getattr(self, name) - getattr(earlier, name), 3)
            for name in self.__dataclass_fields__
        }


def snapshot(worker_pid: int = 0, server_pid: int = 0) -> CpuSnapshot:
    worker, agents = process_cpu_s(worker_pid) if worker_pid else (0.0, 0.0)
    server = sum(process_cpu_s(server_pid)) if server_pid else 0.0
    mine, children = own_cpu_s()
    return CpuSnapshot(worker, agents, server, mine, children)


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
