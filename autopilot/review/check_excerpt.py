"""The few lines of a failed check's output that say what failed, for a person in the morning.

A check's whole output stays in its log; status, the live view, notifications and the task's
error carry this excerpt: for pytest its failing test ids and assertion lines, for anything
else the last lines it printed. Pure functions over text.
"""

from __future__ import annotations

import re

__all__ = ["excerpt", "strip_ansi"]

# CSI (colours, cursor moves) and OSC (titles, links) sequences, as test runners print them.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_PYTEST_FAILED_RE = re.compile(r"^(?:FAILED|ERROR) \S+")
_PYTEST_ASSERT_RE = re.compile(r"^E {2,}\S")
EXCERPT_LINES = 8
LINE_CHARS = 300


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def excerpt(output: str, lines: int = EXCERPT_LINES) -> list[str]:
    """What failed, in at most `lines` lines: pytest's `FAILED`/`ERROR` summary lines and its
    first `E` lines when there are any, else the last non-blank lines."""
    text = [line.rstrip() for line in strip_ansi(output).replace("\r\n", "\n").split("\n")]
    failed = [line for line in text if _PYTEST_FAILED_RE.match(line)]
    if failed:
        asserted = [line for line in text if _PYTEST_ASSERT_RE.match(line)]
        room = max(lines - len(failed[:lines]), 0)
        chosen = failed[:lines] + asserted[: min(room, 4)]
    else:
        chosen = [line for line in text if line.strip()][-lines:]
    return [_clip(line) for line in chosen]


def _clip(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[: LINE_CHARS - 1] + "…"
