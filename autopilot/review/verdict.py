"""One review round's verdict from its parts: the repo's checks and the agent reviewer.

Pure and deterministic: the task workflow calls it directly.
"""

from __future__ import annotations

from autopilot.infra import names, normalise
from autopilot.models import CheckResult, Finding, ReviewerRunResult, ReviewResult, Task
from autopilot.review.check_excerpt import excerpt, strip_ansi

TAIL_IN_FINDING = 1500  # characters of a failed check's output carried into the finding


def check_findings(checks: list[CheckResult]) -> list[Finding]:
    findings = []
    for check in checks:
        if check.passed:
            continue
        how = "timed out" if check.timed_out else f"exited with {check.exit_code}"
        if check.exit_code is None and not check.timed_out:
            how = "could not start"
        log = f" (log: {check.output_path})" if check.output_path else ""
        shown = "".join(f"\n  {line}" for line in excerpt(check.output_tail))
        message = f"check `{check.command}` {how}{log}{shown}"
        if check.output_tail:  # the end of the output too, for the agent's fix round
            message += f"\n\n{strip_ansi(check.output_tail)[-TAIL_IN_FINDING:]}"
        findings.append(Finding(source="check", message=message))
    return findings


def finding_headline(finding: Finding) -> str:
    """What a person reads of a finding: a check's lines up to the first blank one (the
    command, how it ended, its log and the lines that say what failed); another's first line."""
    message = finding.message.strip()
    if finding.source == "check":
        return message.split("\n\n", 1)[0]
    return message.split("\n", 1)[0]


def reviewer_findings(outcome: ReviewerRunResult) -> list[Finding]:
    verdict = outcome.verdict
    findings = [
        Finding(source="reviewer", message=item.message, file=item.file, line=item.line)
        for item in verdict.findings
        if verdict.verdict == "request_changes" or item.severity == "blocker"
    ]
    findings += [
        Finding(
            source="reviewer",
            message=f"verification step not met: {step.step}"
            + (f" ({step.note})" if step.note else ""),
        )
        for step in verdict.verification
        if not step.met
    ]
    if verdict.verdict == "request_changes" and not findings:
        findings.append(Finding(source="reviewer", message=verdict.summary))
    return findings


def combine_review(
    round_number: int,
    checks: list[CheckResult],
    reviewer: ReviewerRunResult | None,
    untouched_files: list[str],
) -> ReviewResult:
    """Approved when every check passed and the reviewer (if any) approved with every
    verification step met. Files the plan names but the diff leaves alone are reported; the
    reviewer decides whether they matter."""
    findings = check_findings(checks)
    if reviewer is not None:
        findings += reviewer_findings(reviewer)
    approved = not findings
    failed_checks = sum(not check.passed for check in checks)
    parts = []
    if checks:
        parts.append(f"{len(checks) - failed_checks}/{len(checks)} checks passed")
    if reviewer is not None:
        parts.append(f"reviewer: {reviewer.verdict.verdict} — {reviewer.verdict.summary}")
    if not parts:
        parts.append("no review configured")
    return ReviewResult(
        round=round_number,
        approved=approved,
        summary=("approved; " if approved else "changes requested; ") + "; ".join(parts),
        checks=checks,
        verdict=reviewer.verdict if reviewer else None,
        findings=findings,
        untouched_files=untouched_files,
        reviewer_cost_usd=reviewer.run.cost_usd if reviewer else 0.0,
        reviewer_transcript=reviewer.run.transcript_path if reviewer else "",
    )


def untouched_files(task: Task, changed_files: list[str]) -> list[str]:
    """Paths of the task's **Files:** list that the diff does not touch, in the list's order.

    A named directory counts as touched when a changed file is under it; a glob when a changed
    file matches it.
    """
    changed = {normalise(path) for path in changed_files}
    changed.discard("")
    missing: list[str] = []
    for ref in task.files:
        named = normalise(ref.path)
        if named and named not in missing and not any(names(named, path) for path in changed):
            missing.append(named)
    return missing
