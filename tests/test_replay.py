"""Recorded histories of real sessions replay with the current workflow code.

A worker that restarts with changed code replays the histories of the sessions still running.
If the changed code issues different commands (another activity, a timer, a child workflow, a
different order), the replay fails with a nondeterminism error and the session is stuck. This
test replays every history under tests/histories/ (recorded by tests/record_histories.py from
real sessions: two batches with a dependency then the same plan started again, review rounds
with a failing check, a merge conflict round, pause/skip/cancel) and fails on any such error.

When it fails after a workflow change, the change is the problem, not the recordings:
- Guard the new behaviour with `if workflow.patched("some-change-id"): <new> else: <old>` so
  running sessions keep the old commands; this test then passes on the old histories. Record
  new histories next to them (`python -m tests.record_histories --out <new dir>`, or copy the
  scenario directories under a new name) so both paths stay replayed; later, once no session
  of the old code can be running, `workflow.deprecate_patch` and drop the old histories.
- Re-recording in place (`.venv/bin/python -m tests.record_histories [scenario ...]`, which
  replaces tests/histories/<scenario>/) is only right when the change is guarded as above, or
  when no session recorded with the old code can still be running anywhere (e.g. nothing was
  released with it).

docs/VERSIONING.md lists every patch and fallback, the directories that replay its old path,
and when it can go; each directory below is in its table of recorded histories.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.record_histories import HISTORIES, workflow_id_of
from workflows.session import SessionWorkflow
from workflows.task import TaskWorkflow

RECORDED = sorted(HISTORIES.rglob("*.json"))


SCENARIOS = {"two_batches", "review_rounds", "conflict", "controls"}
# Each era of the workflow code keeps its recordings: the first ones at the top, later ones in
# a directory named for what changed (commit-in-agent: run_agent commits, merge_task removes;
# failure-keeps-runs: the landing 869d69d, workspaces of their own, a failed task keeps its
# runs; agents-queue: the agent's runs on a queue of their own; notify: the last landing,
# 31bf2b6, which sends notifications). verify-merged/merged_checks (no era: one scenario)
# replays a merge checked with the moved target, failing, and its merged-checks round.
# reload-config/reload_config (one scenario) replays resume_with_config retrying a task after a
# setup error.
# controls-judge-next-task/controls (one scenario) replays controls that judge the state after
# a timer (the patch of that name); the controls scenarios above replay the path before it.
ERAS = {
    "": HISTORIES,
    "commit-in-agent": HISTORIES / "commit-in-agent",
    "failure-keeps-runs": HISTORIES / "failure-keeps-runs",
    "agents-queue": HISTORIES / "agents-queue",
    "notify": HISTORIES / "notify",
}
# Directories of one scenario each: what changed, and the scenario that shows it.
ONE_SCENARIO = {
    "verify-merged": "merged_checks",
    "reload-config": "reload_config",
    "controls-judge-next-task": "controls",
}


@pytest.mark.parametrize("era", sorted(ERAS))
def test_histories_are_recorded(era: str) -> None:
    scenarios = {path.parent.name for path in ERAS[era].glob("*/*.json")}
    assert scenarios >= SCENARIOS, scenarios


@pytest.mark.parametrize("directory", sorted(ONE_SCENARIO))
def test_one_scenario_directories_are_recorded(directory: str) -> None:
    scenarios = {path.parent.name for path in (HISTORIES / directory).glob("*/*.json")}
    assert scenarios == {ONE_SCENARIO[directory]}


def test_every_recorded_history_is_in_an_era_or_a_one_scenario_directory() -> None:
    known = {HISTORIES / name for name in SCENARIOS} | {
        era / name for era in ERAS.values() for name in SCENARIOS
    }
    known |= {HISTORIES / directory / name for directory, name in ONE_SCENARIO.items()}
    assert sorted({path.parent for path in RECORDED} - known) == []


@pytest.mark.reliability(
    "workflow code changed under running sessions (nondeterminism on replay)",
    "recorded histories of real sessions replayed with the current SessionWorkflow/TaskWorkflow",
)
@pytest.mark.parametrize(
    "path", RECORDED, ids=[str(path.relative_to(HISTORIES)) for path in RECORDED]
)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(workflow_id_of(path), path.read_text())
    replayer = Replayer(
        workflows=[SessionWorkflow, TaskWorkflow], data_converter=pydantic_data_converter
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, (
        f"{path.relative_to(HISTORIES)} no longer replays with the current workflow code: "
        f"{result.replay_failure!r}. Guard the change with workflow.patched(...); see the "
        "module docstring before re-recording."
    )
