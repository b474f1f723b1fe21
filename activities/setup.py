"""Activity: make a task's workspace ready ([workspace] setup), and find or make it again
where a remote session's step runs (every step that works in the workspace asks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.confined import CommandSandbox, heartbeat_each
from activities.errors import checked, git_errors_as_activity_errors
from activities.heartbeat import in_thread
from autopilot.agent.egress import Egress
from autopilot.agent.sandbox import Sandbox
from autopilot.error_types import WORKSPACE_SETUP_FAILED
from autopilot.infra.config import on_this_worker
from autopilot.models import SetupInput, SetupResult, WorkspaceSettings
from autopilot.setup.steps import SetupFailed
from autopilot.setup.steps import set_up_workspace as set_up
from autopilot.steps.site import site_of, workspaces


class SetupActivities:
    """The workspace setup, in the checks' sandbox (CommandSandbox)."""

    def __init__(self, sandbox: Sandbox, egress: Egress) -> None:
        self._commands = CommandSandbox(sandbox, egress)

    @activity.defn(name="set_up_workspace")
    async def set_up_workspace(self, request: SetupInput) -> SetupResult:
        checked(request)
        # Made again here if missing, not set up twice: the setup is this step.
        located = request.model_copy(update={"settings": WorkspaceSettings()})
        workspace = await self.workspace_here(located)
        return await self.set_up(request.model_copy(update={"workspace_path": workspace}))

    async def workspace_here(
        self, request: SetupInput, heartbeat: Callable[[str], object] | None = None
    ) -> str:
        """The task's workspace where this step runs. A remote session's steps may each run
        on another machine: one that lacks the workspace makes it again from the remote, and
        one whose copy was not set up here yet (its setup ran on another worker) sets it up
        (request.settings; nothing to do when the copy's setup stamp is current).
        `heartbeat`: what the setup's progress heartbeats, from a command line."""
        site = site_of(request)
        if not site.remote:  # one machine: where it was prepared
            return request.workspace_path
        with git_errors_as_activity_errors():
            located = await in_thread(
                workspaces(site).here, site.repo, request.workspace_path, request.origin
            )
        if request.settings.active:
            await self.set_up(
                request.model_copy(update={"workspace_path": located.path}), heartbeat
            )
        return located.path

    async def set_up(
        self, request: SetupInput, heartbeat: Callable[[str], object] | None = None
    ) -> SetupResult:
        """The setup's copied files and commands (or their cache) in the request's workspace."""
        request = request.model_copy(
            update={
                "state_dir": str(on_this_worker(request.state_dir)),
                "output_dir": str(on_this_worker(request.output_dir)),
            }
        )
        site = site_of(request)
        # Where the target branch is, for the cache (only the user's code fills it).
        target_repo = str(workspaces(site).target_repo(site.repo)) if site.repo else ""
        workspace = Path(request.workspace_path)
        tmp_root = Path(request.state_dir) / "tmp"
        with self._commands.confined(workspace, request, tmp_root) as env:
            try:
                return await in_thread(
                    set_up,
                    request.model_copy(update={"repo": target_repo}),
                    env,
                    heartbeat_each(heartbeat),
                )
            except SetupFailed as err:
                # Every task of this repository would fail the same way: the session pauses
                # (SETUP_ERRORS), and the result so far (its logs) goes along for status.
                raise ApplicationError(
                    str(err),
                    err.result.model_dump(mode="json"),
                    type=WORKSPACE_SETUP_FAILED,
                    non_retryable=True,
                ) from err
