"""A task's go in its session: the result of its task workflow, its merge, or why it did not
start. Shared by the session (workflows/session.py) and forge mode's landing
(workflows/pull_request.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from autopilot.error_types import SETUP_ERRORS
    from autopilot.models import CheckResult, MergeResult, ReviewResult, TaskResult, TaskState

# A task stopped without a result (skipped, cancelled, its pull request closed): its state, why.
Stopped = tuple[TaskState, str]


@dataclass(frozen=True)
class TaskGo:
    """Which go of the task workflow: the first (all defaults); a conflict round; a
    merged-checks round (with the checks that failed on the target's new commits); or a
    round the forge's feedback asked for. `round_id` names a forge round's workflow id."""

    conflict: bool = False
    merged_checks: list[CheckResult] = field(default_factory=list)
    feedback: ReviewResult | None = None
    round_id: str = ""

    def names(self) -> tuple[str, str]:
        """Its part of the task workflow's id (a forge round's is `round_id`: each has its
        own), and its name in the workflow's summary."""
        if self.merged_checks:
            return self.round_id or "/merged-checks", " — merged-checks round"
        if self.conflict:
            return self.round_id or "/conflict", " — conflict round"
        if self.feedback is not None:
            return self.round_id, " — the forge's feedback round"
        return self.round_id, ""


FIRST_GO = TaskGo()


@dataclass
class TaskRun:
    """One go at a task: the result of its task workflow, and the merge when its branch was
    ready; or the state it settles in and why, when no result says it (it did not start; its
    pull request was closed by a person)."""

    result: TaskResult | None = None
    merge: MergeResult | None = None
    stopped: Stopped | None = None

    @property
    def ready(self) -> bool:
        return self.result is not None and self.result.outcome == "ready"

    @property
    def target_moved_under(self) -> bool:
        """The branch no longer merges, or merges but fails the checks with the target."""
        return self.merge is not None and bool(self.merge.conflict or self.merge.failed_checks)

    @property
    def setup_error(self) -> str | None:
        """The setup error the task met (every other task would meet it too)."""
        if self.result is None or self.result.error_type not in SETUP_ERRORS:
            return None
        return self.result.error_type
