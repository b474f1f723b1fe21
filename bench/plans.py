"""Generated plans: N independent tasks, each writing one file of its own."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BATCH_SIZE = 10  # tasks per batch, as in a hand-written master plan


def task_section(batch: int, index: int) -> list[str]:
    """One task: a heading, its one file, the file's content, a commit message."""
    name = f"files/f{batch:04d}_{index:04d}.txt"
    return [
        f"### Task {batch}.{index}: Write file {batch}.{index}",
        "",
        f"Create `{name}` with the content below.",
        "",
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


def plan_text(tasks: int, batch_size: int = DEFAULT_BATCH_SIZE) -> str:
    """A plan of `tasks` tasks in batches of `batch_size`, no dependencies between tasks (a
    batch waits for the one before it, as every batch does)."""
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
            lines += task_section(batch, index)
        done += size
    return "\n".join(lines)


def write_plan(path: Path, tasks: int, batch_size: int = DEFAULT_BATCH_SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan_text(tasks, batch_size))
    return path
