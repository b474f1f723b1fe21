"""Done markers: how a plan says a phase, batch or task is complete already.

A heading ending in `(COMPLETE)`, `(COMPLETED)` or `(DONE)` (any case, or in brackets), or
with a check mark (U+2705, U+2714, U+2611), is done with everything under it; so is a task
heading or a table row with a check mark, or a row whose status column says done/complete.
A word in parentheses inside a title ("Show a (done) badge") is no marker.
"""

from __future__ import annotations

import re

__all__ = ["DONE_STATUSES", "has_check_mark", "strip_done_mark"]

# A check mark, with the emoji variation selector some editors add.
_CHECK_MARK = r"(?:\u2705|\u2714\ufe0f?|\u2611\ufe0f?)"
_DONE_MARK_RE = re.compile(
    rf"\s*(?:{_CHECK_MARK}|[(\[](?:complete|completed|done)[)\]](?=\s*{_CHECK_MARK}?\s*$))\s*",
    re.IGNORECASE,
)
_CHECK_MARK_RE = re.compile(_CHECK_MARK)
DONE_STATUSES = frozenset({"done", "complete", "completed", "finished", "merged"})


def strip_done_mark(text: str) -> tuple[bool, str]:
    """(whether the text carries a done marker, the text without it)."""
    stripped = _DONE_MARK_RE.sub(" ", text)
    if stripped == text:
        return False, text
    return True, " ".join(stripped.split())


def has_check_mark(text: str) -> bool:
    return _CHECK_MARK_RE.search(text) is not None
