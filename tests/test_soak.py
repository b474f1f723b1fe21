"""The soak (bench/soak.py) at a small size: random SIGKILLs of the worker, the Temporal
server and the agents during one session, judged by git."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import KINDS, SoakConfig, report, run_soak


@pytest.mark.chaos
@pytest.mark.e2e
@pytest.mark.reliability(
    "random SIGKILLs of worker, server and agents during a session",
    "seeded soak judged by git: every task merged once, nothing left",
)
@pytest.mark.timeout(400)
def test_soak_random_kills_judged_by_git(tmp_path: Path) -> None:
    # The kinds taken in turn so that each is done twice in six kills; the model's second
    # per turn and gaps of 2-5 s keep agents running when the kills land.
    config = SoakConfig(
        tasks=6,
        kills=6,
        seed=11,
        batches=2,
        concurrency=2,
        turn_delay=1.0,
        review="agent",
        schedule="cycle",
        gap=(2.0, 5.0),
    )
    result = run_soak(config, tmp_path / "soak", say=False)
    shown = report(result)
    assert result.verdict.ok, shown
    assert len(result.kills) == config.kills, shown
    done = result.kinds_done()
    assert all(done[kind] >= 1 for kind in KINDS), shown
