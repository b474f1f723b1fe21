"""The worker checks its machine before taking any task, and says what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, clean_env


@pytest.mark.reliability(
    "Missing agent binary",
    "worker.py with AUTOPILOT_CLAUDE_BIN pointing nowhere: exit 2 with the variable named, "
    "before any Temporal connection or task",
)
def test_missing_claude_binary_stops_the_worker_with_a_clear_message(tmp_path: Path) -> None:
    env = clean_env()
    env.update(
        AUTOPILOT_STATE_DIR=str(tmp_path / "state"),
        AUTOPILOT_CLAUDE_BIN=str(tmp_path / "no-such-claude"),
        TEMPORAL_ADDRESS="127.0.0.1:9",  # never reached: preflight comes first
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "AUTOPILOT_CLAUDE_BIN" in done.stderr and "no-such-claude" in done.stderr
    assert "Traceback" not in done.stderr
