"""Stand-in activities for the workflow-logic tests: plain functions registered under the real
activities' names, returning scripted pydantic results and recording every call.

The real activities are tested elsewhere with real git and the real CLI; these only let the
workflows' decisions be driven and observed quickly. Everything runs on the test's own event
loop (the worker lives in the test process), so a test can hold an agent with an
asyncio.Event and watch what the workflows do meanwhile.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar, cast

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from autopilot.infra import agent_task_queue
from autopilot.models import (
    AgentInput,
    AgentRun,
    AgentSettings,
    Batch,
    CheckCommand,
    CheckResult,
    ChecksInput,
    CommitInfo,
    CommitInput,
    CommitResult,
    MergeInput,
    MergeResult,
    NotifyInput,
    ParsePlanInput,
    Plan,
    RemoveWorkspaceInput,
    ReviewerFinding,
    ReviewerInput,
    ReviewerRunResult,
    ReviewerVerdict,
    ReviewMode,
    ReviewSettings,
    SessionRequest,
    SessionStatus,
    SetupInput,
    SetupResult,
    TargetMergeInput,
    TargetMergeResult,
    Task,
    TaskRequest,
    VerifyMergeInput,
    VerifyMergeResult,
    Workspace,
    WorkspaceInput,
)
from workflows.session import SessionWorkflow
from workflows.task import TaskWorkflow

T = TypeVar("T")
RUN_TIMEOUT = timedelta(seconds=45)  # a stuck workflow fails instead of hanging the test
# A scripted outcome: the result itself, an exception to raise, DEFAULT for the happy default,
# or an async function of the activity's input that produces it (to hang, heartbeat, ...).
Scripted = object
DEFAULT: Scripted = object()

TARGET = "main"
REPO = "/repo"
STATE_DIR = "/state"
CHECK = CheckCommand(command="make test", argv=["make", "test"])


# -- scripted results --------------------------------------------------------------------------


def agent_run(
    job: AgentInput, *, cost: float = 0.5, turns: int = 3, session_id: str | None = None
) -> AgentRun:
    name = f"{job.request.task.id}-r{job.round}-a{job.attempt}"
    return AgentRun(
        session_id=session_id or f"claude-{name}",
        attempt=job.attempt,
        is_error=False,
        subtype="success",
        cost_usd=cost,
        turns=turns,
        transcript_path=f"/transcripts/{name}.jsonl",
    )


def failed_run(
    error_type: str, message: str, *, attempt: int = 1, cost: float = 0.1, **extra: Any
) -> AgentRun:
    return AgentRun(
        session_id=f"failed-{uuid.uuid4().hex[:8]}",
        attempt=attempt,
        is_error=True,
        error=message,
        error_type=error_type,
        cost_usd=cost,
        turns=1,
        transcript_path=f"/transcripts/failed-{attempt}.jsonl",
        **extra,
    )


def verdict(
    decision: str = "approve", summary: str = "looks right", findings: list[str] | None = None
) -> ReviewerVerdict:
    return ReviewerVerdict.model_validate(
        {
            "verdict": decision,
            "summary": summary,
            "findings": [ReviewerFinding(message=text) for text in findings or []],
        }
    )


def check(passed: bool, output: str = "") -> CheckResult:
    return CheckResult(
        command=CHECK.command, passed=passed, exit_code=0 if passed else 1, output_tail=output
    )


def commits(task_id: str, *, no_changes: bool = False) -> CommitResult:
    found = [] if no_changes else [CommitInfo(sha=f"c-{task_id}", subject=f"Task {task_id}")]
    return CommitResult(
        commits=found, head_sha=f"h-{task_id}", committed_leftovers=False, no_changes=no_changes
    )


def make_task(task_id: str, batch: int = 1, depends_on: list[str] | None = None) -> Task:
    return Task(
        id=task_id,
        title=f"Do {task_id}",
        batch=batch,
        body=f"Implement {task_id}.",
        depends_on=depends_on or [],
        line=1,
    )


def make_batch(number: int, *tasks: Task, dependencies: list[int] | None = None) -> Batch:
    return Batch(
        number=number,
        title=f"Batch {number}",
        dependencies=dependencies or [],
        tasks=list(tasks),
        line=number,
    )


def make_plan(*batches: Batch) -> Plan:
    return Plan(path="/plan.md", title="Test plan", context="Some context.", batches=list(batches))


def review_settings(
    mode: ReviewMode = "none", rounds: int = 3, on_failure: str = "continue"
) -> ReviewSettings:
    return ReviewSettings.model_validate(
        {"mode": mode, "rounds": rounds, "checks": [CHECK], "on_failure": on_failure}
    )


def task_request(
    task: Task,
    *,
    review: ReviewSettings | None = None,
    agent: AgentSettings | None = None,
    resolve_conflict: bool = False,
) -> TaskRequest:
    return TaskRequest(
        session_id=f"s-{uuid.uuid4().hex[:8]}",
        repo=REPO,
        target_branch=TARGET,
        state_dir=STATE_DIR,
        task=task,
        agent=agent or AgentSettings(),
        review=review or review_settings(),
        resolve_conflict=resolve_conflict,
    )


def session_request(
    *,
    concurrency: int = 1,
    review: ReviewSettings | None = None,
    repo: str = REPO,
    **extra: Any,
) -> SessionRequest:
    return SessionRequest(
        session_id=f"s-{uuid.uuid4().hex[:8]}",
        repo=repo,
        plan_path="/plan.md",
        target_branch=TARGET,
        concurrency=concurrency,
        state_dir=STATE_DIR,
        review=review or review_settings(),
        **extra,
    )


# -- the stand-ins -----------------------------------------------------------------------------


class Stubs:
    """Every activity of the pipeline, scripted per (activity, task id) and recorded.

    script("run_agent", "1", error, run) makes task 1's first agent call raise `error` and
    its second return `run`; anything unscripted gets the happy default. hold("1") makes
    task 1's agent wait until release("1").
    """

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.calls: list[tuple[str, str, Any]] = []  # (activity, task id, input), in order
        self.active_agents = 0
        self.peak_agents = 0
        self._scripts: dict[tuple[str, str], list[Scripted]] = {}
        self._holds: dict[str, asyncio.Event] = {}
        # The real notify activities (delivering to test receivers) instead of the stand-ins.
        self.notifier: NotifyActivities | None = None

    # -- scripting and observing ---------------------------------------------------------------

    def script(self, activity_name: str, task_id: str, *outcomes: Scripted) -> None:
        self._scripts.setdefault((activity_name, task_id), []).extend(outcomes)

    def hold(self, *task_ids: str) -> None:
        for task_id in task_ids:
            self._holds[task_id] = asyncio.Event()

    def release(self, *task_ids: str) -> None:
        for task_id in task_ids:
            self._holds[task_id].set()

    def inputs(self, activity_name: str, task_id: str | None = None) -> list[Any]:
        return [
            given
            for name, tid, given in self.calls
            if name == activity_name and (task_id is None or tid == task_id)
        ]

    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def index(self, activity_name: str, task_id: str) -> int:
        """Position of the first such call in the call log."""
        for position, (name, tid, _) in enumerate(self.calls):
            if name == activity_name and tid == task_id:
                return position
        raise AssertionError(f"no {activity_name} call for task {task_id}: {self.calls}")

    async def _take(self, activity_name: str, task_id: str, given: Any, default: T) -> T:
        queue = self._scripts.get((activity_name, task_id))
        outcome: Scripted = queue.pop(0) if queue else DEFAULT
        if outcome is DEFAULT:
            return default
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            produce = cast(Callable[[Any], Awaitable[T]], outcome)
            return await produce(given)
        return cast(T, outcome)

    # -- the activities ------------------------------------------------------------------------

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="parse_plan")
        async def parse_plan(request: ParsePlanInput) -> Plan:
            self.calls.append(("parse_plan", "", request))
            default = self.plan or Plan(path=request.plan_path, batches=[])
            return await self._take("parse_plan", "", request, default)

        @activity.defn(name="load_plan_snapshot")
        async def load_plan_snapshot(request: ParsePlanInput) -> Plan:
            self.calls.append(("load_plan_snapshot", "", request))
            assert self.plan is not None and request.sha256 == self.plan.sha256
            return self.plan

        @activity.defn(name="prepare_workspace")
        async def prepare_workspace(request: WorkspaceInput) -> Workspace:
            self.calls.append(("prepare_workspace", request.task_id, request))
            default = Workspace(
                path=f"{request.state_dir}/worktrees/{request.task_id}",
                branch=f"autopilot/{request.session_id}/task-{request.task_id}",
                base_sha="base",
            )
            return await self._take("prepare_workspace", request.task_id, request, default)

        @activity.defn(name="run_agent")
        async def run_agent(job: AgentInput) -> AgentRun:
            task_id = job.request.task.id
            self.calls.append(("run_agent", task_id, job.model_copy(deep=True)))
            self.active_agents += 1
            self.peak_agents = max(self.peak_agents, self.active_agents)
            try:
                hold = self._holds.get(task_id)
                if hold is not None:
                    await hold.wait()
                run = await self._take("run_agent", task_id, job, agent_run(job))
            finally:
                self.active_agents -= 1
            # The real activity commits what the agent left. A scripted commit_changes is
            # what a test is about: then the commit "fails" here and the commit step runs.
            if job.commit is not None and not self._scripts.get(("commit_changes", task_id)):
                run = run.model_copy(update={"commit": commits(task_id)})
            return run

        @activity.defn(name="commit_changes")
        async def commit_changes(request: CommitInput) -> CommitResult:
            self.calls.append(("commit_changes", request.task_id, request))
            default = commits(request.task_id)
            return await self._take("commit_changes", request.task_id, request, default)

        @activity.defn(name="run_checks")
        async def run_checks(request: ChecksInput) -> list[CheckResult]:
            task_id = request.output_dir.split("/")[-2]  # .../checks/<session>/<task>/round-N
            self.calls.append(("run_checks", task_id, request))
            return await self._take("run_checks", task_id, request, [check(True)])

        @activity.defn(name="set_up_workspace")
        async def set_up_workspace(request: SetupInput) -> SetupResult:
            task_id = request.output_dir.split("/")[-2]  # .../checks/<session>/<task>/<step>
            self.calls.append(("set_up_workspace", task_id, request))
            default = SetupResult(key="k", commands=[check(True)], duration_s=1.0)
            return await self._take("set_up_workspace", task_id, request, default)

        @activity.defn(name="review_changes")
        async def review_changes(job: ReviewerInput) -> ReviewerRunResult:
            task_id = job.request.task.id
            self.calls.append(("review_changes", task_id, job))
            run = AgentRun(
                session_id=f"reviewer-{task_id}-r{job.round}",
                attempt=1,
                is_error=False,
                cost_usd=0.25,
                transcript_path=f"/transcripts/{task_id}-review-r{job.round}.jsonl",
            )
            found = await self._take("review_changes", task_id, job, verdict())
            return ReviewerRunResult(verdict=found, run=run, changed_files=[])

        @activity.defn(name="merge_target")
        async def merge_target(request: TargetMergeInput) -> TargetMergeResult:
            self.calls.append(("merge_target", request.task_id, request))
            default = TargetMergeResult(clean=True, head_sha="merged-target")
            return await self._take("merge_target", request.task_id, request, default)

        @activity.defn(name="merge_task")
        async def merge_task(request: MergeInput) -> MergeResult:
            self.calls.append(("merge_task", request.task_id, request))
            # The real activity takes the worktree along with a merge that lands.
            default = MergeResult(
                merged=True,
                merge_sha=f"m-{request.task_id}",
                workspace_removed=request.workspace_path is not None,
            )
            return await self._take("merge_task", request.task_id, request, default)

        @activity.defn(name="verify_merge")
        async def verify_merge(request: VerifyMergeInput) -> VerifyMergeResult:
            task_id = request.merge.task_id
            self.calls.append(("verify_merge", task_id, request))
            default = VerifyMergeResult(clean=True, head_sha="verified", checks=[check(True)])
            return await self._take("verify_merge", task_id, request, default)

        @activity.defn(name="remove_workspace")
        async def remove_workspace(request: RemoveWorkspaceInput) -> None:
            self.calls.append(("remove_workspace", request.task_id, request))
            await self._take("remove_workspace", request.task_id, request, None)

        @activity.defn(name="notify_installation")
        async def notify_installation() -> list[str]:
            self.calls.append(("notify_installation", "", None))
            return []

        @activity.defn(name="notify")
        async def notify(request: NotifyInput) -> None:
            self.calls.append(("notify", request.notification.task_id or "", request))

        notifications: list[Callable[..., Any]] = (
            [notify_installation, notify]
            if self.notifier is None
            else [self.notifier.notify_installation, self.notifier.notify]
        )
        return [
            *notifications,
            parse_plan,
            load_plan_snapshot,
            prepare_workspace,
            run_agent,
            commit_changes,
            run_checks,
            set_up_workspace,
            review_changes,
            merge_target,
            merge_task,
            verify_merge,
            remove_workspace,
        ]


@asynccontextmanager
async def worker(client: Client, stubs: Stubs, **options: Any) -> AsyncIterator[str]:
    """A worker with both workflows and the stand-ins on a fresh task queue; no workflow
    cache, so every workflow task replays the history so far (a cheap determinism check).
    `options`: more Worker arguments (interceptors, heartbeat throttling)."""
    task_queue = f"workflow-test-{uuid.uuid4()}"
    activities = stubs.activities()
    async with (
        Worker(
            client,
            task_queue=task_queue,
            workflows=[SessionWorkflow, TaskWorkflow],
            activities=activities,
            max_cached_workflows=0,
            **options,
        ),
        Worker(  # the agents queue, as worker.py polls it
            client,
            task_queue=agent_task_queue(task_queue),
            activities=activities,
            **options,
        ),
    ):
        yield task_queue


async def start_session(
    client: Client, queue: str, **request: Any
) -> WorkflowHandle[SessionWorkflow, SessionStatus]:
    """A session (session_request(**request)) on the worker's queue, bounded by RUN_TIMEOUT."""
    session = session_request(**request)
    return await client.start_workflow(
        SessionWorkflow.run,
        session,
        id=session.session_id,
        task_queue=queue,
        execution_timeout=RUN_TIMEOUT,
    )
