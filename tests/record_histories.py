"""Record the Temporal histories that tests/test_replay.py replays with the current code.

    .venv/bin/python -m tests.record_histories            # every scenario
    .venv/bin/python -m tests.record_histories conflict   # only the named ones

Each scenario is one of the end-to-end tests, run as it is (real embedded Temporal server,
worker, starter, claude CLI and scripted model, its own assertions included). The test shuts
its installation down at the end; the server keeps its state in a SQLite file, so the recorder
then starts a server on that file again and exports the full history of every session and task
workflow as JSON (`WorkflowHistory.to_json()`'s content, one event a line) to

    tests/histories/<scenario>/<workflow id, "/" replaced by "__">.json

A workflow id that ran more than once (a finished session started again) gets one file per run
in start order, the later ones with a `.run<N>` suffix: `<id>.run2.json`. A scenario's directory
is replaced as a whole, and every file written is replayed once before the recorder ends.

Re-record only when a workflow change is guarded with `workflow.patched(...)` (then both the old
and the new histories should be kept, the new ones in a new scenario directory) or when sessions
of the old code can no longer be running anywhere; see tests/test_replay.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from autopilot.infra import ensure_embedded_server, exit_now, load_settings, stop_embedded_server
from autopilot_testing import PlanFollower, ScriptedModel
from tests import (
    test_controls_e2e,
    test_e2e,
    test_green_e2e,
    test_reload_config_e2e,
    test_review_e2e,
)
from tests.gitutil import make_repo
from tests.harness import ROOT, Autopilot
from workflows.session import SessionWorkflow
from workflows.task import TaskWorkflow

HISTORIES = ROOT / "tests" / "histories"


def two_batches(work: Path) -> None:
    """test_e2e's five-task plan: two batches, a dependency, concurrency 2; then started again."""
    plan = work / "plan.md"
    plan.write_text(test_e2e.PLAN)
    with ScriptedModel(PlanFollower()) as model:
        test_e2e.test_plan_runs_end_to_end(work, make_repo(work / "repo"), plan, model)


def review_rounds(work: Path) -> None:
    """Changes requested then approved, a failing check then fixed, a task rejected."""
    test_review_e2e.test_review_rounds_checks_and_rejection(work, make_repo(work / "repo"))


def conflict(work: Path) -> None:
    """Two parallel tasks write the same file; the loser's conflict round resolves it."""
    test_review_e2e.test_conflicting_parallel_tasks(work, make_repo(work / "repo"), True)


def controls(work: Path) -> None:
    """Paused, concurrency changed, a task skipped, resumed, then cancelled."""
    test_controls_e2e.test_pause_concurrency_skip_resume_cancel(work, make_repo(work / "repo"))


def merged_checks(work: Path) -> None:
    """Two parallel tasks pass their checks alone and fail them together: the second one's
    merge is checked with the first's, fails, gets its merged-checks round, then merges."""
    test_green_e2e.test_main_never_holds_a_failing_tree(work, make_repo(work / "repo"))


def reload_config(work: Path) -> None:
    """A failing setup pauses the session; resume --reload-config (refused twice first, then
    applied) retries the task with the fixed setup, and it merges."""
    test_reload_config_e2e.test_a_fixed_config_reaches_the_paused_session(
        work, make_repo(work / "repo")
    )


SCENARIOS: dict[str, Callable[[Path], None]] = {
    "two_batches": two_batches,
    "review_rounds": review_rounds,
    "conflict": conflict,
    "controls": controls,
    "merged_checks": merged_checks,
    "reload_config": reload_config,
}


def file_stem(workflow_id: str) -> str:
    return workflow_id.replace("/", "__")


def workflow_id_of(path: Path) -> str:
    """The workflow id a history file was recorded from (inverse of the naming above)."""
    stem = path.name.removesuffix(".json")
    base, dot, run = stem.rpartition(".")
    if dot and run.startswith("run") and run[3:].isdigit():
        stem = base
    return stem.replace("__", "/")


async def fetch_histories(address: str) -> list[tuple[str, WorkflowHistory]]:
    """(file stem, history) of every workflow execution on the server, oldest run first."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    executions = [execution async for execution in client.list_workflows()]
    executions.sort(key=lambda execution: (execution.id, execution.start_time))
    found: list[tuple[str, WorkflowHistory]] = []
    runs: dict[str, int] = {}
    for execution in executions:
        if execution.workflow_type not in ("SessionWorkflow", "TaskWorkflow"):
            raise SystemExit(f"unexpected workflow type {execution.workflow_type}")
        if execution.close_time is None:
            print(f"  warning: {execution.id} is still open; recording it as it is")
        runs[execution.id] = runs.get(execution.id, 0) + 1
        stem = file_stem(execution.id)
        if runs[execution.id] > 1:
            stem += f".run{runs[execution.id]}"
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        found.append((stem, await handle.fetch_history()))
    return found


def history_json(history: WorkflowHistory) -> str:
    """`WorkflowHistory.to_json()`'s content, one event per line: compact, yet diffs by event."""
    events = history.to_json_dict()["events"]
    lines = ",\n".join(json.dumps(event, separators=(",", ":")) for event in events)
    return f'{{"events": [\n{lines}\n]}}\n'


def export(installation_root: Path, target: Path) -> list[Path]:
    """Start a server on the finished installation's database again and write its histories."""
    reopened = Autopilot(root=installation_root, model_env={})  # fresh ports, same state dir
    settings = load_settings(reopened.env())
    ensure_embedded_server(settings)
    try:
        histories = asyncio.run(fetch_histories(reopened.address))
    finally:
        stop_embedded_server(settings)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    written = []
    for stem, history in histories:
        path = target / f"{stem}.json"
        path.write_text(history_json(history))
        written.append(path)
    return written


async def replay(paths: list[Path]) -> None:
    replayer = Replayer(
        workflows=[SessionWorkflow, TaskWorkflow], data_converter=pydantic_data_converter
    )
    for path in paths:
        history = WorkflowHistory.from_json(workflow_id_of(path), path.read_text())
        await replayer.replay_workflow(history)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--out", type=Path, default=HISTORIES, help="default: %(default)s")
    args = parser.parse_args(argv)
    chosen: list[str] = args.scenarios or list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}"
        )
    for name in chosen:
        began = time.monotonic()
        print(f"{name}: running", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"autopilot-record-{name}-") as tmp:
            work = Path(tmp)
            SCENARIOS[name](work)
            written = export(work / "autopilot", args.out / name)
        asyncio.run(replay(written))
        size = sum(path.stat().st_size for path in written)
        print(
            f"{name}: {len(written)} histories, {size / 1024:.0f} KB, "
            f"replayed, {time.monotonic() - began:.0f}s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    exit_now(main())
