"""Activity: run the Claude Code CLI on one task in its worktree.

Heartbeats carry the agent's progress (session id, turns, cost, transcript path) to the Web UI
and to the starter; a missed heartbeat is how Temporal notices a dead worker and moves the
attempt elsewhere. Heartbeats tick on a timer as well as on every stream event, because a
model turn or a long Bash command can be silent for minutes while everything is fine; a
silent agent is caught by its own idle timeout instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from autopilot import gitops
from autopilot.agent_runner import AgentFailure, StreamState, run_claude
from autopilot.claude_cli import agent_environment, claude_argv
from autopilot.models import AgentInput, AgentProgress, AgentRun
from autopilot.process_guard import ProcessGuard
from autopilot.prompts import task_prompt

# Namespace for deterministic per-attempt Claude session ids.
SESSION_NAMESPACE = uuid.UUID("6f1f7f0e-3c55-4d5e-9a43-2f0c0f7c3a11")
ERROR_TYPES = {
    "auth": "AgentAuth",
    "rate_limit": "AgentRateLimited",
    "overloaded": "AgentApiError",
    "hung": "AgentHung",
    "no_result": "AgentDied",
    "error": "AgentError",
}


def transcript_path(state_dir: str, session_id: str, task_id: str, attempt: int, sid: str) -> Path:
    folder = Path(state_dir) / "transcripts" / gitops.safe_component(session_id)
    return folder / gitops.safe_component(task_id) / f"attempt-{attempt}-{sid}.jsonl"


class AgentActivities:
    """Holds what the worker found once at start: the binary, the process guard, the env."""

    def __init__(self, claude_bin: Path, guard: ProcessGuard, env: Mapping[str, str]) -> None:
        self._claude_bin = claude_bin
        self._guard = guard
        self._env = dict(env)

    @activity.defn(name="run_agent")
    async def run_agent(self, job: AgentInput) -> AgentRun:
        info = activity.info()
        request, settings, attempt = job.request, job.request.agent, job.attempt
        sid = str(uuid.uuid5(SESSION_NAMESPACE, f"{info.workflow_id}/{attempt}"))
        transcript = transcript_path(
            request.state_dir, request.session_id, request.task.id, attempt, sid
        )
        progress = AgentProgress(session_id=sid, attempt=attempt, transcript_path=str(transcript))

        def on_progress(update: AgentProgress) -> None:
            nonlocal progress
            progress = update.model_copy(update={"attempt": attempt})
            activity.heartbeat(progress)

        async def keep_heartbeating() -> None:
            while True:
                activity.heartbeat(progress)
                await asyncio.sleep(max(settings.heartbeat_timeout_s / 3, 0.5))

        env = agent_environment(
            self._claude_bin,
            self._env,
            await asyncio.to_thread(gitops.identity_env, job.workspace.path),
        )
        argv = self._guard.wrap(claude_argv(self._claude_bin, settings, sid))
        activity.logger.info("agent starting: %s attempt %d", request.task.id, attempt)
        ticker = asyncio.create_task(keep_heartbeating())
        try:
            state, duration = await run_claude(
                argv,
                cwd=Path(job.workspace.path),
                env=env,
                prompt=task_prompt(request, job.workspace.branch),
                session_id=sid,
                transcript=transcript,
                idle_timeout_s=settings.idle_timeout_s,
                on_progress=on_progress,
            )
        except AgentFailure as failure:
            error_type = ERROR_TYPES[failure.kind]
            # The failed attempt travels in the error's details: the task workflow records it
            # (cost, turns, transcript) and decides whether and when to try again.
            failed = agent_run(failure.state, attempt, transcript, failure.duration_s)
            failed.is_error = True
            failed.error = str(failure)
            failed.error_type = error_type
            failed.retry_after_s = failure.retry_after_s
            raise ApplicationError(
                str(failure), failed, type=error_type, non_retryable=failure.kind == "auth"
            ) from failure
        except FileNotFoundError as err:
            raise ApplicationError(
                f"cannot run the agent: {err}", type="AgentSetup", non_retryable=True
            ) from err
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        return agent_run(state, attempt, transcript, duration)


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
    )
