"""Workspace setup: [workspace] in .autopilot.toml (autopilot/setup/)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import AliasChoices, BaseModel, Field

from autopilot.models.agent import EGRESS_PORTS
from autopilot.models.checks import CheckCommand, CheckResult
from autopilot.models.site import TaskSite, WorkspaceOrigin
from autopilot.models.state_dir import in_state_dir

if TYPE_CHECKING:
    from autopilot.models.task import TaskRequest
    from autopilot.models.workspace import Workspace


class WorkspaceSettings(BaseModel):
    """How a new task workspace is made ready before the agent starts (autopilot/setup/)."""

    setup: list[CheckCommand] = Field(default_factory=list)  # run like checks, in order
    setup_timeout_s: float = 900.0  # per command
    cache_key: list[str] = Field(default_factory=list)  # files whose contents key the cache
    cache_dirs: list[str] = Field(default_factory=list)  # what the setup makes, reused
    # Run like setup, after a cache restore: what the cached dirs still need in this workspace.
    after_restore: list[CheckCommand] = Field(default_factory=list)
    copy_files: list[str] = Field(default_factory=list)  # `copy`: from the user's checkout

    @property
    def active(self) -> bool:
        return bool(self.setup or self.copy_files)

    @property
    def keep_out(self) -> list[str]:
        """Paths the task's commits must never hold: copied in, or made by the setup."""
        return [*self.copy_files, *self.cache_dirs]


class SetupResult(BaseModel):
    """One setup of a task's workspace: its commands' results, or the cache it came from."""

    key: str = ""  # the cache key (sha256 of the commands and cache_key files)
    from_cache: bool = False  # the cached dirs were copied in; no command ran
    unchanged: bool = False  # after a conflict round: the cache_key files did not change
    commands: list[CheckResult] = Field(default_factory=list)  # in order, up to a failed one
    copied: list[str] = Field(default_factory=list)  # `copy` files put in the workspace
    duration_s: float = 0.0
    error: str | None = None  # why it failed, for a person

    def summary(self) -> str:
        """A few words for the session's compact status."""
        if self.error is not None:
            failed = next((run for run in self.commands if not run.passed), None)
            return f"failed: {failed.command[:60]}" if failed else "failed"
        if self.from_cache:
            return "from cache"
        if self.commands:
            return f"ran {len(self.commands)} command(s) in {self.duration_s:.1f} s"
        return f"copied {len(self.copied)} file(s)"


class SetupInput(BaseModel):
    """Make a task's workspace ready (autopilot/setup/steps.py), in the checks' sandbox."""

    # "worktree" in payloads recorded before the rename.
    workspace_path: str = Field(validation_alias=AliasChoices("workspace_path", "worktree"))
    repo: str
    state_dir: str
    settings: WorkspaceSettings
    output_dir: str  # the commands' logs
    check_env: list[str] = Field(default_factory=list)  # see ReviewSettings.check_env
    network: list[str] = Field(default_factory=list)  # see AgentSettings.network
    ports: list[int] = Field(default_factory=lambda: list(EGRESS_PORTS))  # AgentSettings.ports
    # Only a workspace still at a commit of this branch, unchanged, fills the cache ("": never).
    target_branch: str = ""
    # Remote mode: the workspace made again where it is missing ("place" before the rename).
    origin: WorkspaceOrigin | None = Field(
        default=None, validation_alias=AliasChoices("origin", "place")
    )
    site: TaskSite | None = None  # None: recorded before sites were carried

    @classmethod
    def of(
        cls, request: TaskRequest, workspace: Workspace, step: str, site: TaskSite | None = None
    ) -> SetupInput:
        """The setup of `request`'s workspace, its logs under checks/<session>/<task>/<step>."""
        return cls(
            workspace_path=workspace.path,
            repo=request.repo,
            state_dir=request.state_dir,
            settings=request.workspace,
            output_dir=in_state_dir(
                request.state_dir, "checks", request.session_id, request.task.id, step
            ),
            check_env=request.review.check_env,
            network=request.agent.network,
            ports=request.agent.ports,
            target_branch=request.target_branch,
            place=WorkspaceOrigin.of(request, workspace),
            site=site,
        )
