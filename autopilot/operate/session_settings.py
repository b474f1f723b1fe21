"""Running the same command again with other settings: which differ, and what can apply.

The session id comes from the repo, the plan and the batch range, so the same command attaches
to the running session. Its other settings were fixed when it started: a different
`--concurrency` can apply through the `concurrency` control; anything else (target branch,
agent and review settings, budget) cannot while it runs, and attaching would silently ignore
it, so the starter refuses and says what to do.

`resume --reload-config` moves a paused session to the target's current `.autopilot.toml`:
what the file sets for the review, the workspace, the container and the sandbox's network
applies to the tasks started after it (RELOADABLE). The notification targets do not change
mid-session (the session's notifier holds them from its start, and the person was told where
its news goes); the flags' settings are not the file's to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from autopilot.models import SessionRequest

__all__ = [
    "RELOADABLE",
    "Differences",
    "differences",
    "refusal",
    "reload_changes",
    "reload_refusal",
]

# (flag, the setting as the session holds it: its attribute path, or how it is worked out): every
# setting a command line can change but the session cannot once it runs. Concurrency is compared
# on its own, against the live value.
_FIXED: tuple[tuple[str, str | Callable[[SessionRequest], object]], ...] = (
    ("--target-branch", "target_branch"),
    ("--execution-place", "execution_place"),
    ("--max-turns", "agent.max_turns"),
    ("--model", "agent.model"),
    ("--agent-timeout", "agent.attempt_timeout_s"),
    ("--idle-timeout", "agent.idle_timeout_s"),
    ("--heartbeat-timeout", "agent.heartbeat_timeout_s"),
    ("--max-attempts", "agent.max_attempts"),
    ("--max-cost-usd", "max_cost_usd"),
    ("--review", "review.mode"),
    ("--review-rounds", "review.rounds"),
    ("--check", lambda r: [check.command for check in r.review.checks]),
    ("check_env (.autopilot.toml)", "review.check_env"),
    ("[sandbox] network (.autopilot.toml)", "agent.network"),
    ("[sandbox] ports (.autopilot.toml)", "agent.ports"),
    ("[workspace] (.autopilot.toml)", lambda r: r.workspace.model_dump(exclude_defaults=True)),
    (
        "--image (or [container], .autopilot.toml)",
        lambda r: r.container.model_dump(exclude_defaults=True),
    ),
    ("--check-timeout", "review.check_timeout_s"),
    ("--reviewer-model", "review.reviewer_model"),
    ("--reviewer-prompt", "review.reviewer_prompt"),
    ("--on-failure", "review.on_failure"),
    ("--verify-merged (or [review] verify_merged)", "review.verify_merged"),
    ("--notify (or [notify] notify, .autopilot.toml)", "notify.urls"),
    ("[notify] notify_command (.autopilot.toml)", "notify.command"),
    ("[merge] style (.autopilot.toml)", "merge_style"),
    ("--forge (or [forge], .autopilot.toml)", "forge"),
    # A running session's tasks are started afresh one by one: `retry --fresh SESSION TASK`.
    ("--fresh (for a running session: retry --fresh SESSION TASK)", "fresh"),
)
# The settings `resume --reload-config` may change: the ones a task reads when it starts.
RELOADABLE = frozenset(
    {
        "--review",
        "--review-rounds",
        "--check",
        "check_env (.autopilot.toml)",
        "[sandbox] network (.autopilot.toml)",
        "[sandbox] ports (.autopilot.toml)",
        "[workspace] (.autopilot.toml)",
        "--image (or [container], .autopilot.toml)",
        "--check-timeout",
        "--reviewer-model",
        "--reviewer-prompt",
        "--on-failure",
        "--verify-merged (or [review] verify_merged)",
    }
)
_PROMPT_FLAG = "--reviewer-prompt"  # its text may be long: only said to differ
_REVIEW_SOURCE = "(flags or .autopilot.toml)"


@dataclass(frozen=True)
class Differences:
    fixed: list[str]  # one line per setting that cannot change while the session runs
    concurrency_note: str  # "" when the concurrency is the one asked for


def _changed(running: SessionRequest, wanted: SessionRequest) -> list[tuple[str, object, object]]:
    """(setting, the session's value, the wanted value) of each setting that differs."""
    found = []
    for flag, setting in _FIXED:
        value_of = attrgetter(setting) if isinstance(setting, str) else setting
        had, asked = value_of(running), value_of(wanted)
        if had != asked:
            found.append((flag, had, asked))
    return found


def differences(running: SessionRequest, wanted: SessionRequest) -> Differences:
    """How `wanted` (this command's request) differs from the running session's (its start
    request with the live concurrency and budget, which the operator may have changed)."""
    fixed = []
    for flag, had, asked in _changed(running, wanted):
        if flag == _PROMPT_FLAG:
            fixed.append(f"  {flag} {_REVIEW_SOURCE}: this command gives another reviewer prompt")
        else:
            fixed.append(f"  {flag}: the session runs with {had!r}, this command gives {asked!r}")
    note = ""
    if wanted.concurrency != running.concurrency:
        note = (
            f"note: session {running.session_id} runs {running.concurrency} agent(s) at once, not"
            f" the {wanted.concurrency} of --concurrency; to change it: python starter.py"
            f" concurrency {running.session_id} {wanted.concurrency}"
        )
    return Differences(fixed=fixed, concurrency_note=note)


def refusal(session_id: str, fixed: list[str]) -> str:
    """The message when settings that cannot apply differ."""
    return "\n".join(
        [
            f"session {session_id} is running with other settings, which cannot change while"
            " it runs:",
            *fixed,
            f"Wait for it to end (python starter.py watch {session_id}) or cancel it (python"
            f" starter.py cancel {session_id}), then run this command again; or give the"
            " session's own settings to attach to it. Nothing was started.",
        ]
    )


def reload_changes(
    running: SessionRequest, reloaded: SessionRequest
) -> tuple[list[str], list[str]]:
    """What `resume --reload-config` would change: (lines of settings it applies, lines of
    settings that cannot change mid-session). Both empty: the file changed nothing."""
    applied: list[str] = []
    fixed: list[str] = []
    for flag, had, now in _changed(running, reloaded):
        shown = (
            f"{flag}: another reviewer prompt"
            if flag == _PROMPT_FLAG
            else f"{flag}: {had!r} -> {now!r}"
        )
        (applied if flag in RELOADABLE else fixed).append(shown)
    return applied, fixed


def reload_refusal(session_id: str, commit: str, fixed: list[str]) -> str:
    """The message when the target's `.autopilot.toml` changes what a session cannot change
    while it runs: nothing was changed, the session stays paused."""
    return "\n".join(
        [
            f"resume --reload-config refused: the .autopilot.toml of {commit[:12]} changes"
            f" settings that session {session_id} cannot change while it runs:",
            *(f"  {line}" for line in fixed),
            "Nothing was changed; the session is still paused. Undo those changes in the file"
            f" (commit it again) and run this command again, or cancel the session (python"
            f" starter.py cancel {session_id}) and start it again to use them.",
        ]
    )
