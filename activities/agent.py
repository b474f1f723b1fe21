"""Activity: the worker agent's run on a task (autopilot/steps/attempts.py names it and says
whether a run that ended badly was lost), then the commit of what it left
(autopilot/steps/commit.py). The CLI runs through ClaudeRuns (activities/claude_runs.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.claude_runs import (
    ClaudeRuns,
    RunResult,
    agent_run,
    failure_error,
    full_request,
    log,
    run_error,
    sandbox_for,
    transcript_path,
)
from activities.container import engine_or_setup_error
from activities.errors import checked
from activities.heartbeat import in_thread
from autopilot import error_types
from autopilot import git as gitops
from autopilot.agent.cli import agent_environment, claude_argv, model_route
from autopilot.agent.container_access import EngineError
from autopilot.agent.prompts import (
    conflict_prompt,
    continue_prompt,
    fix_prompt,
    merged_checks_prompt,
    task_prompt,
)
from autopilot.agent.runner import AgentFailure, StreamState
from autopilot.models import (
    AgentInput,
    AgentProgress,
    AgentRun,
    CommitInput,
    CommitResult,
    ContainerSettings,
    TargetMergeInput,
    WorkspaceOrigin,
)
from autopilot.steps.attempts import (
    agent_run_name,
    claude_session_id,
    fresh_run_name,
)
from autopilot.steps.commit import commit_after_run as commit_after
from autopilot.steps.commit import failed_commit
from autopilot.steps.site import site_of, workspaces


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


async def commit_after_run(commit: CommitInput, run: AgentRun) -> CommitResult | None:
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


class AgentActivities(ClaudeRuns):
    """The agent's runs: the task, fixes after a review, a conflict round."""

    async def _conflict_here(self, job: AgentInput) -> list[str]:
        """Remote mode's conflict round: the target merged in where the agent runs, its
        conflicts left for the agent (found in progress where the round's first step ran)."""
        request, workspace = job.request, job.workspace
        site = site_of(job)
        merge = TargetMergeInput.at(
            WorkspaceOrigin.of(request, workspace), request.repo, workspace.path
        )
        merge.site = site
        try:
            merged = await in_thread(workspaces(site).merge_target, merge)
        except gitops.GitError as err:
            raise run_error(
                f"the conflict round's merge could not be made on this worker: {err}",
                error_types.REMOTE_AWAY,
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
            # fresh session in the same workspace, within this attempt.
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

    async def _run_in_container(
        self, job: AgentInput, container: ContainerSettings, sid: str, transcript: Path
    ) -> RunResult:
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

        async def run(on_progress: Callable[[AgentProgress], None]) -> RunResult:
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
