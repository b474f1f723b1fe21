"""The worker caps glibc's malloc arenas, unless the user chose a number (MALLOC_ARENA_MAX)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from autopilot.infra import ARENAS_VAR, CHOSEN_BY_US, forget_arena_cap, worker_environment
from tests.harness import ROOT

# What worker.py does first, then what it reports: how many times it started (each start
# appends a line), its pid, what glibc saw at start and what its children will see.
ENTRY = """
import json, os, sys
from pathlib import Path
from autopilot.infra.malloc_arenas import forget_arena_cap, restart_with_arena_cap

NAMES = ("MALLOC_ARENA_MAX", "AUTOPILOT_MALLOC_ARENA_MAX")
with Path(sys.argv[1]).open("a") as starts:
    starts.write(f"{os.getpid()}\\n")
at_start = {name: os.environ.get(name) for name in NAMES}
restart_with_arena_cap()
forget_arena_cap()
children = {name: os.environ.get(name) for name in NAMES}
print(json.dumps({"at_start": at_start, "children": children}))
"""


def run_entry(tmp_path: Path, **env: str) -> tuple[dict[str, object], list[str], int]:
    base = {k: v for k, v in os.environ.items() if k not in (ARENAS_VAR, CHOSEN_BY_US)}
    starts = tmp_path / "starts"
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, str(starts)],
        cwd=ROOT,
        env={**base, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return json.loads(out), starts.read_text().split(), process.pid


def test_a_worker_started_without_the_cap_starts_again_once_with_it(tmp_path: Path) -> None:
    report, starts, pid = run_entry(tmp_path)
    assert starts == [str(pid), str(pid)]  # the same process (its launcher's pid stays right)
    assert report["at_start"] == {"MALLOC_ARENA_MAX": "2", "AUTOPILOT_MALLOC_ARENA_MAX": "2"}
    assert report["children"] == {"MALLOC_ARENA_MAX": None, "AUTOPILOT_MALLOC_ARENA_MAX": None}


def test_a_worker_its_launcher_capped_starts_once(tmp_path: Path) -> None:
    report, starts, _ = run_entry(tmp_path, **worker_environment({}))
    assert len(starts) == 1
    assert report["at_start"] == {"MALLOC_ARENA_MAX": "2", "AUTOPILOT_MALLOC_ARENA_MAX": "2"}
    assert report["children"] == {"MALLOC_ARENA_MAX": None, "AUTOPILOT_MALLOC_ARENA_MAX": None}


def test_the_users_malloc_arena_max_wins(tmp_path: Path) -> None:
    assert worker_environment({"MALLOC_ARENA_MAX": "8"}) == {"MALLOC_ARENA_MAX": "8"}
    report, starts, _ = run_entry(tmp_path, MALLOC_ARENA_MAX="8")
    assert len(starts) == 1
    assert report["children"] == {"MALLOC_ARENA_MAX": "8", "AUTOPILOT_MALLOC_ARENA_MAX": None}


def test_launchers_add_the_cap_to_the_rest_of_the_environment() -> None:
    assert worker_environment({"PATH": "/bin", "MALLOC_ARENA_MAX": ""}) == {
        "PATH": "/bin",
        "MALLOC_ARENA_MAX": "2",
        "AUTOPILOT_MALLOC_ARENA_MAX": "2",
    }


def test_a_number_the_user_put_over_ours_stays_for_the_children() -> None:
    # systemd: the unit sets both, the user's worker.env overrides MALLOC_ARENA_MAX only.
    env = {"MALLOC_ARENA_MAX": "4", "AUTOPILOT_MALLOC_ARENA_MAX": "2"}
    forget_arena_cap(env)
    assert env == {"MALLOC_ARENA_MAX": "4"}
