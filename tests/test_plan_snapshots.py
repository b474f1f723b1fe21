"""The plan as a snapshot under the state dir: what the session keeps is only its outline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from autopilot.models import AgentSettings, TaskRequest
from autopilot.plan import parse_plan
from autopilot.plan import snapshots as plan_snapshots

PLAN = """# Plan

Context for every task.

## Batch 1: First

The batch's own words.

### Task 1.1: One

Body of one.

### Task 1.2: Two

Body of two.
"""


def parsed(path: Path) -> tuple[str, TaskRequest]:
    path.write_text(PLAN)
    plan = parse_plan(PLAN, str(path))
    plan.sha256 = hashlib.sha256(PLAN.encode()).hexdigest()
    outline = plan_snapshots.outline(plan)
    task = outline.batches[0].tasks[1]
    request = TaskRequest(
        session_id="s",
        repo="/repo",
        target_branch="main",
        state_dir=str(path.parent / "state"),
        task=task,
        plan_sha256=plan.sha256,
        plan_path=str(path),
        agent=AgentSettings(),
    )
    plan_snapshots.save(path.parent / "state", plan)
    return plan.sha256, request


def test_the_outline_has_no_texts_and_the_activity_reads_its_own_task(tmp_path: Path) -> None:
    sha, request = parsed(tmp_path / "plan.md")
    assert request.task.body == "" and request.task.title == "Two"

    full = plan_snapshots.full_request(request)
    assert full.task.body.strip() == "Body of two."
    assert full.plan_context.strip().endswith("Context for every task.")
    assert full.batch_description.strip() == "The batch's own words."
    assert plan_snapshots.snapshot_path(tmp_path / "state", sha).is_file()


def test_a_lost_snapshot_is_made_again_from_the_unchanged_plan(tmp_path: Path) -> None:
    sha, request = parsed(tmp_path / "plan.md")
    plan_snapshots.snapshot_path(tmp_path / "state", sha).unlink()
    assert plan_snapshots.full_request(request).task.body.strip() == "Body of two."


@pytest.mark.reliability(
    "the plan snapshot is gone and the plan file was edited since the session parsed it",
    "SnapshotMissing naming the file and what to do; never another text than the one parsed",
)
def test_a_lost_snapshot_of_an_edited_plan_is_an_error(tmp_path: Path) -> None:
    sha, request = parsed(tmp_path / "plan.md")
    plan_snapshots.snapshot_path(tmp_path / "state", sha).unlink()
    (tmp_path / "plan.md").write_text(PLAN.replace("Body of two.", "Something else."))
    with pytest.raises(plan_snapshots.SnapshotMissing, match="has changed since the session"):
        plan_snapshots.full_request(request)


def test_an_inline_request_is_used_as_it_is(tmp_path: Path) -> None:
    _, request = parsed(tmp_path / "plan.md")
    inline = request.model_copy(update={"plan_sha256": ""})
    assert plan_snapshots.full_request(inline) is inline
