"""Text from a plan (titles, ids, paths) made safe to print on a terminal or in a log line.

A plan is user input: a heading can hold an escape sequence that recolours or clears the
screen, a carriage return that overwrites the line before it, or a bidirectional override that
shows text in another order than it runs. Wherever such text is printed it goes through
`printable`, which writes each of those characters as a visible escape (`\\x1b`, `\\u202e`).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 and C1 control characters, DEL, and the Unicode bidirectional embedding, override and
# isolate controls (the "Trojan Source" characters).
_UNSAFE_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str, keep: str = "") -> str:
    """`text` with every control character escaped, except those in `keep` (e.g. "\\n" for a
    message of several lines)."""
    if not keep:
        return _UNSAFE_RE.sub(_escape, text)
    return _UNSAFE_RE.sub(lambda match: match[0] if match[0] in keep else _escape(match), text)
