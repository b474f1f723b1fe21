"""Targets and tables: each figure printed beside what it should be, PASS or MISS."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from autopilot.plan import BLOB_SIZE_LIMIT

RATIO_TARGET, RATIO_GOAL, RATIO_SIZE = 1.3, 1.1, 50
SPEEDUP_TARGETS = {2: 1.8, 4: 3.2}
MAX_EVENTS = 10_000
# The largest payload may use a quarter of the server's blob limit: room for what grows with a
# plan (more tasks, longer reviews) before PayloadsTooLarge.
PAYLOAD_SHARE_TARGET = 0.25
RSS_RATIO_TARGET, RSS_SIZE, RSS_REFERENCE_SIZE = 1.5, 1_000, 50
PARSE_TARGET_S, PARSE_TASKS = 1.0, 10_000
# The user's previous pipeline, to beat: parallel efficiency and per-task coordination cost.
PREVIOUS_EFFICIENCY, EFFICIENCY_LEVEL = 0.68, 4
PREVIOUS_COORDINATION_MS = (150, 200)


@dataclass
class Target:
    figure: str
    measured: str
    target: str
    status: str  # PASS, MISS, or "-" when the figure could not be measured
    note: str = ""


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def ratio_target(compare: Sequence[dict[str, Any]]) -> Target | None:
    """Judged at N=50, or at the compare size nearest to it (said so in the note)."""
    rows = [row for row in compare if row.get("ratio_none") is not None]
    if not rows:
        return None
    row = min(rows, key=lambda r: abs(r["tasks"] - RATIO_SIZE))
    ratio = float(row["ratio_none"])
    note = f"goal <= {RATIO_GOAL}: {'met' if ratio <= RATIO_GOAL else 'not met'}"
    if row.get("ratio_none_agent_equalised"):
        note += f"; {row['ratio_none_agent_equalised']:.2f} with the agent's time equalised"
    if row["tasks"] != RATIO_SIZE:
        note += f"; target is for N={RATIO_SIZE}, measured at N={row['tasks']}"
    return Target(
        f"pipeline/baseline, review none, N={row['tasks']}",
        f"{ratio:.2f}",
        f"<= {RATIO_TARGET}",
        verdict(ratio <= RATIO_TARGET),
        note,
    )


def mean_speedup(first: dict[str, Any], level: dict[str, Any]) -> float | None:
    """The speedup of the runs' mean wall times (the sweep keeps the fastest run of each)."""
    base, runs = first.get("runs_s") or [], level.get("runs_s") or []
    if len(base) < 2 or len(runs) < 2:
        return None
    return statistics.fmean(base) / statistics.fmean(runs)


def speedup_targets(sweep: dict[str, Any] | None) -> list[Target]:
    if not sweep:
        return []
    found = {level["concurrency"]: level for level in sweep["levels"]}
    targets = []
    for concurrency, wanted in SPEEDUP_TARGETS.items():
        level = found.get(concurrency)
        if level is None:
            continue
        note = f"{sweep['tasks']} tasks, {sweep['delay_s']:g} s per model turn"
        if sweep["tasks"] != 16 or sweep["delay_s"] != 2.0:
            note += " (target set for 16 tasks, 2 s)"
        mean = mean_speedup(sweep["levels"][0], level)
        if mean is not None:
            note += f"; from the mean of {len(level['runs_s'])} runs: {mean:.2f}"
        if level.get("bare_speedup"):
            note += f"; the bare work's own speedup: {level['bare_speedup']:.2f}"
        targets.append(
            Target(
                f"speedup at concurrency {concurrency}",
                f"{level['speedup']:.2f}",
                f">= {wanted}",
                verdict(level["speedup"] >= wanted),
                note,
            )
        )
    return targets


def efficiency_target(sweep: dict[str, Any] | None) -> Target | None:
    """Speedup / concurrency at 4, each level's (and the bare work's) in the note."""
    if not sweep:
        return None
    found = {level["concurrency"]: level for level in sweep["levels"]}
    level = found.get(EFFICIENCY_LEVEL)
    if level is None:
        return None
    efficiency = level["speedup"] / EFFICIENCY_LEVEL
    each = []
    for concurrency, at in sorted(found.items()):
        if concurrency == 1:
            continue
        bare = at.get("bare_speedup")
        each.append(
            f"{concurrency}: {at['speedup'] / concurrency:.0%}"
            + (f" (bare work {bare / concurrency:.0%})" if bare else "")
        )
    return Target(
        f"parallel efficiency at concurrency {EFFICIENCY_LEVEL}",
        f"{efficiency:.0%}",
        f"> {PREVIOUS_EFFICIENCY:.0%} (previous pipeline)",
        verdict(efficiency > PREVIOUS_EFFICIENCY),
        "speedup / concurrency; at " + ", ".join(each),
    )


def coordination_targets(compare: Sequence[dict[str, Any]]) -> list[Target]:
    """Against the previous pipeline's 0.15-0.2 s per task: the time between steps, and the
    whole orchestration cost (pipeline minus baseline with the agent's time equalised)."""
    rows = [row for row in compare if row.get("none") and row.get("ratio_none_agent_equalised")]
    if not rows:
        return []
    row = min(rows, key=lambda r: abs(r["tasks"] - RATIO_SIZE))
    low, high = PREVIOUS_COORDINATION_MS
    wanted = f"< {low} ms (previous pipeline: {low}-{high})"
    targets = []
    between = row["none"].get("between_activities_ms_per_task")
    if between is not None:
        targets.append(
            Target(
                f"coordination between steps per task, N={row['tasks']}",
                f"{between:.0f} ms",
                wanted,
                verdict(between < low),
                "wall time minus the activities and the starter, concurrency 1",
            )
        )
    cost = (float(row["ratio_none_agent_equalised"]) - 1) * float(row["baseline"]["per_task_ms"])
    targets.append(
        Target(
            f"orchestration cost per task, N={row['tasks']}",
            f"{cost:.0f} ms",
            wanted,
            verdict(cost < low),
            "pipeline minus baseline, the agent's time equalised: coordination, the git "
            "steps as activities, the starter",
        )
    )
    return targets


def events_target(max_events: int, where: str, largest: int) -> Target:
    return Target(
        "max events in one workflow history",
        f"{max_events:,}",
        f"<= {MAX_EVENTS:,}",
        verdict(max_events <= MAX_EVENTS),
        f"largest run N={largest:,}; {where}",
    )


def probe_target(
    probe: dict[str, Any] | None, events_per_task: float | None = None
) -> Target | None:
    """What any session large enough to continue as new reaches: the limit plus the overshoot
    the probe measured with a small limit (`events_per_task` says from which N on)."""
    if not probe:
        return None
    limit = probe["projected_max_events"] - probe["overshoot"]
    from_n = f"N >= ~{round(limit / events_per_task, -1):,.0f}" if events_per_task else "large N"
    runs = len(probe["session_events"])
    where = (
        f"probe: limit {probe['history_limit']}, {probe['tasks']} tasks, concurrency "
        f"{probe['concurrency']}, {runs} runs"
    )
    if runs < 2:  # it never reached its limit: it says nothing about the drain
        return Target(
            f"max events in one history, {from_n}",
            "-",
            f"<= {MAX_EVENTS:,}",
            verdict(False),
            f"the probe never continued as new ({where})",
        )
    return Target(
        f"max events in one history, {from_n}",
        f"{probe['projected_max_events']:,}",
        f"<= {MAX_EVENTS:,}",
        verdict(probe["projected_max_events"] <= MAX_EVENTS),
        f"history_limit {limit:,} {probe['overshoot']:+} events: the largest run against its "
        f"limit ({where})",
    )


def rss_target(scale: dict[str, Any] | None) -> Target | None:
    if not scale or not scale.get("rss_ratio"):
        return None
    note = (
        f"N={scale['tasks']:,} vs N={scale['rss_reference_tasks']}, "
        f"concurrency {scale.get('concurrency', 1)}"
    )
    if scale["tasks"] != RSS_SIZE and scale.get("rss_ratio_projected"):
        note += (
            f"; target is for N={RSS_SIZE:,}: projected {scale['rss_ratio_projected']:.2f} "
            "from the growth within the run"
        )
    return Target(
        "worker peak RSS ratio",
        f"{scale['rss_ratio']:.2f}",
        f"<= {RSS_RATIO_TARGET}",
        verdict(scale["rss_ratio"] <= RSS_RATIO_TARGET),
        note,
    )


def payload_target(found: dict[str, Any] | None) -> Target | None:
    if not found or not found["max_payload_bytes"]:
        return None
    share = found["max_payload_bytes"] / BLOB_SIZE_LIMIT
    return Target(
        f"largest payload, N={found['tasks']:,}, review both, {found['body_bytes']:,} B bodies",
        f"{found['max_payload_bytes']:,} B ({share:.1%})",
        f"<= {PAYLOAD_SHARE_TARGET:.0%} of {BLOB_SIZE_LIMIT // 1024 // 1024} MiB",
        verdict(share <= PAYLOAD_SHARE_TARGET),
        found["max_payload_where"],
    )


def parse_target(parse: dict[str, Any] | None) -> Target | None:
    if not parse:
        return None
    note = "best of 3" if parse["tasks"] == PARSE_TASKS else f"target set for {PARSE_TASKS:,}"
    return Target(
        f"parse a {parse['tasks']:,}-task plan",
        f"{parse['best_s']:.2f} s",
        f"< {PARSE_TARGET_S:g} s",
        verdict(parse["best_s"] < PARSE_TARGET_S),
        note,
    )


def all_targets(results: dict[str, Any]) -> list[Target]:
    found: list[Target | None] = [ratio_target(results.get("compare") or [])]
    found += coordination_targets(results.get("compare") or [])
    found += speedup_targets(results.get("sweep"))
    found.append(efficiency_target(results.get("sweep")))
    if results.get("max_events"):
        found.append(
            events_target(
                results["max_events"]["events"],
                results["max_events"]["where"],
                results["max_events"]["largest_tasks"],
            )
        )
    found += [
        probe_target(
            results.get("probe"), (results.get("scale") or {}).get("session_events_per_task")
        ),
        rss_target(results.get("scale")),
        payload_target(results.get("payload")),
        parse_target(results.get("parse")),
    ]
    return [target for target in found if target is not None]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A plain text table; `align` has one letter per column, l or r (default: the first
    column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(cell).ljust(width) if side == "l" else str(cell).rjust(width)
            for cell, width, side in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def targets_table(targets: Sequence[Target]) -> str:
    rows = [[t.figure, t.measured, t.target, t.status, t.note] for t in targets]
    return table(["figure", "measured", "target", "status", "note"], rows, "lrlll")


def targets_json(targets: Sequence[Target]) -> list[dict[str, str]]:
    return [asdict(target) for target in targets]
