"""The starter's live view: one line per change when not on a terminal, a table on one."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from autopilot.live_tasks import LiveTask
from autopilot.models import AgentProgress, SessionState, SessionStatus, TaskState, TaskStatus
from autopilot.progress_view import ProgressView, render_table

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
