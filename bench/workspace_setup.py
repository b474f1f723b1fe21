"""The per-task cost of a workspace setup ([workspace] in .autopilot.toml) that takes about
10 s, the first time and from the cache after, through the whole pipeline (worker, sandbox,
embedded Temporal, the real claude CLI and the scripted model), beside the same plan without
a setup.

    .venv/bin/python -m bench.workspace_setup                 # 5 tasks, setup of ~10 s
    .venv/bin/python -m bench.workspace_setup --tasks 3 --sleep 2 --files 200

The setup sleeps, then writes a folder of small files (node_modules-like) that is cached:
`cache_dirs = ["deps"]`, keyed by `deps.lock`. The tasks run one at a time (concurrency 1),
so every task after the first finds the cache. Per task, from its workflow's history: the
time from its workspace being prepared to its agent being scheduled, which is the setup step
and what it costs the workflow (its own activity and workflow task); without a setup the same
gap is one workflow task. The setup activity's own figure (its result's duration_s) is beside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from autopilot.models import SessionStatus
from autopilot_testing import PlanFollower, ScriptedModel
from bench.plans import plan_text
from bench.repos import git, make_repo
from tests.harness import autopilot


def setup_command(sleep_s: float, files: int) -> str:
    return (
        f"sh -c 'sleep {sleep_s:g} && mkdir -p deps && i=0 && "
        f'while [ $i -lt {files} ]; do echo "module $i" > deps/m$i.js; i=$((i+1)); done\''
    )


def configure(repo: Path, sleep_s: float, files: int) -> None:
    config = (
        '[review]\nmode = "none"\n\n'
        f"[workspace]\nsetup = {json.dumps([setup_command(sleep_s, files)])}\n"
        f"setup_timeout_s = {max(60.0, sleep_s * 6):g}\n"
        'cache_key = ["deps.lock"]\ncache_dirs = ["deps"]\n'
    )
    (repo / ".autopilot.toml").write_text(config)
    (repo / "deps.lock").write_text("deps 1.0\n")
    git(repo, "add", ".autopilot.toml", "deps.lock")
    git(repo, "commit", "-q", "-m", "bench: workspace setup")


async def step_gaps(address: str, session: str, task_ids: list[str]) -> list[float]:
    """Per task: seconds from prepare_workspace closing to run_agent being scheduled."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    gaps = []
    for task_id in task_ids:
        history = await client.get_workflow_handle(f"{session}/task-{task_id}").fetch_history()
        names: dict[int, str] = {}
        prepared = agent = None
        for event in history.events:
            when = event.event_time.ToNanoseconds() / 1e9
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                names[event.event_id] = name
                if name == "run_agent" and agent is None:
                    agent = when
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
                if names.get(scheduled) == "prepare_workspace":
                    prepared = when
        assert prepared is not None and agent is not None, task_id
        gaps.append(agent - prepared)
    return gaps


def run_session(
    root: Path, tasks: int, setup: tuple[float, int] | None
) -> tuple[SessionStatus, list[float]]:
    repo = make_repo(root / "repo")
    if setup is not None:
        configure(repo, *setup)
    plan = root / "plan.md"
    plan.write_text(plan_text(tasks, batch_size=tasks))
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(root / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo), timeout=60 * (tasks + 5))
        if done.returncode != 0:
            sys.exit(f"the session did not merge every task:\n{done.stdout}\n{done.stderr}")
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        status = installation.status(session)
        ids = [task.id for task in status.tasks]
        return status, asyncio.run(step_gaps(installation.address, session, ids))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workspace_setup", description=__doc__)
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=10.0, help="seconds the setup sleeps")
    parser.add_argument("--files", type=int, default=1000, help="files the setup writes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as scratch:
        root = Path(scratch)
        _, plain = run_session(root / "plain", args.tasks, None)
        status, gaps = run_session(root / "setup", args.tasks, (args.sleep, args.files))

    print(
        f"{args.tasks} tasks one at a time; setup: sleep {args.sleep:g} s, then write "
        f"{args.files} files into deps/ (cached). Per task, prepared workspace -> agent "
        "scheduled:"
    )
    print(f"{'task':<6} {'setup':<26} {'with setup':>11} {'without':>9} {'activity':>9}")
    for task, gap, bare in zip(status.tasks, gaps, plain, strict=True):
        run = task.setup_runs[0]
        print(f"{task.id:<6} {task.setup:<26} {gap:>10.3f}s {bare:>8.3f}s {run.duration_s:>8.3f}s")
    bare_median = statistics.median(plain)
    print(f"per-task cost, first (the setup ran): {gaps[0] - bare_median:.3f} s")
    if len(gaps) > 1:
        later = statistics.median(gaps[1:]) - bare_median
        print(f"per-task cost, after (from the cache), median of {len(gaps) - 1}: {later:.3f} s")


if __name__ == "__main__":
    main()
