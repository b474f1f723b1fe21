"""What the agent is told: the task verbatim, inside the plan's context, with the house rules."""

from __future__ import annotations

from autopilot.models import ReviewResult, TaskRequest

CONTEXT_LIMIT = 12_000  # characters of plan preamble; a master plan's intro, not the whole plan


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + "\n[... plan context shortened ...]"


def task_prompt(request: TaskRequest, branch: str) -> str:
    task = request.task
    parts = [
        f"You are an autonomous coding agent working on one task of a larger plan"
        f"{f' ({request.plan_title})' if request.plan_title else ''}.",
        "",
        f"Task {task.id}: {task.title}",
        "",
        "Rules:",
        f"- Your working directory is a git worktree on branch `{branch}`; work only inside it.",
        "- Do the task completely, then stop. Do not ask questions: nobody will answer.",
        "- Commit your work with git when you are done"
        + (f' (message: "{task.commit_message}").' if task.commit_message else ".")
        + " Anything you leave uncommitted is committed for you.",
        "- Do not switch branches, rebase, push, or touch other worktrees.",
    ]
    if task.verification:
        parts.append("- Before you finish, check each verification step listed in the task.")
    if request.plan_context.strip():
        parts += ["", "Plan context:", "<plan-context>", _clip(request.plan_context, CONTEXT_LIMIT)]
        parts.append("</plan-context>")
    if request.batch_title or request.batch_description.strip():
        parts += ["", f"Batch {task.batch}: {request.batch_title}".rstrip(": ")]
        if request.batch_description.strip():
            parts += ["<batch>", request.batch_description.strip(), "</batch>"]
    parts += ["", "The task, as written in the plan:", "<task>", task.body, "</task>", ""]
    return "\n".join(parts)


CHECK_TAIL_LIMIT = 3_000  # characters of a failed check's output shown to the agent


def _tail(text: str, limit: int = CHECK_TAIL_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else "[... shortened ...]\n" + text[-limit:]


def _where(file: str | None, line: int | None) -> str:
    if not file:
        return ""
    return f"{file}:{line}" if line else file


def _header(request: TaskRequest) -> list[str]:
    task = request.task
    plan = f" ({request.plan_title})" if request.plan_title else ""
    return [
        f"You are an autonomous coding agent working on one task of a larger plan{plan}.",
        "",
        f"Task {task.id}: {task.title}",
        "",
    ]


def _task_block(request: TaskRequest) -> list[str]:
    # Repeated in every round: a fresh session (resume was impossible) needs the whole task.
    return ["", "The task, as written in the plan:", "<task>", request.task.body, "</task>", ""]


def fix_prompt(request: TaskRequest, review: ReviewResult) -> str:
    """The next round's prompt after a review asked for changes."""
    task = request.task
    parts = _header(request)
    parts += [
        f"The review of round {review.round} of your work on this task requested changes.",
    ]
    if review.summary.strip():
        parts += [f"Review summary: {review.summary.strip()}"]
    parts += ["", "What has to be fixed:", "<findings>"]
    named = {f.file for f in review.findings if f.file}
    for finding in review.findings:
        where = _where(finding.file, finding.line)
        parts.append(f"- [{finding.source}] {where + ': ' if where else ''}{finding.message}")
    for path in review.untouched_files:
        if path not in named:
            parts.append(f"- [files] {path}: named in the task's **Files:** list, not changed")
    failed = [check for check in review.checks if not check.passed]
    for check in failed:
        state = "timed out" if check.timed_out else f"exit code {check.exit_code}"
        parts.append(f"- [check] `{check.command}` failed ({state}). End of its output:")
        parts += ["```text", _tail(check.output_tail) or "(no output)", "```"]
    unmet = [
        step for step in (review.verdict.verification if review.verdict else []) if not step.met
    ]
    if unmet:
        parts.append("- Verification steps not met:")
        parts += [f"  - {s.step}{': ' + s.note if s.note.strip() else ''}" for s in unmet]
    if not review.findings and not failed and not unmet and not review.untouched_files:
        parts.append("- The review named nothing specific: re-read the task and complete it.")
    parts += [
        "</findings>",
        "",
        "Rules:",
        "- Fix every item above in this worktree (your working directory); work only inside it.",
        "- Do not switch branches, rebase, push, or touch other worktrees. Do not ask questions.",
        "- Check the task's verification steps again once the fixes are in.",
        "- Commit your fixes with git when you are done"
        + (f' (message: "{task.commit_message}").' if task.commit_message else ".")
        + " Anything you leave uncommitted is committed for you.",
    ]
    return "\n".join(parts + _task_block(request))


def conflict_prompt(request: TaskRequest, target_branch: str, conflict_files: list[str]) -> str:
    """The prompt of the conflict round: the target was merged into the branch and stopped."""
    parts = _header(request)
    parts += [
        f"The target branch `{target_branch}` moved on while this task was done. It has been "
        "merged into this branch, and the merge stopped with conflicts in these files:",
        "<findings>",
        *(f"- [conflict] {path}: merge conflict" for path in conflict_files),
        "</findings>",
        "",
        "Rules:",
        "- Resolve every conflict so that both sides' intent is kept: the target branch's "
        "changes and this task's work.",
        "- Remove every conflict marker (<<<<<<<, =======, >>>>>>>) from every file.",
        "- Re-run the task's verification steps on the merged result.",
        "- Then `git add` the resolved files and `git commit`: that commit concludes the merge.",
        "- Do not abort the merge, rebase, reset, switch branches or push. Do not ask questions.",
    ]
    return "\n".join(parts + _task_block(request))


def merged_checks_prompt(request: TaskRequest, target_branch: str) -> str:
    """The round after this task's branch, merged with the target's new commits, failed the
    checks (verify_merged): the target is merged in already, the checks fail on the result."""
    parts = _header(request)
    failed = [check for check in request.merged_checks if not check.passed]
    names = ", ".join(f"`{check.command}`" for check in failed)
    parts += [
        f"Your change and the new commits of the target branch `{target_branch}` fail "
        f"{names} together, though each passed on its own. `{target_branch}` has been merged "
        "into this branch (cleanly, already committed); the checks fail on that merge:",
        "<findings>",
    ]
    for check in failed:
        state = "timed out" if check.timed_out else f"exit code {check.exit_code}"
        parts.append(f"- [check] `{check.command}` failed ({state}). End of its output:")
        parts += ["```text", _tail(check.output_tail) or "(no output)", "```"]
    parts += [
        "</findings>",
        "",
        "Rules:",
        f"- Make the checks pass on this merge: keep both `{target_branch}`'s changes (an "
        "interface it changed is now the one to use) and this task's work.",
        "- Work only inside this worktree. Do not rebase, reset, switch branches or push. "
        "Do not ask questions.",
        "- Commit your fixes with git when you are done. Anything you leave uncommitted is "
        "committed for you.",
    ]
    return "\n".join(parts + _task_block(request))


def continue_prompt(request: TaskRequest) -> str:
    """Sent into the resumed Claude session of a run that was cut off (its worker died)."""
    parts = _header(request)
    parts += [
        "Your previous run on this task was interrupted: the process running you stopped.",
        "The worktree holds whatever you had done. Look at its state (`git status`, the "
        "files), then finish the task and commit. Do not redo work that is already there.",
    ]
    return "\n".join(parts + _task_block(request))
