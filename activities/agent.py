"""Activities that run the Claude Code CLI: the worker agent on a task, and the reviewer.

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

from activities.container import engine_or_setup_error
from activities.errors import checked
from activities.heartbeat import in_thread
from activities.review import CheckActivities
from autopilot import error_types
from autopilot import git as gitops
from autopilot.agent.cli import agent_environment, claude_argv, model_route
from autopilot.agent.container_access import EngineError
from autopilot.agent.egress import Egress
from autopilot.agent.prompts import (
    conflict_prompt,
    continue_prompt,
    fix_prompt,
    merged_checks_prompt,
    task_prompt,
)
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
    AgentInput,
    AgentProgress,
    AgentRun,
    AgentSettings,
    CommitInput,
    CommitOutcome,
    ContainerSettings,
    ReviewerInput,
    ReviewerOutcome,
    SetupInput,
    TargetMergeInput,
    TaskPlace,
    TaskRequest,
    TaskSite,
    Workspace,
)
from autopilot.plan import snapshots as plan_snapshots
from autopilot.review.reviewer import parse_verdict, reviewer_argv, reviewer_prompt
from autopilot.review.verdict import untouched_files
from autopilot.steps.attempts import (
    agent_run_name,
    claude_session_id,
    fresh_run_name,
    is_lost,
    reviewer_attempt,
    reviewer_run_name,
)
from autopilot.steps.commit import commit_after_run as commit_after
from autopilot.steps.commit import failed_commit
from autopilot.steps.site import site_of, workspaces

log = structlog.get_logger("agent")
RunOutcome = tuple[StreamState, float]  # the run's stream and its wall time
ERROR_TYPES = {
    "auth": error_types.AGENT_AUTH,
    "rate_limit": error_types.AGENT_RATE_LIMITED,
    "overloaded": error_types.AGENT_API_ERROR,
    "hung": error_types.AGENT_HUNG,
    "timeout": error_types.AGENT_TIMED_OUT,
    "no_result": error_types.AGENT_DIED,
    "killed": error_types.AGENT_KILLED,
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


def agent_prompt(job: AgentInput) -> str:
    if job.purpose == "task" and (job.resume_session is not None or job.after_loss):
        return continue_prompt(job.request)
    if job.purpose == "fix" and job.review is not None:
        return fix_prompt(job.request, job.review)
    if job.purpose == "conflict":
        return conflict_prompt(job.request, job.request.target_branch, job.conflict_files)
    if job.purpose == "merged_checks":
        return merged_checks_prompt(job.request, job.request.target_branch)
    return task_prompt(job.request, job.workspace.branch)


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


async def commit_after_run(commit: CommitInput, run: AgentRun) -> CommitOutcome | None:
    """Commit what the agent left, in its own activity (autopilot/steps/commit.py says what
    a failure means): None hands it to the task workflow's commit step."""
    site = site_of(commit)
    try:
        return await in_thread(workspaces(site).commit, commit_after(commit, site))
    except gitops.GitError as err:
        failure = failed_commit(err, site)
        if failure is None:
            log.warning("commit after the agent failed; the commit step takes over", error=str(err))
            return None
        log.warning("the agent's work was not pushed", error=str(err), lost=failure.lost)
        failed = run.model_copy(
            update={
                "is_error": True,
                "error": f"its work could not be committed and pushed: {err}",
                "error_type": failure.error_type,
                "lost": failure.lost,
            }
        )
        raise ApplicationError(
            failed.error or "", failed, type=failed.error_type, non_retryable=True
        ) from err


def handed_over(progress: AgentProgress) -> ApplicationError:
    """A run cut short by its worker's shutdown: lost, not failed (error_types.LOST_RUN)."""
    return run_error(
        "the worker stopped before the run finished; it resumes on another worker",
        error_types.WORKER_STOPPED,
        progress,
    )


def run_error(message: str, error_type: str, progress: AgentProgress) -> ApplicationError:
    """A run ended around the agent, not by it (the worker stopping, container mode's engine),
    with where it got to, so that the task workflow records it: lost (LOST_RUN: resumed, no
    attempt spent) or a setup error (AGENT_NON_RETRYABLE)."""
    run = AgentRun(
        session_id=progress.session_id,
        attempt=progress.attempt,
        is_error=True,
        error=message,
        error_type=error_type,
        cost_usd=progress.cost_usd,
        turns=progress.turns,
        transcript_path=progress.transcript_path,
        session_saved=progress.session_saved,
        lost=is_lost(error_type),
    )
    # A worker's shutdown is expected: logged without a traceback.
    category = (
        ApplicationErrorCategory.BENIGN
        if error_type == error_types.WORKER_STOPPED
        else ApplicationErrorCategory.UNSPECIFIED
    )
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


class AgentActivities:
    """Holds what the worker found once at start: the binary, the sandbox, the env and the
    secrets in it, which are scrubbed from the transcripts and what the runs report."""

    def __init__(
        self, claude_bin: Path, sandbox: Sandbox, egress: Egress, env: Mapping[str, str]
    ) -> None:
        self._claude_bin = claude_bin
        self._sandbox = sandbox
        self._egress = egress
        self._gateway = Gateway(egress.socket_path)
        self._env = dict(env)
        path = agent_environment(claude_bin, self._env)["PATH"]
        self._tools = tools_of(claude_bin, path)
        self._redactor = Redactor.from_env(self._env)
        self._setup = CheckActivities(sandbox, egress)

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
                error_types.WORKSPACE_UNAVAILABLE,
                started,
            ) from err
        return workspace.model_copy(update={"path": path})

    async def _conflict_here(self, job: AgentInput) -> list[str]:
        """Remote mode's conflict round: the target merged in where the agent runs, its
        conflicts left for the agent (found in progress where the round's first step ran)."""
        request, workspace = job.request, job.workspace
        site = site_of(job)
        merge = TargetMergeInput.at(TaskPlace.of(request, workspace), request.repo, workspace.path)
        merge.site = site
        try:
            merged = await in_thread(workspaces(site).merge_target, merge)
        except gitops.GitError as err:
            raise run_error(
                f"the conflict round's merge could not be made on this worker: {err}",
                error_types.WORKSPACE_UNAVAILABLE,
                AgentProgress(session_id="", attempt=job.attempt),
            ) from err
        return merged.conflict_files

    @activity.defn(name="run_agent")
    async def run_agent(self, job: AgentInput) -> AgentRun:
        request = await full_request(checked(job).request)
        step = f"round-{job.round}-attempt-{job.attempt}"
        workspace = await self._workspace_here(
            request, site_of(job), job.workspace, job.attempt, step
        )
        job = job.model_copy(update={"request": request, "workspace": workspace})
        if job.purpose == "conflict" and site_of(job).remote:
            job.conflict_files = await self._conflict_here(job)
        attempt = job.attempt
        name = agent_run_name(job.round, attempt, job.lost_before)
        sid = claude_session_id(activity.info().workflow_id, name)
        transcript = transcript_path(
            request.state_dir, request.session_id, request.task.id, f"{name}-{sid}"
        )
        log.info(
            "agent starting",
            purpose=job.purpose,
            round=job.round,
            agent_attempt=attempt,
            claude_session=sid,
            resuming=job.resume_session,
            transcript=str(transcript),
        )
        resume_refused = False
        try:
            state, duration = await self._agent_once(job, sid, transcript)
        except AgentFailure as failure:
            if failure.kind != "resume_refused":
                raise failure_error(failure, attempt, transcript) from failure
            # The session was never saved (its run was cut off before the CLI wrote it): a
            # fresh session in the same worktree, within this attempt.
            log.warning("resume refused; starting a fresh session", claude_session=sid)
            resume_refused = True
            fresh = fresh_run_name(name)
            sid = claude_session_id(activity.info().workflow_id, fresh)
            transcript = transcript.with_name(f"{fresh}-{sid}.jsonl")
            job = job.model_copy(update={"resume_session": None, "after_loss": True})
            try:
                state, duration = await self._agent_once(job, sid, transcript)
            except AgentFailure as again:
                raise failure_error(again, attempt, transcript, resume_refused=True) from again
        run = agent_run(state, attempt, transcript, duration)
        run.resume_refused = resume_refused
        log.info(
            "agent finished",
            turns=run.turns,
            cost_usd=run.cost_usd,
            duration_s=round(duration, 1),
            claude_session=run.session_id,
        )
        if job.commit is not None:
            run.commit = await commit_after_run(job.commit, run)
        return run

    async def _agent_once(
        self, job: AgentInput, sid: str, transcript: Path
    ) -> tuple[StreamState, float]:
        """One CLI run of the agent: a new session `sid`, or the resumed job.resume_session;
        in the sandbox here, or in a container (container mode)."""
        if job.request.container is not None:
            return await self._run_in_container(job, job.request.container, sid, transcript)
        resume = job.resume_session is not None
        argv = claude_argv(
            self._claude_bin, job.request.agent, job.resume_session or sid, resume=resume
        )
        return await self._run(
            argv,
            await sandbox_for(job.request, site_of(job), job.workspace.path, "agent", self._tools),
            agent_prompt(job),
            sid,
            job.attempt,
            transcript,
            job.request.agent,
        )

    @activity.defn(name="review_changes")
    async def review_changes(self, job: ReviewerInput) -> ReviewerOutcome:
        request = await full_request(checked(job).request)
        attempt = reviewer_attempt(job.attempt, activity.info().attempt)
        workspace = await self._workspace_here(
            request,
            site_of(job),
            job.workspace,
            attempt,
            f"review-round-{job.round}-attempt-{attempt}",
        )
        name = reviewer_run_name(job.round, attempt)
        sid = claude_session_id(activity.info().workflow_id, name)
        transcript = transcript_path(
            request.state_dir, request.session_id, request.task.id, f"{name}-{sid}"
        )
        diff = await asyncio.to_thread(gitops.diff_for_review, workspace.path, workspace.base_sha)
        prompt = reviewer_prompt(
            request,
            diff.diff,
            diff.changed_files,
            job.checks,
            untouched_files(request.task, diff.changed_files),
            request.review.reviewer_prompt,
        )
        argv = reviewer_argv(self._claude_bin, request.review, sid)
        head = await asyncio.to_thread(gitops.head_sha, workspace.path)
        before = await asyncio.to_thread(gitops.tree_fingerprint, workspace.path)
        try:
            sandbox = await sandbox_for(
                request, site_of(job), workspace.path, "reviewer", self._tools
            )
            state, duration = await self._run(
                argv, sandbox, prompt, sid, attempt, transcript, request.agent
            )
        except AgentFailure as failure:
            raise failure_error(failure, attempt, transcript) from failure
        finally:
            # The reviewer is given read-only tools; this is the proof, and the repair.
            changed = await asyncio.to_thread(gitops.tree_fingerprint, workspace.path) != before
            if changed:
                await asyncio.to_thread(gitops.restore_tree, workspace.path, head, workspace.branch)
        if changed:
            raise ApplicationError(
                "the reviewer changed the task's worktree although it may only read it; "
                "the worktree was restored and the review will run again",
                type=error_types.REVIEWER_CHANGED_TREE,
            )
        try:
            verdict = parse_verdict(state.result)
        except AgentFailure as failure:
            failure.state, failure.duration_s = state, duration
            raise failure_error(failure, attempt, transcript) from failure
        log.info(
            "review finished",
            round=job.round,
            verdict=verdict.verdict,
            findings=len(verdict.findings),
            transcript=str(transcript),
        )
        return ReviewerOutcome(
            verdict=verdict,
            run=agent_run(state, attempt, transcript, duration),
            changed_files=diff.changed_files,
        )

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

            async def run(on_progress: Callable[[AgentProgress], None]) -> RunOutcome:
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

    async def _run_in_container(
        self, job: AgentInput, container: ContainerSettings, sid: str, transcript: Path
    ) -> RunOutcome:
        """Container mode: the same argv, prompt and stream as a local run, in the task's
        Dagger container; the workspace comes back over the host's when it ends."""
        # Imported here: the Dagger SDK is slow to import, and only container mode needs it.
        from autopilot.agent.container import (
            CONTAINER_CLAUDE,
            ContainerJob,
            run_claude_in_container,
        )

        started = AgentProgress(
            session_id=sid, attempt=job.attempt, transcript_path=str(transcript)
        )
        try:
            access = engine_or_setup_error(self._env)
        except ApplicationError as err:
            raise run_error(err.message, err.type or "", started) from err
        settings = job.request.agent
        argv = claude_argv(
            CONTAINER_CLAUDE,
            settings,
            job.resume_session or sid,
            resume=job.resume_session is not None,
        )
        site = site_of(job)
        objects = await asyncio.to_thread(workspaces(site).shared_objects, site.repo)
        work = ContainerJob(workspace=Path(job.workspace.path), inside=site.inside, objects=objects)
        env = agent_environment(self._claude_bin, self._env, model_route(self._env))

        async def run(on_progress: Callable[[AgentProgress], None]) -> RunOutcome:
            try:
                return await run_claude_in_container(
                    access,
                    container,
                    work,
                    argv,
                    env=env,
                    prompt=agent_prompt(job),
                    session_id=sid,
                    transcript=transcript,
                    idle_timeout_s=settings.idle_timeout_s,
                    run_timeout_s=settings.attempt_timeout_s,
                    on_progress=on_progress,
                    redactor=self._redactor,
                )
            except EngineError as err:
                raise run_error(str(err), err.error_type, started) from err

        return await self._heartbeating(run, sid, job.attempt, transcript, settings)

    async def _heartbeating(
        self,
        run: Callable[[Callable[[AgentProgress], None]], Awaitable[RunOutcome]],
        sid: str,
        attempt: int,
        transcript: Path,
        settings: AgentSettings,
    ) -> RunOutcome:
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
