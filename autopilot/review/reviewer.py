"""The agent reviewer: a read-only `claude -p` run that judges a task's branch before it merges.

It answers through the CLI's `--json-schema` (the model calls a `StructuredOutput` tool and the
final result event carries `structured_output`), so the verdict is data, never prose to parse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autopilot.agent import AgentFailure, stream_json_argv
from autopilot.infra import protected_changes
from autopilot.models import CheckResult, ReviewerVerdict, ReviewSettings, TaskRequest


def _closed(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with these properties and no others, each required unless `optional`."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


# Mirrors models.ReviewerVerdict. Kept to plain keywords (type, enum, properties, required, items,
# minimum, additionalProperties): the CLI hands it to the model as the StructuredOutput tool's
# input_schema and validates the answer against it, asking again when it does not match.
VERDICT_SCHEMA = _closed(
    {
        "verdict": {"type": "string", "enum": ["approve", "request_changes"]},
        "summary": {"type": "string"},
        "findings": {
            "type": "array",
            "items": _closed(
                {
                    "message": {"type": "string"},
                    "file": {"type": "string"},
                    "line": {"type": "integer", "minimum": 1},
                    "severity": {"type": "string", "enum": ["blocker", "major", "minor"]},
                },
                optional=("file", "line"),
            ),
        },
        "verification": {
            "type": "array",
            "items": _closed(
                {
                    "step": {"type": "string"},
                    "met": {"type": "boolean"},
                    "note": {"type": "string"},
                },
                optional=("note",),
            ),
        },
    }
)

READ_ONLY_TOOLS = ("Read", "Glob", "Grep")
# 2.1.197 has no MultiEdit any more (a deny rule for it only prints a warning), so it is left out.
WRITE_TOOLS = ("Write", "Edit", "NotebookEdit", "Bash")
# The reviewer runs nothing the agent wrote: only the user-level settings, which are those of
# its own config dir (CLAUDE_CONFIG_DIR, the run's folder the pipeline made), never the
# workspace's `.claude/settings*.json` (hooks) nor its `.mcp.json` (servers). Measured on
# 2.1.197: with these two flags no project hook ran, in -p mode.
IGNORE_THE_WORKSPACE_CONFIG = ("--setting-sources=user", "--strict-mcp-config")

DIFF_LIMIT = 150_000  # characters; the reviewer can Read the files for the rest
CHECK_TAIL_LIMIT = 3_000


def reviewer_argv(claude_bin: Path, settings: ReviewSettings, session_id: str) -> list[str]:
    """The reviewer's `claude -p` command line; the prompt goes on stdin."""
    argv = [
        *stream_json_argv(claude_bin),
        f"--json-schema={json.dumps(VERDICT_SCHEMA, separators=(',', ':'))}",
        f"--session-id={session_id}",
        f"--max-turns={settings.reviewer_max_turns}",
        # --tools limits what the model is offered at all (no Agent, WebFetch, EnterWorktree,
        # ...); the allow/deny lists and the default mode are the second line: in -p mode a
        # tool that is not allowed is refused, never prompted for.
        f"--tools={','.join(READ_ONLY_TOOLS)}",
        f"--allowedTools={','.join(READ_ONLY_TOOLS)}",
        f"--disallowedTools={','.join(WRITE_TOOLS)}",
        "--permission-mode=default",
        *IGNORE_THE_WORKSPACE_CONFIG,
    ]
    if settings.reviewer_model:
        argv.append(f"--model={settings.reviewer_model}")
    return argv


def _clip_tail(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else "[... shortened ...]\n" + text[-limit:]


def _check_line(check: CheckResult) -> str:
    if check.passed:
        status = "passed"
    elif check.timed_out:
        status = "FAILED (timed out)"
    elif check.exit_code is None:
        status = "FAILED (could not start)"
    else:
        status = f"FAILED (exit code {check.exit_code})"
    return f"- `{check.command}`: {status}"


def reviewer_prompt(
    request: TaskRequest,
    diff: str,
    changed_files: list[str],
    checks: list[CheckResult],
    untouched_files: list[str],
    extra_instructions: str | None,
) -> str:
    task = request.task
    plan = f" of a plan ({request.plan_title})" if request.plan_title else " of a plan"
    parts = [
        f"You are a code reviewer. Another agent worked on one task{plan}; review its work "
        "before it is merged.",
        "",
        f"Task {task.id}: {task.title}",
        "",
        "Rules:",
        "- You are read-only: do not create, edit or delete files and do not run commands. Use "
        "Read, Glob and Grep to look at the code in your working directory: the task's "
        "worktree with its changes.",
        "- Judge the work against the task as written, not against your own preferences.",
        "- Do not ask questions: nobody will answer.",
        "",
        "The task, as written in the plan:",
        "<task>",
        task.body,
        "</task>",
        "",
        "Files the change touches: " + (", ".join(changed_files) if changed_files else "none"),
        "The change against the branch it will merge into (git diff):",
        "<diff>",
    ]
    if len(diff) > DIFF_LIMIT:
        parts += [diff[:DIFF_LIMIT].rstrip(), "[... diff shortened; Read the files for the rest]"]
    else:
        parts.append(diff.rstrip())
    parts += ["</diff>", ""]

    if checks:
        parts.append("Checks run on the branch:")
        for check in checks:
            parts.append(_check_line(check))
            if check.output_tail.strip():
                parts += ["  Output (end):", "```text"]
                parts += [_clip_tail(check.output_tail, CHECK_TAIL_LIMIT), "```"]
    else:
        parts.append("No checks were run on the branch.")
    parts.append("")

    if task.verification:
        parts.append(
            "Verification steps of the task. Judge every one as met or not in `verification`, "
            "with the step's text as written here and a note saying why:"
        )
        parts += [f"{n}. {step}" for n, step in enumerate(task.verification, 1)]
    else:
        parts.append("The task lists no verification steps; `verification` may stay empty.")
    parts.append("")

    if task.files:
        parts.append("Files the task names (its **Files:** list):")
        parts += [f"- {ref.action + ': ' if ref.action else ''}{ref.path}" for ref in task.files]
    if untouched_files:
        parts.append(
            "Named in the task but not touched by the diff. Report each as a finding unless "
            "the task body makes clear that it needs no change:"
        )
        parts += [f"- {path}" for path in untouched_files]
    if task.files or untouched_files:
        parts.append("")

    protected = protected_changes(changed_files)
    if protected:
        parts.append(
            "The change touches files that configure what runs with more rights than the "
            "task's code: the pipeline (.autopilot.toml), Claude Code's hooks and servers "
            "(.claude/, .mcp.json) or the forge's CI. The task names them, but check that "
            "each change does only what the task asks: no command, hook, CI step, server or "
            "use of secrets beyond it. Report anything more as a blocker:"
        )
        parts += [f"- {path}" for path in protected]
        parts.append("")

    if extra_instructions and extra_instructions.strip():
        parts += ["Additional instructions for this review:", "<instructions>"]
        parts += [extra_instructions.strip(), "</instructions>", ""]

    parts += [
        "How to answer: call the StructuredOutput tool once with your verdict.",
        '- "approve" only if the task is done as written, every check passed and every '
        "verification step is met.",
        '- Otherwise "request_changes", with concrete findings: what is wrong and what to do '
        "about it, with `file` (path relative to the working directory) and `line` where "
        "possible, and a severity (blocker, major or minor).",
        "- `summary`: one or two sentences a person can act on.",
        "",
    ]
    return "\n".join(parts)


def parse_verdict(result_event: dict[str, Any] | None) -> ReviewerVerdict:
    """The verdict from the final result event; AgentFailure("error") when there is none."""
    if result_event is None:
        raise AgentFailure("error", "the reviewer gave no verdict: its run ended without a result")
    output = result_event.get("structured_output")
    if isinstance(output, str):  # tolerate a JSON string, should a version send one
        try:
            output = json.loads(output)
        except json.JSONDecodeError:
            pass
    if output is None:
        said = str(result_event.get("result") or "").strip()[:300]
        raise AgentFailure(
            "error",
            "the reviewer gave no verdict: it ended without calling StructuredOutput"
            + (f" (it said: {said})" if said else ""),
        )
    if not isinstance(output, dict):
        raise AgentFailure(
            "error",
            f"the reviewer gave no verdict: its structured output is not an object: {output!r}",
        )
    try:
        return ReviewerVerdict.model_validate(output)
    except ValidationError as invalid:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'verdict'}: {error['msg']}"
            for error in invalid.errors()
        )
        raise AgentFailure(
            "error", f"the reviewer gave no verdict: its structured output is invalid ({problems})"
        ) from None
