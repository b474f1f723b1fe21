"""bench/results/*.png: the figures as bar charts, drawn with bench.png (no plotting library)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.png import BLACK, DARK, GREY, RED, Canvas, Color
from bench.steps import overhead_by_activity

BASELINE: Color = (110, 110, 110)
NONE: Color = (40, 110, 200)
BOTH: Color = (240, 150, 30)
SPEEDUP: Color = (60, 160, 90)
RSS: Color = (150, 90, 190)

PANEL_W, PANEL_H = 560, 380
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 20, 60, 70
SMALL, LABEL = 1, 2  # text scales


@dataclass
class Bar:
    value: float
    color: Color
    label: str = ""  # printed above the bar


@dataclass
class Group:
    name: str  # printed under the group
    bars: list[Bar]


@dataclass
class Panel:
    title: str
    unit: str
    groups: list[Group]
    legend: list[tuple[str, Color]]
    marks: list[tuple[float, str]]  # dashed horizontal lines: (value, label)


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * factor >= value:
            return step * factor
    return value


def number(value: float) -> str:
    """No thousands separator: at this size a comma reads as a decimal point."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def draw_panel(canvas: Canvas, x0: int, y0: int, panel: Panel) -> None:
    plot_l, plot_r = x0 + MARGIN_L, x0 + PANEL_W - MARGIN_R
    plot_t, plot_b = y0 + MARGIN_T, y0 + PANEL_H - MARGIN_B
    canvas.text(x0 + 12, y0 + 12, panel.title, BLACK, LABEL)
    canvas.text(x0 + 12, y0 + 36, panel.unit, DARK, SMALL)
    values = [bar.value for group in panel.groups for bar in group.bars]
    top = nice_max(max([*values, *(mark for mark, _ in panel.marks), 0.0]) * 1.12)

    def y_of(value: float) -> int:
        return plot_b - round((plot_b - plot_t) * min(value, top) / top)

    for tick in range(5):
        value = top * tick / 4
        y = y_of(value)
        canvas.hline(plot_l, plot_r, y, GREY)
        label = number(value)
        canvas.text(plot_l - 6 - canvas.text_width(label, SMALL), y - 3, label, DARK, SMALL)
    canvas.vline(plot_l, plot_t, plot_b, BLACK)
    canvas.hline(plot_l, plot_r, plot_b, BLACK)
    draw_groups(canvas, panel.groups, plot_l, plot_r, plot_b, y_of)
    for value, label in panel.marks:
        y = y_of(value)
        canvas.hline(plot_l, plot_r, y, RED, dash=6)
        canvas.text(plot_l + 6, y - 10, label, RED, SMALL)
    legend_x = x0 + 12
    for name, color in panel.legend:
        canvas.rect(legend_x, y0 + PANEL_H - 24, legend_x + 10, y0 + PANEL_H - 14, color)
        canvas.text(legend_x + 16, y0 + PANEL_H - 22, name, DARK, SMALL)
        legend_x += 28 + canvas.text_width(name, SMALL)


def draw_groups(
    canvas: Canvas,
    groups: Sequence[Group],
    left: int,
    right: int,
    bottom: int,
    y_of: Any,
) -> None:
    if not groups:
        canvas.text(left + 20, bottom - 40, "not measured", DARK, LABEL)
        return
    slot = (right - left) / len(groups)
    for index, group in enumerate(groups):
        bars = max(len(group.bars), 1)
        width = max(4, min(48, round(slot * 0.7 / bars)))
        start = round(left + slot * index + (slot - width * bars) / 2)
        for position, bar in enumerate(group.bars):
            bx = start + position * width
            top = y_of(max(bar.value, 0.0))  # a negative value: no bar, its label on the axis
            if bar.value > 0:
                canvas.rect(bx + 1, top, bx + width - 2, bottom - 1, bar.color)
            if bar.label:
                tx = bx + width // 2 - canvas.text_width(bar.label, SMALL) // 2
                canvas.text(tx, top - 10, bar.label, DARK, SMALL)
        name_x = round(left + slot * index + slot / 2 - canvas.text_width(group.name, SMALL) / 2)
        canvas.text(name_x, bottom + 8, group.name, BLACK, SMALL)


def compare_panel(rows: Sequence[dict[str, Any]]) -> Panel:
    groups = []
    for row in rows:
        bars = [
            Bar(row["baseline"]["per_task_ms"], BASELINE, number(row["baseline"]["per_task_ms"]))
        ]
        for key, color in (("none", NONE), ("both", BOTH)):
            if row.get(key):
                bars.append(Bar(row[key]["per_task_ms"], color, number(row[key]["per_task_ms"])))
        ratio = row.get("ratio_none")
        groups.append(Group(f"N={row['tasks']}" + (f" x{ratio:.2f}" if ratio else ""), bars))
    return Panel(
        "Wall time per task",
        "ms per task, concurrency 1; xR = pipeline (review none) / baseline",
        groups,
        [("baseline", BASELINE), ("review none", NONE), ("review both", BOTH)],
        [],
    )


def sweep_panel(sweep: dict[str, Any] | None) -> Panel:
    levels = sweep["levels"] if sweep else []
    groups = []
    for level in levels:
        bars = [Bar(level["speedup"], SPEEDUP, f"{level['speedup']:.2f}")]
        if level.get("bare_speedup"):
            bars.append(Bar(level["bare_speedup"], BASELINE, f"{level['bare_speedup']:.2f}"))
        groups.append(Group(f"c={level['concurrency']}", bars))
    subtitle = (
        f"speedup over concurrency 1; {sweep['tasks']} tasks, {sweep['delay_s']:g} s per turn"
        if sweep
        else "speedup over concurrency 1"
    )
    return Panel(
        "Concurrency sweep",
        subtitle,
        groups,
        [("pipeline", SPEEDUP), ("bare work", BASELINE), ("targets", RED)],
        [(3.2, "3.2 AT C=4"), (1.8, "1.8 AT C=2")] if sweep else [],
    )


def rss_panel(results: dict[str, Any]) -> Panel:
    runs: list[tuple[int, int, float]] = [
        (1, row["tasks"], row["none"]["worker_peak_rss_mb"])
        for row in results.get("compare") or []
        if row.get("none")
    ]
    scale = results.get("scale")
    if scale and not scale["reused_compare_run"]:
        level = scale.get("concurrency", 1)
        runs.append((level, scale["tasks"], scale["worker_peak_rss_mb"]))
        if scale.get("reference_run"):
            runs.append((level, scale["rss_reference_tasks"], scale["rss_reference_mb"]))
    runs.sort()
    groups = [
        Group(f"N={tasks:,}" + (f" C={level}" if level != 1 else ""), [Bar(rss, RSS, number(rss))])
        for level, tasks, rss in runs
    ]
    marks = []
    if scale and scale.get("rss_reference_mb"):
        limit = 1.5 * scale["rss_reference_mb"]
        marks.append((limit, f"1.5 X N={scale['rss_reference_tasks']}"))
    return Panel("Worker peak RSS", "MB (VmHWM), review none", groups, [("worker", RSS)], marks)


def overhead_parts(row: dict[str, Any]) -> list[tuple[str, float]]:
    """Pipeline minus baseline, ms per task, by where it is paid (review none)."""
    base, run = row["baseline"], row["none"]
    activities = run["activity_ms_per_task"]
    by_activity = overhead_by_activity(base["phases_ms_per_task"], activities)
    agent = by_activity.pop("run_agent", 0.0)
    return [
        ("agent", agent),
        ("git steps", sum(by_activity.values()) + activities.get("parse_plan", 0.0)),
        ("between", run.get("between_activities_ms_per_task") or 0.0),
        ("starter", run["fixed_s"] * 1000 / row["tasks"]),
    ]


def overhead_panel(rows: Sequence[dict[str, Any]]) -> Panel:
    row = rows[-1] if rows else None
    groups = (
        [Group(name, [Bar(value, NONE, number(value))]) for name, value in overhead_parts(row)]
        if row
        else []
    )
    title = f"Overhead per task, N={row['tasks']}" if row else "Overhead per task"
    return Panel(
        title,
        "ms per task, pipeline (review none) minus baseline",
        groups,
        [("agent: run_agent vs claude and commit; git: activities vs calls", NONE)],
        [],
    )


def draw(results: dict[str, Any], path: Path) -> Path:
    """Four panels, two by two, with the machine line at the bottom."""
    panels = [
        compare_panel(results.get("compare") or []),
        sweep_panel(results.get("sweep")),
        overhead_panel(results.get("compare") or []),
        rss_panel(results),
    ]
    canvas = Canvas(2 * PANEL_W, 2 * PANEL_H + 30)
    for index, panel in enumerate(panels):
        draw_panel(canvas, (index % 2) * PANEL_W, (index // 2) * PANEL_H, panel)
    machine = results.get("machine") or {}
    footer = f"{machine.get('nproc', '?')} X {machine.get('cpu', '?')}  {machine.get('date', '')}"
    canvas.text(12, 2 * PANEL_H + 10, footer, DARK, SMALL)
    return canvas.save(path)
