"""Make sure an agent run leaves no process behind, whatever happens to it or to the worker.

The CLI's Bash tool starts children in their own sessions, so killing the CLI (even its
process group) can leave them running. On Linux, as root, each run goes into its own PID
namespace (`unshare --pid --fork --kill-child`): when the namespace's first process dies,
the kernel kills everything in it. `setpriv --pdeathsig KILL` in front makes the run die with
the worker, even when the worker is SIGKILLed. Where neither works, the fallback tracks the
process tree through /proc and kills it explicitly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


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
    """Pick the strongest isolation this machine allows. Called once at worker start."""
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
    """All live descendants of pid (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL pid, its process group and every descendant it still has."""
    targets = descendants(pid)
    try:
        os.killpg(pid, signal.SIGKILL)  # it was started as a session (and group) leader
    except (ProcessLookupError, PermissionError):
        pass
    for target in [pid, *targets]:
        try:
            os.kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
