"""The worker: runs the session and task workflows and their activities.

    python worker.py [--task-queue Q] [--max-agents N] [--graceful-shutdown-s S]

Preflight first (agent binary, git, process isolation, Temporal), failing fast with a message
that says what to fix; then it polls until SIGINT/SIGTERM. With no TEMPORAL_ADDRESS it starts
(or reuses) the embedded Temporal dev server under the state dir.

Two pollers: the workflows, git steps and checks on the task queue, and the agent's and the
reviewer's runs on its agents queue, at most `--max-agents` of them at once on this worker.
On SIGTERM (or SIGINT) both stop taking work; what runs may finish within the grace period,
and what still runs then is handed over to another worker as a lost run (activities/shutdown.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.agent import AgentActivities
from activities.checks import CheckActivities
from activities.forge import ForgeActivities, github, token_env
from activities.log_context import LogContextInterceptor
from activities.merge import merge_task
from activities.notify import NotifyActivities
from activities.parse_plan import load_plan_snapshot, parse_plan
from activities.reviewer import ReviewerActivities
from activities.setup import SetupActivities
from activities.shutdown import ShutdownInterceptor
from activities.workspace import (
    commit_changes,
    merge_target,
    prepare_workspace,
    remove_workspace,
)
from autopilot import git as gitops
from autopilot.agent import (
    ClaudeNotFound,
    Egress,
    Sandbox,
    SandboxUnavailable,
    detect_sandbox,
    find_claude,
)
from autopilot.git import pin_state_dir
from autopilot.infra import (
    ConfigError,
    Settings,
    TemporalUnavailable,
    WorkerOptions,
    add_worker_options,
    agent_task_queue,
    configure_logging,
    connect,
    exit_now,
    forge_task_queue,
    forget_arena_cap,
    load_settings,
    restart_with_arena_cap,
    search_attributes,
    worker_options,
)
from workflows.session import SessionWorkflow
from workflows.task import TaskWorkflow

log = structlog.get_logger("worker")
MAX_CONCURRENT_ACTIVITIES = 32
# Watches of pull requests at once: each sleeps between reads, heartbeating.
MAX_WATCHES = 1000
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


def build_workers(
    client: Client,
    task_queue: str,
    checks: Preflight,
    egress: Egress,
    options: WorkerOptions,
    notify_urls: Sequence[str] = (),
    notify_command: Sequence[str] = (),
) -> tuple[Worker, Worker, Worker]:
    """The task queue's worker (workflows, git steps, checks), the agents queue's (agent
    and reviewer runs, at most options.max_agents at once) and the forge queue's (forge mode's
    watches of pull requests, which wait)."""
    setup = SetupActivities(checks.sandbox, egress)
    claude = (checks.claude_bin, checks.sandbox, egress, dict(os.environ))
    agent = AgentActivities(*claude, setup=setup)
    reviewer = ReviewerActivities(*claude, setup=setup)
    check_runner = CheckActivities(checks.sandbox, egress, setup)
    notifier = NotifyActivities(notify_urls, dict(os.environ), notify_command)
    forge = ForgeActivities(github, token_env)
    common: dict[str, Any] = {
        "interceptors": [LogContextInterceptor(), ShutdownInterceptor()],
        "graceful_shutdown_timeout": timedelta(seconds=options.graceful_shutdown_s),
        # Heartbeats reach the server at least this often whatever the heartbeat timeout, so
        # a cancel (operator's cancel or skip) reaches a running agent within seconds.
        "max_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
        "default_heartbeat_throttle_interval": HEARTBEAT_THROTTLE,
    }
    tasks = Worker(
        client,
        task_queue=task_queue,
        workflows=[SessionWorkflow, TaskWorkflow],
        activities=[
            parse_plan,
            load_plan_snapshot,
            prepare_workspace,
            # Also here: sessions started before the agents queue run their agents here.
            agent.run_agent,
            commit_changes,
            check_runner.run_checks,
            setup.set_up_workspace,
            check_runner.verify_merge,
            reviewer.review_changes,
            merge_target,
            merge_task,
            remove_workspace,
            notifier.notify_installation,
            notifier.notify,
            forge.publish,
            forge.merge,
            forge.delete_branch,
        ],
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        **common,
    )
    agents = Worker(
        client,
        task_queue=agent_task_queue(task_queue),
        activities=[agent.run_agent, reviewer.review_changes],
        max_concurrent_activities=options.max_agents,
        **common,
    )
    watches = Worker(
        client,
        task_queue=forge_task_queue(task_queue),
        activities=[forge.watch],
        max_concurrent_activities=MAX_WATCHES,
        # Watches are few and start seldom: one poller, not the SDK's five long polls, which
        # every worker would hold on the server for sessions that have no forge.
        max_concurrent_activity_task_polls=1,
        **common,
    )
    return tasks, agents, watches


async def serve(settings: Settings, task_queue: str, options: WorkerOptions) -> None:
    checks = preflight()
    # A local session's state dir is the one its starter and this worker share: no other.
    pin_state_dir(settings.state_dir)
    client = await connect(settings)
    added = await search_attributes.ensure_registered(client)
    if added:
        log.info("registered search attributes", names=added)
    # The sandboxes' way out (autopilot/agent/egress.py), at a short path of its own: a Unix
    # socket's must fit in 107 bytes, and the state dir's may be longer.
    with tempfile.TemporaryDirectory(prefix="autopilot-egress-") as folder:
        egress = await Egress(Path(folder) / "egress.sock", os.environ).start()
        try:
            workers = build_workers(
                client,
                task_queue,
                checks,
                egress,
                options,
                settings.notify,
                settings.notify_command,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            running = [asyncio.create_task(worker.run()) for worker in workers]
            log.info(
                "worker ready",
                task_queue=task_queue,
                max_agents=options.max_agents,
                graceful_shutdown_s=options.graceful_shutdown_s,
                temporal=settings.temporal_address,
                claude=str(checks.claude_bin),
                isolation=checks.sandbox.description,
                state_dir=str(settings.state_dir),
            )
            # Until a signal, or a poller that ended on its own (it failed: raised below).
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([*running, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            log.info("worker stopping", grace_s=options.graceful_shutdown_s)
            # Both stop polling at once and share one grace period.
            await asyncio.gather(*(worker.shutdown() for worker in workers))
            for task in running:
                await task  # a poller that failed raises here
            log.info("worker stopped")
        finally:
            await egress.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a CC3 Autopilot worker.")
    parser.add_argument("--task-queue", help="task queue to poll (default: AUTOPILOT_TASK_QUEUE)")
    add_worker_options(parser)
    args = parser.parse_args(argv)
    forget_arena_cap()  # glibc has read it: git and the checks start without autopilot's cap
    try:
        settings = load_settings()
        options = worker_options(args.max_agents, args.graceful_shutdown_s, os.environ)
        configure_logging(settings.path("logs", "worker.jsonl"))
        asyncio.run(serve(settings, args.task_queue or settings.task_queue, options))
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
