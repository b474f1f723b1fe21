"""The Claude Code CLI's runs for the agent's and the reviewer's activities: in the sandbox
with heartbeats, and the errors that carry a failed or lost run back to the task workflow.

Heartbeats carry the agent's progress (session id, turns, cost, transcript path) to the Web UI
and to the starter; a missed heartbeat is how Temporal notices a dead worker and moves the
attempt elsewhere. Heartbeats tick on a timer as well as on every stream event, because a
model turn or a long Bash command can be silent for minutes while everything is fine; a
silent agent is caught by its own idle timeout instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.setup import SetupActivities
from autopilot import error_types
from autopilot import git as gitops
from autopilot.agent.cli import agent_environment
from autopilot.agent.egress import Egress
from autopilot.agent.runner import AgentFailure, StreamState, run_claude
from autopilot.agent.sandbox import (
    Gateway,
    Layout,
    Sandbox,
    space_environment,
    task_layout,
    tools_of,
)
from autopilot.infra.config import on_this_worker
from autopilot.infra.redact import Redactor
from autopilot.models import (
    AgentProgress,
    AgentRun,
    AgentSettings,
    SetupInput,
    TaskRequest,
    TaskSite,
    Workspace,
)
from autopilot.plan import snapshots as plan_snapshots
from autopilot.steps.attempts import (
    is_lost,
)
from autopilot.steps.site import workspaces

log = structlog.get_logger("agent")
RunResult = tuple[StreamState, float]  # the run's stream and its wall time
ERROR_TYPES = {
    "auth": error_types.AGENT_AUTH,
    "rate_limit": error_types.AGENT_RATE_LIMITED,
    "overloaded": error_types.AGENT_API_ERROR,
    "hung": error_types.AGENT_HUNG,
    "timeout": error_types.AGENT_TIMED_OUT,
    "no_result": error_types.AGENT_DIED,
    "killed": error_types.RUN_LOST,
    "resume_refused": error_types.AGENT_ERROR,  # only when the fresh session failed as well
    "error": error_types.AGENT_ERROR,
}


def transcript_path(state_dir: str, session_id: str, task_id: str, name: str) -> Path:
    folder = on_this_worker(state_dir) / "transcripts" / gitops.safe_component(session_id)
    return folder / gitops.safe_component(task_id) / f"{name}.jsonl"


def agent_space(state_dir: str, session_id: str, task_id: str, role: str) -> Path:
    """The sandboxed agent's own folder (home, Claude config and sessions, temp), one per
    task and role: the reviewer never runs with what the agent left in its config."""
    return gitops.agent_space_path(on_this_worker(state_dir), session_id, task_id) / role


async def sandbox_for(
    request: TaskRequest, site: TaskSite, workspace: str, role: str, tools: list[Path]
) -> tuple[Layout, Path]:
    """The layout of a run in `workspace` (the agent writes there, the reviewer only reads),
    and its own folder."""
    space = agent_space(request.state_dir, request.session_id, request.task.id, role)
    objects = await asyncio.to_thread(workspaces(site).shared_objects, site.repo)
    layout = task_layout(
        Path(workspace),
        space,
        state_dir=on_this_worker(request.state_dir),
        site=site,
        objects=objects,
        writes_workspace=role == "agent",
        tools=tools,
    )
    return layout, space


def agent_run(state: StreamState, attempt: int, transcript: Path, duration_s: float) -> AgentRun:
    """What one attempt did, from its stream: the result event's figures when there is one."""
    result = state.result or {}
    usage = result.get("usage") or {}
    return AgentRun(
        session_id=state.session_id,
        attempt=attempt,
        is_error=bool(result.get("is_error")),
        subtype=str(result.get("subtype") or ""),
        result_text=str(result.get("result") or "")[:4000],
        cost_usd=float(result.get("total_cost_usd") or 0.0),
        turns=int(result.get("num_turns") or len(state.message_ids)),
        input_tokens=int(usage.get("input_tokens") or state.input_tokens),
        output_tokens=int(usage.get("output_tokens") or state.output_tokens),
        duration_s=duration_s,
        transcript_path=str(transcript),
        session_saved=state.saved,
    )


def handed_over(progress: AgentProgress) -> ApplicationError:
    """A run cut short by its worker's shutdown: lost, not failed (error_types.LOST_RUN)."""
    return run_error(
        "the worker stopped before the run finished; it resumes on another worker",
        error_types.RUN_LOST,
        progress,
        expected=True,
    )


def run_error(
    message: str, error_type: str, progress: AgentProgress, *, expected: bool = False
) -> ApplicationError:
    """A run ended around the agent, not by it (the worker stopping, container mode's engine),
    with where it got to, so that the task workflow records it: lost (LOST_RUN: resumed, no
    attempt spent) or a setup error (AGENT_NON_RETRYABLE)."""
    run = AgentRun(
        **progress.model_dump(exclude={"last_event"}),  # how far it got, under the same names
        is_error=True,
        error=message,
        error_type=error_type,
        lost=is_lost(error_type),
    )
    # Expected (a worker's shutdown): logged without a traceback.
    category = ApplicationErrorCategory.BENIGN if expected else ApplicationErrorCategory.UNSPECIFIED
    return ApplicationError(
        message,
        run,
        type=error_type,
        non_retryable=error_type in error_types.AGENT_NON_RETRYABLE,
        category=category,
    )


def failure_error(
    failure: AgentFailure, attempt: int, transcript: Path, *, resume_refused: bool = False
) -> ApplicationError:
    """The failed attempt travels in the error's details: the task workflow records it (cost,
    turns, transcript) and decides whether and when to try again."""
    error_type = ERROR_TYPES[failure.kind]
    failed = agent_run(failure.state, attempt, transcript, failure.duration_s)
    failed.resume_refused = resume_refused
    failed.is_error = True
    failed.error = str(failure)
    failed.error_type = error_type
    failed.retry_after_s = failure.retry_after_s
    return ApplicationError(
        str(failure), failed, type=error_type, non_retryable=failure.kind == "auth"
    )


async def full_request(request: TaskRequest) -> TaskRequest:
    """The task's texts from the plan snapshot; a snapshot gone for good stops the session."""
    try:
        return await asyncio.to_thread(plan_snapshots.full_request, request)
    except plan_snapshots.SnapshotMissing as err:
        raise ApplicationError(
            str(err), type=error_types.PLAN_SNAPSHOT_MISSING, non_retryable=True
        ) from err


class ClaudeRuns:
    """Holds what the worker found once at start: the binary, the sandbox, the env and the
    secrets in it, which are scrubbed from the transcripts and what the runs report. The
    agent's and the reviewer's activities (AgentActivities, ReviewerActivities) run the CLI
    through it; `setup` finds or makes their workspace where they run."""

    def __init__(
        self,
        claude_bin: Path,
        sandbox: Sandbox,
        egress: Egress,
        env: Mapping[str, str],
        setup: SetupActivities | None = None,
    ) -> None:
        self._claude_bin = claude_bin
        self._sandbox = sandbox
        self._egress = egress
        self._gateway = Gateway(egress.socket_path)
        self._env = dict(env)
        path = agent_environment(claude_bin, self._env)["PATH"]
        self._tools = tools_of(claude_bin, path)
        self._redactor = Redactor.from_env(self._env)
        self._setup = setup or SetupActivities(sandbox, egress)

    async def _workspace_here(
        self, request: TaskRequest, site: TaskSite, workspace: Workspace, attempt: int, step: str
    ) -> Workspace:
        """The workspace where this run happens: a remote session's worker that lacks it makes
        it again from the remote, and sets it up (its logs under `step`). Failing that, the
        run ends before it began: lost when the remote did not answer, a setup error when
        the setup or the remote itself is at fault (AGENT_NON_RETRYABLE)."""
        started = AgentProgress(session_id="", attempt=attempt)

        def setting_up(command: str) -> AgentProgress:  # what the task workflow reads back
            return started.model_copy(update={"last_event": f"setup: {command}"})

        try:
            path = await self._setup.workspace_here(
                SetupInput.of(request, workspace, f"setup-{step}", site), setting_up
            )
        except ApplicationError as err:
            if err.type != error_types.GIT_ERROR:  # RepoUnusable, WorkspaceSetupFailed
                raise run_error(err.message, err.type or "", started) from err
            raise run_error(
                f"the task's workspace could not be made on this worker: {err.message}",
                error_types.REMOTE_AWAY,
                started,
            ) from err
        return workspace.model_copy(update={"path": path})

    async def _run(
        self,
        argv: list[str],
        sandbox: tuple[Layout, Path],
        prompt: str,
        sid: str,
        attempt: int,
        transcript: Path,
        settings: AgentSettings,
    ) -> tuple[StreamState, float]:
        """One CLI run in the sandbox, with heartbeats. Raises AgentFailure (the caller decides
        what a refused resume means) or a typed activity error."""
        layout, space = sandbox
        if not os.access(argv[0], os.X_OK):  # inside the sandbox bwrap would report it
            raise ApplicationError(
                f"cannot run the agent: {argv[0]} is not an executable file; set "
                "AUTOPILOT_CLAUDE_BIN or install the Claude Code CLI (./dev setup)",
                type=error_types.AGENT_SETUP,
                non_retryable=True,
            )
        # The run's grant: the model API through the gateway (the agent's and the reviewer's
        # runs), and its domains; the worker's credentials stay here.
        with self._egress.grant(settings.network, model_api=True, ports=settings.ports) as grant:
            gateway = self._gateway.environment(grant.token, self._egress.credential_names)
            env = agent_environment(self._claude_bin, self._env, space_environment(space) | gateway)

            async def run(on_progress: Callable[[AgentProgress], None]) -> RunResult:
                # The attempt's own time limit, enforced here (the process tree is killed) so
                # the failure says what happened; the activity's timeout is a little longer.
                try:
                    async with asyncio.timeout(settings.attempt_timeout_s):
                        return await run_claude(
                            self._sandbox.wrap(argv, layout, self._gateway),
                            cwd=layout.workdir,
                            env=env,
                            prompt=prompt,
                            session_id=sid,
                            transcript=transcript,
                            idle_timeout_s=settings.idle_timeout_s,
                            on_progress=on_progress,
                            redactor=self._redactor,
                        )
                except TimeoutError:
                    raise AgentFailure(
                        "timeout",
                        f"the agent ran longer than its {settings.attempt_timeout_s:.0f}s limit;"
                        " it was stopped",
                    ) from None

            return await self._heartbeating(run, sid, attempt, transcript, settings)

    async def _heartbeating(
        self,
        run: Callable[[Callable[[AgentProgress], None]], Awaitable[RunResult]],
        sid: str,
        attempt: int,
        transcript: Path,
        settings: AgentSettings,
    ) -> RunResult:
        """`run`, heartbeating with its progress (session id, turns, cost, transcript) as it
        comes and on a timer; a worker's shutdown hands it over (`handed_over`)."""
        progress = AgentProgress(session_id=sid, attempt=attempt, transcript_path=str(transcript))

        def on_progress(update: AgentProgress) -> None:
            nonlocal progress
            progress = update.model_copy(update={"attempt": attempt})
            activity.heartbeat(progress)

        async def keep_heartbeating() -> None:
            # Cheap: the SDK throttles what reaches the server. Often enough that a cancel
            # (which comes back on a heartbeat's answer) reaches the agent within seconds.
            while True:
                activity.heartbeat(progress)
                await asyncio.sleep(min(settings.heartbeat_timeout_s / 3, 1.0))

        ticker = asyncio.create_task(keep_heartbeating())
        try:
            return await run(on_progress)
        except AgentFailure as failure:
            log.warning("agent failed", kind=failure.kind, error=str(failure))
            raise
        except asyncio.CancelledError:
            if not activity.is_worker_shutdown():
                raise  # the task was cancelled
            # The worker's grace period ran out (the run's processes were stopped): the run
            # is handed over with where it got to, so the next worker resumes its session.
            log.warning("worker stopping: agent handed over", turns=progress.turns)
            raise handed_over(progress) from None
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
