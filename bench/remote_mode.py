"""The per-task cost of remote mode beside local mode, through the whole pipeline (one worker,
the embedded Temporal server, the sandbox, the real claude CLI and the scripted model), the
two modes taking turns in one run on fresh repositories. The remote is a bare repository
served by `git daemon` on loopback: a network transport, without a network's latency.

    .venv/bin/python -m bench.remote_mode                  # N=50, 2 turns each
    .venv/bin/python -m bench.remote_mode --tasks 10 --turns 1

Per task: the session's wall time (starter launch to exit) divided by N, and the time the
git activities ran (prepare_workspace, merge_task; the agent's activity also commits, and in
remote mode pushes). Each mode's best turn is kept; the ratio is remote over local.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.pipeline import Installation, PipelineResult, alternating, scratch_installation
from bench.plans import plan_text
from bench.repos import git, make_repo
from tests.git_daemon import GitDaemon, git_daemon

RESULTS = Path(__file__).parent / "results"
STEPS = ("prepare_workspace", "run_agent", "merge_task")


@dataclass
class ModeFigures:
    mode: str
    wall_per_task_s: float
    steps_per_task_ms: dict[str, float]
    # Connections the remote served per task, by service (upload-pack: a fetch or an
    # ls-remote; receive-pack: a push), counted from `git daemon --verbose`'s log.
    round_trips_per_task: dict[str, float] = field(default_factory=dict)


def round_trips(log: list[str]) -> dict[str, int]:
    """The connections in a `git daemon --verbose` log, by service."""
    served: dict[str, int] = {}
    for line in log:
        found = re.search(r"Request (\S+) for", line)
        if found is not None:
            served[found[1]] = served.get(found[1], 0) + 1
    return served


def per_task(result: PipelineResult, mode: str) -> ModeFigures:
    history = result.history
    steps = {
        name: 1000 * history.activity_s.get(name, 0.0) / result.tasks
        for name in STEPS
        if name in history.activity_s
    }
    return ModeFigures(mode, result.wall_s / result.tasks, steps)


@contextlib.contextmanager
def served(root: Path) -> Iterator[tuple[Path, GitDaemon]]:
    """A fresh bare repository with main, served over git://: (its path, the daemon)."""
    seed = make_repo(root / "seed")
    base = root / "served"
    base.mkdir()
    git(base, "clone", "-q", "--bare", str(seed), "project.git")
    with git_daemon(base) as daemon:
        yield base / "project.git", daemon


def one_turn(installation: Installation, root: Path, tasks: int, mode: str) -> ModeFigures:
    root.mkdir(parents=True)
    plan = root / "plan.md"
    plan.write_text(plan_text(tasks))
    timeout = 60.0 * (tasks + 5)
    if mode == "local":
        result = installation.run(plan, make_repo(root / "repo"), tasks, "none", 1, timeout)
    else:
        with served(root) as (bare, daemon):
            url = daemon.url("project.git")
            result = installation.run(plan, bare, tasks, "none", 1, timeout, remote=url)
            trips = round_trips(daemon.log)
    if not result.ok:
        sys.exit(f"{mode}: the session did not merge every task ({result.error})")
    figures = per_task(result, mode)
    if mode != "local":
        figures.round_trips_per_task = {k: v / tasks for k, v in sorted(trips.items())}
    return figures


def best(runs: list[ModeFigures]) -> ModeFigures:
    return min(runs, key=lambda figures: figures.wall_per_task_s)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.remote_mode", description=__doc__)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--turns", type=int, default=2, help="runs of each mode, alternating")
    parser.add_argument("--results", type=Path, default=RESULTS / "remote.json")
    parser.add_argument(
        "--local-only",
        action="store_true",
        help="local mode alone (to set one code's local mode beside another's)",
    )
    args = parser.parse_args()
    modes = ("local",) if args.local_only else ("local", "remote")
    runs: dict[str, list[ModeFigures]] = {mode: [] for mode in modes}
    with scratch_installation("bench-remote-") as (root, installation):
        for turn, mode in alternating(modes, args.turns):
            figures = one_turn(installation, root / f"{mode}-{turn}", args.tasks, mode)
            runs[mode].append(figures)
            print(f"turn {turn + 1} {mode}: {figures.wall_per_task_s:.3f} s per task")
    print(f"\nN={args.tasks}, concurrency 1, review none; best of {args.turns} turns each")
    if args.local_only:
        local = best(runs["local"])
        print(f"local: {local.wall_per_task_s:.3f} s per task, steps {local.steps_per_task_ms}")
        return
    local, remote = best(runs["local"]), best(runs["remote"])
    print(f"{'per task':<22} {'local':>10} {'remote':>10} {'remote - local':>15} {'ratio':>7}")
    rows = [("wall time (s)", local.wall_per_task_s, remote.wall_per_task_s, 1.0)]
    rows += [
        (f"{name} (ms)", local.steps_per_task_ms.get(name, 0.0), value, 1.0)
        for name, value in remote.steps_per_task_ms.items()
    ]
    for label, there, here, _ in rows:
        ratio = here / there if there else float("nan")
        print(f"{label:<22} {there:>10.3f} {here:>10.3f} {here - there:>15.3f} {ratio:>7.2f}")
    print(f"remote round trips per task: {remote.round_trips_per_task}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(
            {"tasks": args.tasks, "turns": {k: [asdict(f) for f in v] for k, v in runs.items()}},
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten: {args.results}")


if __name__ == "__main__":
    main()
