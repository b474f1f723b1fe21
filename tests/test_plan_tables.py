"""Plans in the user's master-plan format: `## Phase N` sections, done phases marked
`(COMPLETE)` with ✅ tasks, `### Batch N` sections whose tasks are table rows, shared sections
(Overview, Critical Rules) that reach every task's prompt, three-part ids in the batch range
and in dependencies, warnings for rows too thin to act on; and the dry run of such a plan
through the real starter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autopilot.agent import CONTEXT_LIMIT, task_prompt
from autopilot.models import AgentSettings, Plan, SessionRequest, TaskRequest
from autopilot.plan import (
    PlanError,
    batch_numbers,
    batch_ref,
    describe_plan,
    load_plan,
    select_batches,
)
from autopilot.plan import parser as plan_parser
from tests.harness import ROOT, clean_env

MASTER_PLAN = Path(__file__).parent / "plans" / "cc4_master_plan.md"


def md(*lines: str) -> str:
    """A plan whose line N is the Nth argument: line numbers in the tests stay obvious."""
    return "\n".join(lines) + "\n"


def _both(text: str) -> Plan | list[tuple[int, str]]:
    """The plan (or its issues) read by the line scanner, checked against markdown-it's."""
    results: list[Any] = []
    for fast in (True, False):
        try:
            results.append(plan_parser.parse_text(text, "plan.md", fast=fast))
        except PlanError as error:
            results.append([(issue.line, issue.message) for issue in error.issues])
    fast_result, reference = results
    dump = fast_result.model_dump() if isinstance(fast_result, Plan) else fast_result
    assert dump == (reference.model_dump() if isinstance(reference, Plan) else reference)
    return fast_result  # type: ignore[no-any-return]


def parse(*lines: str) -> Plan:
    plan = _both(md(*lines))
    assert isinstance(plan, Plan), plan
    return plan


def issues(*lines: str) -> list[tuple[int, str]]:
    found = _both(md(*lines))
    assert isinstance(found, list), found
    return found


def ids(plan: Plan) -> list[list[str]]:
    return [[task.id for task in batch.tasks] for batch in plan.batches]


# --------------------------------------------------------------------------------------------
# The user's master plan
# --------------------------------------------------------------------------------------------


def test_master_plan_table_tasks_in_six_batches() -> None:
    plan = load_plan(MASTER_PLAN)
    assert [batch.number for batch in plan.batches] == [31, 32, 33, 34, 35, 36]
    assert ids(plan) == [[f"3.{b}.{t}" for t in (1, 2, 3)] for b in range(1, 7)]
    first = plan.batches[0].tasks[0]
    assert (first.id, first.title, first.line) == ("3.1.1", "Config Validation Service", 90)
    assert [ref.path for ref in first.files] == ["backend/services/config_validator.py"]
    assert first.body == (
        "Config Validation Service\n\n"
        "**Files:** `backend/services/config_validator.py`\n"
        "**Depends on:** 2.3"
    )
    by_id = {task.id: task for batch in plan.batches for task in batch.tasks}
    # Dependencies from a column (three-part ids) and from the row's text; one on a done task.
    assert by_id["3.1.1"].depends_on == ["2.3"]
    assert by_id["3.5.2"].depends_on == ["3.5.1", "3.4.1"]
    assert by_id["3.3.3"].depends_on == ["3.3.1"]
    assert by_id["3.3.3"].title == "Tracing spans around each job"
    # Other header names: Description for the title, Deliverables for the files.
    assert by_id["3.4.1"].title == "API key authentication for the admin routes"
    assert [ref.path for ref in by_id["3.4.1"].files] == ["backend/app/auth.py"]


def test_master_plan_done_phases_are_listed_not_run() -> None:
    plan = load_plan(MASTER_PLAN)
    done = [(task.id, task.title, task.marked_by) for task in plan.done_tasks]
    assert done == [
        ("1.1", "Project skeleton", "Phase 1: Foundation"),
        ("1.2", "Settings model", "Phase 1: Foundation"),
        ("1.3", "Database session", "Phase 1: Foundation"),
        ("1.4", "Health endpoint", "Phase 1: Foundation"),
        ("2.1", "Job queue", "Phase 2: Core Services"),
        ("2.2", "Worker loop", "Phase 2: Core Services"),
        ("2.3", "Event log", "Phase 2: Core Services"),
    ]
    assert plan.task_count() == 18


def test_master_plan_shared_sections_are_the_plan_context() -> None:
    plan = load_plan(MASTER_PLAN)
    assert "## Overview" in plan.context
    assert "### 1. NEVER use `--reload`" in plan.context
    assert "uvicorn app.main:app --port 8001 --reload" in plan.context
    assert "Phase 3 makes the service safe to run unattended." in plan.context
    # Done phases are history: not in every task's prompt.
    assert "Phase 1: Foundation" not in plan.context
    assert "Project skeleton" not in plan.context
    # The batch's own text, without its task table (each row is its own task).
    assert plan.batches[0].description == (
        "Configuration and input validation at the edges of the service."
    )


def test_master_plan_prompt_of_a_row_carries_the_shared_sections() -> None:
    plan = load_plan(MASTER_PLAN)
    request = SessionRequest(
        session_id="s",
        repo="/repo",
        plan_path=str(MASTER_PLAN),
        target_branch="main",
        state_dir="",
        agent=AgentSettings(),
    )
    batch = plan.batches[1]
    prompt = task_prompt(TaskRequest.of(request, plan, batch, batch.tasks[0]), "b")
    assert "Task 3.2.1: Retry policy for outbound HTTP calls" in prompt
    assert "Plan context:" in prompt and "### 3. No manual intervention" in prompt
    assert "Batch 32: Resilience" in prompt
    assert "Retries and timeouts around every call that leaves the process." in prompt
    assert "<task>\nRetry policy for outbound HTTP calls\n\n**Files:**" in prompt


def test_master_plan_thin_rows_are_warnings() -> None:
    plan = load_plan(MASTER_PLAN)
    assert [(w.line, w.message.split(":")[0]) for w in plan.warnings] == [
        (101, "Task 3.2.2 says only 'Timeouts'"),
        (120, "Task 3.4.3 says only 'Secrets'"),
        (135, "Task 3.6.2 says only 'Cleanup'"),
    ]


def test_master_plan_batch_range_by_three_part_task_ids() -> None:
    plan = load_plan(MASTER_PLAN)
    start, end = batch_numbers(MASTER_PLAN, batch_ref("3.2.1"), batch_ref("3.5.2"))
    assert (start, end) == (32, 35)
    assert [batch.number for batch in select_batches(plan, start, end).batches] == [32, 33, 34, 35]
    # The user's own range: global batch numbers, the end past the last batch.
    assert [b.number for b in select_batches(plan, 31, 37).batches] == [31, 32, 33, 34, 35, 36]


def test_batch_range_refuses_done_and_unknown_task_ids() -> None:
    with pytest.raises(PlanError, match=r"--start-batch 2\.1: Task 2\.1 is marked done"):
        batch_numbers(MASTER_PLAN, batch_ref("2.1"), None)
    with pytest.raises(PlanError, match=r"--end-batch 9\.9\.9: no task 9\.9\.9 in this plan"):
        batch_numbers(MASTER_PLAN, None, batch_ref("9.9.9"))
    assert batch_ref("31") == 31
    assert batch_ref("3.1.1") == "3.1.1"


# --------------------------------------------------------------------------------------------
# Task tables
# --------------------------------------------------------------------------------------------


def test_batches_numbered_per_phase_and_selected_by_task_id(tmp_path: Path) -> None:
    text = md(
        "# P",
        "## Phase 3: Work",
        "### Batch 1: One",
        "| ID | Task | Files |",
        "|----|------|-------|",
        "| 3.1.1 | Write the first module | `a.py` |",
        "### Batch 2: Two",
        "| ID | Task | Files |",
        "|----|------|-------|",
        "| 3.2.1 | Write the second module | `b.py` |",
    )
    path = tmp_path / "plan.md"
    path.write_text(text)
    plan = _both(text)
    assert isinstance(plan, Plan)
    assert ids(plan) == [["3.1.1"], ["3.2.1"]]
    assert batch_numbers(path, "3.2.1", None) == (2, None)


def test_header_names_and_cells() -> None:
    plan = parse(
        "### Batch 1: Work",
        "",
        "| **#** | Title | Description | Deliverables | Deps | Notes |",
        "| :-- | --- | --- | --- | --- | --- |",
        "| **1.1** | First part | Long text | `a.py`<br>`b.py` | | keep `x \\| y` |",
        "| Task 1.2 | Second part, depends on 1.1 | More | c.py; d.py | none |  |",
        "| 1.3 | Third part here | Text | e.py (new) | 1.1, 1.2 | |",
        "| 1.4 | Port the module that depends on the legacy API | Text | f.py | | |",
    )
    first, second, third, fourth = plan.batches[0].tasks
    assert (first.id, first.title) == ("1.1", "First part")
    assert [ref.path for ref in first.files] == ["a.py", "b.py"]
    assert "**Description:** Long text" in first.body
    assert "**Notes:** keep `x | y`" in first.body
    assert (second.id, second.title, second.depends_on) == ("1.2", "Second part", ["1.1"])
    assert [ref.path for ref in second.files] == ["c.py", "d.py"]
    assert [ref.path for ref in third.files] == ["e.py"]
    assert third.depends_on == ["1.1", "1.2"]
    assert (fourth.title, fourth.depends_on) == (
        "Port the module that depends on the legacy API",
        [],
    )


def test_a_table_without_an_id_column_is_no_task_table() -> None:
    plan = parse(
        "### Batch 1: Work",
        "| Mode | Use |",
        "|------|-----|",
        "| local | debugging |",
        "### Task 1.1: Real task",
        "Do it.",
    )
    assert ids(plan) == [["1.1"]]
    assert "| local | debugging |" in plan.batches[0].description


def test_a_batch_whose_table_has_no_id_column() -> None:
    plan = parse(
        "### Batch 1: Work",
        "| ID | Task |",
        "|----|------|",
        "| 1.1 | Write the module |",
        "### Batch 2: More",
        "| Step | Task |",
        "|------|------|",
        "| one | Write the other module |",
    )
    assert ids(plan) == [["1.1"], []]
    assert [(w.line, w.message.split(":")[0]) for w in plan.warnings] == [
        (6, "Batch 2 has no tasks")
    ]
    assert issues(
        "### Batch 1: Work",
        "| Step | Task |",
        "|------|------|",
        "| one | Write the module |",
    ) == [
        (
            1,
            "no tasks found; the table at line 2 has no id column, so its rows are no tasks: name"
            " the column of task ids `ID` (`| ID | Task | Files |`), or add task headings like"
            " `### Task 1.1: Title` under `## Batch 1: Title` headings",
        )
    ]


def test_row_tasks_come_before_heading_tasks_and_ids_stay_unique() -> None:
    plan = parse(
        "### Batch 1: Work",
        "| ID | Task |",
        "|----|------|",
        "| 1.1 | Write the module |",
        "### Task 1.2: Test it",
        "Test the module.",
    )
    assert ids(plan) == [["1.1", "1.2"]]
    assert issues(
        "### Batch 1: Work",
        "| ID | Task |",
        "|----|------|",
        "| 1.1 | Write the module |",
        "### Task 1.1: Again",
        "Again.",
    )[0] == (5, "Task 1.1 is defined twice (lines 4 and 5); give each task a unique id")


def test_row_without_an_id_and_unreadable_dependency() -> None:
    plan = parse(
        "### Batch 1: Work",
        "| ID | Task |",
        "|----|------|",
        "| 1.1 | Write the module |",
        "| — | a note for the reader |",
    )
    assert ids(plan) == [["1.1"]]
    assert plan.warnings[0].line == 5
    assert "has no task id ('—'), so it is no task" in plan.warnings[0].message
    assert issues(
        "### Batch 1: Work",
        "| ID | Task | Depends on |",
        "|----|------|----|",
        "| 1.1 | Write the module | the database |",
    ) == [
        (
            4,
            "cannot read dependency 'the database' of Task 1.1; list task ids like `3.1.1, 3.1.2`"
            " in its depends column, or leave it empty",
        )
    ]


def test_a_short_title_with_a_description_column_is_not_thin() -> None:
    plan = parse(
        "### Batch 1: Work",
        "| ID | Task | Description |",
        "|----|------|-------------|",
        "| 1.1 | Cleanup | Remove the legacy module and its tests |",
        "| 1.2 | Docs | |",
    )
    assert [(w.line, w.message.split(":")[0]) for w in plan.warnings] == [
        (5, "Task 1.2 says only 'Docs'")
    ]


def test_thin_rows_run_with_a_warning() -> None:
    plan = parse(
        "### Batch 1: Work",
        "| ID | Task |",
        "|----|------|",
        "| 1.1 | Cleanup |",
        "| 1.2 |  |",
        "| 1.3 | Remove the legacy module |",
    )
    assert ids(plan) == [["1.1", "1.2", "1.3"]]
    assert [(w.line, w.message.split(":")[0]) for w in plan.warnings] == [
        (4, "Task 1.1 says only 'Cleanup'"),
        (5, "Task 1.2 has no description"),
    ]


# --------------------------------------------------------------------------------------------
# Done markers
# --------------------------------------------------------------------------------------------


def test_done_rows_batches_and_dependencies_on_them() -> None:
    plan = parse(
        "### Batch 1: Old ✅",
        "| ID | Task |",
        "|----|------|",
        "| 1.1 | Write the first module |",
        "### Batch 2: Mixed",
        "| ID | Task | Status | Depends on |",
        "|----|------|--------|----|",
        "| 2.1 | Write the second module | Done | |",
        "| 2.2 | Write the third module | ✅ | |",
        "| 2.3 | Write the fourth module | todo | 1.1, 2.1 |",
    )
    assert [batch.number for batch in plan.batches] == [2]
    assert ids(plan) == [["2.3"]]
    assert [(t.id, t.marked_by) for t in plan.done_tasks] == [
        ("1.1", "Batch 1: Old"),
        ("2.1", ""),
        ("2.2", ""),
    ]
    assert plan.batches[0].tasks[0].depends_on == ["1.1", "2.1"]  # met: no error


def test_done_task_headings_outside_batches_are_no_error() -> None:
    plan = parse(
        "# P",
        "## Rules",
        "Be careful.",
        "## Phase 1 (COMPLETE)",
        "### Task 1.1: Old work",
        "Done long ago.",
        "## Phase 2",
        "### Task 2.1: Older work ✅",
        "Done too.",
        "## Batch 3: New",
        "### Task 3.1: New work",
        "Do it.",
    )
    assert [(t.id, t.marked_by) for t in plan.done_tasks] == [("1.1", "Phase 1"), ("2.1", "")]
    assert ids(plan) == [["3.1"]]
    assert "Be careful." in plan.context and "## Phase 2" in plan.context
    assert "Old work" not in plan.context and "Older work" not in plan.context


def test_a_task_outside_batches_not_marked_done_is_still_an_error() -> None:
    assert issues(
        "## Phase 1",
        "### Task 1.1: Not done",
        "Work.",
        "## Batch 2: New",
        "### Task 2.1: New work",
        "Do it.",
    ) == [
        (
            2,
            "Task 1.1 is not inside a batch, but this plan has batch headings; move it under a"
            " `## Batch N: Title` heading",
        )
    ]


def test_table_rows_outside_batches() -> None:
    plan = parse(
        "## Phase 1 (COMPLETE)",
        "| ID | Task |",
        "|----|------|",
        "| 1.1 | Old work here |",
        "## Backlog",
        "| ID | Task |",
        "|----|------|",
        "| 9.1 | Some day maybe |",
        "| 9.2 | Already shipped ✅ |",
        "## Batch 2: New",
        "### Task 2.1: New work",
        "Do it.",
    )
    assert [t.id for t in plan.done_tasks] == ["1.1", "9.2"]
    assert [(w.line, w.message.split(":")[0]) for w in plan.warnings] == [
        (8, "Task 9.1 is a table row outside any batch and not marked done")
    ]


def test_a_plan_whose_tasks_are_all_done_runs_nothing() -> None:
    assert issues(
        "## Batch 1: Old (COMPLETE)",
        "### Task 1.1: Old work",
        "Done.",
    ) == [
        (
            1,
            "every task of this plan is marked done (1 of them): nothing to run; add tasks, or"
            " remove the done marker ((COMPLETE), ✅) of those to run again",
        )
    ]


def test_a_task_done_and_to_run_under_one_id_is_defined_twice() -> None:
    assert issues(
        "## Phase 1 (DONE)",
        "### Task 1.1: Old",
        "## Batch 2: New",
        "### Task 1.1: New",
        "Do it.",
    ) == [
        (
            4,
            "Task 1.1 is defined twice (lines 2, marked done, and 4); give each task a unique id",
        )
    ]


# --------------------------------------------------------------------------------------------
# The dry run, through the real starter
# --------------------------------------------------------------------------------------------


def dry_run(tmp_path: Path, repo: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    env.update(AUTOPILOT_STATE_DIR=str(tmp_path / "state"))
    command = [str(ROOT / "starter.py"), str(MASTER_PLAN), "--dry-run", "--offline"]
    command += ["--repo", str(repo)]
    return subprocess.run(
        [sys.executable, *command, *flags],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dry_run_of_the_master_plan(tmp_path: Path, repo: Path) -> None:
    done = dry_run(tmp_path, repo)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "6 batches, 18 tasks selected of 18; 7 marked done" in out
    for number in range(31, 37):
        assert f"\nBatch {number}: " in out
    assert "  Task 3.1.1: Config Validation Service  (line 90)" in out
    assert "    depends on: Task 2.3 (done)" in out
    assert "Done (marked complete in the plan; never run):" in out
    assert "  Task 1.1: Project skeleton  (line 47; Phase 1: Foundation)" in out
    assert "  Task 2.3: Event log  (line 75; Phase 2: Core Services)" in out
    warnings = out.split("Warnings (the plan runs anyway):\n")[1].split("\n\n")[0]
    assert [line.split(":")[0] for line in warnings.splitlines()] == [
        "  line 101",
        "  line 120",
        "  line 135",
    ]
    assert "Task 3.6.2 says only 'Cleanup'" in warnings
    # The plan context, without the done phases (they are listed above).
    ignored = out.split("Ignored (kept as plan context):\n")[1].split("\n\n")[0]
    assert ignored.splitlines() == [
        "  lines 1-41: # CommandCenter V4: Master Plan",
        "  lines 79-82: ## Phase 3: Hardening",
    ]


def test_dry_run_batch_range_by_task_id(tmp_path: Path, repo: Path) -> None:
    done = dry_run(tmp_path, repo, "--start-batch", "3.2.1", "--end-batch", "3.5.2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 batches, 12 tasks selected of 18; 7 marked done" in done.stdout
    assert "Batch 31: Validation  (line 84; not selected)" in done.stdout
    refused = dry_run(tmp_path, repo, "--start-batch", "2.1")
    assert refused.returncode == 2
    assert "--start-batch 2.1: Task 2.1 is marked done (line 67)" in refused.stderr
    assert "Traceback" not in refused.stderr


# --------------------------------------------------------------------------------------------
# Shared sections
# --------------------------------------------------------------------------------------------


def test_shared_sections_after_the_batches_join_the_plan_context() -> None:
    plan = parse(
        "# P",
        "Intro.",
        "## Batch 1: Work",
        "### Task 1.1: Do it",
        "Do it.",
        "## Critical Rules",
        "### 1. Never use `--reload`",
        "Really never.",
        "## Appendix",
        "Not for the agent.",
        "## 2. Conventions:",
        "Snake case.",
    )
    assert plan.context == (
        "# P\nIntro.\n\n## Critical Rules\n### 1. Never use `--reload`\nReally never."
        "\n\n## 2. Conventions:\nSnake case."
    )


def test_a_rules_section_inside_a_batch_stays_the_batch_s() -> None:
    plan = parse(
        "## Batch 1: Work",
        "#### Task 1.1: Do it",
        "Do it.",
        "### Rules",
        "Only for this batch.",
        "#### Task 1.2: Do more",
        "More.",
    )
    assert plan.context == ""
    assert ids(plan) == [["1.1", "1.2"]]


def test_dry_run_warns_when_the_plan_context_is_cut() -> None:
    long_rules = ["## Critical Rules", *(f"{n}. Rule number {n} of many." for n in range(700))]
    plan = parse("# P", *long_rules, "## Batch 1: Work", "### Task 1.1: Do it", "Do it.")
    assert len(plan.context) > CONTEXT_LIMIT
    report = describe_plan(plan, plan)
    assert f"each agent gets its first {CONTEXT_LIMIT:,}" in report
    short = parse("# P", "## Batch 1: Work", "### Task 1.1: Do it", "Do it.")
    assert "Warnings" not in describe_plan(short, short)


def test_a_task_column_of_ids_is_the_id_column() -> None:
    plan = parse(
        "### Batch 1: Work",
        "| Task | Description | Files |",
        "|------|-------------|-------|",
        "| 1.1 | Write the first module | a.py |",
        "| **1.2** ✅ | Write the second module | b.py |",
    )
    assert [(t.id, t.title) for t in plan.batches[0].tasks] == [("1.1", "Write the first module")]
    assert [t.id for t in plan.done_tasks] == ["1.2"]


def test_done_words_mark_only_at_the_end_of_a_heading() -> None:
    plan = parse(
        "## Batch 1: Work",
        "### Task 1.1: Show a (done) badge",
        "Do it.",
        "### Task 1.2: Old one [Completed]",
        "Done.",
    )
    assert ids(plan) == [["1.1"]]
    assert [t.id for t in plan.done_tasks] == ["1.2"]
