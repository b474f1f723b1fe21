"""bench/report.py: the figures judged against the previous pipeline (pure functions)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from temporalio.api.common.v1 import Header, Payload, Payloads
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    HistoryEvent,
)

from autopilot.plan import parse_plan
from bench.histories import payload_sizes
from bench.plans import plan_text
from bench.report import all_targets
from tests.harness import ROOT


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


def test_coordination_and_whole_cost_are_judged_against_50_ms() -> None:
    figures = judged({"compare": [compare_row(between_ms=49, equalised=1.035, baseline_ms=1400)]})
    assert figures["coordination between steps per task, N=50"] == ("49 ms", "PASS")
    assert figures["orchestration cost per task, N=50"] == ("49 ms", "PASS")

    slow = judged({"compare": [compare_row(between_ms=60, equalised=1.1, baseline_ms=1400)]})
    assert slow["coordination between steps per task, N=50"] == ("60 ms", "MISS")
    assert slow["orchestration cost per task, N=50"] == ("140 ms", "MISS")


def test_the_ratio_is_judged_against_1_10_with_the_sandboxed_baseline_in_the_note() -> None:
    row = compare_row(between_ms=20, equalised=1.04, baseline_ms=1000)
    row |= {"ratio_none_sandboxed": 1.03, "containment": 1.06}
    target = {t.figure: t for t in all_targets({"compare": [row]})}[
        "pipeline/baseline, review none, N=50"
    ]
    assert (target.measured, target.target, target.status) == ("1.09", "<= 1.10", "PASS")
    assert "1.03 against `claude` in the same sandbox" in target.note
    assert "1.06 over bare (containment)" in target.note
    row["ratio_none"] = 1.19
    assert judged({"compare": [row]})["pipeline/baseline, review none, N=50"][1] == "MISS"


def test_cpu_per_task_counts_worker_server_and_starter_against_100_ms() -> None:
    row = compare_row(between_ms=20, equalised=1.04, baseline_ms=1000)
    row["none"]["cpu_ms_per_task"] = {
        "worker": 40.0,
        "temporal_server": 45.0,
        "starter": 10.0,
        "agents_and_git": 900.0,  # the agents' own: not the orchestration's
    }
    figure = "CPU per task: worker + server + starter, N=50"
    assert judged({"compare": [row]})[figure] == ("95 ms", "PASS")
    row["none"]["cpu_ms_per_task"]["worker"] = 108.0
    assert judged({"compare": [row]})[figure] == ("163 ms", "MISS")


def test_the_agent_and_merge_steps_are_judged_against_the_same_work_done_bare() -> None:
    row = compare_row(between_ms=20, equalised=1.04, baseline_ms=1000)
    row["baseline"]["phases_ms_per_task"] = {"agent": 880.0, "commit": 12.0, "merge": 40.0}
    row["baseline"]["phases_ms_per_task"]["remove"] = 8.5
    row["none"]["activity_ms_per_task"] = {"run_agent": 1018.0, "merge_task": 58.0}
    figures = judged({"compare": [row]})
    assert figures["run_agent over the same work done bare, N=50"] == ("+126 ms", "MISS")
    assert figures["merge_task over the same work done bare, N=50"] == ("+10 ms", "PASS")


def test_every_concurrency_keeps_98_percent_of_the_bare_works_speedup() -> None:
    figures = judged({"sweep": sweep({1: (1.0, 1.0), 2: (1.95, 1.97), 4: (3.4, 3.55)})})
    assert figures["share of the bare work's speedup at concurrency 2"] == ("99%", "PASS")
    assert figures["share of the bare work's speedup at concurrency 4"] == ("96%", "MISS")
    assert "share of the bare work's speedup at concurrency 1" not in figures


def test_remote_mode_is_judged_against_local_by_the_best_turns() -> None:
    def turns(*walls: float) -> list[dict[str, Any]]:
        return [{"wall_per_task_s": wall} for wall in walls]

    def remote(*walls: float) -> dict[str, Any]:
        return {"tasks": 50, "turns": {"local": turns(1.2, 1.0), "remote": turns(*walls)}}

    figure = "remote mode over local mode, N=50"
    assert judged({"remote": remote(1.08, 1.3)})[figure] == ("x1.08", "PASS")
    assert judged({"remote": remote(1.3)})[figure] == ("x1.30", "MISS")


def payload_result(size: int) -> dict[str, Any]:
    return {"tasks": 1000, "body_bytes": 2048, "max_payload_bytes": size, "max_payload_where": "x"}


def test_the_largest_payload_is_judged_against_a_quarter_of_the_blob_limit() -> None:
    figure = "largest payload, N=1,000, review both, 2,048 B bodies"
    assert judged({"payload": payload_result(300_000)})[figure] == ("300,000 B (14.3%)", "PASS")
    assert judged({"payload": payload_result(600_000)})[figure][1] == "MISS"


def test_payload_sizes_finds_every_payloads_in_an_event() -> None:
    big, small = Payload(data=b"x" * 5000), Payload(data=b"y" * 10)
    event = HistoryEvent(
        event_id=7,
        activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
            input=Payloads(payloads=[big]),
            header=Header(fields={"h": Payload(data=b"z" * 9000)}),  # a map: not a payload
        ),
    )
    done = HistoryEvent(
        activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
            result=Payloads(payloads=[small, small])
        )
    )
    assert list(payload_sizes(event)) == [Payloads(payloads=[big]).ByteSize()]
    assert 5000 < max(payload_sizes(event)) < 5100
    assert list(payload_sizes(done)) == [Payloads(payloads=[small, small]).ByteSize()]


def test_bench_plans_have_task_bodies_of_the_size_asked() -> None:
    plain = parse_plan(plan_text(3, 10), "plain.md")
    padded = parse_plan(plan_text(3, 10, body_bytes=2048), "padded.md")
    for short, long in zip(plain.batches[0].tasks, padded.batches[0].tasks, strict=True):
        assert len(short.body) < 400 and 2048 <= len(long.body.encode()) < 2300
        assert [file.path for file in short.files] == [file.path for file in long.files]
        assert short.commit_message == long.commit_message


def test_the_large_repository_bench_runs_every_step() -> None:
    small = ["--files", "300", "--commits", "30", "--runs", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.large_repo", *small],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "repository: 300 files, 31 commits" in done.stdout
    for step in ("prepare", "commit and bring back", "merge", "remove", "git worktree add"):
        assert f"  {step} " in done.stdout, done.stdout
