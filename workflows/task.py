"""TaskWorkflow: one task of the plan, from a fresh worktree to a reviewed branch ready to merge.

Its own workflow (and its own page in the Web UI). The story: prepare the worktree; let the
agent work and commit what it left (in the agent's activity; a commit step of its own when
that commit failed); review (the repo's checks, then the agent reviewer); if the review asks
for changes, send the findings back to the agent in the same worktree, for at most `rounds`
rounds. An approved branch goes back to the session, which owns the merge queue.
In the conflict round the target branch is first merged into the task's branch and the agent
resolves the conflicts; the rest is the same.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    TimeoutError,
    is_cancelled_exception,
)
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.agent import AgentActivities
    from activities.review import run_checks
    from activities.workspace import commit_changes, merge_target, prepare_workspace
    from autopilot.models import (
        AgentInput,
        AgentProgress,
        AgentRun,
        CheckResult,
        ChecksInput,
        CommitInput,
        CommitOutcome,
        ReviewerInput,
        ReviewerOutcome,
        ReviewResult,
        TargetMerge,
        TargetMergeInput,
        TaskOutcome,
        TaskRequest,
        TaskResult,
        Workspace,
        WorkspaceInput,
    )
    from autopilot.review import combine_review, untouched_files

GIT_TIMEOUT = timedelta(minutes=5)
GIT_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=["RepoUnusable"])
# Errors that retrying an agent cannot fix: they end the task at once with the message.
AGENT_NON_RETRYABLE = frozenset({"AgentAuth", "AgentSetup"})
AGENT_BACKOFF = timedelta(seconds=5)
AGENT_BACKOFF_MAX = timedelta(minutes=5)
LOST_WORKER_DELAY = timedelta(seconds=1)


def error_type(err: ActivityError) -> str | None:
    return err.cause.type if isinstance(err.cause, ApplicationError) else None


def innermost_error_type(err: BaseException) -> str | None:
    while isinstance(err, ActivityError | ChildWorkflowError) and err.cause is not None:
        err = err.cause
    return err.type if isinstance(err, ApplicationError) else None


def failure_message(err: BaseException) -> str:
    """The innermost message of an activity failure: what a person needs to read."""
    while isinstance(err, ActivityError | ChildWorkflowError) and err.cause is not None:
        err = err.cause
    if isinstance(err, ApplicationError) and err.type:
        return f"{err.message} [{err.type}]"
    return str(err)


@workflow.defn
class TaskWorkflow:
    def __init__(self) -> None:
        self._phase = "starting"

    @workflow.query
    def phase(self) -> str:
        return self._phase

    @workflow.run
    async def run(self, request: TaskRequest) -> TaskResult:
        task = request.task
        self._label = f"Task {task.id}: {task.title}"

        workspace = await self._prepare(request)
        if workspace.already_merged:
            # A merge for this task is already on the target (an earlier run of this session).
            self._show("already merged")
            return TaskResult(
                task_id=task.id,
                outcome="already_merged",
                branch=workspace.branch,
                merge_sha=workspace.merge_sha,
            )
        result = TaskResult(
            task_id=task.id,
            outcome="failed",
            branch=workspace.branch,
            workspace_path=workspace.path,
            base_sha=workspace.base_sha,
        )

        job: AgentInput | None = AgentInput(request=request, workspace=workspace)
        if request.resolve_conflict:
            merge = await self._merge_target_into_branch(request, workspace)
            if merge.clean:
                job = None  # the conflict went away: nothing for the agent, straight to review
            else:
                job = AgentInput(
                    request=request,
                    workspace=workspace,
                    purpose="conflict",
                    conflict_files=merge.conflict_files,
                )

        for round_number in range(1, request.review.rounds + 1):
            committed: CommitOutcome | None = None
            if job is not None:
                job.round = round_number
                job.commit = self._commit_input(request, workspace)
                run = await self._run_agent(job, result)
                if run is None:
                    return self._done(result, "failed")
                committed = run.commit

            try:
                # The agent's activity committed already, unless its commit failed.
                commits = committed or await self._commit(request, workspace)
            except ActivityError as err:
                if not request.resolve_conflict or "[ConflictsRemain]" not in failure_message(err):
                    raise
                result.error = (
                    f"the conflict round left conflicts with {request.target_branch}: "
                    f"{failure_message(err)}; branch {workspace.branch} is kept, "
                    f"{request.target_branch} untouched"
                )
                return self._done(result, "conflict")
            result.commits = commits.commits
            if commits.no_changes:
                result.error = "the agent finished without changing anything; nothing to merge"
                return self._done(result, "no_changes")

            review = await self._review(request, workspace, round_number)
            result.reviews.append(review)
            if review.approved:
                return self._done(result, "ready")

            # Back to the agent with the findings, in its own session where it can resume.
            last = result.agent_runs[-1] if result.agent_runs else None
            job = AgentInput(
                request=request,
                workspace=workspace,
                purpose="fix",
                review=review,
                resume_session=last.session_id if last and not last.is_error else None,
            )

        result.error = (
            f"still not approved after {request.review.rounds} review round(s): "
            + "; ".join(finding.message.splitlines()[0] for finding in result.reviews[-1].findings)
        )
        return self._done(result, "rejected")

    # -- steps -------------------------------------------------------------------------------

    async def _prepare(self, request: TaskRequest) -> Workspace:
        self._show("preparing worktree")
        return await workflow.execute_activity(
            prepare_workspace,
            WorkspaceInput(
                repo=request.repo,
                target_branch=request.target_branch,
                state_dir=request.state_dir,
                session_id=request.session_id,
                task_id=request.task.id,
            ),
            start_to_close_timeout=GIT_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=request.agent.heartbeat_timeout_s),
            retry_policy=GIT_RETRY,
            summary=f"{self._label} — prepare worktree",
        )

    async def _merge_target_into_branch(
        self, request: TaskRequest, workspace: Workspace
    ) -> TargetMerge:
        self._show(f"merging {request.target_branch} into the task branch")
        return await workflow.execute_activity(
            merge_target,
            TargetMergeInput(
                worktree=workspace.path,
                target_branch=request.target_branch,
                session_id=request.session_id,
                task_id=request.task.id,
            ),
            start_to_close_timeout=GIT_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=request.agent.heartbeat_timeout_s),
            retry_policy=GIT_RETRY,
            summary=f"{self._label} — conflict round: merge {request.target_branch} in",
        )

    def _commit_input(self, request: TaskRequest, workspace: Workspace) -> CommitInput:
        return CommitInput(
            worktree=workspace.path,
            base_sha=workspace.base_sha,
            session_id=request.session_id,
            task_id=request.task.id,
            message=request.task.commit_message or self._label,
        )

    async def _commit(self, request: TaskRequest, workspace: Workspace) -> CommitOutcome:
        self._show("committing")
        return await workflow.execute_activity(
            commit_changes,
            self._commit_input(request, workspace),
            start_to_close_timeout=GIT_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=request.agent.heartbeat_timeout_s),
            retry_policy=GIT_RETRY,
            summary=f"{self._label} — commit",
        )

    async def _run_agent(self, job: AgentInput, result: TaskResult) -> AgentRun | None:
        """The agent's attempts, each recorded. The workflow owns the retries (not the
        activity's retry policy) so that every attempt's cost, turns and transcript stay in
        the task's result, and a rate limit waits as a visible timer for the reset time."""
        settings = job.request.agent
        for attempt in range(1, settings.max_attempts + 1):
            self._show(f"agent ({job.purpose}), round {job.round}, attempt {attempt}")
            job.attempt = attempt
            try:
                run: AgentRun = await workflow.execute_activity_method(
                    AgentActivities.run_agent,
                    job,
                    # The activity stops the agent at attempt_timeout_s itself, with a clear
                    # error; this only catches a worker that cannot even do that.
                    start_to_close_timeout=timedelta(seconds=settings.attempt_timeout_s + 60),
                    heartbeat_timeout=timedelta(seconds=settings.heartbeat_timeout_s),
                    retry_policy=RetryPolicy(maximum_attempts=1),
                    # On cancellation, wait until the agent's processes are really gone.
                    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=f"{self._label} — agent round {job.round}, attempt {attempt}",
                )
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise  # the task was cancelled: not a failed attempt to retry
                failed = failed_attempt(err, attempt)
                result.agent_runs.append(failed)
                if failed.error_type in AGENT_NON_RETRYABLE or attempt == settings.max_attempts:
                    result.error, result.error_type = f"agent: {failed.error}", failed.error_type
                    return None
                # A worker that died mid-run left a Claude session to resume in the same
                # worktree; anything else starts the next try afresh.
                lost = failed.error_type == "AgentLost" and failed.session_id
                job.resume_session = failed.session_id if lost else None
                await workflow.sleep(retry_delay(failed, attempt))
                continue
            result.agent_runs.append(run)
            return run
        return None

    async def _review(
        self, request: TaskRequest, workspace: Workspace, round_number: int
    ) -> ReviewResult:
        settings = request.review
        checks: list[CheckResult] = []
        if settings.runs_checks and settings.checks:
            self._show(f"checks, round {round_number}")
            checks = await workflow.execute_activity(
                run_checks,
                ChecksInput(
                    worktree=workspace.path,
                    checks=settings.checks,
                    timeout_s=settings.check_timeout_s,
                    output_dir=f"{request.state_dir}/checks/{request.session_id}/"
                    f"{request.task.id}/round-{round_number}",
                ),
                start_to_close_timeout=timedelta(
                    seconds=settings.check_timeout_s * len(settings.checks) + 60
                ),
                heartbeat_timeout=timedelta(seconds=request.agent.heartbeat_timeout_s),
                retry_policy=RetryPolicy(maximum_attempts=3),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"{self._label} — checks, round {round_number}",
            )
        reviewer: ReviewerOutcome | None = None
        untouched: list[str] = []
        if settings.runs_reviewer:
            self._show(f"reviewer, round {round_number}")
            reviewer = await workflow.execute_activity_method(
                AgentActivities.review_changes,
                ReviewerInput(
                    request=request, workspace=workspace, round=round_number, checks=checks
                ),
                start_to_close_timeout=timedelta(seconds=request.agent.attempt_timeout_s),
                heartbeat_timeout=timedelta(seconds=request.agent.heartbeat_timeout_s),
                retry_policy=RetryPolicy(
                    initial_interval=AGENT_BACKOFF,
                    maximum_attempts=request.agent.max_attempts,
                    non_retryable_error_types=list(AGENT_NON_RETRYABLE),
                ),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"{self._label} — reviewer, round {round_number}",
            )
            untouched = untouched_files(request.task, reviewer.changed_files)
        review = combine_review(round_number, checks, reviewer, untouched)
        self._show(f"round {round_number}: {review.summary}")
        return review

    # -- bookkeeping -------------------------------------------------------------------------

    def _show(self, phase: str) -> None:
        """The phase, for the `phase` query and the Web UI's current details."""
        self._phase = phase
        workflow.set_current_details(f"**{self._label}** — {phase}")

    def _done(self, result: TaskResult, outcome: TaskOutcome) -> TaskResult:
        result.outcome = outcome
        self._show(outcome.replace("_", " ") + (f": {result.error}" if result.error else ""))
        return result


def failed_attempt(err: ActivityError, attempt: int) -> AgentRun:
    """The failed attempt as the activity described it, or what its last heartbeat said
    when it never got to say anything (worker gone, timed out)."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.details:
        return AgentRun.model_validate(cause.details[0])
    run = AgentRun(session_id="", attempt=attempt, is_error=True, error=failure_message(err))
    if isinstance(cause, TimeoutError) and cause.last_heartbeat_details:
        progress = AgentProgress.model_validate(cause.last_heartbeat_details[0])
        run.session_id, run.turns = progress.session_id, progress.turns
        run.transcript_path = progress.transcript_path
        run.error_type = "AgentLost"
    return run


def retry_delay(failed: AgentRun, attempt: int) -> timedelta:
    if failed.retry_after_s:
        return timedelta(seconds=failed.retry_after_s)
    if failed.error_type == "AgentLost":
        return LOST_WORKER_DELAY  # the worker died, not the service: no reason to back off
    backoff: timedelta = AGENT_BACKOFF * 2 ** (attempt - 1)
    return min(backoff, AGENT_BACKOFF_MAX)
