"""The dry-run description of a plan and of the batches a run selects."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.plan import describe_plan, load_plan, parse_plan, select_batches

PLANS = Path(__file__).parent / "plans"


def test_report_of_a_selected_range() -> None:
    plan = load_plan(PLANS / "batch_plan.md")
    report = describe_plan(plan, select_batches(plan, 32, 33))
    lines = report.splitlines()

    assert lines[0] == f"Plan: {PLANS / 'batch_plan.md'}"
    assert lines[1] == "Title: Inventory Service: Master Plan"
    assert "Batch 31: Reservation model  (line 11; not selected)" in lines
    assert "Batch 32: Reservation API  (line 50; selected)" in lines
    assert "Batch 33: Expiry  (line 78; selected)" in lines
    assert "  depends on: Batch 31 (assumed merged) | execution mode: sequential, local" in lines
    assert (
        "  depends on: Batch 31 (assumed merged), Batch 32 | execution mode: parallel, local"
        in lines
    )
    # Tasks of batches outside the range: one line each.
    assert "  Task 31.1: Add the Reservation model  (line 18)" in lines
    assert "    commit: feat(reservations): add Reservation model" not in lines
    # Selected tasks in full.
    assert "  Task 32.1a: Document the endpoint  (line 66)" in lines
    assert "    depends on: Task 32.1" in lines
    assert "    depends on: Task 31.2 (assumed merged), Task 32.1" in lines
    assert "    files: src/inventory/api.py" in lines
    assert "           tests/test_api.py" in lines
    assert "    files: create src/inventory/expiry.py" in lines
    assert "           test tests/test_expiry.py" in lines
    assert "    verification: `pytest tests/test_expiry.py -q`" in lines
    assert "                  Run the job twice: the second run deletes nothing" in lines
    assert "    commit: (none given)" in lines

    ignored = lines.index("Ignored (kept as plan context):")
    assert lines[ignored + 1 : ignored + 4] == [
        "  lines 1-4: front matter: project: inventory-service",
        "  lines 6-9: # Inventory Service: Master Plan",
        "  lines 96-98: ## Rollout notes",
    ]
    assert lines[-1] == "2 batches, 3 tasks selected of 5"
    assert "\x1b[" not in report


def test_report_of_the_whole_plan() -> None:
    plan = load_plan(PLANS / "batch_plan.md")
    lines = describe_plan(plan, select_batches(plan, None, None)).splitlines()
    assert "Batch 31: Reservation model  (line 11; selected)" in lines
    assert "  depends on: none | execution mode: parallel, local" in lines
    assert "    files: create src/inventory/reservations.py" in lines
    assert "    verification: `pytest tests/test_reservations.py -q` passes" in lines
    assert "                  `mypy src` reports no errors" in lines
    assert "    commit: feat(reservations): add Reservation model" in lines
    assert "    commit: feat(db): persist reservations" in lines
    assert not any("assumed merged" in line for line in lines)
    assert lines[-1] == "3 batches, 5 tasks selected of 5"


def test_report_of_a_plan_without_batches() -> None:
    plan = load_plan(PLANS / "writing_plans.md")
    lines = describe_plan(plan, plan).splitlines()
    assert (
        "Batch 1: Slugify Helper Implementation Plan  (implicit batch, line 11; selected)" in lines
    )
    assert "  Task 2: Use slugify for article URLs  (line 51)" in lines
    assert "    files: modify blog/models.py" in lines
    assert "    verification: none" in lines
    assert "  lines 1-9: # Slugify Helper Implementation Plan" in lines
    assert lines[-1] == "1 batch, 2 tasks selected of 2"


def test_report_of_a_bare_plan() -> None:
    plan = parse_plan("## Batch 1\n### Task 1.1\nDo it.\n## Batch 2\n", "bare.md")
    lines = describe_plan(plan, select_batches(plan, 1, 1)).splitlines()
    assert lines[:2] == ["Plan: bare.md", "Title: (no title)"]
    assert "Batch 1: (no title)  (line 1; selected)" in lines
    assert "  Task 1.1: (no title)  (line 2)" in lines
    assert "    depends on: none" in lines
    assert "    files: none" in lines
    assert "Batch 2: (no title)  (line 4; not selected)" in lines
    assert "  (no tasks)" in lines
    assert lines[lines.index("Ignored (kept as plan context):") + 1] == "  nothing"
    assert lines[-1] == "1 batch, 1 task selected of 1"


def test_report_shows_modes_and_kept_fields() -> None:
    plan = parse_plan(
        "# P\n\n**Execution Mode:** parallel\n**Target Efficiency:** >85%\n\n"
        "## Batch 1: One at a time\n**Execution Mode:** sequential\n"
        "### Task 1.1: a\nDo a.\n\n**Expected:** it works\n\nCreate `a.py`:\n```\nA\n```\n",
        "modes.md",
    )
    lines = describe_plan(plan, plan).splitlines()
    assert lines[2] == "Default execution mode: parallel (line 3)"
    assert "  depends on: none | execution mode: sequential, local" in lines
    assert "    files: create a.py" in lines
    kept = lines.index(
        "Kept as text (bold fields autopilot does not read; the agent gets them as written):"
    )
    assert lines[kept + 1 : kept + 3] == [
        "  line 4: **Target Efficiency:** (plan context)",
        "  line 11: **Expected:** (Task 1.1)",
    ]


@pytest.mark.reliability(
    "control characters (terminal escapes, CR, bidi overrides) in plan titles",
    "--dry-run's description prints them escaped, never raw",
)
def test_report_escapes_control_characters() -> None:
    plan = parse_plan(
        "# Evil \x1b[2J title\n## Batch 1: B\x07\u202e\n### Task 1.1: a\x08b\x9b\nDo it.\n", "x.md"
    )
    report = describe_plan(plan, plan)
    assert "Title: Evil \\x1b[2J title" in report
    assert "Batch 1: B\\x07\\u202e  (line 2; selected)" in report
    assert "  Task 1.1: a\\x08b\\x9b  (line 3)" in report
    assert not any(char in report for char in "\x1b\x07\x08\x9b\u202e")
