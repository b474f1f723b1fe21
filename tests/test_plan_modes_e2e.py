"""End to end: a plan written for the later pipeline (tests/plans/later_pipeline.md) runs
unchanged: a plan-level and batch-level `**Execution Mode:** parallel`, a `sequential` batch at
--concurrency 3 that runs one task at a time, `**Dependencies:** None`, bold fields autopilot
does not read, and "Create `path`:" tasks. One session, which also meets the same command run
again with other settings while it runs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from autopilot_testing import HoldFirst, ScriptedModel
from tests.harness import autopilot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

PLAN = Path(__file__).parent / "plans" / "later_pipeline.md"
FILES = {
    "src/alpha.py": "ALPHA = 1\n",
    "src/beta.py": "BETA = 2\n",
    "steps/one.txt": "one\n",
    "steps/two.txt": "two\n",
    "steps/three.txt": "three\n",
}
SEQUENTIAL = ["2.1", "2.2", "2.3"]


@pytest.mark.reliability(
    "the same command run again with other settings while the session runs",
    "real session: --max-turns 5 is refused with exit 2 naming the setting, nothing started; "
    "--concurrency 2 attaches and says how to apply it",
)
def test_later_pipeline_plan_runs_unchanged(tmp_path: Path, repo: Path) -> None:
    hold = HoldFirst()
    command = [str(PLAN), "--repo", str(repo), "--concurrency", "3", "--review", "none"]
    with (
        ScriptedModel(hold) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(PLAN, repo, *command[3:])
        model.wait_for(lambda c: c.turn == 0, timeout=120)  # an agent runs, held

        refused = installation.starter(*command, "--max-turns", "5")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        assert f"session {session} is running with other settings" in refused.stderr
        assert "  --max-turns: the session runs with 40, this command gives 5" in refused.stderr

        other = installation.starter(
            *command[:3], "--concurrency", "2", "--review", "none", "--detach"
        )
        assert other.returncode == 0, other.stdout + other.stderr
        assert f"Attached to running session {session}" in other.stdout
        assert f"to change it: python starter.py concurrency {session} 2" in other.stdout

        hold.release.set()
        done = installation.starter(*command)  # attaches quietly and follows to the end
        assert done.returncode == 0, done.stdout + done.stderr
        assert "note:" not in done.stdout

        for name, content in FILES.items():
            assert (repo / name).read_text() == content, name
        status = installation.status(session)
        assert status.tasks_completed == 5
        assert [(b.number, b.sequential, b.execution_place) for b in status.batches] == [
            (1, False, "local"),  # where each batch runs: its own place, else the session's
            (2, True, "local"),
        ]
        # The sequential batch at --concurrency 3: in plan order, each task workflow started
        # only after the one before it had ended (merged).
        steps = [task for task in status.tasks if task.id in SEQUENTIAL]
        spans = sorted((t.started_at, t.completed_at, t.id) for t in steps if t.completed_at)
        assert [task_id for _, _, task_id in spans] == SEQUENTIAL
        for (_, ended, before), (started, _, after) in itertools.pairwise(spans):
            assert started is not None and started >= ended, (before, ended, after, started)

        # The agent got the fields autopilot does not read, as written.
        prompts = {c.task()[0]: c.prompt for c in model.snapshot() if c.task() and c.turn == 0}  # type: ignore[index]
        assert "**Target Efficiency:** 100%" in prompts["2.1"]
        assert "**Implementation:**" in prompts["1.1"] and "**Expected:**" in prompts["1.1"]

        shown = installation.starter("status", session)
        assert shown.returncode == 0, shown.stderr
        assert "  Batch 1 (Foundations): parallel, local" in shown.stdout
        assert "  Batch 2 (One at a time): sequential, local" in shown.stdout
