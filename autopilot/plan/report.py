"""The plain-text plan description `starter.py PLAN --dry-run` prints.

Selected batches are shown in full (dependencies, execution mode, files, verification, commit
message); batches outside the selection show one line per task. Dependencies on batches or tasks
outside the selection are marked "assumed merged", and those on tasks the plan marks done
"done": the run will not wait for them. Tasks marked done are listed (they never run), and so
are the plan's warnings (it runs anyway). Bold fields autopilot does not read are listed as kept:
the agent gets them as written. Every line is printed with its control characters escaped:
titles come from the plan, which is user input.
"""

from __future__ import annotations

from collections.abc import Sequence

from autopilot.agent import CONTEXT_LIMIT
from autopilot.infra import printable
from autopilot.models import Batch, Plan, PlanWarning, Task

__all__ = ["describe_plan", "mode_text"]

_UNTITLED = "(no title)"


def describe_plan(plan: Plan, selected: Plan, place: str = "local") -> str:
    """Describe `plan`, marking what `selected` (from `select_batches`) will run; `place` is
    where a batch that names none runs (the session's --execution-place)."""
    chosen_batches = {batch.number for batch in selected.batches}
    chosen_tasks = {task.id for batch in selected.batches for task in batch.tasks}
    done = {task.id for task in plan.done_tasks}
    out = [f"Plan: {plan.path}", f"Title: {plan.title or _UNTITLED}"]
    if plan.execution_mode:
        out.append(
            f"Default execution mode: {plan.execution_mode} (line {plan.execution_mode_line})"
        )
    for batch in plan.batches:
        out.append("")
        if batch.number in chosen_batches:
            out.extend(_selected_batch(batch, chosen_batches, chosen_tasks, done, place))
        else:
            out.extend(_other_batch(batch, place))

    if plan.done_tasks:
        out += ["", "Done (marked complete in the plan; never run):"]
        for task in plan.done_tasks:
            marked = f"; {task.marked_by}" if task.marked_by else ""
            out.append(f"  Task {task.id}: {task.title or _UNTITLED}  (line {task.line}{marked})")
    warnings = [*plan.warnings, *_context_warning(plan)]
    if warnings:
        out += ["", "Warnings (the plan runs anyway):"]
        out += [f"  line {warning.line}: {warning.message}" for warning in warnings]

    out.append("")
    out.append("Ignored (kept as plan context):")
    if plan.ignored:
        for block in plan.ignored:
            out.append(f"  lines {block.start_line}-{block.end_line}: {block.summary}")
    else:
        out.append("  nothing")

    out.append("")
    out.append(
        "Kept as text (bold fields autopilot does not read; the agent gets them as written):"
    )
    if plan.kept_fields:
        for kept in plan.kept_fields:
            out.append(f"  line {kept.line}: **{kept.label}:** ({kept.owner})")
    else:
        out.append("  nothing")

    selected_tasks = selected.task_count()
    out.append("")
    out.append(
        f"{_count(len(selected.batches), 'batch', 'batches')},"
        f" {_count(selected_tasks, 'task', 'tasks')} selected of {plan.task_count()}"
        + (f"; {len(plan.done_tasks)} marked done" if plan.done_tasks else "")
    )
    return "\n".join(printable(line) for line in out)


def _context_warning(plan: Plan) -> list[PlanWarning]:
    """The plan context is cut for the prompt: say so, as its end (shared sections after the
    batches) would not reach the agents."""
    size = len(plan.context.strip())
    if size <= CONTEXT_LIMIT:
        return []
    message = (
        f"the plan context (the text before the first batch, and the shared sections) is"
        f" {size:,} characters: each agent gets its first {CONTEXT_LIMIT:,}; move what only some"
        " tasks need into their batches"
    )
    return [PlanWarning(line=1, message=message)]


def mode_text(sequential: bool, where: str | None) -> str:
    """How and where a batch's tasks run, e.g. `sequential, local`."""
    return f"{'sequential' if sequential else 'parallel'}, {where or 'local'}"


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _batch_heading(batch: Batch, selected: bool) -> str:
    where = f"implicit batch, line {batch.line}" if batch.implicit else f"line {batch.line}"
    state = "selected" if selected else "not selected"
    return f"Batch {batch.number}: {batch.title or _UNTITLED}  ({where}; {state})"


def _batch_settings(batch: Batch, chosen_batches: set[int] | None, place: str) -> str:
    deps = ", ".join(
        f"Batch {number}"
        + ("" if chosen_batches is None or number in chosen_batches else " (assumed merged)")
        for number in batch.dependencies
    )
    mode = mode_text(batch.sequential, batch.execution_place or place)
    return f"  depends on: {deps or 'none'} | execution mode: {mode}"


def _selected_batch(
    batch: Batch, chosen_batches: set[int], chosen_tasks: set[str], done: set[str], place: str
) -> list[str]:
    out = [_batch_heading(batch, True), _batch_settings(batch, chosen_batches, place)]
    if not batch.tasks:
        out.append("  (no tasks)")
    for task in batch.tasks:
        out.extend(_selected_task(task, chosen_tasks, done))
    return out


def _other_batch(batch: Batch, place: str) -> list[str]:
    out = [_batch_heading(batch, False), _batch_settings(batch, None, place)]
    if not batch.tasks:
        out.append("  (no tasks)")
    for task in batch.tasks:
        out.append(f"  Task {task.id}: {task.title or _UNTITLED}  (line {task.line})")
    return out


def _selected_task(task: Task, chosen_tasks: set[str], done: set[str]) -> list[str]:
    out = [f"  Task {task.id}: {task.title or _UNTITLED}  (line {task.line})"]
    deps = ", ".join(
        f"Task {dep}"
        + ("" if dep in chosen_tasks else " (done)" if dep in done else " (assumed merged)")
        for dep in task.depends_on
    )
    out.append(f"    depends on: {deps or 'none'}")
    files = [f"{ref.action} {ref.path}" if ref.action else ref.path for ref in task.files]
    out.extend(_labelled("files", files))
    steps = [" ".join(step.split()) for step in task.verification]
    out.extend(_labelled("verification", steps))
    out.append(f"    commit: {task.commit_message or '(none given)'}")
    return out


def _labelled(label: str, values: Sequence[str]) -> list[str]:
    """`label: first`, the others aligned under it; `label: none` when there are none."""
    head = f"    {label}: "
    if not values:
        return [f"{head}none"]
    return [head + values[0]] + [" " * len(head) + value for value in values[1:]]
