"""Activity: the reviewer's run on a task's diff, read-only in its workspace (the tree is
checked before and after, and restored if it changed). The CLI runs through ClaudeRuns
(activities/claude_runs.py)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import claude_runs
from activities.claude_runs import ClaudeRuns
from activities.errors import checked
from autopilot import error_types
from autopilot import git as gitops
from autopilot.agent.runner import AgentFailure
from autopilot.models import (
    ReviewerInput,
    ReviewerRunResult,
    Workspace,
)
from autopilot.review.reviewer import parse_verdict, reviewer_argv, reviewer_prompt
from autopilot.review.verdict import untouched_files
from autopilot.steps.attempts import (
    claude_session_id,
    reviewer_attempt,
    reviewer_run_name,
)
from autopilot.steps.site import site_of


class ReviewerActivities(ClaudeRuns):
    """The reviewer's runs."""

    @activity.defn(name="review_changes")
    async def review_changes(self, job: ReviewerInput) -> ReviewerRunResult:
        request = await claude_runs.full_request(checked(job).request)
        attempt = reviewer_attempt(job.attempt, activity.info().attempt)
        name = reviewer_run_name(job.round, attempt)
        workspace = await self._workspace_here(request, site_of(job), job.workspace, attempt, name)
        sid = claude_session_id(activity.info().workflow_id, name)
        transcript = claude_runs.transcript_path(
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
        sandbox = await claude_runs.sandbox_for(
            request, site_of(job), workspace.path, "reviewer", self._tools
        )
        run = functools.partial(
            self._run, argv, sandbox, prompt, sid, attempt, transcript, request.agent
        )
        try:
            state, duration = await self._read_only(workspace, run)
        except AgentFailure as failure:
            raise claude_runs.failure_error(failure, attempt, transcript) from failure
        try:
            verdict = parse_verdict(state.result)
        except AgentFailure as failure:
            failure.state, failure.duration_s = state, duration
            raise claude_runs.failure_error(failure, attempt, transcript) from failure
        claude_runs.log.info(
            "review finished",
            round=job.round,
            verdict=verdict.verdict,
            findings=len(verdict.findings),
            transcript=str(transcript),
        )
        return ReviewerRunResult(
            verdict=verdict,
            run=claude_runs.agent_run(state, attempt, transcript, duration),
            changed_files=diff.changed_files,
        )

    async def _read_only(
        self, workspace: Workspace, run: Callable[[], Awaitable[claude_runs.RunResult]]
    ) -> claude_runs.RunResult:
        """`run`, after which the workspace's tree must be as it was: the reviewer is given
        read-only tools; this is the proof, and the repair (the review then runs again)."""
        head = await asyncio.to_thread(gitops.head_sha, workspace.path)
        before = await asyncio.to_thread(gitops.tree_fingerprint, workspace.path)
        try:
            outcome = await run()
        finally:
            changed = await asyncio.to_thread(gitops.tree_fingerprint, workspace.path) != before
            if changed:
                await asyncio.to_thread(gitops.restore_tree, workspace.path, head, workspace.branch)
        if changed:
            raise ApplicationError(
                "the reviewer changed the task's workspace although it may only read it; "
                "the workspace was restored and the review will run again",
                type=error_types.REVIEWER_CHANGED_TREE,
            )
        return outcome
