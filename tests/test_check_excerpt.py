"""What a person reads of a failed check: the lines that say what failed, without colour
codes, with the log's path, and the command to run next."""

from __future__ import annotations

import io

from autopilot.models import CheckResult, SessionState, SessionStatus, TaskState, TaskStatus
from autopilot.operate.follow import report
from autopilot.operate.progress_view import failure_details, summary_line, task_line
from autopilot.review import check_findings, excerpt, finding_headline, strip_ansi

PYTEST_OUTPUT = (
    "\x1b[1m============ test session starts ============\x1b[0m\n"
    "collected 3 items\n\n"
    "tests/test_slug.py \x1b[32m.\x1b[0m\x1b[31mF\x1b[0m\n\n"
    "\x1b[31m___________ test_slugify_unicode ___________\x1b[0m\n"
    "    def test_slugify_unicode():\n"
    ">       assert slugify('Ünïcode') == 'unicode'\n"
    "\x1b[1m\x1b[31mE       AssertionError: assert 'nicode' == 'unicode'\x1b[0m\n"
    "\x1b[1m\x1b[31mE         - unicode\x1b[0m\n\n"
    "=========== short test summary info ===========\n"
    "\x1b[31mFAILED\x1b[0m tests/test_slug.py::test_slugify_unicode - AssertionError: assert\n"
    "\x1b[31m========= 1 failed, 2 passed in 0.12s =========\x1b[0m\n"
)


def test_colour_codes_are_stripped() -> None:
    assert strip_ansi("\x1b[1m\x1b[31mred\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07") == (
        "red link"
    )


def test_pytest_output_gives_the_failing_test_and_its_assertion() -> None:
    lines = excerpt(PYTEST_OUTPUT)
    assert lines[0] == ("FAILED tests/test_slug.py::test_slugify_unicode - AssertionError: assert")
    assert "E       AssertionError: assert 'nicode' == 'unicode'" in lines
    assert not any("\x1b" in line for line in lines)


def test_other_output_gives_its_last_lines() -> None:
    output = "\n".join(f"line {n}" for n in range(30)) + "\n\nError: no such module: helper\n"
    lines = excerpt(output, lines=3)
    assert lines == ["line 28", "line 29", "Error: no such module: helper"]


def test_a_failed_checks_finding_leads_with_what_failed_and_its_log() -> None:
    check = CheckResult(
        command="pytest -q",
        passed=False,
        exit_code=1,
        output_tail=PYTEST_OUTPUT,
        output_path="/state/logs/s/1.1/check-1-pytest-q.log",
    )
    (finding,) = check_findings([check])
    headline = finding_headline(finding)
    first, *rest = headline.splitlines()
    assert first == "check `pytest -q` exited with 1 (log: /state/logs/s/1.1/check-1-pytest-q.log)"
    assert "  FAILED tests/test_slug.py::test_slugify_unicode - AssertionError: assert" in rest
    assert "\x1b" not in finding.message  # the agent's copy of the output is plain too
    assert "collected 3 items" in finding.message  # ... and it still has the whole tail


def rejected_task() -> TaskStatus:
    return TaskStatus(
        id="1.3",
        title="Slugify",
        batch=1,
        state=TaskState.REJECTED,
        attempts=2,
        last_error=(
            "still not approved after 2 review round(s):\n"
            "check `pytest -q` exited with 1 (log: /state/check-1.log)\n"
            "  FAILED tests/test_slug.py::test_slugify_unicode - AssertionError"
        ),
    )


def test_a_multi_line_error_is_shown_as_lines_once() -> None:
    task = rejected_task()
    line = task_line(task)
    assert line.endswith("— still not approved after 2 review round(s):")
    assert "\\n" not in line
    details = failure_details(task, "python starter.py retry s 1.3")
    assert details == [
        "check `pytest -q` exited with 1 (log: /state/check-1.log)",
        "  FAILED tests/test_slug.py::test_slugify_unicode - AssertionError",
        "next: python starter.py retry s 1.3",
    ]


def test_an_incomplete_sessions_report_gives_the_command_for_what_is_left() -> None:
    merged = TaskStatus(id="1.1", title="Add", batch=1, state=TaskState.MERGED)
    final = SessionStatus(
        id="s",
        status=SessionState.INCOMPLETE,
        repo="/r",
        plan_path="/r/plan.md",
        target_branch="main",
        concurrency=1,
        tasks=[merged, rejected_task()],
    )
    out = io.StringIO()
    assert report(final, "", out, rerun="python starter.py plan.md --repo /r") == 1
    text = out.getvalue()
    assert "      FAILED tests/test_slug.py::test_slugify_unicode - AssertionError\n" in text
    assert "runs the 1 unfinished task(s) (1.3):\n  python starter.py plan.md --repo /r" in text


def test_a_long_multi_line_pause_reason_is_one_short_line_in_the_summary() -> None:
    status = SessionStatus(
        id="s",
        status=SessionState.RUNNING,
        repo="/r",
        plan_path="/r/plan.md",
        target_branch="main",
        concurrency=1,
        paused=True,
        pause_reason="Task 1.1 cannot run on this setup:\n" + "npm ERR! 404\n" * 200,
    )
    line = summary_line(status)
    assert "(PAUSED: Task 1.1 cannot run on this setup:…)" in line
    assert "\\n" not in line and len(line) < 400
