"""Review of a task's branch before it merges: the repository's checks, the agent reviewer,
and the verdict made of both."""

from __future__ import annotations

from autopilot.review.check_excerpt import (
    excerpt,
    strip_ansi,
)
from autopilot.review.checks import (
    TAIL_CHARS,
    CheckEnv,
    check_log_name,
    private_tmpdir,
    run_check,
    run_checks,
)
from autopilot.review.reviewer import (
    VERDICT_SCHEMA,
    parse_verdict,
    reviewer_argv,
    reviewer_prompt,
)
from autopilot.review.verdict import (
    check_findings,
    combine_review,
    finding_headline,
    untouched_files,
)

__all__ = [
    "TAIL_CHARS",
    "VERDICT_SCHEMA",
    "CheckEnv",
    "check_findings",
    "check_log_name",
    "combine_review",
    "excerpt",
    "finding_headline",
    "parse_verdict",
    "private_tmpdir",
    "reviewer_argv",
    "reviewer_prompt",
    "run_check",
    "run_checks",
    "strip_ansi",
    "untouched_files",
]
