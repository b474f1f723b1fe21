"""TaskWorkflow: one task of the plan, from a fresh workspace to a reviewed branch ready to merge.

Its own workflow (and its own page in the Web UI). The story: prepare the workspace; let the
agent work and commit what it left (in the agent's activity; a commit step of its own when
that commit failed); review (the repo's checks, then the agent reviewer); if the review asks
for changes, send the findings back to the agent in the same workspace, for at most `rounds`
rounds. An approved branch goes back to the session, which owns the merge queue.
In the conflict round the target branch is first merged into the task's branch and the agent
resolves the conflicts; the rest is the same. In forge mode a pull request's failing check or a
person's request for changes comes back as a round whose first job is that fix
(TaskRequest.forge_feedback). The merged-checks round is a conflict round whose
merge went cleanly but failed the checks (TaskRequest.merged_checks): the agent makes them pass.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

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
    from activities.checks import CheckActivities
    from activities.reviewer import ReviewerActivities
    from activities.setup import SetupActivities
    from activities.workspace import commit_changes, merge_target, prepare_workspace
    from autopilot.error_types import (
        CONFLICTS_REMAIN,
        REPO_UNUSABLE,
        RUN_LOST,
        WORKSPACE_SETUP_FAILED,
    )
    from autopilot.infra.config import agent_task_queue
    from autopilot.models import (
        AgentInput,
        AgentProgress,
        AgentRun,
        AgentSettings,
        CheckResult,
        ChecksInput,
        CommitInput,
        CommitResult,
        ReviewerInput,
        ReviewerRunResult,
        ReviewResult,
        ReviewSettings,
        SetupInput,
        SetupResult,
        TargetMergeInput,
        TargetMergeResult,
        TaskOutcome,
        TaskRequest,
        TaskResult,
        TaskSite,
        Workspace,
        WorkspaceInput,
        WorkspaceOrigin,
        in_state_dir,
    )
    from autopilot.review.verdict import combine_review, finding_headline, untouched_files
    from autopilot.steps.attempts import ends_the_attempts
    from autopilot.steps.attempts import is_lost as run_is_lost
    from autopilot.steps.site import task_site

GIT_TIMEOUT = timedelta(minutes=5)
GIT_RETRY = RetryPolicy(maximum_attempts=5, non_retryable_error_types=[REPO_UNUSABLE])
StepInput = TypeVar("StepInput")
StepResult = TypeVar("StepResult")
AGENT_BACKOFF = timedelta(seconds=5)
AGENT_BACKOFF_MAX = timedelta(minutes=5)
LOST_WORKER_DELAY = timedelta(seconds=1)
# A failing check is a result, not an error: the checks activity fails only when the worker
# or the machine does, so it gets as many tries as a task's runs may be lost in a row.
CHECK_ATTEMPTS = 20
# The activity stops the CLI at attempt_timeout_s itself, with a clear error; its own
# start-to-close timeout is this much longer and only catches a worker that cannot.
ACTIVITY_MARGIN = timedelta(seconds=60)
# Patch ids (docs/VERSIONING.md): histories recorded before a change replay the old way.
FAILURE_KEEPS_RUNS = "failure-keeps-runs"
WORKSPACE_SETUP = "workspace-setup"
AGENTS_QUEUE = "agents-queue"
# Copying a large cached folder (node_modules) takes a while besides the commands themselves.
SETUP_MARGIN = timedelta(minutes=10)


class RunsLost(Exception):
    """AgentSettings.max_lost_runs runs of this task were lost in a row: back to the session."""


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
        self._lost_in_a_row = 0

    @workflow.query
    def phase(self) -> str:
        return self._phase

    @workflow.run
    async def run(self, request: TaskRequest) -> TaskResult:
        task = request.task
        self._label = f"Task {task.id}: {task.title}"

        # Where the task runs, decided once here and carried in every step's input.
        self._site = task_site(request)
        workspace = await self._prepare(request)
        self._site = self._site.prepared(workspace.path, WorkspaceOrigin.of(request, workspace))
        if workspace.already_merged:
            # A merge for this task is already on the target (an earlier run of this session).
            self._show("already merged")
            return TaskResult(
                task_id=task.id,
                outcome="already_merged",
                branch=workspace.branch,
                merge_sha=workspace.merge_sha,
                site=self._site,
            )
        result = TaskResult(
            task_id=task.id,
            outcome="failed",
            branch=workspace.branch,
            workspace_path=workspace.path,
            base_sha=workspace.base_sha,
            set_aside=workspace.set_aside,
            site=self._site,
        )

        job = await self._first_job(request, workspace)
        try:
            if not request.resolve_conflict:
                await self._set_up(request, workspace, result, "setup")
            return await self._rounds(request, workspace, job, result)
        except RunsLost as lost:
            result.error = str(lost)
            return self._done(result, "lost")
        except ActivityError as err:
            # A step failed for good (the reviewer, a check, a commit): the task failed, and
            # its result keeps the runs it made, for status and the budget.
            if is_cancelled_exception(err):
                raise
            if workflow.patched(FAILURE_KEEPS_RUNS):
                result.error, result.error_type = failure_message(err), innermost_error_type(err)
                return self._done(result, "failed")
            else:
                raise

    async def _first_job(self, request: TaskRequest, workspace: Workspace) -> AgentInput | None:
        """The agent's first job: the task; in a forge's feedback round, a fix of what its
        review says; in a conflict round, the conflict, or the checks that fail on the merge,
        or nothing (the conflict went away: straight to review)."""
        if request.forge_feedback is not None and not request.resolve_conflict:
            return AgentInput(
                request=request, workspace=workspace, purpose="fix", review=request.forge_feedback
            )
        if not request.resolve_conflict:
            return AgentInput(request=request, workspace=workspace)
        merge = await self._merge_target_into_branch(request, workspace)
        if merge.clean and request.merged_checks:
            # Merged cleanly, but failing checks together with the target's new commits: the
            # agent makes them pass on the merge.
            return AgentInput(request=request, workspace=workspace, purpose="merged_checks")
        if merge.clean:
            return None
        return AgentInput(
            request=request,
            workspace=workspace,
            purpose="conflict",
            conflict_files=merge.conflict_files,
        )

    async def _rounds(
        self,
        request: TaskRequest,
        workspace: Workspace,
        job: AgentInput | None,
        result: TaskResult,
    ) -> TaskResult:
        """The agent's rounds, each followed by a review, until one is approved."""
        for round_number in range(1, request.review.rounds + 1):
            committed: CommitResult | None = None
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
                if not request.resolve_conflict or error_type(err) != CONFLICTS_REMAIN:
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

            if request.resolve_conflict:
                # The merge may have changed the lock files: set up again if it did.
                await self._set_up(request, workspace, result, f"setup-conflict-{round_number}")
            review = await self._review(request, workspace, round_number, result)
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

        result.error = f"still not approved after {request.review.rounds} review round(s):\n" + (
            "\n".join(finding_headline(finding) for finding in result.reviews[-1].findings)
        )
        return self._done(result, "rejected")

    # -- steps -------------------------------------------------------------------------------

    async def _prepare(self, request: TaskRequest) -> Workspace:
        self._show("preparing workspace")
        return await self._git_step(
            request,
            prepare_workspace,
            WorkspaceInput(
                **request.model_dump(
                    include={"repo", "target_branch", "state_dir", "session_id", "fresh"}
                ),
                task_id=request.task.id,
                site=self._site,
            ),
            "prepare workspace" + (" afresh" if request.fresh else ""),
        )

    async def _merge_target_into_branch(
        self, request: TaskRequest, workspace: Workspace
    ) -> TargetMergeResult:
        self._show(f"merging {request.target_branch} into the task branch")
        return await self._git_step(
            request,
            merge_target,
            TargetMergeInput.at(
                WorkspaceOrigin.of(request, workspace), request.repo, workspace.path, self._site
            ),
            f"conflict round: merge {request.target_branch} in",
        )

    async def _set_up(
        self, request: TaskRequest, workspace: Workspace, result: TaskResult, step: str
    ) -> None:
        """[workspace]: the copied files and the setup commands (or their cache). A failure
        is the setup's, not the agent's: the task fails with the command and its output, and
        the session pauses (SETUP_ERRORS)."""
        settings = request.workspace
        if not settings.active:
            return
        # No history took the old path (the settings came with the patch): deprecated, see
        # docs/VERSIONING.md.
        workflow.deprecate_patch(WORKSPACE_SETUP)
        await self._run_setup(request, workspace, result, step)

    async def _run_setup(
        self, request: TaskRequest, workspace: Workspace, result: TaskResult, step: str
    ) -> None:
        settings = request.workspace
        self._show("setting up the workspace")
        try:
            done: SetupResult = await workflow.execute_activity_method(
                SetupActivities.set_up_workspace,
                SetupInput.of(request, workspace, step, self._site),
                start_to_close_timeout=timedelta(
                    seconds=settings.setup_timeout_s * len(settings.setup)
                )
                + SETUP_MARGIN,
                heartbeat_timeout=timedelta(seconds=request.agent.heartbeat_timeout_s),
                retry_policy=RetryPolicy(
                    maximum_attempts=CHECK_ATTEMPTS,
                    non_retryable_error_types=[WORKSPACE_SETUP_FAILED],
                ),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"{self._label} — workspace setup",
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.details:
                result.setup.append(SetupResult.model_validate(cause.details[0]))
            raise
        if not done.unchanged:
            result.setup.append(done)

    def _commit_input(self, request: TaskRequest, workspace: Workspace) -> CommitInput:
        return CommitInput(
            workspace_path=workspace.path,
            base_sha=workspace.base_sha,
            session_id=request.session_id,
            task_id=request.task.id,
            message=request.task.commit_message or self._label,
            repo=request.repo,
            keep_out=request.workspace.keep_out,
            named_files=[ref.path for ref in request.task.files],
            conflict_target=request.target_branch if request.resolve_conflict else "",
            site=self._site,
        )

    async def _commit(self, request: TaskRequest, workspace: Workspace) -> CommitResult:
        self._show("committing")
        return await self._git_step(
            request, commit_changes, self._commit_input(request, workspace), "commit"
        )

    async def _git_step(
        self,
        request: TaskRequest,
        step: Callable[[StepInput], Awaitable[StepResult]],
        arg: StepInput,
        summary: str,
    ) -> StepResult:
        """A git step on the task's workspace: retried (git fails for passing reasons), and
        heartbeating so that a killed worker's step is known lost soon."""
        return await workflow.execute_activity(
            step,
            arg,
            start_to_close_timeout=GIT_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=request.agent.heartbeat_timeout_s),
            retry_policy=GIT_RETRY,
            summary=f"{self._label} — {summary}",
        )

    async def _run_agent(self, job: AgentInput, result: TaskResult) -> AgentRun | None:
        """The agent's attempts, each recorded. The workflow owns the retries (not the
        activity's retry policy) so that every attempt's cost, turns and transcript stay in
        the task's result, a rate limit waits as a visible timer for the reset time, and a
        lost run (worker gone, CLI killed from outside) resumes without spending an attempt."""
        settings = job.request.agent
        attempt, runs = 1, 0
        while True:
            self._show(f"agent ({job.purpose}), round {job.round}, attempt {attempt}")
            job.attempt, job.lost_before = attempt, runs
            job.site = self._site
            runs += 1
            try:
                run: AgentRun = await workflow.execute_activity_method(
                    AgentActivities.run_agent,
                    job,
                    summary=f"{self._label} — agent round {job.round}, attempt {attempt}",
                    **claude_run_options(settings),
                )
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise  # the task was cancelled: not a failed attempt to retry
                failed = failed_attempt(err, attempt)
                result.agent_runs.append(failed)
                if failed.lost:
                    self._count_lost(result, failed.error or "", settings.max_lost_runs)
                    # Resume the Claude session where the CLI saved it; otherwise a fresh
                    # session in the same workspace, told to look at what is there.
                    if failed.session_saved:
                        job.resume_session = failed.session_id
                    job.after_loss = job.resume_session is None
                    await workflow.sleep(LOST_WORKER_DELAY)
                    continue
                self._lost_in_a_row = 0
                if ends_the_attempts(failed.error_type, attempt, settings.max_attempts):
                    result.error, result.error_type = f"agent: {failed.error}", failed.error_type
                    return None
                job.resume_session, job.after_loss = None, False
                attempt += 1
                await workflow.sleep(retry_delay(failed, attempt - 1))
                continue
            self._lost_in_a_row = 0
            result.agent_runs.append(run)
            return run

    def _count_lost(self, result: TaskResult, error: str, limit: int) -> None:
        result.lost_runs += 1
        self._lost_in_a_row += 1
        if self._lost_in_a_row >= limit:
            raise RunsLost(f"its runs were lost {self._lost_in_a_row} times in a row ({error})")

    async def _run_reviewer(self, job: ReviewerInput, result: TaskResult) -> ReviewerRunResult:
        """The reviewer's attempts: its failures spend --max-attempts, its lost runs do not
        (it starts afresh)."""
        settings = job.request.agent
        failures = runs = 0
        while True:
            runs += 1
            job.attempt = runs  # names the reviewer's Claude session: one per run
            try:
                outcome = await self._review_changes(job)
            except ActivityError as err:
                if is_cancelled_exception(err):
                    raise
                if is_lost(err):
                    self._count_lost(result, failure_message(err), settings.max_lost_runs)
                    await workflow.sleep(LOST_WORKER_DELAY)
                    continue
                self._lost_in_a_row = 0
                failures += 1
                if ends_the_attempts(error_type(err), failures, settings.max_attempts):
                    raise
                await workflow.sleep(min(AGENT_BACKOFF * 2 ** (failures - 1), AGENT_BACKOFF_MAX))
                continue
            self._lost_in_a_row = 0
            return outcome

    async def _review_changes(self, job: ReviewerInput) -> ReviewerRunResult:
        """One run of the reviewer, at the task's site."""
        job.site = self._site
        return await workflow.execute_activity_method(
            ReviewerActivities.review_changes,
            job,
            summary=f"{self._label} — reviewer, round {job.round}",
            **claude_run_options(job.request.agent),
        )

    async def _review(
        self, request: TaskRequest, workspace: Workspace, round_number: int, result: TaskResult
    ) -> ReviewResult:
        settings = request.review
        checks: list[CheckResult] = []
        if settings.runs_checks and settings.checks:
            self._show(f"checks, round {round_number}")
            checks = await workflow.execute_activity_method(
                CheckActivities.run_checks,
                checks_input(request, workspace, f"round-{round_number}", self._site),
                start_to_close_timeout=checks_timeout(settings),
                heartbeat_timeout=timedelta(seconds=request.agent.heartbeat_timeout_s),
                retry_policy=RetryPolicy(maximum_attempts=CHECK_ATTEMPTS),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"{self._label} — checks, round {round_number}",
            )
        reviewer: ReviewerRunResult | None = None
        untouched: list[str] = []
        if settings.runs_reviewer:
            self._show(f"reviewer, round {round_number}")
            reviewer = await self._run_reviewer(
                ReviewerInput(
                    request=request, workspace=workspace, round=round_number, checks=checks
                ),
                result,
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


def checks_input(
    request: TaskRequest, workspace: Workspace, step: str, site: TaskSite | None = None
) -> ChecksInput:
    """The repo's checks in the task's workspace, where its checks run (sandbox, container),
    their logs under checks/<session>/<task>/<step>."""
    settings = request.review
    return ChecksInput(
        workspace_path=workspace.path,
        checks=settings.checks,
        timeout_s=settings.check_timeout_s,
        output_dir=in_state_dir(
            request.state_dir, "checks", request.session_id, request.task.id, step
        ),
        check_env=settings.check_env,
        tmp_dir=in_state_dir(request.state_dir, "tmp"),
        repo=request.repo,
        state_dir=request.state_dir,
        network=request.agent.network,
        ports=request.agent.ports,
        container=request.container,
        origin=WorkspaceOrigin.of(request, workspace),
        setup=request.workspace,
        site=site,
    )


def checks_timeout(settings: ReviewSettings) -> timedelta:
    """Every check's own timeout, and a margin for the activity around them."""
    return timedelta(seconds=settings.check_timeout_s * len(settings.checks) + 60)


def claude_run_options(settings: AgentSettings) -> dict[str, Any]:
    """How the workflow runs the agent's and the reviewer's activities: on the agents queue
    (each worker takes its --max-agents of them), one run each (the workflow counts failures
    and losses itself), and on cancellation it waits until the CLI's processes are really
    gone."""
    queue: dict[str, Any]
    if workflow.patched(AGENTS_QUEUE):
        queue = {"task_queue": agent_task_queue(workflow.info().task_queue)}
    else:
        queue = {}  # recorded before: on the session's own task queue
    return queue | {
        "start_to_close_timeout": timedelta(seconds=settings.attempt_timeout_s) + ACTIVITY_MARGIN,
        "heartbeat_timeout": timedelta(seconds=settings.heartbeat_timeout_s),
        "retry_policy": RetryPolicy(maximum_attempts=1),
        "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    }


def is_lost(err: ActivityError) -> bool:
    """The run was lost, not failed: the worker stopped heartbeating (it died, or the server
    was away) or the CLI was killed by a signal the pipeline did not send."""
    return run_is_lost(error_type(err), timed_out=isinstance(err.cause, TimeoutError))


def failed_attempt(err: ActivityError, attempt: int) -> AgentRun:
    """The failed attempt as the activity described it, or what its last heartbeat said
    when it never got to say anything (worker gone, timed out)."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.details:
        run = AgentRun.model_validate(cause.details[0])
    else:
        run = AgentRun(session_id="", attempt=attempt, is_error=True, error=failure_message(err))
    if isinstance(cause, TimeoutError):
        run.error_type = RUN_LOST
        details = cause.last_heartbeat_details
        # AgentProgress, as the agent's activities heartbeat (a check's or setup's command
        # line is a string: nothing to read back).
        if details and isinstance(details[0], dict):
            progress = AgentProgress.model_validate(details[0])
            run.session_id, run.turns = progress.session_id, progress.turns
            run.transcript_path = progress.transcript_path
            run.session_saved = progress.session_saved
    run.lost = is_lost(err)
    return run


def retry_delay(failed: AgentRun, attempt: int) -> timedelta:
    if failed.retry_after_s:
        return timedelta(seconds=failed.retry_after_s)
    backoff: timedelta = AGENT_BACKOFF * 2 ** (attempt - 1)
    return min(backoff, AGENT_BACKOFF_MAX)
