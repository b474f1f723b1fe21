"""Activity: run the repo's check commands in a task's worktree (one review round's checks)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import activity

from activities.heartbeat import in_thread
from autopilot.checks import CheckEnv
from autopilot.checks import run_checks as run_check_commands
from autopilot.models import CheckResult, ChecksInput


@activity.defn
async def run_checks(request: ChecksInput) -> list[CheckResult]:
    loop = asyncio.get_running_loop()

    def on_progress(command: str) -> None:
        # Called from the worker thread: heartbeat through the activity's own event loop.
        loop.call_soon_threadsafe(activity.heartbeat, command)

    return await in_thread(
        run_check_commands,
        Path(request.worktree),
        request.checks,
        request.timeout_s,
        Path(request.output_dir),
        on_progress,
        CheckEnv(
            passed=tuple(request.check_env),
            tmp_root=Path(request.tmp_dir) if request.tmp_dir else None,
        ),
    )
