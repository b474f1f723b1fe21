"""The worker checks its machine before taking any task, and says what to fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, claude_bin, clean_env


@pytest.mark.reliability(
    "Missing agent binary",
    "worker.py with AUTOPILOT_CLAUDE_BIN pointing nowhere: exit 2 with the variable named, "
    "before any Temporal connection or task",
)
def run_worker(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """worker.py with `args` and `env`, expected to stop in its preflight: exit 2, no
    traceback."""
    full = clean_env()
    full.update(
        AUTOPILOT_STATE_DIR=str(tmp_path / "state"),
        TEMPORAL_ADDRESS="127.0.0.1:9",  # never reached: preflight comes first
        **env,
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), *args],
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done


def test_missing_claude_binary_stops_the_worker_with_a_clear_message(tmp_path: Path) -> None:
    done = run_worker(tmp_path, AUTOPILOT_CLAUDE_BIN=str(tmp_path / "no-such-claude"))
    assert "AUTOPILOT_CLAUDE_BIN" in done.stderr and "no-such-claude" in done.stderr


@pytest.mark.reliability(
    "a machine without bubblewrap (the agent's sandbox)",
    "worker.py exits 2 before taking any task and says how to install it; no unsandboxed run",
)
def test_the_worker_does_not_start_without_its_sandbox(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "node", "socat"):  # what else the preflight needs, without bwrap
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    done = run_worker(tmp_path, PATH=str(bin_dir), AUTOPILOT_CLAUDE_BIN=str(claude_bin()))
    assert "bubblewrap" in done.stderr and "apt-get install -y bubblewrap socat" in done.stderr


def test_a_bad_capacity_stops_the_worker_before_anything_starts(tmp_path: Path) -> None:
    done = run_worker(tmp_path, "--max-agents", "0", AUTOPILOT_CLAUDE_BIN=str(claude_bin()))
    assert "--max-agents 0 is not allowed; use a whole number of at least 1." in done.stderr
    done = run_worker(
        tmp_path, AUTOPILOT_CLAUDE_BIN=str(claude_bin()), AUTOPILOT_GRACEFUL_SHUTDOWN_S="soon"
    )
    assert "AUTOPILOT_GRACEFUL_SHUTDOWN_S=soon is not allowed" in done.stderr
