"""Activities: run the repo's check commands in a task's worktree (one review round's checks),
and make a new workspace ready ([workspace] setup). Both run each command in the agent's
sandbox with the checks' minimal environment: the code they run is the repository's, and after
the agent's first round partly the agent's."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.container import engine_error, engine_or_setup_error
from activities.errors import checked, git_errors_as_activity_errors
from activities.heartbeat import in_thread
from autopilot.agent.container_access import EngineError
from autopilot.agent.egress import Egress
from autopilot.agent.sandbox import (
    Gateway,
    Sandbox,
    check_layout,
    under_tmp,
)
from autopilot.error_types import WORKSPACE_SETUP_FAILED
from autopilot.infra.config import on_this_worker
from autopilot.infra.redact import Redactor
from autopilot.models import (
    CheckResult,
    ChecksInput,
    ContainerSettings,
    MergeVerification,
    SetupInput,
    SetupResult,
    TaskSite,
    VerifyMergeInput,
    WorkspaceSettings,
)
from autopilot.review.checks import CheckEnv, check_log_name
from autopilot.review.checks import run_checks as run_check_commands
from autopilot.setup.steps import SetupFailed
from autopilot.setup.steps import set_up_workspace as set_up
from autopilot.steps.site import site_of, workspaces


class CheckActivities:
    """Holds the worker's sandbox and egress proxy for the checks and the setup commands."""

    def __init__(self, sandbox: Sandbox, egress: Egress) -> None:
        self._sandbox = sandbox
        self._egress = egress
        self._gateway = Gateway(egress.socket_path)

    @activity.defn(name="run_checks")
    async def run_checks(self, request: ChecksInput) -> list[CheckResult]:
        checked(request)
        worktree = await self.workspace_here(_setup_of(request))
        request = request.model_copy(
            update={"worktree": worktree, "output_dir": str(on_this_worker(request.output_dir))}
        )
        if request.container is not None:
            return await self._checks_in_container(request, request.container)
        tmp_root = on_this_worker(request.tmp_dir) if request.tmp_dir else None
        with self._confined(
            Path(worktree),
            site_of(request),
            request.state_dir,
            request.network,
            request.ports,
            request.check_env,
            tmp_root,
        ) as env:
            return await in_thread(
                run_check_commands,
                Path(worktree),
                request.checks,
                request.timeout_s,
                Path(request.output_dir),
                _heartbeat_each(),
                env,
            )

    @activity.defn(name="verify_merge")
    async def verify_merge(self, request: VerifyMergeInput) -> MergeVerification:
        """The task's branch merged with the target's head, in its workspace (as the conflict
        round merges it), then the checks on that merge, where the task's checks run. On a
        conflict no check runs: the merge stays in progress for the conflict round."""
        checked(request)
        site = site_of(request)
        with git_errors_as_activity_errors():
            merged = await in_thread(workspaces(site).merge_target, request.merge)
        if not merged.clean:
            return MergeVerification(clean=False, conflict_files=merged.conflict_files)
        if request.checks.setup.active and not site.remote:
            # The target's commits may change what the setup makes (a lock file), as in the
            # conflict round; a remote workspace is set up again by run_checks when it is.
            await self._set_up(_setup_of(request.checks))
        checks = await self.run_checks(request.checks)
        return MergeVerification(clean=True, head_sha=merged.head_sha, checks=checks)

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
            return request.worktree
        with git_errors_as_activity_errors():
            located = await in_thread(
                workspaces(site).here, site.repo, request.worktree, request.place
            )
        if request.settings.active:
            await self._set_up(request.model_copy(update={"worktree": located.path}), heartbeat)
        return located.path

    async def _checks_in_container(
        self, request: ChecksInput, settings: ContainerSettings
    ) -> list[CheckResult]:
        """Container mode: each check in the task's image, in a copy of its workspace, with
        the checks' environment (LANG and check_env; the worker's secrets among them go in as
        Dagger secrets). Every check runs, even after one fails, as in the sandbox."""
        # Imported here: the Dagger SDK is slow to import, and only container mode needs it.
        from autopilot.agent.container import run_check_in_container

        access = engine_or_setup_error()
        env = CheckEnv(passed=tuple(request.check_env))
        plain = {name: env.base[name] for name in ("LANG", *request.check_env) if name in env.base}
        redactor = Redactor.from_env(env.base)
        site = site_of(request)
        objects = workspaces(site).shared_objects(site.repo) if site.repo else None
        results = []
        for index, check in enumerate(request.checks, start=1):
            activity.heartbeat(check.command)
            try:
                results.append(
                    await run_check_in_container(
                        access,
                        settings,
                        Path(request.worktree),
                        check.argv,
                        inside=site.inside,
                        command=check.command,
                        env=plain,
                        timeout_s=request.timeout_s,
                        output_path=Path(request.output_dir) / check_log_name(index, check.command),
                        objects=objects,
                        redactor=redactor,
                    )
                )
            except EngineError as err:
                raise engine_error(err) from err
        return results

    @activity.defn(name="set_up_workspace")
    async def set_up_workspace(self, request: SetupInput) -> SetupResult:
        checked(request)
        # Made again here if missing, not set up twice: the setup is this step.
        located = request.model_copy(update={"settings": WorkspaceSettings()})
        worktree = await self.workspace_here(located)
        return await self._set_up(request.model_copy(update={"worktree": worktree}))

    async def _set_up(
        self, request: SetupInput, heartbeat: Callable[[str], object] | None = None
    ) -> SetupResult:
        request = request.model_copy(
            update={
                "state_dir": str(on_this_worker(request.state_dir)),
                "output_dir": str(on_this_worker(request.output_dir)),
            }
        )
        # Where the target branch is, for the cache (only the user's code fills it).
        site = site_of(request)
        target_repo = str(workspaces(site).target_repo(site.repo)) if site.repo else ""
        worktree = Path(request.worktree)
        tmp_root = Path(request.state_dir) / "tmp"
        with self._confined(
            worktree,
            site,
            request.state_dir,
            request.network,
            request.ports,
            request.check_env,
            tmp_root,
        ) as env:
            try:
                return await in_thread(
                    set_up,
                    request.model_copy(update={"repo": target_repo}),
                    env,
                    _heartbeat_each(heartbeat),
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

    @contextlib.contextmanager
    def _confined(
        self,
        worktree: Path,
        site: TaskSite,
        state_dir: str,
        network: list[str],
        ports: list[int],
        check_env: list[str],
        tmp_root: Path | None,
    ) -> Iterator[CheckEnv]:
        """The checks' environment, each command in the sandbox: the worktree and its own
        TMPDIR writable, the rest as for the agent, the network only through the egress proxy
        to the granted domains."""
        path_var = os.environ.get("PATH", "")  # the checks' (autopilot/agent/allowed_env.py, CHECK)
        shown = under_tmp([Path(entry) for entry in path_var.split(os.pathsep) if entry])
        shown += [workspaces(site).shared_objects(site.repo)] if site.repo else []
        # No model API: a check or a setup command is the repository's code, not an agent.
        with self._egress.grant(network, model_api=False, ports=ports) as grant:
            gateway = self._gateway.environment(grant.token)

            def confine(argv: list[str], tmpdir: Path) -> tuple[list[str], dict[str, str]]:
                layout = check_layout(
                    worktree, tmpdir, state_dir=on_this_worker(state_dir), site=site, shown=shown
                )
                return self._sandbox.wrap(argv, layout, self._gateway), gateway

            yield CheckEnv(passed=tuple(check_env), tmp_root=tmp_root, confine=confine)


def _setup_of(request: ChecksInput) -> SetupInput:
    """The setup of the workspace the checks run in, its logs beside theirs."""
    return SetupInput(
        worktree=request.worktree,
        repo=request.repo,
        state_dir=request.state_dir,
        settings=request.setup,
        output_dir=f"{request.output_dir}-setup",
        check_env=request.check_env,
        network=request.network,
        ports=request.ports,
        target_branch=request.place.target_branch if request.place else "",
        place=request.place,
        site=request.site,
    )


def _heartbeat_each(details: Callable[[str], object] | None = None) -> Callable[[str], None]:
    """A progress callback for the worker thread: heartbeat through the activity's own loop,
    the command line, or what `details` makes of it (the agent's activities heartbeat their
    progress model, which the task workflow reads back)."""
    loop = asyncio.get_running_loop()

    def on_progress(command: str) -> None:
        loop.call_soon_threadsafe(activity.heartbeat, details(command) if details else command)

    return on_progress
