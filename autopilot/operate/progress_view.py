"""The starter's view of a running session: a live table on a terminal, plain lines elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from autopilot.infra import printable
from autopilot.models import (
    ACTIVE_SESSION_STATES,
    FINISHED_TASK_STATES,
    SessionState,
    SessionStatus,
    TaskState,
    TaskStatus,
)
from autopilot.operate.live_tasks import LiveTask
from autopilot.review import strip_ansi

DETAIL_LINES = 12  # of a failed task's error, in status and the final report
HEADLINE_CHARS = 200  # of a pause, cancel or error reason in the summary line

STATE_STYLE = {
    TaskState.PENDING: "dim",
    TaskState.RUNNING: "cyan",
    TaskState.MERGING: "magenta",
    TaskState.MERGED: "green",
    TaskState.NO_CHANGES: "yellow",
    TaskState.REJECTED: "red",
    TaskState.CONFLICT: "red",
    TaskState.FAILED: "red",
    TaskState.BLOCKED: "red",
}


def elapsed(task: TaskStatus, now: datetime) -> str:
    if task.started_at is None:
        return ""
    seconds = int(((task.completed_at or now) - task.started_at).total_seconds())
    return f"{seconds // 60}:{seconds % 60:02d}"


def summary_line(status: SessionStatus) -> str:
    if status.status not in ACTIVE_SESSION_STATES:
        why = status.error or status.cancel_reason
        state = f" ({_headline(why)})" if why and status.status != SessionState.COMPLETED else ""
    else:
        state = f" (PAUSED: {_headline(status.pause_reason)})" if status.paused else ""
    return printable(
        f"{status.id}: {status.status.value}{state}, batch {status.current_batch or '-'} of "
        f"{status.total_batches} selected, {status.tasks_completed}/{status.tasks_total} tasks "
        f"merged, ${status.cost_usd:.4f}"
    )


def _headline(reason: str | None) -> str:
    """A reason's first line, short: the summary line stays one line; the failed task's own
    lines (failure_details) say the rest."""
    first = strip_ansi(reason or "").strip().split("\n", 1)[0]
    more = "…" if len(first) > HEADLINE_CHARS or "\n" in (reason or "").strip() else ""
    return first[:HEADLINE_CHARS] + more


def task_line(task: TaskStatus, live: LiveTask | None = None) -> str:
    line = f"Task {task.id} ({task.title}): {task.state.value}"
    if live is not None:
        line += f" — {live.phase}"
        if live.agent is not None:
            line += f", turn {live.agent.turns}"
    if task.state == TaskState.MERGED and task.merge_sha:
        line += f" as {task.merge_sha[:10]}"
    if task.pull_request is not None:
        line += f" — pull request #{task.pull_request.number} {task.pull_request.url}"
        if task.forge_phase and task.state not in FINISHED_TASK_STATES:
            line += f" ({task.forge_phase})"
    if task.attempts > 1:
        line += f" after {task.attempts} agent attempts"
    if task.fresh_start:
        line += " (starts afresh from the target's head)"
    if task.set_aside:
        line += f"; earlier work set aside as {task.set_aside[-1]}"
    if _failed(task):
        line += f" — {_error_lines(task)[0]}"
    return printable(line)  # titles and errors come from the plan and the agent


def failure_details(task: TaskStatus, next_command: str = "") -> list[str]:
    """The lines of a task's error after the first (a failed check's output, its log), ANSI
    stripped and each made printable, then the command to run next."""
    if not _failed(task):
        return []
    lines = [printable(line) for line in _error_lines(task)[1:DETAIL_LINES]]
    if next_command:
        lines.append(printable(f"next: {next_command}"))
    return lines


def _failed(task: TaskStatus) -> bool:
    return bool(task.last_error) and task.state in FINISHED_TASK_STATES - {TaskState.MERGED}


def _error_lines(task: TaskStatus) -> list[str]:
    lines = [line.rstrip() for line in strip_ansi(task.last_error or "").strip().split("\n")]
    return [line for line in lines if line.strip()] or [""]


def render_table(status: SessionStatus, live: dict[str, LiveTask], now: datetime) -> Table:
    table = Table(title=summary_line(status), title_justify="left", expand=False)
    for column in ("batch", "task", "state", "elapsed", "attempts", "turns", "cost", "note"):
        table.add_column(column)
    for task in status.tasks:
        doing = live.get(task.id)
        agent = doing.agent if doing else None
        attempts = agent.attempt if agent else task.attempts
        turns = agent.turns if agent else task.turns
        note = _error_lines(task)[0] if _failed(task) else (doing.phase if doing else "")
        if not note and task.pull_request is not None:  # forge mode: where its pull request is
            note = f"#{task.pull_request.number} {task.forge_phase}".rstrip()
        table.add_row(
            str(task.batch),
            Text(printable(f"{task.id} {task.title}")),
            Text(task.state.value, style=STATE_STYLE[task.state]),
            elapsed(task, now),
            str(attempts or ""),
            str(turns or ""),
            f"${task.cost_usd:.4f}" if task.cost_usd else "",
            Text(printable(note[:80])),
        )
    return table


class ProgressView:
    """Live table when stdout is a terminal; one line per change otherwise (logs, CI, pipes)."""

    def __init__(self, out: TextIO) -> None:
        self._console = Console(file=out)
        self._live: Live | None = None
        self._seen: dict[str, str] = {}
        self._notice = ""
        self._interactive = self._console.is_terminal

    def __enter__(self) -> ProgressView:
        if self._interactive:
            self._live = Live(console=self._console, auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def notice(self, message: str) -> None:
        """A transient condition (e.g. no worker answers), shown once until it changes."""
        if message == self._notice:
            return
        self._notice = message
        if message and not self._interactive:
            self._console.print(message, highlight=False)

    def update(self, status: SessionStatus, live: dict[str, LiveTask] | None = None) -> None:
        live = live or {}
        if self._live is not None:
            parts: list[Table | Text] = [render_table(status, live, datetime.now(UTC))]
            if self._notice:
                parts.append(Text(self._notice, style="yellow"))
            self._live.update(Group(*parts), refresh=True)
            return
        for task in status.tasks:
            line = task_line(task, live.get(task.id))
            if self._seen.get(task.id) != line:
                self._seen[task.id] = line
                self._console.print(line, highlight=False, soft_wrap=True)
                for detail in failure_details(task):
                    self._console.print(f"    {detail}", highlight=False, soft_wrap=True)
