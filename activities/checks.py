"""Activities: run the repo's check commands in a task's workspace (one review round's checks),
and the task's branch merged with the target's head, then checked (verify_merge). Each check
runs in the agent's sandbox with the checks' minimal environment (CommandSandbox), or in the
task's container."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from activities.confined import CommandSandbox, heartbeat_each
from activities.container import engine_error, engine_or_setup_error
from activities.errors import checked, git_errors_as_activity_errors
from activities.heartbeat import in_thread
from activities.setup import SetupActivities
from autopilot.agent.container_access import EngineError
from autopilot.agent.egress import Egress
from autopilot.agent.sandbox import Sandbox
from autopilot.infra.config import on_this_worker
from autopilot.infra.redact import Redactor
from autopilot.models import (
    CheckResult,
    ChecksInput,
    ContainerSettings,
    SetupInput,
    VerifyMergeInput,
    VerifyMergeResult,
)
from autopilot.review.checks import CheckEnv, check_log_name
from autopilot.review.checks import run_checks as run_check_commands
from autopilot.steps.site import site_of, workspaces


class CheckActivities:
    """The checks, in the worker's sandbox; the workspace found or made again (and set up)
    by `setup` where a remote session's checks run."""

    def __init__(
        self, sandbox: Sandbox, egress: Egress, setup: SetupActivities | None = None
    ) -> None:
        self._commands = CommandSandbox(sandbox, egress)
        self._setup = setup or SetupActivities(sandbox, egress)

    @activity.defn(name="run_checks")
    async def run_checks(self, request: ChecksInput) -> list[CheckResult]:
        checked(request)
        workspace = await self._setup.workspace_here(setup_of(request))
        request = request.model_copy(
            update={
                "workspace_path": workspace,
                "output_dir": str(on_this_worker(request.output_dir)),
            }
        )
        if request.container is not None:
            return await self._checks_in_container(request, request.container)
        tmp_root = on_this_worker(request.tmp_dir) if request.tmp_dir else None
        with self._commands.confined(Path(workspace), request, tmp_root) as env:
            return await in_thread(
                run_check_commands,
                Path(workspace),
                request.checks,
                request.timeout_s,
                Path(request.output_dir),
                heartbeat_each(),
                env,
            )

    @activity.defn(name="verify_merge")
    async def verify_merge(self, request: VerifyMergeInput) -> VerifyMergeResult:
        """The task's branch merged with the target's head, in its workspace (as the conflict
        round merges it), then the checks on that merge, where the task's checks run. On a
        conflict no check runs: the merge stays in progress for the conflict round."""
        checked(request)
        site = site_of(request)
        with git_errors_as_activity_errors():
            merged = await in_thread(workspaces(site).merge_target, request.merge)
        if not merged.clean:
            return VerifyMergeResult(clean=False, conflict_files=merged.conflict_files)
        if request.checks.setup.active and not site.remote:
            # The target's commits may change what the setup makes (a lock file), as in the
            # conflict round; a remote workspace is set up again by run_checks when it is.
            await self._setup.set_up(setup_of(request.checks))
        checks = await self.run_checks(request.checks)
        return VerifyMergeResult(clean=True, head_sha=merged.head_sha, checks=checks)

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
                        Path(request.workspace_path),
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


def setup_of(request: ChecksInput) -> SetupInput:
    """The setup of the workspace the checks run in, its logs beside theirs."""
    return SetupInput(
        workspace_path=request.workspace_path,
        repo=request.repo,
        state_dir=request.state_dir,
        settings=request.setup,
        output_dir=f"{request.output_dir}-setup",
        check_env=request.check_env,
        network=request.network,
        ports=request.ports,
        target_branch=request.origin.target_branch if request.origin else "",
        origin=request.origin,
        site=request.site,
    )
