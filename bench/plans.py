"""Generated plans: N independent tasks, each writing one file of its own."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BATCH_SIZE = 10  # tasks per batch, as in a hand-written master plan


# Real plans give each task acceptance criteria, edge cases and context: kilobytes of body.
FILLER = (
    "Note {n}: this line stands for the detail a real plan gives its tasks (acceptance "
    "criteria, edge cases, pointers into the code); the agent needs none of it here."
)


def filler(size: int) -> list[str]:
    """Lines of notes, at least `size` bytes in all (none for 0)."""
    lines: list[str] = []
    while size > 0:
        lines += [FILLER.format(n=len(lines) // 2 + 1), ""]
        size -= len(lines[-2]) + 2
    return lines


def task_section(batch: int, index: int, body_bytes: int = 0) -> list[str]:
    """One task: a heading, its one file, the file's content, a commit message; padded with
    notes to about `body_bytes` when that is more."""
    name = f"files/f{batch:04d}_{index:04d}.txt"
    head = [
        f"### Task {batch}.{index}: Write file {batch}.{index}",
        "",
        f"Create `{name}` with the content below.",
        "",
    ]
    rest = [
        "**Files:**",
        f"- Create: `{name}`",
        "",
        "```text",
        f"file {batch}.{index}",
        "```",
        "",
        f"**Commit:** bench: file {batch}.{index}",
        "",
    ]
    size = len("\n".join(head + rest).encode())
    return head + filler(body_bytes - size) + rest


def plan_text(tasks: int, batch_size: int = DEFAULT_BATCH_SIZE, body_bytes: int = 0) -> str:
    """A plan of `tasks` tasks in batches of `batch_size`, no dependencies between tasks (a
    batch waits for the one before it, as every batch does); `body_bytes`: each task's size."""
    if tasks < 1 or batch_size < 1:
        raise ValueError(f"a plan needs at least one task and batch size 1 (got {tasks})")
    lines = [f"# Benchmark plan: {tasks} tasks", "", "Each task writes one file.", ""]
    done = 0
    batch = 0
    while done < tasks:
        batch += 1
        size = min(batch_size, tasks - done)
        lines += [f"## Batch {batch}: Files {done + 1} to {done + size}", ""]
        for index in range(1, size + 1):
            lines += task_section(batch, index, body_bytes)
        done += size
    return "\n".join(lines)


def write_plan(
    path: Path, tasks: int, batch_size: int = DEFAULT_BATCH_SIZE, body_bytes: int = 0
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan_text(tasks, batch_size, body_bytes))
    return path
