"""The bare work, without Temporal: for each task in plan order, in one process, the same
plain functions the activities call: worktree, the same `claude -p` invocation (same argv,
environment, process guard and prompt), commit, merge into the target, worktree removed."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autopilot import gitops
from autopilot.agent_runner import run_claude
from autopilot.claude_cli import agent_environment, claude_argv
from autopilot.models import AgentProgress, AgentSettings, Plan, ReviewSettings, TaskRequest
from autopilot.plan_parser import load_plan
from autopilot.process_guard import ProcessGuard
from autopilot.prompts import task_prompt
from bench.cpu import snapshot

PHASES = ("prepare", "agent", "commit", "merge", "remove")


@dataclass
class BaselineResult:
    tasks: int
    wall_s: float
    merged: int
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
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.totals[phase] += now - self._last
        self._last = now


async def run_task(
    request: TaskRequest,
    claude_bin: Path,
    guard: ProcessGuard,
    base_env: Mapping[str, str],
    totals: dict[str, float],
) -> bool:
    """One task, start to merge. True when it merged."""
    task, repo, state_dir = request.task, request.repo, request.state_dir
    clock = Clock(totals)
    workspace = gitops.prepare_workspace(
        repo, request.target_branch, state_dir, request.session_id, task.id
    )
    clock.lap("prepare")
    sid = str(uuid.uuid4())
    transcript = Path(state_dir) / "transcripts" / gitops.safe_component(task.id) / f"{sid}.jsonl"
    env = agent_environment(claude_bin, base_env, gitops.identity_env(workspace.path))
    await run_claude(
        guard.wrap(claude_argv(claude_bin, request.agent, sid)),
        cwd=Path(workspace.path),
        env=env,
        prompt=task_prompt(request, workspace.branch),
        session_id=sid,
        transcript=transcript,
        idle_timeout_s=request.agent.idle_timeout_s,
        on_progress=_no_progress,
    )
    clock.lap("agent")
    gitops.commit_changes(
        workspace.path,
        workspace.base_sha,
        request.session_id,
        task.id,
        task.commit_message or f"Task {task.id}: {task.title}",
    )
    clock.lap("commit")
    outcome = gitops.merge_task(
        repo,
        request.target_branch,
        workspace.branch,
        request.session_id,
        task.id,
        f"Merge task {task.id}: {task.title}",
    )
    clock.lap("merge")
    gitops.remove_workspace(repo, workspace.path)
    clock.lap("remove")
    return outcome.merged


async def run_baseline(
    plan_path: Path,
    repo: Path,
    state_dir: Path,
    claude_bin: Path,
    guard: ProcessGuard,
    base_env: Mapping[str, str],
) -> BaselineResult:
    """Every task of the plan, one after the other; wall time from parse to last merge."""
    started = time.perf_counter()
    cpu_before = snapshot()
    plan = load_plan(plan_path)
    requests = task_requests(plan, repo, state_dir, f"baseline-{uuid.uuid4().hex[:8]}")
    result = BaselineResult(tasks=len(requests), wall_s=0.0, merged=0)
    for request in requests:
        task_started = time.perf_counter()
        merged = await run_task(request, claude_bin, guard, base_env, result.phases_s)
        result.merged += merged
        result.task_s.append(time.perf_counter() - task_started)
    result.wall_s = time.perf_counter() - started
    cpu = snapshot().minus(cpu_before)
    result.cpu_s = {"agents_and_git": cpu["children"], "bench_and_model": cpu["bench_and_model"]}
    return result


def baseline(
    plan_path: Path,
    repo: Path,
    state_dir: Path,
    claude_bin: Path,
    guard: ProcessGuard,
    base_env: Mapping[str, str],
) -> BaselineResult:
    return asyncio.run(run_baseline(plan_path, repo, state_dir, claude_bin, guard, base_env))
