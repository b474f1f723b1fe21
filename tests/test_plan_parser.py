"""Unit tests of the plan parser: structure, fields, ignored prose, errors, batch selection."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from autopilot.models import FileRef, Plan
from autopilot.plan import PlanError, PlanIssue, load_plan, select_batches
from autopilot.plan import parser as plan_parser

PLANS = Path(__file__).parent / "plans"

_parse_plan = plan_parser.parse_plan  # the real one: `both_paths` stands in for it in the module


def checked_parse_plan(text: str, path: str) -> Plan:
    """`parse_plan`, asserting that the reference path (markdown-it reads every block) gives
    the same plan, or the same issues."""
    try:
        plan = _parse_plan(text, path)
    except PlanError as error:
        assert _reference(text, path) == error.issues
        raise
    assert _reference(text, path) == plan.model_dump()
    return plan


def _reference(text: str, path: str) -> dict[str, Any] | list[PlanIssue]:
    try:
        return plan_parser.parse_text(text, path, fast=False).model_dump()
    except PlanError as error:
        return error.issues


@pytest.fixture(autouse=True)
def both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every plan these tests parse, `load_plan`'s included, is parsed both ways."""
    monkeypatch.setattr(plan_parser, "parse_plan", checked_parse_plan)


def md(*lines: str) -> str:
    """A plan whose line N is the Nth argument: line numbers in the tests stay obvious."""
    return "\n".join(lines) + "\n"


def parse(*lines: str) -> Plan:
    return checked_parse_plan(md(*lines), "plan.md")


def issues(*lines: str) -> list[tuple[int, str]]:
    with pytest.raises(PlanError) as caught:
        parse(*lines)
    assert caught.value.path == "plan.md"
    return [(issue.line, issue.message) for issue in caught.value.issues]


def one_issue(*lines: str) -> tuple[int, str]:
    found = issues(*lines)
    assert len(found) == 1, found
    return found[0]


# --------------------------------------------------------------------------------------------
# Batches and tasks
# --------------------------------------------------------------------------------------------


def test_h2_batches_with_h3_tasks() -> None:
    plan = parse(
        "## Batch 31: Models",  # 1
        "",
        "Models come first.",  # 3
        "",
        "**Dependencies:** None",  # 5
        "**Execution Mode:** local",  # 6
        "",
        "### Task 31.1: Add the model",  # 8
        "",
        "Write it.",  # 10
        "",
        "### Task 31.2: Store it",  # 12
        "Save it.",  # 13
        "## Batch 32: API",  # 14
        "**Dependencies:** Batch 31",  # 15
        "### Task 32.1: Endpoint",  # 16
        "Serve it.",  # 17
    )
    assert [batch.number for batch in plan.batches] == [31, 32]
    first, second = plan.batches
    assert (first.title, first.line, first.implicit) == ("Models", 1, False)
    assert first.description == (
        "Models come first.\n\n**Dependencies:** None\n**Execution Mode:** local"
    )
    assert first.dependencies == []
    assert first.execution_place == "local"
    assert [(task.id, task.title, task.line, task.batch) for task in first.tasks] == [
        ("31.1", "Add the model", 8, 31),
        ("31.2", "Store it", 12, 31),
    ]
    assert first.tasks[0].body == "Write it."
    assert first.tasks[1].body == "Save it."
    assert (second.title, second.line, second.dependencies) == ("API", 14, [31])
    assert second.execution_place is None
    assert second.description == "**Dependencies:** Batch 31"
    assert [task.id for task in second.tasks] == ["32.1"]
    assert plan.task_count() == 3


def test_h3_batches_with_h4_tasks_and_lettered_ids() -> None:
    plan = parse(
        "# Plan",  # 1
        "### Batch 7: Seven",  # 2
        "#### Task 7.1: One",  # 3
        "one",
        "#### Task 7.1a: One, part two",  # 5
        "two",
        "#### Task 7.1.2b: Deep id",  # 7
        "three",
        "### Batch 8",  # 9
        "#### Task 8.1: Eight",  # 10
        "eight",
    )
    assert plan.title == "Plan"
    assert [(b.number, b.title, b.line) for b in plan.batches] == [(7, "Seven", 2), (8, "", 9)]
    assert [(t.id, t.title, t.line) for t in plan.batches[0].tasks] == [
        ("7.1", "One", 3),
        ("7.1a", "One, part two", 5),
        ("7.1.2b", "Deep id", 7),
    ]
    assert plan.batches[0].tasks[1].body == "two"


@pytest.mark.parametrize(
    ("heading", "number", "title"),
    [
        ("## Batch 3: Title here", 3, "Title here"),
        ("## Batch 3 - Title here", 3, "Title here"),
        ("## Batch 3 \u2014 Title here", 3, "Title here"),
        ("## Batch 3 \u2013 Title here", 3, "Title here"),
        ("## Batch 3. Title here", 3, "Title here"),
        ("## Batch 3", 3, ""),
        ("## Batch 3:", 3, ""),
        ("## batch 3: lower case", 3, "lower case"),
        ("## Batch 3: Title ##", 3, "Title"),
        ("## **Batch 3:** Bold label", 3, "Bold label"),
    ],
)
def test_batch_heading_variants(heading: str, number: int, title: str) -> None:
    plan = parse(heading, "### Task 3.1: T", "body")
    assert (plan.batches[0].number, plan.batches[0].title) == (number, title)


@pytest.mark.parametrize(
    ("heading", "task_id", "title"),
    [
        ("### Task 3.1: Title", "3.1", "Title"),
        ("### Task 3.1 - Title", "3.1", "Title"),
        ("### Task 3.1 \u2014 Title", "3.1", "Title"),
        ("### Task 3.1. Title", "3.1", "Title"),
        ("### Task 3.1a: Title", "3.1a", "Title"),
        ("### Task 3.1", "3.1", ""),
        ("### Task 12", "12", ""),
    ],
)
def test_task_heading_variants(heading: str, task_id: str, title: str) -> None:
    task = parse("## Batch 3: B", heading, "body").batches[0].tasks[0]
    assert (task.id, task.title) == (task_id, title)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("None", []),
        ("none", []),
        ("-", []),
        ("", []),
        ("Batch 1", [1]),
        ("Batch 1, Batch 2", [1, 2]),
        ("1, 2", [1, 2]),
        ("`Batch 1` and Batch 2", [1, 2]),
        ("Batch 1 (the models), Batch 2: API", [1, 2]),
        ("Batch 2, Batch 2", [2]),
    ],
)
def test_batch_dependencies(value: str, expected: list[int]) -> None:
    plan = parse(
        "## Batch 1: A",
        "### Task 1.1: a",
        "a",
        "## Batch 2: B",
        "### Task 2.1: b",
        "b",
        "## Batch 3: C",
        f"**Dependencies:** {value}",
        "### Task 3.1: c",
        "c",
    )
    assert plan.batches[2].dependencies == expected


@pytest.mark.parametrize(
    ("value", "where", "sequential"),
    [
        ("local", "local", False),
        ("`LOCAL`", "local", False),
        ("parallel", None, False),
        ("**Sequential**", None, True),
        ("parallel, local", "local", False),
        ("sequential local", "local", True),
        ("`local` + sequential", "local", True),
        ("sequential (one agent: they share a fixture)", None, True),
        ("parallel, parallel", None, False),
    ],
)
def test_execution_mode(value: str, where: str | None, sequential: bool) -> None:
    plan = parse("## Batch 1: A", f"**Execution Mode:** {value}", "### Task 1.1: a", "a")
    assert plan.batches[0].execution_place == where
    assert plan.batches[0].sequential is sequential
    assert plan.execution_mode == ""  # the batch's own, not the plan's default


def test_plan_default_execution_mode_and_batch_overrides() -> None:
    plan = parse(
        "# Plan",  # 1
        "",
        "**Execution Mode:** sequential, local",  # 3
        "**Target Efficiency:** >85%",  # 4
        "",
        "## Batch 1: Uses the default",  # 6
        "### Task 1.1: a",
        "a",
        "## Batch 2: Parallel here",  # 9
        "**Execution Mode:** parallel",  # 10
        "### Task 2.1: b",
        "b",
    )
    assert (plan.execution_mode, plan.execution_mode_line) == ("sequential, local", 3)
    first, second = plan.batches
    assert (first.sequential, first.execution_place) == (True, "local")
    assert (second.sequential, second.execution_place) == (False, "local")  # where: the default
    assert "**Execution Mode:** sequential, local" in plan.context  # still plan context
    assert [(k.line, k.label, k.owner) for k in plan.kept_fields] == [
        (4, "Target Efficiency", "plan context")
    ]


def test_plan_default_in_a_plan_without_batches() -> None:
    plan = parse(
        "# Plan", "**Execution Mode:** sequential", "### Task 1: a", "a", "### Task 2: b", "b"
    )
    assert plan.batches[0].implicit and plan.batches[0].sequential


def test_dagger_is_a_place_for_a_batch_or_the_whole_plan() -> None:
    plan = parse(
        "# P",
        "**Execution Mode:** dagger",
        "## Batch 1: A",
        "### Task 1.1: a",
        "a",
        "## Batch 2: B",
        "**Execution Mode:** sequential, local",
        "### Task 2.1: b",
        "b",
    )
    assert [b.execution_place for b in plan.batches] == ["dagger", "local"]
    assert plan.execution_mode == "dagger" and plan.batches[1].sequential


def test_no_execution_mode_is_parallel_and_local() -> None:
    plan = parse("## Batch 1: A", "### Task 1.1: a", "a")
    assert (plan.batches[0].sequential, plan.batches[0].execution_place) == (False, None)
    assert (plan.execution_mode, plan.execution_mode_line) == ("", 0)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("docker", "unknown Execution Mode 'docker' for Batch 1; write how the tasks run"),
        ("parallel, sequential", "says both parallel and sequential"),
        ("", "empty Execution Mode for Batch 1; write how the tasks run"),
        ("local, dagger", "Execution Mode 'local, dagger' for Batch 1 names two places to run"),
    ],
)
@pytest.mark.reliability(
    "Execution Mode that cannot be used (unknown word, both how's, two places)",
    "PlanError naming the line and the syntax to write",
)
def test_execution_modes_that_cannot_be_used(value: str, problem: str) -> None:
    line, message = one_issue(
        "## Batch 1: A", f"**Execution Mode:** {value}", "### Task 1.1: a", "a"
    )
    assert line == 2
    assert problem in message


@pytest.mark.reliability(
    "plan-level Execution Mode that cannot be used", "PlanError naming its line"
)
def test_bad_plan_default_execution_mode() -> None:
    assert (
        one_issue("# P", "**Execution Mode:** docker", "## Batch 1: A", "### Task 1.1: a", "a")[0]
        == 2
    )
    found = issues(
        "# P", "**Execution Mode:** local", "**Execution Mode:** parallel", "### Task 1: a", "a"
    )
    assert found == [
        (3, "the plan has a second default **Execution Mode:** (first at line 2); keep one")
    ]


def test_unknown_bold_fields_are_kept_as_text() -> None:
    plan = parse(
        "## Batch 1: A",  # 1
        "**Target Efficiency:** >85%",  # 2
        "**Files:** not here",  # 3: a task's field, text in a batch
        "### Task 1.1: a",  # 4
        "Do a.",
        "",
        "**Expected:** all green",  # 7
        "**Execution Mode:** sequential",  # 8: a batch's field, text in a task
        "",
        "**Implementation:**",  # 10
        "```python",
        "A = 1",
        "```",
    )
    task = plan.batches[0].tasks[0]
    assert "**Expected:** all green" in task.body and "A = 1" in task.body
    assert "**Target Efficiency:** >85%" in plan.batches[0].description
    assert not plan.batches[0].sequential
    assert [(k.line, k.label, k.owner) for k in plan.kept_fields] == [
        (2, "Target Efficiency", "Batch 1"),
        (3, "Files", "Batch 1"),
        (7, "Expected", "Task 1.1"),
        (8, "Execution Mode", "Task 1.1"),
        (10, "Implementation", "Task 1.1"),
    ]


def test_create_path_followed_by_a_code_block_is_a_task_file() -> None:
    task = (
        parse(
            "### Task 1: a",  # 1
            "**Files:**",
            "- Modify: `b.py`",  # 3
            "",
            "Create `src/a.py`:",  # 5
            "```python",
            "A = 1",
            "```",
            "",
            "Modify `b.py`:",  # 10: listed already
            "```python",
            "B = 2",
            "```",
            "",
            "Create `not-a-file.py`: because no code block follows",
            "",
            "Create `c.py`:",  # 17: no code block after it
            "",
            "text",
        )
        .batches[0]
        .tasks[0]
    )
    assert task.files == [
        FileRef(action="modify", path="b.py", line=3),
        FileRef(action="create", path="src/a.py", line=5),
    ]


# --------------------------------------------------------------------------------------------
# Task fields
# --------------------------------------------------------------------------------------------


def test_files_list_with_actions_backticks_and_line_ranges() -> None:
    task = (
        parse(
            "## Batch 1: A",  # 1
            "### Task 1.1: a",  # 2
            "Do it.",  # 3
            "",
            "**Files:**",  # 5
            "- Create: `src/new.py`",  # 6
            "- Modify: `src/old.py:123-145`",  # 7
            "- Test: tests/test_new.py",  # 8
            "- `docs/readme.md`",  # 9
            "- plain/path.txt:12",  # 10
            "- **Delete:** `src/gone.py` (no longer used)",  # 11
        )
        .batches[0]
        .tasks[0]
    )
    assert task.files == [
        FileRef(action="create", path="src/new.py", line=6),
        FileRef(action="modify", path="src/old.py", line=7),
        FileRef(action="test", path="tests/test_new.py", line=8),
        FileRef(action="", path="docs/readme.md", line=9),
        FileRef(action="", path="plain/path.txt", line=10),
        FileRef(action="delete", path="src/gone.py", line=11),
    ]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("**File:** src/a.py", ["src/a.py"]),
        ("**Files:** a.py, b.py", ["a.py", "b.py"]),
        ("**Files:** `a.py`, `b.py:1-9`", ["a.py", "b.py"]),
        ("**Files**: `a.py`", ["a.py"]),
    ],
)
def test_inline_files(field: str, expected: list[str]) -> None:
    task = parse("## Batch 1: A", "### Task 1.1: a", "Do it.", "", field).batches[0].tasks[0]
    assert [ref.path for ref in task.files] == expected
    assert {ref.line for ref in task.files} == {5}
    assert {ref.action for ref in task.files} == {""}


def test_files_list_after_a_blank_line() -> None:
    task = parse("### Task 1: a", "**Files:**", "", "- Create: `a.py`").batches[0].tasks[0]
    assert task.files == [FileRef(action="create", path="a.py", line=4)]


def test_verification_bulleted_numbered_and_inline() -> None:
    plan = parse(
        "## Batch 1: A",  # 1
        "### Task 1.1: bullets",  # 2
        "x",
        "**Verification:**",
        "- `pytest -q` passes",
        "- Run: `make lint`",
        "  Expected: no output",
        "### Task 1.2: numbered",  # 8
        "x",
        "**Verification:**",
        "1. first",
        "2. second",
        "### Task 1.3: inline",  # 13
        "x",
        "**Verification:** `pytest tests/test_x.py` passes",
        "### Task 1.4: intro then list",  # 16
        "x",
        "**Verification:** run these:",
        "1. one",
    )
    tasks = plan.batches[0].tasks
    assert tasks[0].verification == ["`pytest -q` passes", "Run: `make lint`\nExpected: no output"]
    assert tasks[1].verification == ["first", "second"]
    assert tasks[2].verification == ["`pytest tests/test_x.py` passes"]
    assert tasks[3].verification == ["one"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Task 1.1, Task 1.2", ["1.1", "1.2"]),
        ("1.1", ["1.1"]),
        ("Tasks 1.1 and 1.2", ["1.1", "1.2"]),
        ("`Task 1.1` (the model)", ["1.1"]),
        ("Task 1.1: Model", ["1.1"]),
        ("None", []),
        ("none", []),
    ],
)
def test_task_depends_on(value: str, expected: list[str]) -> None:
    plan = parse(
        "## Batch 1: A",
        "### Task 1.1: a",
        "a",
        "### Task 1.2: b",
        "b",
        "### Task 1.3: c",
        "c",
        f"**Depends on:** {value}",
    )
    assert plan.batches[0].tasks[2].depends_on == expected


def test_depends_on_as_a_list() -> None:
    plan = parse("### Task 1: a", "a", "### Task 2: b", "b", "**Depends on:**", "- Task 1")
    assert plan.batches[0].tasks[1].depends_on == ["1"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("feat: add model", "feat: add model"),
        ("`feat: add model`", "feat: add model"),
        ('"feat: add model"', "feat: add model"),
        ("'feat: add model'", "feat: add model"),
        ("feat: add `model` helper", "feat: add `model` helper"),
    ],
)
def test_commit_message(value: str, expected: str) -> None:
    task = parse("### Task 1: a", "a", f"**Commit:** {value}").batches[0].tasks[0]
    assert task.commit_message == expected


def test_commit_message_in_a_code_block() -> None:
    task = parse("### Task 1: a", "a", "**Commit:**", "```", "feat: x", "```").batches[0].tasks[0]
    assert task.commit_message == "feat: x"


def test_fields_in_one_paragraph_and_a_setext_underline() -> None:
    plan = parse(
        "## Batch 1: A",  # 1
        "### Task 1.1: a",  # 2
        "a",  # 3
        "### Task 1.2: b",  # 4
        "Do b.",  # 5
        "",
        "**Files:** `b.py`",  # 7
        "**Depends on:** Task 1.1",  # 8
        "**Verification:** it works",  # 9
        "**Commit:** feat: b",  # 10
        "---",  # 11: makes lines 7-10 a setext heading, which must not matter
        "",
        "More text.",
    )
    task = plan.batches[0].tasks[1]
    assert task.files == [FileRef(path="b.py", line=7)]
    assert task.depends_on == ["1.1"]
    assert task.verification == ["it works"]
    assert task.commit_message == "feat: b"
    assert task.body.endswith("---\n\nMore text.")


def test_fields_stay_in_the_body_and_defaults() -> None:
    plan = parse("### Task 1: a", "Do a.", "", "**Commit:** feat: a")
    task = plan.batches[0].tasks[0]
    assert task.body == "Do a.\n\n**Commit:** feat: a"
    assert (task.files, task.verification, task.depends_on) == ([], [], [])
    bare = parse("### Task 1: a", "Do a.").batches[0].tasks[0]
    assert bare.commit_message is None


def test_unknown_bold_labels_are_not_fields() -> None:
    task = (
        parse(
            "### Task 1: a",
            "**Goal:** something",
            "**Files:**",
            "- `a.py`",
            "",  # without it, the next line would continue the list item
            "**Step 1:** write it",
            "- `not-a-file.py`",
        )
        .batches[0]
        .tasks[0]
    )
    assert [ref.path for ref in task.files] == ["a.py"]


# --------------------------------------------------------------------------------------------
# Bodies, code blocks, headings inside tasks
# --------------------------------------------------------------------------------------------


def test_body_is_verbatim_with_code_blocks() -> None:
    body_lines = [
        "Intro with  two spaces and a trailing space ",
        "",
        "```python",
        "def f() -> None:",
        "",
        "    pass",
        "```",
        "",
        "    indented code",
        "",
        "* item",
        "  * nested",
    ]
    plan = parse(
        "## Batch 1: A", "### Task 1.1: a", "", "", *body_lines, "", "", "### Task 1.2: b", "b"
    )
    assert plan.batches[0].tasks[0].body == "\n".join(body_lines)


def test_headings_inside_code_blocks_are_not_headings() -> None:
    plan = parse(
        "## Batch 1: A",  # 1
        "### Task 1.1: a",  # 2
        "Write this file:",  # 3
        "```markdown",  # 4
        "## Batch 9: x",  # 5
        "### Task 9.1: y",  # 6
        "# Title",  # 7
        "**Files:**",  # 8
        "- `fake.py`",  # 9
        "```",  # 10
        "~~~",  # 11
        "## Batch 10: z",  # 12
        "~~~",  # 13
        "",
        "    ### Task 9.2: indented code",  # 15
        "",
        "> ## Batch 11: quoted",  # 17
        "",
        "- ### Task 9.3: in a list",  # 19
        "### Task 1.2: b",  # 20
        "b",
    )
    assert plan.title is None
    assert [batch.number for batch in plan.batches] == [1]
    assert [task.id for task in plan.batches[0].tasks] == ["1.1", "1.2"]
    first = plan.batches[0].tasks[0]
    assert first.body.splitlines()[2:4] == ["## Batch 9: x", "### Task 9.1: y"]
    assert first.body.endswith("- ### Task 9.3: in a list")
    assert first.files == []


def test_heading_ranks_inside_and_after_tasks() -> None:
    plan = parse(
        "# Plan",  # 1
        "## Batch 1: A",  # 2
        "### Task 1.1: a",  # 3
        "a",  # 4
        "### Details",  # 5: same rank as the task: stays in the body
        "d",  # 6
        "#### Sub",  # 7: lower rank: stays in the body
        "s",  # 8
        "### Task 1.2: b",  # 9
        "b",  # 10
        "",
        "## Appendix",  # 12: rank <= the batch's: ends the batch
        "prose",  # 13
        "",
    )
    tasks = plan.batches[0].tasks
    assert tasks[0].body == "a\n### Details\nd\n#### Sub\ns"
    assert tasks[1].body == "b"
    assert [(b.start_line, b.end_line, b.summary) for b in plan.ignored] == [
        (1, 1, "# Plan"),
        (12, 13, "## Appendix"),
    ]


def test_higher_rank_heading_ends_the_task_but_not_the_batch() -> None:
    plan = parse(
        "## Batch 1: A",  # 1
        "#### Task 1.1: a",  # 2
        "a",  # 3
        "### Interlude",  # 4: higher rank than the task, lower than the batch
        "prose",  # 5
        "#### Task 1.2: b",  # 6
        "b",  # 7
    )
    assert [task.body for task in plan.batches[0].tasks] == ["a", "b"]
    assert [(b.start_line, b.end_line, b.summary) for b in plan.ignored] == [
        (4, 5, "### Interlude")
    ]


def test_batch_description_runs_to_the_first_task() -> None:
    plan = parse(
        "## Batch 1: A",
        "",
        "Intro.",
        "",
        "### Background",
        "More.",
        "",
        "### Task 1.1: a",
        "a",
    )
    assert plan.batches[0].description == "Intro.\n\n### Background\nMore."


def test_batch_without_tasks_is_kept() -> None:
    plan = parse("## Batch 1: A", "### Task 1.1: a", "a", "## Batch 2: Later", "TBD")
    assert [(b.number, len(b.tasks), b.description) for b in plan.batches] == [
        (1, 1, ""),
        (2, 0, "TBD"),
    ]


# --------------------------------------------------------------------------------------------
# Front matter, title, context, ignored blocks
# --------------------------------------------------------------------------------------------


def test_front_matter_context_and_ignored_blocks() -> None:
    plan = parse(
        "---",  # 1
        "title: x",  # 2
        "tags: [a, b]",  # 3
        "---",  # 4
        "",  # 5
        "# The Plan",  # 6
        "",  # 7
        "Some context.",  # 8
        "",  # 9
        "## Batch 1: A",  # 10
        "### Task 1.1: a",  # 11
        "a",  # 12
        "# Notes",  # 13
        "A" * 100,  # 14
        "",  # 15
    )
    assert plan.front_matter == "title: x\ntags: [a, b]"
    assert plan.title == "The Plan"
    assert plan.context == "# The Plan\n\nSome context."
    assert plan.batches[0].line == 10
    assert plan.batches[0].tasks[0].line == 11
    assert [(b.start_line, b.end_line) for b in plan.ignored] == [(1, 4), (6, 8), (13, 14)]
    assert plan.ignored[0].summary == "front matter: title: x"
    assert plan.ignored[1].summary == "# The Plan"
    assert plan.ignored[2].summary == "# Notes"


def test_long_summary_is_shortened() -> None:
    plan = parse("B" * 100, "", "### Task 1: a", "a")
    summary = plan.ignored[0].summary
    assert len(summary) <= 80
    assert summary == "B" * 77 + "..."


def test_unclosed_front_matter_is_just_text() -> None:
    plan = parse("---", "title: x", "", "### Task 1: a", "a")
    assert plan.front_matter == ""
    assert plan.ignored[0].start_line == 1


def test_setext_h1_is_the_title_and_no_title_is_none() -> None:
    assert parse("My Plan", "=======", "", "### Task 1: a", "a").title == "My Plan"
    assert parse("### Task 1: a", "a").title is None
    assert parse("### Task 1: a", "a").ignored == []


@pytest.mark.reliability(
    "plan with CRLF line endings and a BOM", "parsed like LF text; lines counted right"
)
def test_crlf_and_bom() -> None:
    text = "\ufeff# T\r\n\r\n## Batch 1: A\r\n### Task 1.1: a\r\nline one\r\nline two\r\n"
    plan = checked_parse_plan(text, "plan.md")
    assert plan.title == "T"
    assert plan.batches[0].tasks[0].line == 4
    assert plan.batches[0].tasks[0].body == "line one\nline two"


# --------------------------------------------------------------------------------------------
# Plans without batches
# --------------------------------------------------------------------------------------------


def test_writing_plans_style_without_batches() -> None:
    plan = parse(
        "# Feature Implementation Plan",  # 1
        "",
        "**Goal:** do the thing",  # 3
        "",
        "---",  # 5
        "",
        "### Task 1: First",  # 7
        "",
        "**Files:**",  # 9
        "- Create: `src/a.py`",  # 10
        "- Modify: `src/b.py:123-145`",  # 11
        "- Test: `tests/test_a.py`",  # 12
        "",
        "- [ ] **Step 1:** Write the failing test",  # 14
        "",
        "```python",
        "def test_a() -> None:",
        "    assert a() == 1",
        "```",
        "",
        "- [ ] **Step 2:** Run it: `pytest tests/test_a.py -v`",  # 21
        "",
        "### Task 2: Second",  # 23
        "",
        "- [ ] **Step 1:** Do it",
        "",
        "**Depends on:** Task 1",
    )
    (batch,) = plan.batches
    assert (batch.number, batch.title, batch.implicit, batch.line) == (
        1,
        "Feature Implementation Plan",
        True,
        7,
    )
    assert batch.description == ""
    first, second = batch.tasks
    assert (first.id, first.title, first.batch) == ("1", "First", 1)
    assert first.files == [
        FileRef(action="create", path="src/a.py", line=10),
        FileRef(action="modify", path="src/b.py", line=11),
        FileRef(action="test", path="tests/test_a.py", line=12),
    ]
    assert "- [ ] **Step 2:** Run it" in first.body
    assert second.depends_on == ["1"]
    assert plan.context.startswith("# Feature Implementation Plan")
    assert [(b.start_line, b.end_line) for b in plan.ignored] == [(1, 5)]


def test_h2_tasks_without_title_give_all_tasks() -> None:
    plan = parse("Intro.", "", "## Task 1: a", "a", "## Task 2: b", "b")
    assert plan.batches[0].title == "All tasks"
    assert plan.batches[0].line == 3
    assert [task.id for task in plan.batches[0].tasks] == ["1", "2"]


def test_prose_between_tasks_of_an_implicit_batch() -> None:
    plan = parse("### Task 1: a", "a", "## Interlude", "p", "### Task 2: b", "b")
    assert [task.id for task in plan.batches[0].tasks] == ["1", "2"]
    assert [(b.start_line, b.end_line) for b in plan.ignored] == [(3, 4)]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.reliability(
    "tasks outside any batch in a plan with batches",
    "an issue per task naming its line and the fix",
)
def test_stray_tasks_in_a_plan_with_batches() -> None:
    assert issues(
        "### Task 0.1: early",  # 1
        "x",
        "## Batch 1: A",  # 3
        "### Task 1.1: a",
        "a",
        "## Notes",  # 6
        "### Task 1.2: late",  # 7
        "x",
    ) == [
        (
            1,
            "Task 0.1 is not inside a batch, but this plan has batch headings;"
            " move it under a `## Batch N: Title` heading",
        ),
        (
            7,
            "Task 1.2 is not inside a batch, but this plan has batch headings;"
            " move it under a `## Batch N: Title` heading",
        ),
    ]


@pytest.mark.reliability("task id defined twice", "PlanError with both lines")
def test_duplicate_task_ids() -> None:
    assert one_issue("### Task 1: a", "a", "### Task 2: b", "b", "### Task 1: c", "c") == (
        5,
        "Task 1 is defined twice (lines 1 and 5); give each task a unique id",
    )


@pytest.mark.reliability("batch number defined twice", "PlanError with both lines")
def test_duplicate_batch_numbers() -> None:
    assert one_issue(
        "## Batch 1: A", "### Task 1.1: a", "a", "## Batch 1: B", "### Task 1.2: b", "b"
    ) == (4, "Batch 1 is defined twice (lines 1 and 4); give each batch a unique number")


@pytest.mark.reliability("dependency on an unknown task", "PlanError naming it")
def test_unknown_task_dependency() -> None:
    assert one_issue("### Task 1: a", "a", "**Depends on:** Task 9") == (
        3,
        "Task 1 depends on unknown Task 9; fix the id in **Depends on:** or remove it",
    )


@pytest.mark.reliability(
    "unreadable Depends on / Dependencies values", "PlanError showing the expected form"
)
def test_unreadable_dependencies() -> None:
    assert issues(
        "## Batch 1: A",  # 1
        "**Dependencies:** the first one",  # 2
        "### Task 1.1: a",  # 3
        "a",
        "**Depends on:** Batch 1",  # 5
    ) == [
        (
            2,
            "cannot read dependency 'the first one' of Batch 1; list batches like"
            " `**Dependencies:** Batch 1, Batch 2` or write `None`",
        ),
        (
            5,
            "cannot read dependency 'Batch 1' of Task 1.1; list task ids like"
            " `**Depends on:** Task 1.1, Task 1.2` or write `None`",
        ),
    ]


@pytest.mark.reliability(
    "task depends on a task of a later batch", "PlanError: move it or remove the dependency"
)
def test_task_depending_on_a_later_batch() -> None:
    found = issues(
        "## Batch 1: A",
        "### Task 1.1: a",
        "a",
        "**Depends on:** Task 2.1",  # 4
        "## Batch 2: B",
        "### Task 2.1: b",
        "b",
    )
    assert found == [
        (
            4,
            "Task 1.1 (Batch 1) depends on Task 2.1 of Batch 2, which runs later;"
            " move Task 2.1 to an earlier batch or remove the dependency",
        )
    ]


def test_task_depending_on_an_earlier_batch_is_fine() -> None:
    plan = parse(
        "## Batch 1: A",
        "### Task 1.1: a",
        "a",
        "## Batch 2: B",
        "### Task 2.1: b",
        "b",
        "**Depends on:** Task 1.1",
    )
    assert plan.batches[1].tasks[0].depends_on == ["1.1"]


@pytest.mark.reliability(
    "task dependency cycle, task depending on itself", "PlanError showing the cycle"
)
def test_task_dependency_cycles() -> None:
    found = issues(
        "### Task 1.1: a",  # 1
        "a",
        "**Depends on:** Task 1.2",  # 3
        "### Task 1.2: b",  # 4
        "b",
        "**Depends on:** Task 1.3",
        "### Task 1.3: c",  # 7
        "c",
        "**Depends on:** Task 1.1",
        "### Task 1.4: d",  # 10
        "d",
        "**Depends on:** Task 1.4",  # 12
    )
    assert found == [
        (
            1,
            "dependency cycle: Task 1.1 -> Task 1.2 -> Task 1.3 -> Task 1.1 (each depends on"
            " the next); remove one of these dependencies",
        ),
        (12, "Task 1.4 depends on itself; remove Task 1.4 from its **Depends on:**"),
    ]


def test_cycle_is_reported_from_its_first_task() -> None:
    found = issues(
        "### Task 1: a",  # 1
        "a",
        "### Task 2: b",  # 3
        "b",
        "**Depends on:** Task 3",
        "### Task 3: c",  # 6
        "c",
        "**Depends on:** Task 2",
    )
    assert found == [
        (
            3,
            "dependency cycle: Task 2 -> Task 3 -> Task 2 (each depends on the next);"
            " remove one of these dependencies",
        )
    ]


@pytest.mark.reliability(
    "batch dependency cycle, on itself, on a later or unknown batch", "one PlanError issue for each"
)
def test_batch_dependency_errors() -> None:
    found = issues(
        "## Batch 1: A",  # 1
        "**Dependencies:** Batch 2",  # 2
        "### Task 1.1: a",
        "a",
        "## Batch 2: B",  # 5
        "**Dependencies:** Batch 1, Batch 2, Batch 7",  # 6
        "### Task 2.1: b",
        "b",
    )
    assert found == [
        (
            1,
            "dependency cycle: Batch 1 -> Batch 2 -> Batch 1 (each depends on the next);"
            " remove one of these dependencies",
        ),
        (
            2,
            "Batch 1 depends on Batch 2, which comes later in the plan; batches run in order,"
            " so move Batch 2 before Batch 1 or remove the dependency",
        ),
        (6, "Batch 2 depends on itself; remove Batch 2 from its **Dependencies:**"),
        (
            6,
            "Batch 2 depends on unknown Batch 7 (this plan has 1-2); fix or remove it in"
            " **Dependencies:**",
        ),
    ]


@pytest.mark.reliability("task with an empty body", "PlanError naming the task")
def test_empty_task_body() -> None:
    assert issues("## Batch 1: A", "### Task 1.1: a", "", "   ", "### Task 1.2: b", "b") == [
        (2, "Task 1.1 has an empty body; describe the work under its heading")
    ]


def test_empty_last_task_body() -> None:
    assert one_issue("### Task 1: a", "a", "### Task 2: b") == (
        3,
        "Task 2 has an empty body; describe the work under its heading",
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# Just a title\n\nSome prose.\n",
        "## Batch 1: A\n\nNothing yet.\n",
        "```\n### Task 1: in code\nx\n```\n",
    ],
)
@pytest.mark.reliability(
    "plan without tasks (empty, prose, batch only, tasks only in code)",
    "PlanError: no tasks found, with the expected headings",
)
def test_no_tasks(text: str) -> None:
    with pytest.raises(PlanError) as caught:
        checked_parse_plan(text, "plan.md")
    assert [(i.line, i.message) for i in caught.value.issues] == [
        (
            1,
            "no tasks found; add task headings like `### Task 1.1: Title` under"
            " `## Batch 1: Title` headings, or `### Task 1: Title` sections",
        )
    ]


@pytest.mark.reliability("unknown Execution Mode", "PlanError listing the valid modes")
def test_unknown_execution_mode() -> None:
    assert one_issue("## Batch 1: A", "**Execution Mode:** docker", "### Task 1.1: a", "a") == (
        2,
        "unknown Execution Mode 'docker' for Batch 1; write how the tasks run (`parallel` or"
        " `sequential`), where (`local` or `dagger`), or both, e.g."
        " `**Execution Mode:** sequential, local`",
    )


@pytest.mark.reliability("a single-value field given twice", "PlanError with the first line")
def test_duplicate_single_value_fields() -> None:
    assert issues(
        "## Batch 1: A",
        "**Execution Mode:** local",
        "**Execution Mode:** dagger",  # 3
        "### Task 1.1: a",
        "a",
        "**Commit:** one",
        "**Commit:** two",  # 7
    ) == [
        (3, "Batch 1 has a second **Execution Mode:** field (first at line 2); keep one"),
        (7, "Task 1.1 has a second **Commit:** field (first at line 6); keep one"),
    ]


@pytest.mark.parametrize(
    ("heading", "what", "example"),
    [
        ("## Batch 2 Models", "batch", "## Batch 3: Title"),
        ("## Batch 2.5: Models", "batch", "## Batch 3: Title"),
        ("### Task 1.x: Foo", "task", "### Task 3.1: Title"),
        ("### Task #4: Foo", "task", "### Task 3.1: Title"),
    ],
)
@pytest.mark.reliability("malformed batch or task heading", "PlanError showing the expected form")
def test_headings_that_look_like_batches_or_tasks(heading: str, what: str, example: str) -> None:
    found = issues("## Batch 1: A", "### Task 1.1: a", "a", heading, "x")
    assert (
        4,
        f"heading '{heading.lstrip('# ')}' looks like a {what} heading but cannot be read;"
        f" write it like `{example}` (separator ':', '.', ' - ' or ' \u2014 ')",
    ) in found


@pytest.mark.reliability(
    "several problems in one plan", "all reported at once, sorted by line, as file:line"
)
def test_all_issues_are_reported_sorted_by_line() -> None:
    with pytest.raises(PlanError) as caught:
        parse(
            "## Batch 1: A",  # 1
            "**Execution Mode:** cloud",  # 2
            "### Task 1.1: a",  # 3
            "",
            "### Task 1.2: b",  # 5
            "b",
            "**Depends on:** Task 7",  # 7
            "### Task 1.2: c",  # 8
            "c",
        )
    err = caught.value
    assert [issue.line for issue in err.issues] == [2, 3, 7, 8]
    assert str(err).splitlines() == [
        "plan.md:2: unknown Execution Mode 'cloud' for Batch 1; write how the tasks run"
        " (`parallel` or `sequential`), where (`local` or `dagger`), or both, e.g."
        " `**Execution Mode:** sequential, local`",
        "plan.md:3: Task 1.1 has an empty body; describe the work under its heading",
        "plan.md:7: Task 1.2 depends on unknown Task 7; fix the id in **Depends on:** or remove it",
        "plan.md:8: Task 1.2 is defined twice (lines 5 and 8); give each task a unique id",
    ]


def test_plan_error_pickles() -> None:
    err = PlanError("p.md", [PlanIssue(line=3, message="m"), PlanIssue(line=1, message="n")])
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, PlanError)
    assert str(copy) == str(err) == "p.md:1: n\np.md:3: m"


# --------------------------------------------------------------------------------------------
# load_plan
# --------------------------------------------------------------------------------------------


def test_load_plan_reads_utf8(tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    path.write_text("# Caf\u00e9\n\n### Task 1: na\u00efve\n\u00fcber\n", encoding="utf-8")
    plan = load_plan(path)
    assert plan.path == str(path)
    assert plan.title == "Caf\u00e9"
    assert plan.batches[0].tasks[0].body == "\u00fcber"


@pytest.mark.reliability("plan file missing", "PlanError: not found")
def test_load_plan_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.md"
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(caught.value) == f"{path}: plan file not found; check the path"


@pytest.mark.reliability("plan path is a directory", "PlanError saying so")
def test_load_plan_directory(tmp_path: Path) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(tmp_path)
    assert caught.value.issues == [
        PlanIssue(
            line=0, message="is a directory, not a plan file; give the path of the markdown plan"
        )
    ]


@pytest.mark.reliability("plan file not UTF-8", "PlanError with the line of the first bad byte")
def test_load_plan_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    path.write_bytes(b"# Plan\n\n### Task 1: a\ncaf\xe9\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    (issue,) = caught.value.issues
    assert issue.line == 0
    assert issue.message.startswith("the plan file is not valid UTF-8 (first bad byte on line 4")
    assert issue.message.endswith("save it as UTF-8")


@pytest.mark.reliability(
    "plan path is a FIFO or a device", "PlanError before reading (a FIFO would block for ever)"
)
def test_load_plan_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "plan.md"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "FIFO (named pipe)"), (Path("/dev/zero"), "character device")):
        with pytest.raises(PlanError) as caught:
            load_plan(path)  # returns at once: nothing is read
        assert caught.value.issues == [
            PlanIssue(
                line=0,
                message=f"is not a regular file (it is a {kind}); give the path of the markdown"
                " plan itself",
            )
        ]


@pytest.mark.reliability("plan file over the size limit", "PlanError naming the limit")
def test_load_plan_refuses_a_file_over_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    with path.open("wb") as file:
        file.truncate(plan_parser.PLAN_SIZE_LIMIT + 1)  # sparse: no disk used
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(caught.value) == (
        f"{path}: the plan file is 8.0 MiB, over the 8 MiB limit of a plan; check that this is"
        " the plan, or split it into several plans"
    )
    with path.open("r+b") as file:
        file.truncate(plan_parser.PLAN_SIZE_LIMIT)  # at the limit: read (and parsed)
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert "NUL byte" in str(caught.value)


@pytest.mark.reliability("NUL byte in a plan", "PlanError naming its line, nothing else parsed")
def test_nul_byte_is_an_error_with_its_line() -> None:
    assert issues("# P", "### Task 1: a", "do \0 it", "\0") == [
        (
            3,
            "this line holds a NUL byte (\\0), which a markdown plan never has; remove it, or"
            " check that this is the plan and not a binary file",
        )
    ]


@pytest.mark.parametrize(
    "heading",
    [
        "### Task \u0661.1: Arabic-Indic digit",
        "### Task 1.\uff11: fullwidth digit",
        "### Task 1.1\u212a: Kelvin sign as the letter",
        "### Ta\u017fk 1.1: long s",
    ],
)
@pytest.mark.reliability(
    "task number in other scripts' digits, or a Kelvin sign as its letter",
    "PlanError naming the line (a heading that looks like a task), never a task id",
)
def test_task_numbers_are_ascii_only(heading: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse("## Batch 1: A", "### Task 1.0: ok", "ok", heading, "x")
    assert any(
        issue.line == 4 and "looks like a task heading" in issue.message
        for issue in caught.value.issues
    ), caught.value.issues


@pytest.mark.reliability(
    "batch number beyond a signed 64-bit integer (the AutopilotBatch search attribute)",
    "PlanError naming the line; a 5,000-digit number does not crash int()",
)
def test_batch_number_must_fit_a_signed_64_bit_integer() -> None:
    largest = plan_parser.BATCH_NUMBER_MAX
    plan = parse(f"## Batch {largest}: A", "### Task 1.1: a", "a")
    assert plan.batches[0].number == largest
    assert issues(f"## Batch {largest + 1}: A", "### Task 1.1: a", "a") == [
        (
            1,
            f"batch number {largest + 1} is too large; number batches from 0 to {largest}"
            " (a signed 64-bit integer)",
        )
    ]
    huge = "9" * 5000
    found = issues(
        f"## Batch {huge}: A",
        "### Task 1.1: a",
        "a",
        "## Batch 2: B",
        f"**Dependencies:** Batch {huge}",
        "### Task 2.1: b",
        "b",
    )
    assert [line for line, _ in found] == [1, 5]
    assert "9999999999...(5000 digits) is too large" in found[0][1]
    assert "depends on batch number 9999999999...(5000 digits), which is too large" in found[1][1]


def test_load_plan_reports_parse_errors_with_the_path(tmp_path: Path) -> None:
    path = tmp_path / "plan.md"
    path.write_text("### Task 1: a\n\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(caught.value).startswith(f"{path}:1: Task 1 has an empty body")


# --------------------------------------------------------------------------------------------
# select_batches
# --------------------------------------------------------------------------------------------


def _three_batches() -> Plan:
    return parse(
        "## Batch 1: A",
        "### Task 1.1: a",
        "a",
        "## Batch 2: B",
        "**Dependencies:** Batch 1",
        "### Task 2.1: b",
        "b",
        "**Depends on:** Task 1.1",
        "## Batch 3: C",
        "### Task 3.1: c",
        "c",
        "## Batch 5: E",
        "### Task 5.1: e",
        "e",
    )


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, [1, 2, 3, 5]),
        (2, None, [2, 3, 5]),
        (None, 2, [1, 2]),
        (2, 3, [2, 3]),
        (3, 3, [3]),
        (4, 9, [5]),
        (0, 1, [1]),
    ],
)
def test_select_batches(start: int | None, end: int | None, expected: list[int]) -> None:
    plan = _three_batches()
    selected = select_batches(plan, start, end)
    assert [batch.number for batch in selected.batches] == expected
    assert [batch.number for batch in plan.batches] == [1, 2, 3, 5]  # the original is unchanged
    assert selected.path == plan.path


def test_select_batches_keeps_dependencies_outside_the_range() -> None:
    selected = select_batches(_three_batches(), 2, 2)
    (batch,) = selected.batches
    assert batch.dependencies == [1]
    assert batch.tasks[0].depends_on == ["1.1"]


@pytest.mark.reliability("batch range matching no batch", "PlanError listing the plan's batches")
def test_select_batches_nothing_selected() -> None:
    with pytest.raises(PlanError) as caught:
        select_batches(_three_batches(), 6, 8)
    assert str(caught.value) == "plan.md: no batch in the range 6..8; this plan has batches 1-3, 5"
    with pytest.raises(PlanError) as caught:
        select_batches(_three_batches(), 4, 4)
    assert "no batch in the range 4..4" in str(caught.value)
    with pytest.raises(PlanError) as caught:
        select_batches(_three_batches(), 7, None)
    assert "no batch in the range 7..;" in str(caught.value)


@pytest.mark.reliability("start batch after end batch", "PlanError listing the plan's batches")
def test_select_batches_start_after_end() -> None:
    with pytest.raises(PlanError) as caught:
        select_batches(_three_batches(), 3, 2)
    assert caught.value.issues == [
        PlanIssue(
            line=0,
            message="start batch 3 is after end batch 2; give a start <= end"
            " (this plan has batches 1-3, 5)",
        )
    ]


def test_select_batches_of_an_implicit_batch() -> None:
    plan = parse("### Task 1: a", "a")
    assert select_batches(plan, 1, 1).batches[0].implicit
    with pytest.raises(PlanError) as caught:
        select_batches(plan, 2, 3)
    assert str(caught.value) == (
        "plan.md: no batch in the range 2..3; this plan has only batch 1"
        " (no batch headings: all its tasks form one batch)"
    )


# --------------------------------------------------------------------------------------------
# Scale and fixtures
# --------------------------------------------------------------------------------------------


@pytest.mark.reliability(
    "a plan of 10 000 tasks in 100 batches", "parsed completely within the test timeout"
)
def test_ten_thousand_tasks() -> None:
    lines = ["# Big plan", ""]
    for batch in range(1, 101):
        lines += [f"## Batch {batch}: Batch number {batch}", ""]
        if batch > 1:
            lines += [f"**Dependencies:** Batch {batch - 1}", ""]
        for task in range(1, 101):
            lines += [f"### Task {batch}.{task}: Task {task} of batch {batch}", "", "Do it."]
            if task > 1:
                lines += [f"**Depends on:** Task {batch}.{task - 1}"]
            elif batch > 1:
                lines += [f"**Depends on:** Task {batch - 1}.100"]
            lines += ["**Files:**", f"- Create: `src/b{batch}/t{task}.py`", ""]
    plan = checked_parse_plan("\n".join(lines), "big.md")
    assert len(plan.batches) == 100
    assert plan.task_count() == 10_000
    last = plan.batches[-1].tasks[-1]
    assert (last.id, last.batch, last.depends_on) == ("100.100", 100, ["100.99"])
    assert last.files == [FileRef(action="create", path="src/b100/t100.py", line=len(lines) - 1)]
    assert lines[last.line - 1] == "### Task 100.100: Task 100 of batch 100"
    assert plan.batches[50].dependencies == [50]


def test_fixture_batch_plan() -> None:
    plan = load_plan(PLANS / "batch_plan.md")
    assert plan.title == "Inventory Service: Master Plan"
    assert plan.front_matter == "project: inventory-service\nowner: platform-team"
    assert [(b.number, b.title, b.line) for b in plan.batches] == [
        (31, "Reservation model", 11),
        (32, "Reservation API", 50),
        (33, "Expiry", 78),
    ]
    assert [b.dependencies for b in plan.batches] == [[], [31], [31, 32]]
    assert [b.execution_place for b in plan.batches] == ["local", None, None]
    assert [b.sequential for b in plan.batches] == [False, True, False]
    tasks = {task.id: task for batch in plan.batches for task in batch.tasks}
    assert list(tasks) == ["31.1", "31.2", "32.1", "32.1a", "33.1"]
    assert tasks["31.1"].files == [
        FileRef(action="create", path="src/inventory/reservations.py", line=23),
        FileRef(action="test", path="tests/test_reservations.py", line=24),
    ]
    assert tasks["31.1"].verification == [
        "`pytest tests/test_reservations.py -q` passes",
        "`mypy src` reports no errors",
    ]
    assert tasks["31.1"].commit_message == "feat(reservations): add Reservation model"
    assert tasks["31.2"].files[0] == FileRef(action="modify", path="src/inventory/db.py", line=43)
    assert tasks["31.2"].depends_on == ["31.1"]
    assert tasks["31.2"].commit_message == "feat(db): persist reservations"
    assert 'CREATE_TABLE = """' in tasks["31.2"].body
    assert [ref.path for ref in tasks["32.1"].files] == [
        "src/inventory/api.py",
        "tests/test_api.py",
    ]
    assert "#### Notes\n\nReturn 409" in tasks["32.1"].body
    assert "## Batch 99: not a batch" in tasks["32.1a"].body
    assert tasks["32.1a"].depends_on == ["32.1"]
    assert tasks["33.1"].depends_on == ["31.2", "32.1"]
    assert [(b.start_line, b.end_line) for b in plan.ignored] == [(1, 4), (6, 9), (96, 98)]
    assert plan.ignored[2].summary == "## Rollout notes"


def test_fixture_writing_plans() -> None:
    plan = load_plan(PLANS / "writing_plans.md")
    (batch,) = plan.batches
    assert batch.implicit
    assert batch.title == "Slugify Helper Implementation Plan"
    first, second = batch.tasks
    assert (first.id, first.line, second.id, second.line) == ("1", 11, "2", 51)
    assert [(ref.action, ref.path) for ref in first.files] == [
        ("create", "blog/text.py"),
        ("test", "tests/test_text.py"),
    ]
    assert [(ref.action, ref.path) for ref in second.files] == [
        ("modify", "blog/models.py"),
        ("test", "tests/test_models.py"),
    ]
    assert first.body.endswith('git commit -m "feat: add slugify helper"\n```')
    assert second.depends_on == ["1"]
    assert plan.ignored[0].start_line == 1
    assert "**Goal:**" in plan.context
