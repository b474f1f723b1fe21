"""A session's status stays small: it travels in every query, update and continue-as-new.
The bench's payload section measures a real 1,000-task session (bench/README.md); this holds
the record's shape to it without running one."""

from __future__ import annotations

from datetime import UTC, datetime

from autopilot.models import NotifyFailure, SessionState, SessionStatus, TaskState, TaskStatus
from autopilot.plan import BLOB_SIZE_LIMIT, encoded_size
from workflows.notifications import NOTIFY_ERROR_CHARS, NOTIFY_FAILURES_KEPT

SESSION = "repo-plan-all-a498a63c"


def finished(batch: int, index: int) -> TaskStatus:
    """A merged, reviewed task as the session records it."""
    task_id = f"{batch}.{index}"
    now = datetime(2026, 12, 5, 4, 14, 36, 927282, tzinfo=UTC)
    return TaskStatus(
        id=task_id,
        title=f"Write file {task_id}",
        batch=batch,
        state=TaskState.MERGED,
        workflow_id=f"{SESSION}/task-{task_id}",
        branch=f"autopilot/{SESSION}/{task_id}",
        attempts=1,
        commit_count=1,
        merge_sha="0123456789abcdef0123456789abcdef01234567",
        started_at=now,
        completed_at=now,
        cost_usd=0.1234567,
        input_tokens=57_000,
        output_tokens=300,
        turns=3,
        review_rounds=1,
        setup="from cache",  # [workspace] setup: a few words, its logs in `status --json`
        revision=1234,
    )


def test_an_entry_leaves_out_what_is_at_its_default_and_reads_back_whole() -> None:
    bare = TaskStatus(id="1", title="t", batch=1)
    assert bare.model_dump() == {"id": "1", "title": "t", "batch": 1, "state": "pending"}
    entry = finished(57, 3)
    assert TaskStatus.model_validate_json(entry.model_dump_json()) == entry
    assert "transcripts" not in entry.model_dump_json() and "lost_runs" not in entry.model_dump()


def test_a_thousand_task_status_is_under_a_quarter_of_the_payload_limit() -> None:
    status = SessionStatus(
        id=SESSION,
        status=SessionState.RUNNING,
        repo="/home/someone/projects/repo",
        plan_path="/home/someone/projects/plan.md",
        target_branch="main",
        concurrency=4,
        tasks=[finished(batch, index) for batch in range(1, 101) for index in range(1, 11)],
        notify_failures=[
            NotifyFailure(
                event="task_failed",
                target="https://hooks.example.com",
                error="x" * NOTIFY_ERROR_CHARS,
                task_id="57.3",
                at=datetime(2026, 12, 5, 4, 14, 36, tzinfo=UTC),
            )
        ]
        * NOTIFY_FAILURES_KEPT,
    )
    assert encoded_size(status) < BLOB_SIZE_LIMIT // 4
