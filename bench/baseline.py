"""The bare work, without Temporal: each task of the plan, in one process, through the same
plain functions the activities call: worktree, the same `claude -p` invocation (same argv,
environment, process guard and prompt), commit, merge into the target, worktree removed.

One task after the other by default. With `concurrency` K it is the session's schedule without
the session: at most K tasks between worktree and commit at once, started in plan order
(batches are not waited for: the sweep's plan is one batch); merges one at a time; each
worktree removed after its merge; git in threads, as in the activities. The sweep runs it
beside the pipeline at each concurrency: what the work itself gains from K at once on this
machine, to read the pipeline's speedup against.

`sandboxed`: the second baseline, each `claude` run in the sandbox the pipeline runs it in (the
same layout, the gateway and a worker's egress proxy in this process, holding the
credentials): the pipeline against it is what the orchestration costs, it against the bare
one what containment costs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autopilot import git as gitops
from autopilot.agent import (
    Egress,
    Gateway,
    ProcessGuard,
    Sandbox,
    agent_environment,
    claude_argv,
    detect_sandbox,
    model_route,
    run_claude,
    space_environment,
    task_layout,
    task_prompt,
    tools_of,
)
from autopilot.models import (
    AgentProgress,
    AgentSettings,
    Plan,
    ReviewSettings,
    TaskRequest,
    Workspace,
)
from autopilot.plan import load_plan
from autopilot.steps.site import decide
from bench.cpu import snapshot

PHASES = ("prepare", "agent", "commit", "merge", "remove")


@dataclass
class BaselineResult:
    tasks: int
    wall_s: float
    merged: int
    concurrency: int = 1
    phases_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
    task_s: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds by process (bench.cpu)


def task_requests(plan: Plan, repo: Path, state_dir: Path, session_id: str) -> list[TaskRequest]:
    """What the session would hand each task workflow (review off: the baseline has none)."""
    return [
        TaskRequest(
            session_id=session_id,
            repo=str(repo),
            target_branch="main",
            state_dir=str(state_dir),
            task=task,
            plan_title=plan.title,
            plan_context=plan.context,
            batch_title="" if batch.implicit else batch.title,
            batch_description=batch.description,
            agent=AgentSettings(),
            review=ReviewSettings(mode="none"),
        )
        for batch in plan.batches
        for task in batch.tasks
    ]


def _no_progress(update: AgentProgress) -> None:
    del update  # the baseline has nobody to report to


class Clock:
    """Adds each phase's wall time to `totals`."""

    def __init__(self, totals: dict[str, float]) -> None:
        self.totals = totals
        self.restart()

    def restart(self) -> None:
        """From now: time spent waiting (for the merge queue) is nobody's phase."""
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.totals[phase] += now - self._last
        self._last = now


@dataclass(frozen=True)
class Contained:
    """The pipeline's sandbox around each claude run: a worker's sandbox, egress proxy and
    the tools its runs see."""

    sandbox: Sandbox
    egress: Egress
    tools: list[Path]


@dataclass(frozen=True)
class Bare:
    """What every task of one baseline run shares: the CLI, its guard and environment, and
    the schedule (agent slots, the merge queue)."""

    claude_bin: Path
    guard: ProcessGuard
    base_env: Mapping[str, str]
    slots: asyncio.Semaphore
    merge_queue: asyncio.Lock
    contained: Contained | None = None


async def run_task(
    request: TaskRequest, bare: Bare, totals: dict[str, float]
) -> tuple[bool, float]:
    """One task, start to merge: worktree to commit in an agent slot, then the merge queue,
    then the worktree goes. Whether it merged, and its seconds from taking its slot."""
    task, repo = request.task, request.repo
    async with bare.slots:
        started = time.perf_counter()
        clock = Clock(totals)
        workspace = await asyncio.to_thread(
            gitops.prepare_workspace,
            repo,
            request.target_branch,
            request.state_dir,
            request.session_id,
            task.id,
        )
        clock.lap("prepare")
        await run_agent(request, workspace, bare)
        clock.lap("agent")
        await asyncio.to_thread(
            gitops.commit_changes,
            workspace.path,
            workspace.base_sha,
            request.session_id,
            task.id,
            task.commit_message or f"Task {task.id}: {task.title}",
            repo=request.repo,
        )
        clock.lap("commit")
    async with bare.merge_queue:
        clock.restart()
        outcome = await asyncio.to_thread(
            gitops.merge_task,
            repo,
            request.target_branch,
            workspace.branch,
            request.session_id,
            task.id,
            f"Merge task {task.id}: {task.title}",
        )
        clock.lap("merge")
    await asyncio.to_thread(gitops.remove_workspace, repo, workspace.path)
    clock.lap("remove")
    return outcome.merged, time.perf_counter() - started


async def run_agent(request: TaskRequest, workspace: Workspace, bare: Bare) -> None:
    """The CLI run the agent activity makes, without its heartbeats: behind the process
    guard, or in the pipeline's sandbox (`bare.contained`)."""
    sid = str(uuid.uuid4())
    identity = await asyncio.to_thread(gitops.identity_env, workspace.path)
    argv = claude_argv(bare.claude_bin, request.agent, sid)
    extra = {**identity, **model_route(bare.base_env)}
    run = (task_prompt(request, workspace.branch), sid)
    contained = bare.contained
    if contained is None:
        await _claude(request, bare, bare.guard.wrap(argv), Path(workspace.path), extra, run)
        return
    space = gitops.agent_space_path(request.state_dir, request.session_id, request.task.id)
    layout = task_layout(
        Path(workspace.path),
        space / "agent",
        state_dir=Path(request.state_dir),
        site=decide(request.repo),
        objects=gitops.objects_dir(request.repo),
        writes_workspace=True,
        tools=contained.tools,
    )
    gateway = Gateway(contained.egress.socket_path)
    with contained.egress.grant(request.agent.network, model_api=True) as grant:
        extra |= space_environment(space / "agent")
        extra |= gateway.environment(grant.token, contained.egress.credential_names)
        wrapped = contained.sandbox.wrap(argv, layout, gateway)
        await _claude(request, bare, wrapped, layout.workdir, extra, run)


async def _claude(
    request: TaskRequest,
    bare: Bare,
    argv: list[str],
    cwd: Path,
    extra: dict[str, str],
    run: tuple[str, str],
) -> None:
    """One claude run: `run` is its prompt and session id."""
    prompt, sid = run
    transcript = (
        Path(request.state_dir)
        / "transcripts"
        / gitops.safe_component(request.task.id)
        / f"{sid}.jsonl"
    )
    await run_claude(
        argv,
        cwd=cwd,
        env=agent_environment(bare.claude_bin, bare.base_env, extra),
        prompt=prompt,
        session_id=sid,
        transcript=transcript,
        idle_timeout_s=request.agent.idle_timeout_s,
        on_progress=_no_progress,
    )


async def run_baseline(
    plan_path: Path,
    repo: Path,
    state_dir: Path,
    claude_bin: Path,
    guard: ProcessGuard,
    base_env: Mapping[str, str],
    concurrency: int = 1,
    sandboxed: bool = False,
) -> BaselineResult:
    """Every task of the plan, `concurrency` at a time (in plan order); wall time from parse
    to last merge. `sandboxed`: each claude run in the pipeline's sandbox."""
    contained = None
    if sandboxed:
        path = agent_environment(claude_bin, base_env)["PATH"]
        egress = await Egress(state_dir / "egress.sock", base_env).start()
        contained = Contained(detect_sandbox(), egress, tools_of(claude_bin, path))
    # The semaphore wakes its waiters first come, first served: tasks start in plan order.
    slots, merge_queue = asyncio.Semaphore(concurrency), asyncio.Lock()
    bare = Bare(claude_bin, guard, base_env, slots, merge_queue, contained)
    try:
        return await _tasks(plan_path, repo, state_dir, bare, concurrency)
    finally:
        if contained is not None:
            await contained.egress.close()


async def _tasks(
    plan_path: Path, repo: Path, state_dir: Path, bare: Bare, concurrency: int
) -> BaselineResult:
    started = time.perf_counter()
    cpu_before = snapshot()
    plan = load_plan(plan_path)
    requests = task_requests(plan, repo, state_dir, f"baseline-{uuid.uuid4().hex[:8]}")
    result = BaselineResult(tasks=len(requests), wall_s=0.0, merged=0, concurrency=concurrency)
    outcomes = await asyncio.gather(
        *(run_task(request, bare, result.phases_s) for request in requests)
    )
    result.merged = sum(merged for merged, _ in outcomes)
    result.task_s = [seconds for _, seconds in outcomes]
    result.wall_s = time.perf_counter() - started
    cpu = snapshot().minus(cpu_before)
    result.cpu_s = {"agents_and_git": cpu["children"], "bench_and_model": cpu["bench_and_model"]}
    return result
