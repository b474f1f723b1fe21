"""Activity: run the repo's check commands in a task's worktree (one review round's checks),
each in the agent's sandbox: the code the agent wrote runs in them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from temporalio import activity

from activities.heartbeat import in_thread
from autopilot.agent.egress import Egress
from autopilot.agent.sandbox import Gateway, Layout, Sandbox, under_tmp
from autopilot.git.kinds import LOCAL as workspaces
from autopilot.models import CheckResult, ChecksInput
from autopilot.review.checks import CheckEnv
from autopilot.review.checks import run_checks as run_check_commands


class CheckActivities:
    """Holds the worker's sandbox and egress proxy for the checks."""

    def __init__(self, sandbox: Sandbox, egress: Egress) -> None:
        self._sandbox = sandbox
        self._egress = egress
        self._gateway = Gateway(egress.socket_path)

    @activity.defn(name="run_checks")
    async def run_checks(self, request: ChecksInput) -> list[CheckResult]:
        loop = asyncio.get_running_loop()

        def on_progress(command: str) -> None:
            # Called from the worker thread: heartbeat through the activity's own event loop.
            loop.call_soon_threadsafe(activity.heartbeat, command)

        worktree = Path(request.worktree)
        hidden = [Path(p) for p in (request.state_dir, request.repo) if p]
        path_var = os.environ.get("PATH", "")  # the checks' (autopilot/review/checks.py, BASE_VARS)
        shown = under_tmp([Path(entry) for entry in path_var.split(os.pathsep) if entry])
        shown += [workspaces.shared_objects(request.repo)] if request.repo else []
        with self._egress.grant(request.network) as grant:
            gateway = self._gateway.environment(grant.token)  # no model API: not an agent

            def confine(argv: list[str], tmpdir: Path) -> tuple[list[str], dict[str, str]]:
                # The worktree and its own TMPDIR writable; the rest as for the agent.
                layout = Layout(
                    workdir=worktree,
                    writable=[worktree, tmpdir],
                    tmp=tmpdir,
                    hidden=hidden,
                    shown=shown,
                )
                return self._sandbox.wrap(argv, layout, self._gateway), gateway

            return await in_thread(
                run_check_commands,
                worktree,
                request.checks,
                request.timeout_s,
                Path(request.output_dir),
                on_progress,
                CheckEnv(
                    passed=tuple(request.check_env),
                    tmp_root=Path(request.tmp_dir) if request.tmp_dir else None,
                    confine=confine,
                ),
            )
