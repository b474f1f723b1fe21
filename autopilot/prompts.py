"""What the agent is told: the task verbatim, inside the plan's context, with the house rules."""

from __future__ import annotations

from autopilot.models import TaskRequest

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
