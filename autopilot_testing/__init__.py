"""Test stand-ins shipped beside the product, never part of it: the scripted model that answers
the real Claude Code CLI in the tests, the benchmark and `./dev demo` without credentials.

Product code does not import this package (the import contract in pyproject says so); only
`autopilot.operate.demo`, the tests and bench/ do.
"""

from __future__ import annotations

from autopilot_testing.scripted_model import (
    STRUCTURED_OUTPUT,
    Conversation,
    HoldFirst,
    HttpError,
    JsonObj,
    PlanFollower,
    Reply,
    Reviewer,
    ScriptedModel,
    SlowFollower,
    Text,
    ToolCall,
    ToolUses,
    by_task,
    complete_verdict,
    parse_task,
    script,
    verification_steps,
)

__all__ = [
    "STRUCTURED_OUTPUT",
    "Conversation",
    "HoldFirst",
    "HttpError",
    "JsonObj",
    "PlanFollower",
    "Reply",
    "Reviewer",
    "ScriptedModel",
    "SlowFollower",
    "Text",
    "ToolCall",
    "ToolUses",
    "by_task",
    "complete_verdict",
    "parse_task",
    "script",
    "verification_steps",
]
