"""The orchestration's cost against the bare work. See bench/README.md.

    .venv/bin/python -m bench.run                      # every section at the issue's sizes
    .venv/bin/python -m bench.run --quick              # a smoke run, about 2 minutes
    .venv/bin/python -m bench.run --sizes 10,50        # only the pipeline/baseline comparison
    .venv/bin/python -m bench.run --sweep --scale 200  # only these sections

Sections: compare (baseline vs the pipeline with review none and both), sweep (concurrency
1..8 with a slow model), scale (one large plan: time, history sizes, worker memory), payload
(one large plan with review `both` and 2 KB task bodies: the largest payload), parse (the plan
parser on a 10,000-task plan), sandbox-start (what starting a sandboxed run costs, part by
part). Naming any section runs only the ones named.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from autopilot.agent import detect_guard
from autopilot.infra import exit_now
from bench import chart, report
from bench.machine import describe, load_average, machine_info
from bench.plans import DEFAULT_BATCH_SIZE
from bench.sandbox_start import DEFAULT_RUNS as SANDBOX_RUNS
from bench.sandbox_start import sandbox_start
from bench.sandbox_start import table as sandbox_table
from bench.sections import (
    Context,
    compare,
    history_probe,
    parse_timing,
    payload,
    ratio_agent_equalised,
    scale,
    sweep,
)
from bench.steps import ACTIVITY_OF_PHASE, host_of
from tests.harness import claude_bin

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_SIZES = (10, 50, 200)
DEFAULT_SCALE = 1_000
# The scale run goes four at a time: at one at a time 1,000 tasks take over half an hour.
DEFAULT_SCALE_CONCURRENCY = 4
PAYLOAD_BODY_BYTES = 2048  # a real plan's task body
SWEEP_TASKS, SWEEP_DELAY_S, SWEEP_LEVELS = 16, 2.0, (1, 2, 4, 8)
# Runs per sweep level, the fastest kept (as `timeit` does): one run at concurrency 4 took
# anywhere from 33.7 to 39.1 s on the same idle machine.
SWEEP_REPEATS = 2
PARSE_TASKS = 10_000
PRESET_SIZE = -1  # a bare --scale or --parse: the size of the preset (default or --quick)
# A limit of at least 2 x the session's drain margin (40 events x (concurrency + 1)), so the
# probe drains as a 10,000-event session does; enough tasks to continue as new twice.
PROBE = {"probe_tasks": 30, "probe_limit": 400, "probe_concurrency": 2}
QUICK = {
    "sizes": (1, 2),
    "both_sizes": (1,),
    "sweep_tasks": 2,
    "sweep_delay": 0.3,
    "sweep_levels": (1, 2),
    "sweep_repeats": 1,
    "scale": 2,
    "scale_concurrency": 1,
    "payload": 2,
    "parse_tasks": 1_000,
    "probe_tasks": 12,
    "probe_limit": 200,
    "probe_concurrency": 1,
    "sandbox_runs": 3,
}


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"give positive numbers, e.g. 10,50 (got {text!r})")
    return values


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"give a positive number (got {text!r})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark the orchestration against the bare work (see bench/README.md).",
    )
    parser.add_argument("--compare", action="store_true", help="run the comparison section")
    parser.add_argument(
        "--sizes", type=int_list, help=f"comparison sizes (implies --compare; {DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--both-sizes",
        type=int_list,
        help="sizes where review `both` runs too (all of --sizes)",
    )
    parser.add_argument("--sweep", action="store_true", help="run the concurrency sweep")
    parser.add_argument("--sweep-tasks", type=positive, help=f"tasks in the sweep ({SWEEP_TASKS})")
    parser.add_argument(
        "--sweep-delay", type=float, help=f"seconds per model turn ({SWEEP_DELAY_S:g})"
    )
    parser.add_argument("--sweep-levels", type=int_list, help="concurrency levels (1,2,4,8)")
    parser.add_argument(
        "--sweep-repeats",
        type=positive,
        help=f"runs per level, the fastest kept ({SWEEP_REPEATS})",
    )

    def sized_section(flag: str, text: str) -> None:
        """A section's option: its size N, or the preset's when the flag has no number."""
        parser.add_argument(flag, type=int, nargs="?", const=PRESET_SIZE, metavar="N", help=text)

    sized_section("--scale", f"run the scale section with N tasks ({DEFAULT_SCALE:,})")
    parser.add_argument(
        "--scale-concurrency",
        type=positive,
        help=f"concurrency of the scale run and its reference run ({DEFAULT_SCALE_CONCURRENCY})",
    )
    sized_section(
        "--payload",
        f"run the payload section with N tasks ({DEFAULT_SCALE:,}), at --scale-concurrency",
    )
    sized_section("--parse", f"time the plan parser on N tasks ({PARSE_TASKS:,})")
    sized_section(
        "--sandbox-start",
        f"time a sandboxed run's start, part by part, N times each ({SANDBOX_RUNS})",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--batch-size",
        type=positive,
        default=DEFAULT_BATCH_SIZE,
        help=f"tasks per batch in the generated plans ({DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS_DIR, help="where the JSON and PNG go"
    )
    parser.add_argument(
        "--name", help="file name of the results, without suffix (latest; --quick: quick)"
    )
    parser.add_argument("--work", type=Path, help="scratch directory (a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--remote-results",
        type=Path,
        metavar="JSON",
        help="judge bench/remote_mode.py's results (its JSON) beside this run's",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="JSON",
        help="run nothing: print a results file again, with its targets and plot redone",
    )
    return parser


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """What to run: the named sections (all when none is named), with their sizes."""
    preset: dict[str, Any] = {
        "sizes": DEFAULT_SIZES,
        "both_sizes": None,  # the same as sizes
        "sweep_tasks": SWEEP_TASKS,
        "sweep_delay": SWEEP_DELAY_S,
        "sweep_levels": SWEEP_LEVELS,
        "sweep_repeats": SWEEP_REPEATS,
        "scale": DEFAULT_SCALE,
        "scale_concurrency": DEFAULT_SCALE_CONCURRENCY,
        "payload": DEFAULT_SCALE,
        "parse_tasks": PARSE_TASKS,
        "sandbox_runs": SANDBOX_RUNS,
        **PROBE,
    }
    if args.quick:
        preset.update(QUICK)
    named = {
        "compare": bool(args.compare or args.sizes or args.both_sizes),
        "sweep": bool(
            args.sweep
            or args.sweep_tasks
            or args.sweep_levels
            or args.sweep_repeats
            or args.sweep_delay is not None
        ),
        "scale": args.scale is not None,
        "payload": args.payload is not None,
        "parse": args.parse is not None,
        "sandbox_start": args.sandbox_start is not None,
    }
    run_all = not any(named.values())

    def given(value: Any, key: str) -> Any:
        """The flag's value, or the preset's (a bare --scale / --parse is PRESET_SIZE)."""
        return preset[key] if value is None or value == PRESET_SIZE else value

    sizes = given(args.sizes, "sizes")
    return {
        "sections": [name for name, on in named.items() if on or run_all],
        "sizes": sizes,
        "both_sizes": given(args.both_sizes, "both_sizes") or sizes,
        "sweep_tasks": given(args.sweep_tasks, "sweep_tasks"),
        "sweep_delay": given(args.sweep_delay, "sweep_delay"),
        "sweep_levels": given(args.sweep_levels, "sweep_levels"),
        "sweep_repeats": given(args.sweep_repeats, "sweep_repeats"),
        "scale": given(args.scale, "scale"),
        "scale_concurrency": given(args.scale_concurrency, "scale_concurrency"),
        "payload": given(args.payload, "payload"),
        "parse_tasks": given(args.parse, "parse_tasks"),
        "sandbox_runs": given(args.sandbox_start, "sandbox_runs"),
        "probe_tasks": preset["probe_tasks"],
        "probe_limit": preset["probe_limit"],
        "probe_concurrency": preset["probe_concurrency"],
        "batch_size": args.batch_size,
        "quick": args.quick,
    }


# -- printing -------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def compare_table(rows: Sequence[dict[str, Any]]) -> str:
    body = []
    for row in rows:
        both = row.get("both") or {}
        body.append(
            [
                f"N={row['tasks']}",
                fmt(row["baseline"]["per_task_ms"]),
                fmt((row.get("sandboxed") or {}).get("per_task_ms")),
                fmt(row["none"]["per_task_ms"]),
                fmt(row["overhead_ms_none"]),
                fmt(row["ratio_none"], 2),
                fmt(row.get("ratio_none_sandboxed"), 2),
                fmt(row.get("ratio_none_agent_equalised"), 2),
                fmt(both.get("per_task_ms")),
                fmt(row["overhead_ms_both"]),
                fmt(row["ratio_both"], 2),
            ]
        )
    header = [
        "tasks",
        "baseline ms/task",
        "sandboxed ms/task",
        "none ms/task",
        "overhead ms",
        "none/base",
        "none/sandboxed",
        "agent equalised",
        "both ms/task",
        "overhead ms",
        "both/base",
    ]
    return report.table(header, body)


def breakdown_table(row: dict[str, Any]) -> str:
    """Where a task's time goes: the baseline's phases beside the pipeline's activities."""
    base, none = row["baseline"], row["none"]
    activities = none["activity_ms_per_task"]
    body = [
        [
            phase,
            fmt(base["phases_ms_per_task"][phase], 1),
            fmt(activities.get(name), 1),
            name if host_of(name, activities) == name else f"done by {host_of(name, activities)}",
        ]
        for phase, name in ACTIVITY_OF_PHASE.items()
    ]
    known = set(ACTIVITY_OF_PHASE.values())
    for name, value in activities.items():
        if name not in known:
            body.append(["", "-", fmt(value, 1), name])
    body.append(["between activities", "-", fmt(none.get("between_activities_ms_per_task"), 1), ""])
    startup, ending = none["starter_startup_s"], none["starter_exit_s"]
    body.append(
        [
            "starter start, end",
            "-",
            fmt(none["fixed_s"] * 1000 / row["tasks"], 1),
            f"once: {startup:.2f} s + {ending:.2f} s",
        ]
    )
    body.append(["total", fmt(base["per_task_ms"], 1), fmt(none["per_task_ms"], 1), ""])
    header = [f"N={row['tasks']}, ms per task", "baseline", "pipeline", "activity"]
    return report.table(header, body, "lrrl")


CPU_ROWS = {
    "agents_and_git": "claude CLI runs and git",
    "worker": "worker (Python)",
    "temporal_server": "Temporal server",
    "starter": "starter",
    "bench_and_model": "scripted model (+ baseline loop)",
}


def cpu_table(row: dict[str, Any]) -> str:
    """CPU time per task by process: what the orchestration burns beside the agents."""
    base = row["baseline"].get("cpu_ms_per_task") or {}
    pipe = row["none"].get("cpu_ms_per_task") or {}
    body = [
        [label, fmt(base.get(name), 1), fmt(pipe.get(name), 1)]
        for name, label in CPU_ROWS.items()
        if name in base or name in pipe
    ]
    body.append(["total", fmt(sum(base.values()), 1), fmt(sum(pipe.values()), 1)])
    return report.table([f"N={row['tasks']}, CPU ms per task", "baseline", "pipeline"], body)


def queue_line(run: dict[str, Any]) -> str:
    wait, work = run["workflow_task_wait_ms"], run["workflow_task_run_ms"]
    return (
        f"workflow tasks: {run['workflow_tasks_per_task']} per task, schedule-to-start "
        f"{wait['mean']:.1f} ms mean (p95 {wait['p95']:.1f}), start-to-complete "
        f"{work['mean']:.1f} ms mean (p95 {work['p95']:.1f}); activities' schedule-to-start "
        f"{run['activity_queue_wait_ms']['mean']:.1f} ms mean"
    )


def walls(runs: Sequence[float] | None) -> str:
    return ", ".join(f"{wall:.1f}" for wall in runs) if runs else "-"


def sweep_table(result: dict[str, Any]) -> str:
    body = []
    for level in result["levels"]:
        share = level.get("of_bare") if level is not result["levels"][0] else None
        status = "" if not share else report.verdict(share >= report.SHARE_TARGET)
        bare = level.get("bare") or {}
        cpu = level.get("cpu_ms_per_task") or {}
        body.append(
            [
                str(level["concurrency"]),
                fmt(level["wall_s"], 1),
                walls(level.get("runs_s")),
                fmt(level["speedup"], 2),
                fmt(bare.get("wall_s"), 1),
                walls(bare.get("runs_s")),
                fmt(level.get("bare_speedup"), 2),
                fmt(level.get("of_bare"), 2),
                fmt(level["ideal"], 0),
                f">= {report.SHARE_TARGET:.2f}" if share else "",
                status,
                *(fmt(cpu.get(part)) for part in report.CPU_PARTS),
                fmt(sum(cpu.get(part, 0.0) for part in report.CPU_PARTS) if cpu else None),
            ]
        )
    header = [
        "concurrency",
        "wall s",
        "runs s",
        "speedup",
        "bare s",
        "bare runs s",
        "bare speedup",
        "of bare",
        "ideal",
        "target",
        "status",
        "CPU ms/task: worker",
        "server",
        "starter",
        "all three",
    ]
    return report.table(header, body)


def scale_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"N={result['tasks']:,}, concurrency {result.get('concurrency', 1)}"
        + (" (the compare run of that size)" if result["reused_compare_run"] else "")
        + f": {result['wall_s']:,.1f} s total, {result['per_task_ms']:,.0f} ms per task",
        f"max events per workflow history: {result['max_events']:,}; session runs "
        f"(continue-as-new): {result['session_runs']}; session events per task: "
        f"{result['session_events_per_task']}",
        f"worker peak RSS: {result['worker_peak_rss_mb']:.1f} MB",
    ]
    if result.get("rss_ratio"):
        lines.append(
            f"  vs N={result['rss_reference_tasks']}: {result['rss_reference_mb']:.1f} MB, "
            f"ratio {result['rss_ratio']:.2f} (target <= {report.RSS_RATIO_TARGET} at "
            f"N={report.RSS_SIZE:,})"
        )
    if result.get("rss_projected_1000_mb") is not None:
        lines.append(
            f"  RSS growth within the run: {result['rss_growth_kb_per_task']:.1f} kB per task; "
            f"projected at N=1,000: {result['rss_projected_1000_mb']:.1f} MB, ratio "
            f"{fmt(result.get('rss_ratio_projected'), 2)}"
        )
    return lines


def max_events(results: dict[str, Any]) -> dict[str, Any] | None:
    runs: list[dict[str, Any]] = []
    for row in results.get("compare") or []:
        runs += [run for run in (row.get("none"), row.get("both")) if run]
    runs += (results.get("sweep") or {}).get("levels", [])
    scale_result = results.get("scale")
    if scale_result and not scale_result["reused_compare_run"]:
        runs.append(scale_result["run"])
    if scale_result and scale_result.get("reference_run"):
        runs.append(scale_result["reference_run"])
    if results.get("payload"):
        runs.append(results["payload"]["run"])
    runs = [run for run in runs if run.get("max_events")]
    if not runs:
        return None
    top = max(runs, key=lambda run: run["max_events"])
    largest = max(runs, key=lambda run: run["merged"])
    return {
        "events": top["max_events"],
        "where": top["max_events_workflow"],
        "largest_tasks": largest["merged"],
    }


def failures(results: dict[str, Any]) -> list[str]:
    found = []
    for row in results.get("compare") or []:
        if not row["baseline"]["ok"]:
            found.append(f"baseline N={row['tasks']}: not every task merged")
        if row.get("sandboxed") and not row["sandboxed"]["ok"]:
            found.append(f"sandboxed baseline N={row['tasks']}: not every task merged")
        for key in ("none", "both"):
            run = row.get(key)
            if run and not run["ok"]:
                found.append(f"review {key} N={row['tasks']}: {run['error'] or 'not all merged'}")
    for level in (results.get("sweep") or {}).get("levels", []):
        if not level["ok"]:
            found.append(f"sweep c={level['concurrency']}: {level['error'] or 'not all merged'}")
        bare = level.get("bare")
        if bare and not bare["ok"]:
            found.append(f"sweep bare work c={level['concurrency']}: not every task merged")
    scale_result = results.get("scale")
    if scale_result and not scale_result["run"]["ok"]:
        found.append(f"scale N={scale_result['tasks']}: {scale_result['run']['error']}")
    payload_result = results.get("payload")
    if payload_result and not payload_result["run"]["ok"]:
        found.append(f"payload N={payload_result['tasks']}: {payload_result['run']['error']}")
    probe_result = results.get("probe")
    if probe_result and not probe_result["ok"]:
        found.append(f"history probe: merged {probe_result['merged']}/{probe_result['tasks']}")
    return found


# -- main -----------------------------------------------------------------------------------


def run_sections(chosen: dict[str, Any], ctx: Context, results: dict[str, Any]) -> None:
    sections, took = chosen["sections"], results.setdefault("section_s", {})

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        took[name] = round(time.perf_counter() - started, 1)

    if "parse" in sections:
        with timed("parse"):
            results["parse"] = parse_timing(chosen["parse_tasks"])
            ctx.say(f"parse: {chosen['parse_tasks']:,} tasks, best {results['parse']['best_s']} s")
    if "sandbox_start" in sections:
        with timed("sandbox_start"):
            results["sandbox_start"] = sandbox_start(chosen["sandbox_runs"])
    if "compare" in sections:
        with timed("compare"):
            results["compare"] = compare(ctx, chosen["sizes"], chosen["both_sizes"])
    if "sweep" in sections:
        with timed("sweep"):
            results["sweep"] = sweep(
                ctx,
                chosen["sweep_tasks"],
                chosen["sweep_delay"],
                chosen["sweep_levels"],
                chosen["sweep_repeats"],
            )
    if "scale" in sections:
        with timed("scale"):
            compared, reference = results.get("compare") or [], report.RSS_REFERENCE_SIZE
            results["scale"] = scale(
                ctx, chosen["scale"], compared, reference, chosen["scale_concurrency"]
            )
            results["probe"] = history_probe(
                ctx, chosen["probe_tasks"], chosen["probe_limit"], chosen["probe_concurrency"]
            )
    if "payload" in sections:
        with timed("payload"):
            results["payload"] = payload(
                ctx, chosen["payload"], chosen["scale_concurrency"], PAYLOAD_BODY_BYTES
            )


def print_results(results: dict[str, Any]) -> None:
    print()
    print(f"Machine: {describe(results['machine'])}")
    print(
        f"Load average at start {results['machine']['load_average_at_start']}, at end "
        f"{results['load_average_at_end']}"
    )
    if results.get("compare"):
        print("\nPer-task wall time, concurrency 1 (pipeline = starter launch to exit)")
        print(compare_table(results["compare"]))
        print()
        print(breakdown_table(results["compare"][-1]))
        print(queue_line(results["compare"][-1]["none"]))
        if results["compare"][-1]["baseline"].get("cpu_ms_per_task"):
            print()
            print(cpu_table(results["compare"][-1]))
    if results.get("sweep"):
        sweep_result = results["sweep"]
        print(
            f"\nConcurrency sweep: {sweep_result['tasks']} independent tasks, "
            f"{sweep_result['delay_s']:g} s per model turn, review none, the fastest of "
            f"{sweep_result.get('repeats', 1)} run(s) per level; bare = the baseline loop at the "
            "same concurrency (no Temporal), of bare = speedup / bare speedup"
        )
        print(sweep_table(sweep_result))
    if results.get("scale"):
        print("\nScale")
        print("\n".join(scale_lines(results["scale"])))
    if results.get("probe"):
        probe_result = results["probe"]
        print(
            f"History probe: limit {probe_result['history_limit']}, {probe_result['tasks']} "
            f"tasks, concurrency {probe_result['concurrency']}: session runs of "
            f"{probe_result['session_events']} events, {probe_result['overshoot']:+} against the "
            f"limit; with the shipped limit a run reaches {probe_result['projected_max_events']:,}"
        )
    if results.get("payload"):
        found = results["payload"]
        print(
            f"\nPayload: N={found['tasks']:,}, review both, {found['body_bytes']:,} B task bodies "
            f"(plan {found['plan_bytes']:,} B), concurrency {found['concurrency']}: "
            f"{found['wall_s']:,.1f} s; largest payload {found['max_payload_bytes']:,} B "
            f"({found['max_payload_where']}); max events {found['max_events']:,}, session runs "
            f"{found['session_runs']}"
        )
    if results.get("parse"):
        parse = results["parse"]
        runs = ", ".join(f"{run:.3f}" for run in parse["runs_s"])
        print(f"\nParser: {parse['tasks']:,} tasks ({parse['chars']:,} chars): {runs} s")
    if results.get("sandbox_start"):
        print("\nSandbox start (bench/sandbox_start.py)")
        print(sandbox_table(results["sandbox_start"]))
    print("\nTargets")
    print(report.targets_table([report.Target(**target) for target in results["targets"]]))
    for failure in results["failures"]:
        print(f"FAILED RUN: {failure}")


def conclude(results: dict[str, Any]) -> None:
    """Everything derived from the measured figures: done after a run, or again (--report)."""
    for row in results.get("compare") or []:
        row["ratio_none_agent_equalised"] = ratio_agent_equalised(row["none"], row["baseline"])
    results["max_events"] = max_events(results)
    results["targets"] = report.targets_json(report.all_targets(results))
    results["failures"] = failures(results)


def write(results: dict[str, Any], folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{name}.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    return json_path, chart.draw(results, folder / f"{name}.png")


def rerender(path: Path) -> int:
    results = json.loads(path.read_text())
    conclude(results)
    print_results(results)
    json_path, png_path = write(results, path.parent, path.stem)
    print(f"\nRewrote {json_path} and {png_path}")
    return 1 if results["failures"] else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.report is not None:
        return rerender(args.report)
    chosen = settings(args)
    name = args.name or ("quick" if args.quick else "latest")
    work = args.work or Path(tempfile.mkdtemp(prefix="autopilot-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    binary = claude_bin()
    results: dict[str, Any] = {"machine": machine_info(binary), "settings": chosen}
    if args.remote_results is not None:
        results["remote"] = json.loads(args.remote_results.read_text())
    ctx = Context(work=work, claude_bin=binary, guard=detect_guard(), batch_size=args.batch_size)
    print(f"Benchmark: sections {', '.join(chosen['sections'])}; scratch {work}", flush=True)
    started = time.perf_counter()
    try:
        run_sections(chosen, ctx, results)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = load_average()
    conclude(results)
    print_results(results)
    json_path, png_path = write(results, args.results, name)
    took = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results["section_s"].items())
    print(f"\nWrote {json_path} and {png_path} in {results['duration_s']:.0f} s ({took})")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    exit_now(main())
