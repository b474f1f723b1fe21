"""A long fuzz run of the egress proxy (the same strategies and property as
tests/test_egress_fuzz.py, tests/hostile_requests.py), printing what it covered.

    .venv/bin/python -m bench.egress_fuzz --examples 20000

Exit code 1 (and the falsifying example) when something was dialled that should not have been.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

import structlog
from hypothesis import HealthCheck, given, seed, settings

from tests.hostile_requests import Attempt, attempts, rig_on


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20000, help="how many to try")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default random)")
    args = parser.parse_args(argv)
    # Each refusal is logged as a warning: tens of thousands of them would bury the summary.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    loop = asyncio.new_event_loop()
    started = time.monotonic()
    failed = False
    try:
        with rig_on(loop) as rig:

            @settings(
                max_examples=args.examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(attempts)
            def property_holds(attempt: Attempt) -> None:
                loop.run_until_complete(rig.run(attempt))

            if args.seed is not None:
                property_holds = seed(args.seed)(property_holds)
            try:
                property_holds()
            except AssertionError as err:
                failed = True
                print(f"PROPERTY BROKEN: {err}", file=sys.stderr)
    finally:
        loop.close()
    took = time.monotonic() - started
    runs = sum(v for k, v in rig.seen.items() if k.startswith("answer "))
    print(
        f"egress fuzz: {runs} connections in {took:.1f}s, property {'BROKEN' if failed else 'held'}"
    )
    for what, count in sorted(rig.seen.items()):
        print(f"  {count:7d}  {what}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
