"""The worker: runs the session and task workflows and their activities.

    python worker.py [--task-queue Q]

Preflight first (agent binary, git, process isolation, Temporal), failing fast with a message
that says what to fix; then it polls until SIGINT/SIGTERM. With no TEMPORAL_ADDRESS it starts
(or reuses) the embedded Temporal dev server under the state dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.agent import AgentActivities
from activities.merge import merge_task
from activities.parse_plan import load_plan_snapshot, parse_plan
from activities.review import CheckActivities
from activities.workspace import (
    commit_changes,
    merge_target,
    prepare_workspace,
    remove_workspace,
)
from autopilot import git as gitops
from autopilot.agent.cli import ClaudeNotFound, find_claude
from autopilot.agent.egress import Egress
from autopilot.agent.sandbox import Sandbox, SandboxUnavailable, detect_sandbox
from autopilot.infra import search_attributes
from autopilot.infra.config import ConfigError, Settings, load_settings
from autopilot.infra.log_context import LogContextInterceptor
from autopilot.infra.logs import configure_logging
from autopilot.infra.malloc_arenas import forget_arena_cap, restart_with_arena_cap
from autopilot.infra.process_exit import exit_now
from autopilot.infra.temporal_connection import TemporalUnavailable, connect
from workflows.session import SessionWorkflow
from workflows.task import TaskWorkflow

log = structlog.get_logger("worker")
MAX_CONCURRENT_ACTIVITIES = 32
HEARTBEAT_THROTTLE = timedelta(seconds=3)


@dataclass(frozen=True)
class Preflight:
    claude_bin: Path
    sandbox: Sandbox


class PreflightError(Exception):
    """The machine lacks something a task needs; the message says what to fix."""


def preflight() -> Preflight:
    """Everything a task needs from this machine, checked once, before any task is taken."""
    try:
        claude_bin = find_claude()
        gitops.require_git()
        sandbox = detect_sandbox()
    except (ClaudeNotFound, gitops.GitError, SandboxUnavailable) as err:
        raise PreflightError(str(err)) from err
    return Preflight(claude_bin=claude_bin, sandbox=sandbox)


def build_worker(client: Client, task_queue: str, checks: Preflight, egress: Egress) -> Worker:
    agent = AgentActivities(checks.claude_bin, checks.sandbox, egress, dict(os.environ))
    check_runner = CheckActivities(checks.sandbox, egress)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[SessionWorkflow, TaskWorkflow],
        activities=[
            parse_plan,
            load_plan_snapshot,
            prepare_workspace,
            agent.run_agent,
            commit_changes,
            check_runner.run_checks,
            check_runner.set_up_workspace,
            agent.review_changes,
            merge_target,
            merge_task,
            remove_workspace,
        ],
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        interceptors=[LogContextInterceptor()],
        # Heartbeats reach the server at least this often whatever the heartbeat timeout, so
        # a cancel (operator's cancel or skip) reaches a running agent within seconds.
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


async def serve(settings: Settings, task_queue: str) -> None:
    checks = preflight()
    client = await connect(settings)
    added = await search_attributes.ensure_registered(client)
    if added:
        log.info("registered search attributes", names=added)
    # The sandboxes' way out (autopilot/agent/egress.py), at a short path of its own: a Unix
    # socket's must fit in 107 bytes, and the state dir's may be longer.
    with tempfile.TemporaryDirectory(prefix="autopilot-egress-") as folder:
        egress = await Egress(Path(folder) / "egress.sock", os.environ).start()
        try:
            worker = build_worker(client, task_queue, checks, egress)
            log.info(
                "worker ready",
                task_queue=task_queue,
                temporal=settings.temporal_address,
                claude=str(checks.claude_bin),
                isolation=checks.sandbox.description,
                state_dir=str(settings.state_dir),
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            async with worker:
                await stop.wait()
                log.info("worker stopping")
        finally:
            await egress.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a CC3 Autopilot worker.")
    parser.add_argument("--task-queue", help="task queue to poll (default: AUTOPILOT_TASK_QUEUE)")
    args = parser.parse_args(argv)
    forget_arena_cap()  # glibc has read it: git and the checks start without autopilot's cap
    try:
        settings = load_settings()
        configure_logging(settings.path("logs", "worker.jsonl"))
        asyncio.run(serve(settings, args.task_queue or settings.task_queue))
    except (
        ConfigError,
        PreflightError,
        TemporalUnavailable,
        search_attributes.SearchAttributesMissing,
    ) as err:
        print(f"worker: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    restart_with_arena_cap()  # glibc reads MALLOC_ARENA_MAX only when a process starts
    exit_now(main())
