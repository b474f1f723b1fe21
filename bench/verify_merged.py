"""What `[review] verify_merged` costs: the same plan of independent tasks at concurrency 4
with review `checks`, verification on and off, the two taking turns on one installation
(worker, sandbox, embedded Temporal, the real claude CLI and the scripted model).

    .venv/bin/python -m bench.verify_merged                    # 16 tasks, a 1 s check
    .venv/bin/python -m bench.verify_merged --tasks 8 --check-seconds 0 --turns 1

With four tasks in flight, most branches reach the merge queue after the target moved: each of
those is merged with the target in its workspace and checked again before it merges, while
the session's merge lock is held, so the merges wait for one another's checks. The check here
sleeps `--check-seconds` (a test suite's time) after a tiny bit of work in the sandbox. Per
run: the wall time, how many merges were verified, and the time the verify_merge activities
and the merges took (from the histories). Each setting's best turn is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.pipeline import Installation, alternating, scratch_installation
from bench.plans import plan_text
from bench.repos import git, make_repo

RESULTS = Path(__file__).parent / "results"
CONCURRENCY = 4


@dataclass
class Run:
    verify_merged: bool
    wall_s: float
    verified: int  # verify_merge activities: merges checked with the moved target
    verify_s: float  # their time, summed
    merge_s: float  # merge_task activities' time, summed
    checks_s: float  # the review rounds' checks (run_checks), summed


def configure(repo: Path, check_seconds: float, verify_merged: bool) -> None:
    check = f"sh -c 'sleep {check_seconds:g}'"
    (repo / ".autopilot.toml").write_text(
        f"[review]\nchecks = {json.dumps([check])}\n"
        f"verify_merged = {'true' if verify_merged else 'false'}\n"
    )
    git(repo, "add", ".autopilot.toml")
    git(repo, "commit", "-q", "-m", "bench: checks")


def one_turn(
    installation: Installation, root: Path, tasks: int, check_seconds: float, verify: bool
) -> Run:
    root.mkdir(parents=True)
    plan = root / "plan.md"
    plan.write_text(plan_text(tasks, batch_size=tasks))
    repo = make_repo(root / "repo")
    configure(repo, check_seconds, verify)
    result = installation.run(
        plan, repo, tasks, "checks", CONCURRENCY, 60.0 * (tasks + 5) + 4 * tasks * check_seconds
    )
    if not result.ok:
        sys.exit(f"verify_merged={verify}: the session did not merge every task ({result.error})")
    history = result.history
    return Run(
        verify_merged=verify,
        wall_s=result.wall_s,
        verified=history.activity_count.get("verify_merge", 0),
        verify_s=history.activity_s.get("verify_merge", 0.0),
        merge_s=history.activity_s.get("merge_task", 0.0),
        checks_s=history.activity_s.get("run_checks", 0.0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.verify_merged", description=__doc__)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--check-seconds", type=float, default=1.0, help="the check's sleep")
    parser.add_argument("--turns", type=int, default=2, help="runs of each setting, alternating")
    parser.add_argument("--results", type=Path, default=RESULTS / "verify_merged.json")
    args = parser.parse_args()
    runs: dict[bool, list[Run]] = {True: [], False: []}
    with scratch_installation("bench-verify-") as (root, installation):
        for turn, verify in alternating((True, False), args.turns):
            folder = root / f"{'on' if verify else 'off'}-{turn}"
            run = one_turn(installation, folder, args.tasks, args.check_seconds, verify)
            runs[verify].append(run)
            print(
                f"turn {turn + 1} verify_merged={'on' if verify else 'off'}: "
                f"{run.wall_s:.1f} s, {run.verified} merges verified"
            )
    on = min(runs[True], key=lambda run: run.wall_s)
    off = min(runs[False], key=lambda run: run.wall_s)
    print(
        f"\nN={args.tasks}, concurrency {CONCURRENCY}, review checks (a {args.check_seconds:g} s "
        f"check); best of {args.turns} turns each"
    )
    print(f"{'':<24} {'on':>9} {'off':>9}")
    print(f"{'wall time (s)':<24} {on.wall_s:>9.1f} {off.wall_s:>9.1f}")
    print(f"{'per task (s)':<24} {on.wall_s / args.tasks:>9.2f} {off.wall_s / args.tasks:>9.2f}")
    print(f"{'merges verified':<24} {on.verified:>9} {off.verified:>9}")
    print(f"{'verify_merge (s, sum)':<24} {on.verify_s:>9.1f} {off.verify_s:>9.1f}")
    print(f"{'merge_task (s, sum)':<24} {on.merge_s:>9.1f} {off.merge_s:>9.1f}")
    print(f"{'review checks (s, sum)':<24} {on.checks_s:>9.1f} {off.checks_s:>9.1f}")
    print(f"on / off: {on.wall_s / off.wall_s:.2f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(
            {
                "tasks": args.tasks,
                "concurrency": CONCURRENCY,
                "check_seconds": args.check_seconds,
                "runs": {
                    "on": [asdict(run) for run in runs[True]],
                    "off": [asdict(run) for run in runs[False]],
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten: {args.results}")


if __name__ == "__main__":
    main()
