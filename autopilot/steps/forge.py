"""A task's steps on the forge as plain functions, tested without Temporal: the pull request's
branch, title and body; reading its gate (what decides, and the forge's feedback as a review
for the agent); watching it with backoff; a forge call that waits out rate limits.

The session workflow calls the pure ones (title, body, messages); the forge activities
(activities/forge.py) call the rest with the worker's own client and clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from autopilot.forge.interface import Forge, ForgeRateLimited
from autopilot.git.names import (
    SESSION_TRAILER,
    SQUASHED_TRAILER,
    TASK_TRAILER,
    message_with_trailers,
    safe_component,
)
from autopilot.models import (
    Finding,
    ForgeCheck,
    ForgeGate,
    GateInput,
    GateVerdict,
    MergeStyle,
    PersonReview,
    ReviewResult,
    Task,
    TaskResult,
)

T = TypeVar("T")
# Where each pull request's branch lives on the forge: beside, never under, the task refs
# (autopilot/git/task_refs.py), so nothing reads it as a task branch of its own.
HEAD_PREFIX = "autopilot-pr/"
EXCERPT_LIMIT = 3000  # a failing check's log excerpt, for the agent
BODY_TEXT_LIMIT = 20_000  # the task's text in the body (GitHub takes 65,536 characters in all)
# mergeable_state values: the merge may go ahead; the base moved under the branch.
MERGEABLE = frozenset({"clean", "unstable", "has_hooks"})
BASE_MOVED = frozenset({"dirty", "behind"})

Call = Callable[[Callable[[], T]], Awaitable[T]]
Sleep = Callable[[float], Awaitable[None]]


def head_branch(session_id: str, task_id: str) -> str:
    """The pull request's branch on the forge: `autopilot-pr/<session>/<task>`."""
    return f"{HEAD_PREFIX}{safe_component(session_id)}/{safe_component(task_id)}"


def task_of_head(ref: str) -> tuple[str, str] | None:
    """(session id, task id) of a pull request's branch (`head_branch`), or None for a branch
    that is not one of ours (a person's pull request). Ids that safe_component changed are
    not found: their pull requests are read by the watch's polls alone."""
    rest = ref.removeprefix("refs/heads/")
    if not rest.startswith(HEAD_PREFIX):
        return None
    session, _, task = rest.removeprefix(HEAD_PREFIX).partition("/")
    if not session or not task or "/" in task:
        return None
    return session, task


def title(task: Task) -> str:
    return f"Task {task.id}: {task.title}"


def merge_message(style: MergeStyle, task: Task, session_id: str, head_sha: str) -> tuple[str, str]:
    """The merge commit's title and message on the forge: the task, and our trailers, so a
    session finds its merges on the target again as it finds its own (a squash names the head
    it stands for, as the pipeline's own squash does: autopilot/git/merge.py)."""
    head = title(task) if style == "squash" else f"Merge task {task.id}: {task.title}"
    trailers = message_with_trailers(head, session_id, task.id).split("\n\n", 1)[1]
    if style == "squash":
        trailers += f"{SQUASHED_TRAILER}: {head_sha}\n"
    return head, trailers


def body(task: Task, result: TaskResult, session_id: str, ui_url: str) -> str:
    """The pull request's description: the task, the pipeline's review, what it cost, where
    the session is."""
    parts = ["## Task", "", _clip(task.body.strip() or task.title, BODY_TEXT_LIMIT), ""]
    review = result.reviews[-1] if result.reviews else None
    if review is not None:
        parts += ["## The pipeline's review", "", review.summary.strip() or "(no summary)", ""]
        for finding in (review.verdict.findings if review.verdict else [])[:20]:
            where = f"`{finding.file}:{finding.line}` " if finding.file and finding.line else ""
            parts.append(f"- ({finding.severity}) {where}{_one_line(finding.message)}")
        if review.checks:
            parts += ["", "| Check | Result |", "| --- | --- |"]
            for check in review.checks:
                outcome = "passed" if check.passed else "failed"
                parts.append(f"| `{_cell(check.command)}` | {outcome} ({check.duration_s:.0f} s) |")
        parts.append("")
    cost = sum(run.cost_usd for run in result.agent_runs)
    cost += sum(r.reviewer_cost_usd for r in result.reviews)
    turns = sum(run.turns for run in result.agent_runs)
    rounds = len(result.reviews)
    parts.append(f"Cost ${cost:.2f}, {turns} agent turns, {rounds} review round(s).")
    if ui_url:
        parts += ["", f"Session in the Temporal Web UI: {ui_url}/namespaces/default/workflows/"]
        parts[-1] += session_id
    parts += ["", f"{SESSION_TRAILER}: {session_id}", f"{TASK_TRAILER}: {task.id}", ""]
    return "\n".join(parts)


def decide(gate: ForgeGate, request: GateInput) -> GateVerdict | None:
    """What the forge's gate says now, or None: keep watching."""
    if gate.state == "merged":
        return GateVerdict(decision="merged", gate=gate)
    if gate.state == "closed":
        who = gate.closed_by or "someone"
        return GateVerdict(decision="closed", gate=gate, message=f"closed by {who}")
    asked = [
        review
        for review in gate.reviews
        if review.state == "changes_requested" and review.review_id not in request.seen_reviews
    ]
    failed = [check for check in gate.checks if check.required and check.state == "failure"]
    if asked or failed:
        return GateVerdict(
            decision="feedback",
            gate=gate,
            feedback=feedback(gate, failed, asked),
            reviews=[review.review_id for review in asked],
            message=feedback_summary(failed, asked),
        )
    if gate.queued or any(check.required and check.state == "pending" for check in gate.checks):
        return None
    if gate.approvals < request.forge.require_approval:
        if request.said_waiting:
            return None
        needed = request.forge.require_approval - gate.approvals
        return GateVerdict(
            decision="waiting_review",
            gate=gate,
            message=f"waiting for {needed} approving review(s)",
        )
    if gate.mergeable_state in BASE_MOVED:
        return GateVerdict(
            decision="conflict", gate=gate, message=f"mergeable state {gate.mergeable_state}"
        )
    if gate.mergeable_state in MERGEABLE:
        return GateVerdict(decision="merge", gate=gate)
    return None  # unknown (being computed), blocked by something else: read it again


def feedback(gate: ForgeGate, failed: list[ForgeCheck], asked: list[PersonReview]) -> ReviewResult:
    """The forge's findings as a review the agent's fix round reads: each failing required
    check with its conclusion and log excerpt, each person's request with its comments."""
    findings: list[Finding] = []
    for check in failed:
        said = f"the required check `{check.name}` concluded {check.conclusion or 'failure'}"
        excerpt = check.log_excerpt.strip()
        if excerpt:
            said += f"; its log ends:\n{_clip(excerpt, EXCERPT_LIMIT)}"
        findings.append(Finding(source="ci", message=said))
    for review in asked:
        if review.body.strip():
            findings.append(Finding(source="person", message=f"{review.author}: {review.body}"))
        for comment in review.comments:
            findings.append(
                Finding(
                    source="person",
                    message=f"{review.author}: {comment.body}",
                    file=comment.path,
                    line=comment.line,
                )
            )
        if not review.body.strip() and not review.comments:
            findings.append(Finding(source="person", message=f"{review.author} requested changes"))
    return ReviewResult(
        round=0,
        approved=False,
        summary=f"the pull request's head {gate.head_sha[:12]}: {feedback_summary(failed, asked)}",
        findings=findings,
    )


def feedback_summary(failed: list[ForgeCheck], asked: list[PersonReview]) -> str:
    said = [f"required check `{check.name}` {check.conclusion or 'failed'}" for check in failed]
    said += [f"{review.author} requested changes" for review in asked]
    return "; ".join(said)


async def forge_call(call: Call[T], sleep: Sleep, fn: Callable[[], T]) -> T:
    """`fn` run by `call` (in a thread), waiting out each rate limit the forge answers: a
    rate limit never fails a task."""
    while True:
        try:
            return await call(fn)
        except ForgeRateLimited as limited:
            await sleep(max(limited.wait_s, 1.0))


async def watch(
    forge: Forge, request: GateInput, call: Call[ForgeGate], sleep: Sleep
) -> GateVerdict:
    """Read the gate until it decides: first after poll_s, then backing off to poll_max_s,
    and back to poll_s whenever the pull request changed (a new head, a check, a review)."""
    settings = request.forge
    wait, last = settings.poll_s, ""
    while True:
        gate = await forge_call(
            call, sleep, lambda: forge.gate(request.number, settings.require_approval)
        )
        verdict = decide(gate, request)
        if verdict is not None:
            return verdict
        seen = gate.model_dump_json(exclude={"mergeable_state"})
        wait = settings.poll_s if seen != last else min(wait * 2, settings.poll_max_s)
        last = seen
        await sleep(wait)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|").replace("`", "'")
