"""The starter's live view: one line per change when not on a terminal, a table on one."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from rich.console import Console

from autopilot.infra import logs
from autopilot.models import (
    AgentProgress,
    BatchStatus,
    SessionState,
    SessionStatus,
    TaskState,
    TaskStatus,
)
from autopilot.operate.commands import print_status
from autopilot.operate.live_tasks import LiveTask
from autopilot.operate.progress_view import ProgressView, render_table

START = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def session(*tasks: TaskStatus, paused: bool = False) -> SessionStatus:
    return SessionStatus(
        id="s1",
        status=SessionState.RUNNING,
        repo="/r",
        plan_path="/p.md",
        target_branch="main",
        concurrency=1,
        current_batch=1,
        total_batches=1,
        tasks=list(tasks),
        tasks_total=len(tasks),
        paused=paused,
        pause_reason="lunch" if paused else None,
    )


def task(state: TaskState, **fields: object) -> TaskStatus:
    return TaskStatus(id="1.1", title="Alpha", batch=1, state=state, **fields)


def test_plain_mode_prints_a_line_per_change_only() -> None:
    out = io.StringIO()
    running = LiveTask(
        phase="agent (task), round 1, attempt 1", agent=AgentProgress(session_id="x", turns=2)
    )
    with ProgressView(out) as view:
        view.update(session(task(TaskState.PENDING)))
        view.update(session(task(TaskState.PENDING)))  # no change: nothing printed
        view.update(session(task(TaskState.RUNNING)), {"1.1": running})
        view.update(session(task(TaskState.FAILED, last_error="agent: boom")))
    assert out.getvalue().splitlines() == [
        "Task 1.1 (Alpha): pending",
        "Task 1.1 (Alpha): running — agent (task), round 1, attempt 1, turn 2",
        "Task 1.1 (Alpha): failed — agent: boom",
    ]


def test_table_shows_state_elapsed_attempts_turns_cost_and_pause() -> None:
    entry = task(
        TaskState.MERGED,
        started_at=START,
        completed_at=START + timedelta(seconds=75),
        attempts=2,
        turns=7,
        cost_usd=0.25,
    )
    console = Console(file=io.StringIO(), width=160)
    console.print(render_table(session(entry, paused=True), {}, START))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "PAUSED: lunch" in text
    row = next(line for line in text.splitlines() if "1.1 Alpha" in line)
    for cell in ("merged", "1:15", "2", "7", "$0.2500"):
        assert cell in row, row


EVIL = "Alpha\x1b[2J\r\u202e"


@pytest.mark.reliability(
    "control characters (terminal escapes, CR, bidi overrides) in task titles and errors",
    "live view lines, table, status and console log lines print them escaped, never raw",
)
def test_control_characters_are_escaped_wherever_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    entry = TaskStatus(id="1.1", title=EVIL, batch=1, state=TaskState.FAILED, last_error="boom\x07")
    status = session(entry).model_copy(
        update={"batches": [BatchStatus(number=1, title=EVIL, sequential=True)]}
    )
    out = io.StringIO()
    with ProgressView(out) as view:
        view.update(status)
    print_status(status, as_json=False, out=out)
    console = Console(file=io.StringIO(), width=200)
    console.print(render_table(status, {}, START))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure_logging(None)
        structlog.get_logger("test").info("task title", title=EVIL)
        logging.getLogger("temporalio.workflow").info("Task %s: %s", "1.1", EVIL)
    finally:  # the logging set-up is process-wide: leave it as the other tests expect
        root.handlers[:], root.level = handlers, level
        structlog.reset_defaults()
    printed = out.getvalue() + console.file.getvalue() + capsys.readouterr().err  # type: ignore[attr-defined]
    assert "Task 1.1 (Alpha\\x1b[2J\\r\\u202e): failed — boom\\x07" in printed
    assert "  Batch 1 (Alpha\\x1b[2J\\r\\u202e): sequential, local" in printed
    assert "1.1 Alpha\\x1b[2J\\r\\u202e" in printed  # the table
    assert printed.count("Alpha\\x1b[2J\\r\\u202e") == 6  # view, status x2, table, logs x2
    assert not any(char in printed for char in "\x1b\r\u202e\x07")


def test_status_says_how_to_fetch_a_remote_task_s_kept_work() -> None:
    """A remote session keeps a rejected task's work as refs/autopilot/<s>/<t> (no branch
    there): status gives the command that fetches it."""
    kept = TaskStatus(id="1", title="t", batch=1, state=TaskState.REJECTED, branch="autopilot/s1/1")
    merged = TaskStatus(id="2", title="t", batch=1, state=TaskState.MERGED, branch="autopilot/s1/2")
    status = session(kept, merged).model_copy(update={"repo": "git://127.0.0.1:9/p.git"})
    out = io.StringIO()
    print_status(status, as_json=False, out=out)
    lines = out.getvalue().splitlines()
    fetch = [line.strip() for line in lines if "git fetch" in line]
    assert fetch == ["its work: git fetch git://127.0.0.1:9/p.git refs/autopilot/s1/1"]
