"""bench/report.py: the figures judged against the previous pipeline (pure functions)."""

from __future__ import annotations

from typing import Any

from bench.report import all_targets


def sweep(speedups: dict[int, tuple[float, float]]) -> dict[str, Any]:
    return {
        "tasks": 16,
        "delay_s": 2.0,
        "levels": [
            {"concurrency": level, "speedup": mine, "bare_speedup": bare, "runs_s": []}
            for level, (mine, bare) in speedups.items()
        ],
    }


def compare_row(between_ms: float, equalised: float, baseline_ms: float) -> dict[str, Any]:
    return {
        "tasks": 50,
        "ratio_none": equalised + 0.05,
        "ratio_none_agent_equalised": equalised,
        "baseline": {"per_task_ms": baseline_ms},
        "none": {"between_activities_ms_per_task": between_ms},
    }


def judged(results: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {t.figure: (t.measured, t.status) for t in all_targets(results)}


def test_parallel_efficiency_is_judged_at_four_against_the_previous_68_percent() -> None:
    good = judged({"sweep": sweep({1: (1.0, 1.0), 2: (1.96, 1.95), 4: (3.56, 3.67)})})
    assert good["parallel efficiency at concurrency 4"] == ("89%", "PASS")
    poor = judged({"sweep": sweep({1: (1.0, 1.0), 4: (2.6, 3.6)})})
    assert poor["parallel efficiency at concurrency 4"] == ("65%", "MISS")


def test_coordination_and_whole_cost_are_judged_against_150_ms() -> None:
    figures = judged({"compare": [compare_row(between_ms=49, equalised=1.1, baseline_ms=1400)]})
    assert figures["coordination between steps per task, N=50"] == ("49 ms", "PASS")
    assert figures["orchestration cost per task, N=50"] == ("140 ms", "PASS")

    slow = judged({"compare": [compare_row(between_ms=160, equalised=1.2, baseline_ms=1400)]})
    assert slow["coordination between steps per task, N=50"] == ("160 ms", "MISS")
    assert slow["orchestration cost per task, N=50"] == ("280 ms", "MISS")
