"""Make sure an agent run leaves no process behind, whatever happens to it or to the worker.

The CLI's Bash tool starts children in their own sessions, so killing the CLI (even its
process group) can leave them running. The pipeline's runs are in the sandbox's own PID
namespace (autopilot/agent/sandbox.py), which dies with them; `kill_tree` here still ends a run's
tree explicitly, through the process table (psutil: /proc on Linux) and the per-run marker.

`detect_guard` is the guard of runs outside the sandbox (the bench's bare work): a PID
namespace of its own (`unshare --pid --fork --kill-child`) where the machine allows it,
`setpriv --pdeathsig KILL` in front so that it dies with its parent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

import psutil

# Environment variable run_claude gives each run a unique value of; see kill_tree.
RUN_MARKER = "AUTOPILOT_AGENT_RUN"


@dataclass(frozen=True)
class ProcessGuard:
    prefix: list[str] = field(default_factory=list)
    description: str = "process group and /proc descendants (no PID namespace)"

    def wrap(self, argv: list[str]) -> list[str]:
        return [*self.prefix, *argv]


def _works(argv: list[str]) -> bool:
    try:
        done = subprocess.run(
            [*argv, "true"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def detect_guard() -> ProcessGuard:
    """Pick the strongest isolation this machine allows, once per process that runs agents."""
    setpriv, unshare = shutil.which("setpriv"), shutil.which("unshare")
    death = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    if unshare:
        namespace = [unshare, "--pid", "--fork", "--kill-child", "--mount-proc", "--"]
        if _works([*death, *namespace]):
            return ProcessGuard([*death, *namespace], "own PID namespace, dies with the worker")
    if death and _works(death):
        return ProcessGuard(death, "dies with the worker; descendants tracked through /proc")
    return ProcessGuard()


def descendants(pid: int) -> list[int]:
    """All live descendants of pid (of the processes this user may read)."""
    children: dict[int, list[int]] = {}
    # Not Process.children(): one process it may not read (hidepid=1) fails the whole call.
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):  # gone, or not ours to read
            children.setdefault(process.ppid(), []).append(process.pid)
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def marked(marker: str) -> list[int]:
    """Live processes whose environment holds RUN_MARKER=marker (of those this user may read).

    A process that left the tree (setsid plus a fork: reparented to init) still carries it."""
    found: list[int] = []
    if not marker:
        return found
    # Each call asks the process itself: process_iter(attrs) shares `info` between threads,
    # and the checks' thread and the agents' loop may both be killing a tree at once.
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):  # gone, or not ours to read
            if process.environ().get(RUN_MARKER) == marker:  # empty for zombies
                found.append(process.pid)
    return found


def kill_tree(pid: int, marker: str | None = None) -> None:
    """SIGKILL pid, its process group, every descendant it still has and, given the run's
    marker, every process carrying it in its environment."""
    targets = descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # it was started as a session (and group) leader
    for target in [pid, *targets]:
        _kill(target)
    # A marked process may fork while we kill: look again until none is left (bounded).
    for _ in range(10):
        left = [p for p in marked(marker or "") if p != os.getpid()]
        if not left:
            break
        for target in left:
            _kill(target)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
