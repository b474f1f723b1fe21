"""The benchmark's sections. Each runs its measurements and returns plain data (for the JSON),
printing a line per finished run so a long benchmark shows where it is."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autopilot.agent import ProcessGuard
from autopilot.models import SessionRequest
from autopilot.plan import parse_plan
from bench.baseline import PHASES, BaselineResult, run_baseline
from bench.model import scripted_model
from bench.pipeline import Installation, PipelineResult
from bench.plans import DEFAULT_BATCH_SIZE, plan_text, write_plan
from bench.probe import probe
from bench.repos import make_repo, merges_on_main
from bench.steps import ACTIVITY_OF_PHASE, host_of
from tests.harness import Autopilot

RUN_TIMEOUT_S_PER_TASK = 60.0
RUN_TIMEOUT_S_FIXED = 300.0
MIN_TASKS_TO_PROJECT = 20  # a shorter run's memory slope is start-up noise


@dataclass
class Context:
    work: Path  # scratch space: repos, state dirs, installations
    claude_bin: Path
    guard: ProcessGuard
    batch_size: int = DEFAULT_BATCH_SIZE
    say: Callable[[str], None] = print


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def mb(kilobytes: int) -> float:
    return round(kilobytes / 1024.0, 1)


def timeout_for(tasks: int, delay_s: float = 0.0) -> float:
    return RUN_TIMEOUT_S_FIXED + tasks * (RUN_TIMEOUT_S_PER_TASK + 4 * delay_s)


def quantiles_ms(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"mean": ms(statistics.fmean(ordered)), "p95": ms(p95), "max": ms(ordered[-1])}


def rss_growth_kb_per_task(
    samples: Sequence[tuple[float, int]], wall_s: float, tasks: int
) -> float:
    """The slope of the worker's RSS over the run (its first fifth left out: start-up and the
    first tasks warm caches), per task: a least-squares line through the samples."""
    late = [(t, kb) for t, kb in samples if t >= 0.2 * wall_s]
    if len(late) < 3 or tasks < 1 or late[-1][0] <= late[0][0]:
        return 0.0
    slope, _ = statistics.linear_regression([t for t, _ in late], [kb for _, kb in late])
    return slope * wall_s / tasks


def downsample(samples: Sequence[tuple[float, int]], points: int = 120) -> list[list[float]]:
    step = max(1, len(samples) // points)
    return [[round(t, 1), mb(kb)] for t, kb in samples[::step]]


# -- one run of each kind -------------------------------------------------------------------


def baseline_figures(result: BaselineResult) -> dict[str, Any]:
    n = max(result.tasks, 1)
    return {
        "concurrency": result.concurrency,
        "wall_s": round(result.wall_s, 3),
        "per_task_ms": ms(result.wall_s / n),
        "merged": result.merged,
        "ok": result.merged == result.tasks,
        "phases_ms_per_task": {phase: ms(result.phases_s[phase] / n) for phase in PHASES},
        "task_ms": quantiles_ms(result.task_s),
        "cpu_ms_per_task": {name: ms(value / n) for name, value in result.cpu_s.items()},
    }


def pipeline_figures(result: PipelineResult) -> dict[str, Any]:
    n = max(result.tasks, 1)
    history = result.history
    activity_total = sum(history.activity_s.values())
    figures: dict[str, Any] = {
        "review": result.review,
        "concurrency": result.concurrency,
        "wall_s": round(result.wall_s, 3),
        "per_task_ms": ms(result.wall_s / n),
        "ok": result.ok,
        "exit_code": result.exit_code,
        "merged": result.merged,
        "error": result.error,
        "session_id": result.session_id,
        "worker_peak_rss_mb": mb(result.worker_peak_rss_kb),
        "worker_rss_at_ready_mb": mb(result.worker_rss_start_kb),
        "worker_rss_max_sampled_mb": mb(result.worker_rss_max_sampled_kb),
        "cpu_ms_per_task": {name: ms(value / n) for name, value in result.cpu_s.items()},
        # Starter start-up and attach, plus noticing the end: paid once per session.
        "fixed_s": round(result.fixed_s, 3),
        "starter_startup_s": round(result.starter_startup_s, 3),
        "starter_exit_s": round(result.starter_exit_s, 3),
        "activity_ms_per_task": {
            name: ms(seconds / n) for name, seconds in sorted(history.activity_s.items())
        },
        "activity_executions": dict(sorted(history.activity_count.items())),
        "activity_queue_wait_ms": quantiles_ms(history.activity_wait_s),
        "workflow_task_wait_ms": quantiles_ms(history.workflow_task_wait_s),
        "workflow_task_run_ms": quantiles_ms(history.workflow_task_run_s),
        "workflow_tasks_per_task": round(history.workflow_tasks / n, 2),
        "rss_growth_kb_per_task": round(
            rss_growth_kb_per_task(result.rss_samples, result.wall_s, result.tasks), 2
        ),
        "rss_samples_mb": downsample(result.rss_samples),
        "workflow_tasks": history.workflow_tasks,
        "histories": history.workflows,
        "session_runs": history.session_runs,
        "session_events": history.session_events,
        "task_events_max": history.task_events_max,
        "max_events": history.max_events,
        "max_events_workflow": history.max_events_workflow,
        "max_payload_bytes": history.max_payload_bytes,
        "max_payload_where": history.max_payload_where,
    }
    if result.concurrency == 1:
        # One thing at a time: what is neither an activity nor the fixed cost is orchestration
        # between activities (workflow tasks, scheduling, the merge queue).
        gaps = result.wall_s - result.fixed_s - activity_total
        figures["between_activities_ms_per_task"] = ms(gaps / n)
    return figures


@dataclass(frozen=True)
class Trial:
    """One run of a plan, in a scratch folder of its own under the bench's work."""

    plan: Path
    tasks: int
    name: str  # its folder
    concurrency: int = 1
    delay_s: float = 0.0  # how long the scripted model takes per turn


def run_baseline_once(
    ctx: Context, trial: Trial, label: str = "baseline", sandboxed: bool = False
) -> dict[str, Any]:
    base = ctx.work / trial.name
    repo = make_repo(base / "repo")
    with scripted_model(trial.delay_s) as model:
        # The environment a worker of an installation would have: the same CLI environment.
        env = Autopilot(root=base / "installation", model_env=model.env()).env()
        result = asyncio.run(
            run_baseline(
                trial.plan,
                repo,
                base / "state",
                ctx.claude_bin,
                ctx.guard,
                env,
                trial.concurrency,
                sandboxed,
            )
        )
    figures = baseline_figures(result)
    figures["merged_on_main"] = merges_on_main(repo)
    ctx.say(
        f"  {label:<15} N={trial.tasks:<5} {result.wall_s:8.1f} s  "
        f"{figures['per_task_ms']:8.0f} ms/task  merged {result.merged}/{trial.tasks}"
    )
    return figures


def run_pipeline_once(ctx: Context, trial: Trial, review: str) -> dict[str, Any]:
    base = ctx.work / trial.name
    repo = make_repo(base / "repo")
    with (
        scripted_model(trial.delay_s) as model,
        Installation(base / "installation", model.env()) as installation,
    ):
        timeout = timeout_for(trial.tasks, trial.delay_s)
        result = installation.run(trial.plan, repo, trial.tasks, review, trial.concurrency, timeout)
    figures = pipeline_figures(result)
    say_pipeline(ctx, f"review {review}", result, figures)
    return figures


def say_pipeline(ctx: Context, label: str, result: PipelineResult, figures: dict[str, Any]) -> None:
    state = "" if result.ok else f"  FAILED: {result.error or 'not every task merged'}"
    ctx.say(
        f"  {label:<15} N={result.tasks:<5} {result.wall_s:8.1f} s  "
        f"{figures['per_task_ms']:8.0f} ms/task  merged {result.merged}/{result.tasks}  "
        f"max events {result.history.max_events:,}  worker peak "
        f"{figures['worker_peak_rss_mb']:.0f} MB{state}"
    )


# -- sections -------------------------------------------------------------------------------


def ratio(pipeline: dict[str, Any] | None, base: dict[str, Any]) -> float | None:
    if pipeline is None or not base["wall_s"]:
        return None
    return round(float(pipeline["wall_s"]) / float(base["wall_s"]), 3)


def overhead_ms(pipeline: dict[str, Any] | None, base: dict[str, Any]) -> float | None:
    if pipeline is None:
        return None
    return round(float(pipeline["per_task_ms"]) - float(base["per_task_ms"]), 1)


def ratio_agent_equalised(pipeline: dict[str, Any] | None, base: dict[str, Any]) -> float | None:
    """The ratio had the agent taken the baseline's time in the pipeline too: the claude runs
    are most of the work, and the noisiest on a shared machine; what is left is orchestration."""
    if pipeline is None or not base["per_task_ms"]:
        return None
    agent = pipeline["activity_ms_per_task"].get("run_agent")
    if agent is None:
        return None
    rest = float(pipeline["per_task_ms"]) - float(agent)
    # run_agent's share of the baseline: the agent, and the commit when run_agent did it
    activities = pipeline["activity_ms_per_task"]
    done_by_agent = sum(
        float(base["phases_ms_per_task"][phase])
        for phase, activity in ACTIVITY_OF_PHASE.items()
        if host_of(activity, activities) == "run_agent"
    )
    return round((rest + done_by_agent) / float(base["per_task_ms"]), 3)


def compare(ctx: Context, sizes: Sequence[int], both_sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Baseline (bare, and in the pipeline's sandbox), then the pipeline with review none (and
    both), at each size, concurrency 1."""
    rows = []
    for tasks in sizes:
        ctx.say(f"compare N={tasks}")
        plan = write_plan(ctx.work / f"compare-{tasks}" / "plan.md", tasks, ctx.batch_size)
        base = run_baseline_once(ctx, Trial(plan, tasks, f"compare-{tasks}/baseline"))
        contained = run_baseline_once(
            ctx, Trial(plan, tasks, f"compare-{tasks}/sandboxed"), label="sandboxed", sandboxed=True
        )
        none = run_pipeline_once(ctx, Trial(plan, tasks, f"compare-{tasks}/none"), "none")
        both = None
        if tasks in both_sizes:
            both = run_pipeline_once(ctx, Trial(plan, tasks, f"compare-{tasks}/both"), "both")
        rows.append(
            {
                "tasks": tasks,
                "baseline": base,
                "sandboxed": contained,
                "none": none,
                "both": both,
                "ratio_none": ratio(none, base),
                # What the orchestration costs (against claude in the same sandbox), and what
                # containment costs (the sandboxed baseline against the bare one).
                "ratio_none_sandboxed": ratio(none, contained),
                "containment": ratio(contained, base),
                "overhead_ms_none": overhead_ms(none, base),
                "ratio_both": ratio(both, base),
                "overhead_ms_both": overhead_ms(both, base),
            }
        )
    return rows


def sweep(
    ctx: Context, tasks: int, delay_s: float, levels: Sequence[int], repeats: int = 1
) -> dict[str, Any]:
    """The same independent tasks (one batch) at each concurrency, the model taking `delay_s`
    per turn; one installation, a fresh repository per run. Then the bare work (the baseline
    loop, K tasks at once) at each level: the speedup the work itself gets on this machine,
    the ceiling for the pipeline's. Each is run `repeats` times, the levels taking turns, and
    the fastest run of each kept (all their wall times are in `runs_s`)."""
    ctx.say(
        f"sweep: {tasks} tasks, {delay_s:g} s per model turn, concurrency {levels}, "
        f"{repeats} run(s) each"
    )
    plan = write_plan(ctx.work / "sweep" / "plan.md", tasks, batch_size=tasks)
    runs: dict[int, list[dict[str, Any]]] = {level: [] for level in levels}
    bare: dict[int, list[dict[str, Any]]] = {level: [] for level in levels}
    with (
        scripted_model(delay_s) as model,
        Installation(ctx.work / "sweep" / "installation", model.env()) as installation,
    ):
        for run, level in ((run, level) for run in range(1, repeats + 1) for level in levels):
            repo = make_repo(ctx.work / "sweep" / f"repo-c{level}-{run}")
            result = installation.run(plan, repo, tasks, "none", level, timeout_for(tasks, delay_s))
            figures = pipeline_figures(result)
            say_pipeline(ctx, f"concurrency {level}", result, figures)
            runs[level].append(figures)
    for run, level in ((run, level) for run in range(1, repeats + 1) for level in levels):
        name, label = f"sweep/bare-c{level}-{run}", f"bare work c={level}"
        bare[level].append(run_baseline_once(ctx, Trial(plan, tasks, name, level, delay_s), label))
    results = [fastest(runs[level]) | {"bare": fastest(bare[level])} for level in levels]
    speedups(results, lambda figures: figures, "speedup")
    speedups(results, lambda figures: figures["bare"], "bare_speedup")
    for figures in results:
        figures["ideal"] = min(figures["concurrency"], tasks) / min(levels[0], tasks)
        # How much of what the work itself gains the pipeline keeps.
        figures["of_bare"] = (
            round(figures["speedup"] / figures["bare_speedup"], 3)
            if figures["bare_speedup"]
            else 0.0
        )
    return {"tasks": tasks, "delay_s": delay_s, "repeats": repeats, "levels": results}


def fastest(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of a level's runs, with every run's wall time; not ok when any run failed
    (a failed run says nothing about speed, and must not go unseen)."""
    best = dict(min(runs, key=lambda figures: float(figures["wall_s"])))
    best["runs_s"] = [figures["wall_s"] for figures in runs]
    failed = [figures for figures in runs if not figures["ok"]]
    if failed:
        best["ok"] = False
        best["error"] = failed[0].get("error") or "not every task merged"
    return best


def speedups(
    results: Sequence[dict[str, Any]], run: Callable[[dict[str, Any]], dict[str, Any]], key: str
) -> None:
    """Each level's wall time against the first level's, as `key`."""
    first = run(results[0])["wall_s"] if results else 0.0
    for figures in results:
        wall = run(figures)["wall_s"]
        figures[key] = round(first / wall, 3) if wall else 0.0


def rss_reference(rows: Sequence[dict[str, Any]], wanted: int) -> dict[str, Any] | None:
    """The review-none run at N=`wanted`, or the nearest size below the scale run's."""
    runs = [row for row in rows if row.get("none") and row["none"]["ok"]]
    if not runs:
        return None
    return min(runs, key=lambda row: abs(row["tasks"] - wanted))


def scale(
    ctx: Context,
    tasks: int,
    rows: Sequence[dict[str, Any]],
    reference_size: int,
    concurrency: int = 1,
) -> dict[str, Any]:
    """A large plan through the pipeline (review none): total time, history sizes, the
    worker's peak memory against a smaller run's at the same concurrency. The compare
    section's runs (concurrency 1) are reused when the concurrency is 1 too."""
    comparable = [row for row in rows if row.get("none")] if concurrency == 1 else []
    same = next((row for row in comparable if row["tasks"] == tasks), None)
    if same is not None:
        ctx.say(f"scale: N={tasks:,} (the compare run of that size)")
        run = same["none"]
    else:
        ctx.say(f"scale: N={tasks:,}, concurrency {concurrency}")
        plan = write_plan(ctx.work / f"scale-{tasks}" / "plan.md", tasks, ctx.batch_size)
        run = run_pipeline_once(ctx, Trial(plan, tasks, f"scale-{tasks}/none", concurrency), "none")
    figures: dict[str, Any] = {
        "tasks": tasks,
        "concurrency": concurrency,
        "reused_compare_run": same is not None,
        "run": run,
        "wall_s": run["wall_s"],
        "per_task_ms": run["per_task_ms"],
        "max_events": run["max_events"],
        "session_runs": run["session_runs"],
        "session_events_per_task": round(sum(run["session_events"]) / tasks, 2),
        "worker_peak_rss_mb": run["worker_peak_rss_mb"],
    }
    reference = rss_reference([row for row in comparable if row["tasks"] != tasks], reference_size)
    if reference is None and tasks != reference_size:
        # No comparable compare run: its own reference run for the memory ratio.
        ctx.say(f"scale: reference run N={reference_size}, concurrency {concurrency}")
        folder = f"scale-ref-{reference_size}"
        plan = write_plan(ctx.work / folder / "plan.md", reference_size, ctx.batch_size)
        reference = {
            "tasks": reference_size,
            "none": run_pipeline_once(
                ctx, Trial(plan, reference_size, f"{folder}/none", concurrency), "none"
            ),
        }
        figures["reference_run"] = reference["none"]
    if reference is not None:
        ref_tasks, ref_rss = reference["tasks"], reference["none"]["worker_peak_rss_mb"]
        figures["rss_reference_tasks"] = ref_tasks
        figures["rss_reference_mb"] = ref_rss
        figures["rss_ratio"] = round(run["worker_peak_rss_mb"] / ref_rss, 3) if ref_rss else None
        if MIN_TASKS_TO_PROJECT <= tasks < 1000:
            # Projected to 1,000 tasks with the growth seen within this run (none: no growth).
            growth = max(0.0, float(run["rss_growth_kb_per_task"]))
            projected = run["worker_peak_rss_mb"] + growth * (1000 - tasks) / 1024
            figures["rss_growth_kb_per_task"] = run["rss_growth_kb_per_task"]
            figures["rss_projected_1000_mb"] = round(projected, 1)
            figures["rss_ratio_projected"] = round(projected / ref_rss, 3) if ref_rss else None
    return figures


def payload(ctx: Context, tasks: int, concurrency: int, body_bytes: int) -> dict[str, Any]:
    """The heaviest payloads a session makes: review `both` (each task's review travels back)
    and task bodies of a real plan's size. The largest Payloads in any history, against the
    server's limit."""
    ctx.say(
        f"payload: N={tasks:,}, review both, {body_bytes:,} B task bodies, concurrency "
        f"{concurrency}"
    )
    folder = f"payload-{tasks}"
    plan = write_plan(ctx.work / folder / "plan.md", tasks, ctx.batch_size, body_bytes)
    run = run_pipeline_once(ctx, Trial(plan, tasks, f"{folder}/both", concurrency), "both")
    ctx.say(
        f"  largest payload {run['max_payload_bytes']:,} B ({run['max_payload_where']}); "
        f"plan file {plan.stat().st_size:,} B"
    )
    return {
        "tasks": tasks,
        "concurrency": concurrency,
        "body_bytes": body_bytes,
        "plan_bytes": plan.stat().st_size,
        "run": run,
        "wall_s": run["wall_s"],
        "max_events": run["max_events"],
        "max_payload_bytes": run["max_payload_bytes"],
        "max_payload_where": run["max_payload_where"],
        "session_runs": run["session_runs"],
    }


def history_probe(ctx: Context, tasks: int, limit: int, concurrency: int) -> dict[str, Any]:
    """A session with a small history limit: how far past the limit its runs go."""
    ctx.say(f"history probe: {tasks} tasks, history limit {limit}, concurrency {concurrency}")
    base = ctx.work / "probe"
    plan = write_plan(base / "plan.md", tasks, ctx.batch_size)
    repo = make_repo(base / "repo")
    with (
        scripted_model() as model,
        Installation(base / "installation", model.env()) as installation,
    ):
        result = probe(installation, plan, repo, tasks, concurrency, limit, timeout_for(tasks))
    ctx.say(
        f"  {result.wall_s:.1f} s, merged {result.merged}/{tasks}, session runs "
        f"{len(result.session_events)} with {result.session_events} events: "
        f"{result.overshoot} past the limit"
    )
    return {
        "tasks": tasks,
        "concurrency": concurrency,
        "history_limit": limit,
        "wall_s": round(result.wall_s, 3),
        "merged": result.merged,
        "ok": result.merged == tasks,
        "session_events": result.session_events,
        "overshoot": result.overshoot,
        # What a session of any size reaches with the shipped limit.
        "projected_max_events": SessionRequest.model_fields["history_limit"].default
        + result.overshoot,
    }


def parse_timing(tasks: int, repeats: int = 3) -> dict[str, Any]:
    """parse_plan on a generated plan of `tasks` tasks: best of `repeats`."""
    text = plan_text(tasks)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        plan = parse_plan(text, "bench-plan.md")
        runs.append(time.perf_counter() - started)
    assert plan.task_count() == tasks, plan.task_count()
    return {
        "tasks": tasks,
        "chars": len(text),
        "best_s": round(min(runs), 4),
        "runs_s": [round(run, 4) for run in runs],
    }
