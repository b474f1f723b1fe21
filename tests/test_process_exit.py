"""Entry points leave without the interpreter's teardown
(autopilot/infra/exit_without_teardown.py), which the SDK's runtime threads can crash: what they
wrote is flushed and their exit code kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.gitutil import make_repo
from tests.harness import ROOT, clean_env

# Registered before the entry point runs: printed only if the interpreter tears down.
TEARDOWN_SPY = "import atexit; atexit.register(print, 'interpreter torn down'); "


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exit_now_flushes_what_was_written_and_keeps_the_code() -> None:
    done = python(
        TEARDOWN_SPY + "import sys; from autopilot.infra.exit_without_teardown import exit_now; "
        "print('no newline yet', end=''); sys.stderr.write('on stderr'); exit_now(3)"
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "no newline yet", "on stderr")


def test_the_starter_leaves_through_exit_now(tmp_path: Path) -> None:
    run_starter = TEARDOWN_SPY + (
        "import runpy, sys; sys.argv[0] = 'starter.py'; "
        "runpy.run_path('starter.py', run_name='__main__')"
    )
    plan = ROOT / "tests" / "plans" / "batch_plan.md"
    repo = make_repo(tmp_path / "repo")
    dry = python(run_starter, str(plan), "--repo", str(repo), "--dry-run", "--offline")
    assert dry.returncode == 0, dry.stderr
    assert "interpreter torn down" not in dry.stdout and dry.stdout.strip()

    bad = python(run_starter, str(tmp_path / "missing.md"), "--repo", str(tmp_path))
    assert bad.returncode == 2
    assert "missing.md" in bad.stderr and "interpreter torn down" not in bad.stdout
