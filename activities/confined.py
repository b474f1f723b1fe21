"""The checks' and the setup commands' confinement: each command in the agent's sandbox with
the checks' minimal environment. The code they run is the repository's, and after the
agent's first round partly the agent's."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from temporalio import activity

from autopilot.agent.egress import Egress
from autopilot.agent.sandbox import Gateway, Sandbox, check_layout, under_tmp
from autopilot.infra.config import on_this_worker
from autopilot.models import ChecksInput, SetupInput
from autopilot.review.checks import CheckEnv
from autopilot.steps.site import site_of, workspaces


class CommandSandbox:
    """Holds the worker's sandbox and egress proxy for the checks and the setup commands."""

    def __init__(self, sandbox: Sandbox, egress: Egress) -> None:
        self._sandbox = sandbox
        self._egress = egress
        self._gateway = Gateway(egress.socket_path)

    @contextlib.contextmanager
    def confined(
        self, workspace: Path, request: ChecksInput | SetupInput, tmp_root: Path | None
    ) -> Iterator[CheckEnv]:
        """The checks' environment for `request`'s commands, each in the sandbox: the
        workspace and its own TMPDIR writable, the rest as for the agent, the network only
        through the egress proxy to the granted domains."""
        site, state_dir = site_of(request), request.state_dir
        path_var = os.environ.get("PATH", "")  # the checks' (autopilot/agent/allowed_env.py, CHECK)
        shown = under_tmp([Path(entry) for entry in path_var.split(os.pathsep) if entry])
        shown += [workspaces(site).shared_objects(site.repo)] if site.repo else []
        # No model API: a check or a setup command is the repository's code, not an agent.
        with self._egress.grant(request.network, model_api=False, ports=request.ports) as grant:
            gateway = self._gateway.environment(grant.token)

            def confine(argv: list[str], tmpdir: Path) -> tuple[list[str], dict[str, str]]:
                layout = check_layout(
                    workspace, tmpdir, state_dir=on_this_worker(state_dir), site=site, shown=shown
                )
                return self._sandbox.wrap(argv, layout, self._gateway), gateway

            yield CheckEnv(passed=tuple(request.check_env), tmp_root=tmp_root, confine=confine)


def heartbeat_each(details: Callable[[str], object] | None = None) -> Callable[[str], None]:
    """A progress callback for the worker thread: heartbeat through the activity's own loop,
    the command line, or what `details` makes of it (the agent's activities heartbeat their
    progress model, which the task workflow reads back)."""
    loop = asyncio.get_running_loop()

    def on_progress(command: str) -> None:
        loop.call_soon_threadsafe(activity.heartbeat, details(command) if details else command)

    return on_progress
