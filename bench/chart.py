"""bench/results/*.png: the measured figures as charts (matplotlib, the `bench` extra).

One panel per measured figure, so a run of one section shows only its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.report import PARSE_TARGET_S, PARSE_TASKS, RSS_RATIO_TARGET, SHARE_TARGET
from bench.steps import overhead_by_activity

BASELINE = "#6e6e6e"
NONE = "#286ec8"
BOTH = "#f0961e"
SPEEDUP = "#3ca05a"
RSS = "#965abe"
TARGET = "#c82828"
PANEL_W_IN, PANEL_H_IN, COLUMNS = 6.4, 4.2, 2


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def bars(
    ax: Axes, x: Sequence[float], values: Sequence[float], top: float = 0.0, **style: Any
) -> None:
    """Bars with their values written on top; given the axis' `top`, inside the bars tall
    enough to hold them (whiskers or target lines run just above the bars there)."""
    drawn = ax.bar(x, values, **style)
    fits = [top > 0 and value >= 0.15 * top for value in values]
    above = [number(value) if not fit else "" for value, fit in zip(values, fits, strict=True)]
    inside = [number(value) if fit else "" for value, fit in zip(values, fits, strict=True)]
    ax.bar_label(drawn, labels=above, padding=2, fontsize=8)
    ax.bar_label(drawn, labels=inside, label_type="center", color="white", fontsize=8)


def compare_panel(ax: Axes, results: dict[str, Any]) -> None:
    rows = results["compare"]
    x = list(range(len(rows)))
    width = 0.27
    series = (("baseline", BASELINE, "baseline"), ("review none", NONE, "none"))
    for index, (label, color, key) in enumerate((*series, ("review both", BOTH, "both"))):
        shown = [
            (pos + (index - 1) * width, row[key]["per_task_ms"])
            for pos, row in zip(x, rows, strict=True)
            if row.get(key)  # review both runs at fewer sizes
        ]
        if shown:
            positions, values = [pos for pos, _ in shown], [value for _, value in shown]
            bars(ax, positions, values, width=width, color=color, label=label)
    ax.set_xticks(
        x,
        [
            f"N={row['tasks']:,}"
            + (f"\nnone/baseline {row['ratio_none']:.2f}" if row.get("ratio_none") else "")
            for row in rows
        ],
    )
    ax.set_ylabel("ms per task")
    ax.set_title("Wall time per task (concurrency 1)")
    ax.legend(loc="upper left", fontsize=8)
    ax.margins(y=0.15)


def speedup_range(first_runs: Sequence[float], runs: Sequence[float]) -> tuple[float, float]:
    """The slowest and fastest speedup any pairing of the two levels' runs gives."""
    if not first_runs or not runs:
        return 0.0, 0.0
    return min(first_runs) / max(runs), max(first_runs) / min(runs)


def sweep_panel(ax: Axes, results: dict[str, Any]) -> None:
    sweep = results["sweep"]
    levels = sweep["levels"]
    x = list(range(len(levels)))
    width = 0.38
    for offset, label, color, speedup_key, part in (
        (-width / 2, "pipeline", SPEEDUP, "speedup", ""),
        (width / 2, "bare work", BASELINE, "bare_speedup", "bare"),
    ):
        if not all(level.get(speedup_key) for level in levels):
            continue
        values = [level[speedup_key] for level in levels]
        runs = [(level[part] if part else level).get("runs_s") or [] for level in levels]
        spans = [speedup_range(runs[0], level_runs) for level_runs in runs]
        errors = [
            [max(0.0, value - low) for value, (low, _) in zip(values, spans, strict=True)],
            [max(0.0, high - value) for value, (_, high) in zip(values, spans, strict=True)],
        ]
        positions = [pos + offset for pos in x]
        top = max(high for _, high in spans) if spans else 0.0
        bars(ax, positions, values, max(top, *values), width=width, color=color, label=label)
        ax.errorbar(positions, values, yerr=errors, fmt="none", ecolor="black", capsize=3, lw=1)
    # The target: the share of the bare work's own speedup the pipeline must keep.
    marked = [
        (pos, SHARE_TARGET * level["bare_speedup"])
        for pos, level in zip(x[1:], levels[1:], strict=True)
        if level.get("bare_speedup")
    ]
    for pos, target in marked:
        ax.hlines(target, pos - width, pos + width, colors=TARGET, linestyles="--", lw=2, zorder=3)
    if marked:
        ax.plot([], [], ls="--", color=TARGET, label="target")
    ax.set_xticks(x, [f"c={level['concurrency']}" for level in levels])
    ax.set_ylabel("speedup over concurrency 1")
    ax.set_title(
        f"Concurrency sweep: {sweep['tasks']} tasks, {sweep['delay_s']:g} s per model turn\n"
        f"bar: fastest of {sweep.get('repeats', 1)} run(s); whisker: range over the runs",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=8)


def overhead_parts(row: dict[str, Any]) -> list[tuple[str, float]]:
    """Pipeline minus baseline, ms per task, by where it is paid (review none)."""
    base, run = row["baseline"], row["none"]
    activities = run["activity_ms_per_task"]
    by_activity = overhead_by_activity(base["phases_ms_per_task"], activities)
    agent = by_activity.pop("run_agent", 0.0)
    return [
        ("agent\n(run_agent vs claude + commit)", agent),
        (
            "git steps\n(activities vs calls)",
            sum(by_activity.values()) + activities.get("parse_plan", 0.0),
        ),
        ("between activities", run.get("between_activities_ms_per_task") or 0.0),
        ("starter start and end", run["fixed_s"] * 1000 / row["tasks"]),
    ]


def overhead_panel(ax: Axes, results: dict[str, Any]) -> None:
    row = results["compare"][-1]
    parts = overhead_parts(row)
    y = list(range(len(parts)))
    values = [value for _, value in parts]
    drawn = ax.barh(y, values, color=NONE, height=0.6)
    ax.bar_label(drawn, labels=[number(value) for value in values], padding=3, fontsize=8)
    ax.set_yticks(y, [name for name, _ in parts], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("ms per task, pipeline (review none) minus baseline")
    ax.set_title(f"Where the overhead goes, N={row['tasks']:,}")
    ax.margins(x=0.15)


def rss_runs(results: dict[str, Any]) -> list[tuple[int, int, float]]:
    """(concurrency, tasks, worker peak MB) of every pipeline run with review none."""
    runs = [
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
    return sorted(runs)


def rss_panel(ax: Axes, results: dict[str, Any]) -> None:
    runs = rss_runs(results)
    x = list(range(len(runs)))
    bars(ax, x, [rss for _, _, rss in runs], width=0.5, color=RSS, label="worker peak (VmHWM)")
    ax.set_xticks(x, [f"N={tasks:,}" + (f", c={c}" if c != 1 else "") for c, tasks, _ in runs])
    scale = results.get("scale")
    if scale and scale.get("rss_reference_mb"):
        limit = RSS_RATIO_TARGET * scale["rss_reference_mb"]
        ax.axhline(
            limit,
            color=TARGET,
            ls="--",
            lw=1.5,
            label=f"target: {RSS_RATIO_TARGET:g} x N={scale['rss_reference_tasks']:,}",
        )
    ax.set_ylim(0, max([rss for _, _, rss in runs] + [ax.get_ylim()[1]]) * 1.15)
    ax.set_ylabel("MB")
    ax.set_title("Worker peak RSS (review none)")
    ax.legend(loc="best", fontsize=8)


def parse_panel(ax: Axes, results: dict[str, Any]) -> None:
    parse = results["parse"]
    runs = parse["runs_s"]
    x = list(range(len(runs)))
    bars(ax, x, runs, max([*runs, PARSE_TARGET_S]), width=0.5, color=NONE, label="run")
    ax.axhline(
        PARSE_TARGET_S,
        color=TARGET,
        ls="--",
        lw=1.5,
        label=f"target: < {PARSE_TARGET_S:g} s at {PARSE_TASKS:,} tasks",
    )
    ax.set_xticks(x, [f"run {index + 1}" for index in x])
    ax.set_ylim(0, max([*runs, PARSE_TARGET_S]) * 1.2)
    ax.set_ylabel("seconds")
    ax.set_title(f"Plan parser: {parse['tasks']:,} tasks ({parse['chars']:,} characters)")
    ax.legend(loc="best", fontsize=8)


Panel = Callable[[Axes, dict[str, Any]], None]


def panels(results: dict[str, Any]) -> list[Panel]:
    """The panels whose figures this run measured, in the order of the sections."""
    found: list[Panel] = []
    if results.get("compare"):
        found += [compare_panel, overhead_panel]
    if results.get("sweep") and results["sweep"].get("levels"):
        found.append(sweep_panel)
    if rss_runs(results):
        found.append(rss_panel)
    if results.get("parse"):
        found.append(parse_panel)
    return found


def footer(results: dict[str, Any]) -> str:
    machine = results.get("machine") or {}
    return (
        f"{machine.get('nproc', '?')} x {machine.get('cpu', '?')}, "
        f"{machine.get('memory_mb', 0) / 1024:.1f} GiB; Python {machine.get('python', '?')}, "
        f"claude {str(machine.get('claude', '?')).split()[0]}; "
        f"commit {machine.get('commit', '?')}; {machine.get('date', '')}"
    )


def draw(results: dict[str, Any], path: Path) -> Path:
    """The measured panels, two to a row, with the machine and the run at the bottom."""
    chosen = panels(results)
    columns = min(COLUMNS, max(len(chosen), 1))
    rows = max(1, -(-len(chosen) // columns))
    figure = Figure(figsize=(PANEL_W_IN * columns, PANEL_H_IN * rows + 0.4), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax, panel in zip(axes, chosen, strict=False):
        panel(ax, results)
        ax.grid(axis="y" if panel is not overhead_panel else "x", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in axes[len(chosen) :]:
        if chosen:
            ax.remove()
        else:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", fontsize=14)
    figure.supxlabel(footer(results), fontsize=8, color="#5a5a5a")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
