"""The forge steps without Temporal (autopilot/steps/forge.py): the pull request's branch,
title and body, the gate's decision, the forge's feedback as a review, and the watch's
backoff and rate-limit waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import pytest

from autopilot import notifications as messages
from autopilot.forge.interface import ForgeRateLimited, ForgeUnavailable
from autopilot.models import (
    AgentRun,
    CheckResult,
    ForgeCheck,
    ForgeGate,
    ForgeSettings,
    GateInput,
    PersonReview,
    PullRequestRef,
    ReviewComment,
    ReviewerFinding,
    ReviewerVerdict,
    ReviewResult,
    SessionState,
    SessionStatus,
    Task,
    TaskResult,
    TaskState,
    TaskStatus,
)
from autopilot.notifications import delivery
from autopilot.operate.progress_view import task_line
from autopilot.steps import forge as steps

T = TypeVar("T")


def _task() -> Task:
    return Task(id="2", title="Add the parser", batch=1, body="Write parse() in src/p.py.", line=3)


def _gate(**changes: object) -> ForgeGate:
    base = ForgeGate(state="open", head_sha="a" * 40, mergeable_state="clean")
    return base.model_copy(update=changes)


def _request(**forge: object) -> GateInput:
    return GateInput(forge=ForgeSettings(kind="github", **forge), number=7, head_sha="a" * 40)


def test_head_branch_is_beside_the_task_refs() -> None:
    assert steps.head_branch("s-1", "2.1") == "autopilot-pr/s-1/2.1"
    assert steps.head_branch("s 1", "x/y").count("/") == 2


def test_body_has_the_task_review_checks_cost_trailers_and_link() -> None:
    review = ReviewResult(
        round=1,
        approved=True,
        summary="Looks right.",
        checks=[CheckResult(command="pytest -q", passed=True, duration_s=3.2)],
        verdict=ReviewerVerdict(
            verdict="approve",
            summary="Looks right.",
            findings=[ReviewerFinding(message="name is long", file="src/p.py", line=4)],
        ),
        reviewer_cost_usd=0.5,
    )
    result = TaskResult(
        task_id="2",
        outcome="ready",
        agent_runs=[AgentRun(session_id="x", attempt=1, is_error=False, cost_usd=1.25, turns=9)],
        reviews=[review],
    )
    text = steps.body(_task(), result, "sess", "http://127.0.0.1:8233")
    assert "Write parse() in src/p.py." in text
    assert "Looks right." in text and "`src/p.py:4` name is long" in text
    assert "| `pytest -q` | passed (3 s) |" in text
    assert "Cost $1.75, 9 agent turns, 1 review round(s)." in text
    assert "Autopilot-Session: sess\nAutopilot-Task: 2" in text
    assert "http://127.0.0.1:8233/namespaces/default/workflows/sess" in text
    assert steps.title(_task()) == "Task 2: Add the parser"


def test_merge_message_carries_the_trailers() -> None:
    head, message = steps.merge_message("squash", _task(), "sess", "a" * 40)
    assert head == "Task 2: Add the parser"
    assert message == (
        f"Autopilot-Session: sess\nAutopilot-Task: 2\nAutopilot-Squashed: {'a' * 40}\n"
    )
    head, message = steps.merge_message("merge", _task(), "sess", "a" * 40)
    assert head == "Merge task 2: Add the parser" and "Squashed" not in message


def test_gate_decisions() -> None:
    request = _request(require_approval=1)
    assert steps.decide(_gate(state="merged"), request).decision == "merged"  # type: ignore[union-attr]
    closed = steps.decide(_gate(state="closed", closed_by="ana"), request)
    assert closed is not None and closed.decision == "closed" and "ana" in closed.message
    pending = [ForgeCheck(name="ci", state="pending", required=True)]
    assert steps.decide(_gate(checks=pending), request) is None
    waiting = steps.decide(_gate(), request)
    assert waiting is not None and waiting.decision == "waiting_review"
    said = request.model_copy(update={"said_waiting": True})
    assert steps.decide(_gate(), said) is None  # said once: watched on quietly
    approved = _gate(approvals=1)
    assert steps.decide(approved, request).decision == "merge"  # type: ignore[union-attr]
    dirty = steps.decide(_gate(approvals=1, mergeable_state="dirty"), request)
    assert dirty is not None and dirty.decision == "conflict"
    assert steps.decide(_gate(approvals=1, mergeable_state="unknown"), request) is None
    assert steps.decide(_gate(approvals=1, queued=True), request) is None
    # A check that is not required decides nothing.
    optional = [ForgeCheck(name="lint", state="failure", required=False)]
    assert steps.decide(_gate(approvals=1, checks=optional), request).decision == "merge"  # type: ignore[union-attr]


def test_failing_check_and_changes_requested_are_feedback() -> None:
    failing = ForgeCheck(
        name="ci", state="failure", conclusion="failure", required=True, log_excerpt="E1 boom"
    )
    review = PersonReview(
        review_id=11,
        author="ana",
        state="changes_requested",
        body="Please rename.",
        comments=[ReviewComment(body="off by one", path="src/p.py", line=12)],
    )
    verdict = steps.decide(_gate(checks=[failing], reviews=[review]), _request())
    assert verdict is not None and verdict.decision == "feedback"
    assert verdict.reviews == [11]
    assert verdict.feedback is not None
    findings = verdict.feedback.findings
    assert findings[0].source == "ci" and "`ci` concluded failure" in findings[0].message
    assert "E1 boom" in findings[0].message
    assert [(f.source, f.file, f.line) for f in findings[1:]] == [
        ("person", None, None),
        ("person", "src/p.py", 12),
    ]
    assert "ana requested changes" in verdict.message
    # A review already acted on is not feedback again.
    seen = _request().model_copy(update={"seen_reviews": [11]})
    assert steps.decide(_gate(reviews=[review]), seen).decision == "merge"  # type: ignore[union-attr]


class _Forge:
    """Answers a list of gates (or errors) in order, the last one from then on."""

    def __init__(self, answers: list[ForgeGate | Exception]) -> None:
        self.answers = answers
        self.reads = 0

    def gate(self, number: int, require_approval: int) -> ForgeGate:
        answer = self.answers[min(self.reads, len(self.answers) - 1)]
        self.reads += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def _watch(forge: _Forge, request: GateInput) -> tuple[object, list[float]]:
    slept: list[float] = []

    async def call(fn: Callable[[], T]) -> T:
        return fn()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    verdict = asyncio.run(steps.watch(forge, request, call, sleep))  # type: ignore[arg-type]
    return verdict, slept


def test_watch_backs_off_and_waits_out_rate_limits() -> None:
    pending = _gate(checks=[ForgeCheck(name="ci", state="pending", required=True)])
    forge = _Forge(
        [pending, pending, pending, ForgeRateLimited("secondary", 42.0), pending, _gate()]
    )
    verdict, slept = _watch(forge, _request(poll_s=1.0, poll_max_s=3.0))
    assert getattr(verdict, "decision", None) == "merge"
    # Unchanged gate: 1, 2, then capped at 3; the rate limit's own wait; unchanged again.
    assert slept == [1.0, 2.0, 3.0, 42.0, 3.0]


def test_watch_lets_an_unavailable_forge_fail_the_attempt() -> None:
    with pytest.raises(ForgeUnavailable):
        _watch(_Forge([ForgeUnavailable("502")]), _request())


def test_the_pull_request_in_status_lines_and_notifications() -> None:
    pull = PullRequestRef(number=12, url="https://github.com/o/r/pull/12", head_branch="b")
    entry = TaskStatus(
        id="2",
        title="Add the parser",
        batch=1,
        state=TaskState.MERGING,
        pull_request=pull,
        forge_phase="waiting for review (waiting for 1 approving review(s))",
    )
    line = task_line(entry)
    assert "pull request #12 https://github.com/o/r/pull/12 (waiting for review" in line
    status = SessionStatus(
        id="s",
        status=SessionState.RUNNING,
        repo="https://github.com/o/r.git",
        plan_path="/p/plan.md",
        target_branch="main",
        concurrency=1,
        tasks=[entry],
    )
    waiting = messages.pull_request_event(status, entry, "pull_request_waiting")
    assert waiting is not None and waiting.pull_request_url == pull.url
    text = delivery.with_text(waiting).text
    assert "Task 2 (Add the parser) waits for people's approval on pull request #12" in text
    assert pull.url in text
    bare = entry.model_copy(update={"pull_request": None})
    assert messages.pull_request_event(status, bare, "pull_request_opened") is None


def test_our_pull_request_branches_name_their_session_and_task() -> None:
    assert steps.task_of_head("autopilot-pr/s-1/2.1") == ("s-1", "2.1")
    assert steps.task_of_head("refs/heads/autopilot-pr/s-1/3") == ("s-1", "3")
    assert steps.task_of_head("autopilot/s-1/3") is None
    assert steps.task_of_head("autopilot-pr/s-1/a/b") is None
    assert steps.task_of_head("feature/x") is None
