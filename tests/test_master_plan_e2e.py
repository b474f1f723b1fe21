"""End to end: a plan in the user's master-plan format runs. Its tasks are the rows of tables
under `### Batch N` headings, its done phase (`(COMPLETE)`, ✅) is not run, and every task's
agent gets the plan's shared sections (Overview, Critical Rules) and its batch's own text.
The real starter, worker, Temporal dev server and claude CLI, with the scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.models import SessionState, TaskState
from autopilot_testing import PlanFollower, ScriptedModel
from tests.harness import autopilot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

RULE = "RULE-7: never hand-edit files under `generated/`"
PLAN = f"""\
# Widgets: Master Plan

## Overview

Widgets is a small Python package; every module lives under `src/`.

## Critical Rules

### 1. Generated code

```text
{RULE}
```

## Phase 1: Scaffold (COMPLETE)

### Task 1.1: Package layout ✅

**Files:** `src/done_already.py`

## Phase 2: Features

### Batch 21: Parsing

Parsers for the two input formats.

| ID | Task | Files |
|----|------|-------|
| 2.1.1 | CSV reader for widget lists | `src/csv_reader.py` |
| 2.1.2 | JSON reader for widget lists | `src/json_reader.py` |

### Batch 22: Output

| ID | Task | Files | Depends on |
|----|------|-------|------------|
| 2.2.1 | Report writer | `src/report.py` | 2.1.1, 1.1 |
"""
TABLE_TASKS = ["2.1.1", "2.1.2", "2.2.1"]


@pytest.mark.reliability(
    "a master plan of table-row tasks under `### Batch N`, with a phase marked (COMPLETE)",
    "real session at --concurrency 2: the three rows merge, the done task never runs, each "
    "agent's prompt carries the Critical Rules, the Overview and its batch's text; status lists "
    "the done task as not run",
)
def test_master_plan_table_tasks_run(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "MASTER_PLAN.md"
    plan.write_text(PLAN)
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        flags = ("--concurrency", "2", "--review", "none")
        session = installation.start_detached(plan, repo, *flags)
        done = installation.starter(str(plan), "--repo", str(repo), *flags)  # follows to the end
        assert done.returncode == 0, done.stdout + done.stderr

        merges = [task_id for task_id, _ in gitops.list_merges(str(repo), "main", session)]
        assert sorted(merges) == TABLE_TASKS, merges
        assert merges.index("2.2.1") > max(merges.index("2.1.1"), merges.index("2.1.2"))
        for name in ("src/csv_reader.py", "src/json_reader.py", "src/report.py"):
            assert (repo / name).is_file(), name
        assert not (repo / "src/done_already.py").exists()  # the done task did not run

        status = installation.status(session)
        assert status.status == SessionState.COMPLETED
        assert status.tasks_completed == status.tasks_total == 3
        assert {task.id: task.state for task in status.tasks} == dict.fromkeys(
            TABLE_TASKS, TaskState.MERGED
        )
        assert [(t.id, t.marked_by) for t in status.done_in_plan] == [("1.1", "Phase 1: Scaffold")]
        shown = installation.starter("status", session)
        assert shown.returncode == 0, shown.stderr
        assert "  marked done in the plan, not run: Task 1.1\n" in shown.stdout

        first_prompts = {
            task[0]: c.prompt
            for c in model.snapshot()
            if (task := c.task()) is not None and c.turn == 0
        }
        assert sorted(first_prompts) == TABLE_TASKS  # no agent ran for Task 1.1
        for task_id, prompt in first_prompts.items():
            assert RULE in prompt, task_id
            assert "every module lives under `src/`" in prompt, task_id
            assert "Package layout" not in prompt, task_id  # the done phase is not shared
        assert "Parsers for the two input formats." in first_prompts["2.1.1"]
        csv_task = "<task>\nCSV reader for widget lists\n\n**Files:** `src/csv_reader.py`"
        assert csv_task in first_prompts["2.1.1"]
        assert "**Depends on:** 2.1.1, 1.1" in first_prompts["2.2.1"]
