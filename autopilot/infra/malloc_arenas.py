"""Fewer glibc malloc arenas for the long-running worker, through MALLOC_ARENA_MAX.

glibc gives each thread that allocates its own arena (up to 8 per core) and seldom returns
freed arena memory to the system. The worker's threads (the SDK's Rust runtime, the workflow
and activity thread pools) allocate and free large buffers over a long session (status
answers, history pages, payloads), and the arenas' free space is scattered, so the resident
size steps up at every continue-as-new. Two arenas keep it nearer what is really in use
(bench/README.md, "Memory").

glibc reads MALLOC_ARENA_MAX once, when the process starts, so whatever starts a worker sets
it: the starter's background worker, the demo and the systemd unit (deploy/). A worker started
without it (`python worker.py` by hand, the tests' harness) starts itself again, once, with
it. A number the user chose wins. The cap is the worker's own: once running, it drops the
variable autopilot set, so git and the checks start with the environment the user gave.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

ARENAS_VAR = "MALLOC_ARENA_MAX"
# The number autopilot put in ARENAS_VAR: tells it from one the user chose (which stays).
CHOSEN_BY_US = "AUTOPILOT_MALLOC_ARENA_MAX"
DEFAULT_ARENAS = 2


def worker_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` for starting a worker: with the arena cap, unless the user chose a number."""
    if env.get(ARENAS_VAR):
        return dict(env)
    arenas = str(DEFAULT_ARENAS)
    return {**env, ARENAS_VAR: arenas, CHOSEN_BY_US: arenas}


def restart_with_arena_cap() -> None:
    """Replace this process (same pid, same arguments) by one started with the cap, unless it
    has one. Call it first thing: what ran before runs again."""
    if os.environ.get(ARENAS_VAR):
        return
    try:
        os.execve(
            sys.executable, [sys.executable, *sys.orig_argv[1:]], worker_environment(os.environ)
        )
    except OSError:
        return  # no cap is better than no worker


def forget_arena_cap(env: MutableMapping[str, str] = os.environ) -> None:
    """Drop the cap autopilot set from the running worker's environment (glibc has read it),
    so its children do not inherit it; a number the user chose stays."""
    chosen = env.pop(CHOSEN_BY_US, None)
    if chosen is not None and env.get(ARENAS_VAR) == chosen:
        del env[ARENAS_VAR]
