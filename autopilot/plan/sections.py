"""Sections of a plan, by their headings: those marked done, and those every task shares.

A section runs from its ATX heading to the next one of the same or a higher rank (fewer `#`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from autopilot.plan.blocks import Block
from autopilot.plan.done_marks import strip_done_mark

__all__ = ["SHARED_SECTIONS", "done_lines", "heading_text", "shared_sections"]

# Sections of these names apply to every task wherever they are in the plan (outside batches):
# they join the plan context, which is all the text before the first batch.
SHARED_SECTIONS = frozenset(
    {
        "overview",
        "critical rules",
        "rules",
        "ground rules",
        "conventions",
        "constraints",
        "guidelines",
        "shared context",
    }
)
_SECTION_NUMBER_RE = re.compile(r"^(?:\d+(?:\.\d+)*[.):]?|[A-Z][.)])\s+")


def heading_text(content: str) -> str:
    """A heading's text, without the stars of a bold id (`## **Task 1.1:** Title`)."""
    text = content.strip()
    if text.startswith("**"):  # `## **Task 1.1:** Title`
        text = text.replace("**", "", 2).strip()
    return text


def done_lines(blocks: Sequence[Block], line_count: int) -> set[int]:
    """The lines (0-based) of the sections whose heading is marked done: each from its heading
    to the next ATX heading of the same or a higher rank."""
    done: set[int] = set()
    open_since: tuple[int, int] | None = None  # (rank, first line) of the open done section
    for block in blocks:
        if block.kind != "atx":
            continue
        if open_since is not None and block.rank <= open_since[0]:
            done.update(range(open_since[1], block.start))
            open_since = None
        if open_since is None and strip_done_mark(heading_text(block.text))[0]:
            open_since = (block.rank, block.start)
    if open_since is not None:
        done.update(range(open_since[1], line_count))
    return done


def shared_sections(blocks: Sequence[Block], end: int, in_done: set[int]) -> list[tuple[int, int]]:
    """The line spans [first, after) of the sections named like SHARED_SECTIONS among `blocks`
    (plan prose after a batch), each from its heading to the next ATX heading of the same or a
    higher rank, or `end`; none in a done section."""
    headings = [block for block in blocks if block.kind == "atx"]
    found: list[tuple[int, int]] = []
    covered = -1
    for index, block in enumerate(headings):
        if block.start < covered or block.start in in_done:
            continue
        name = _SECTION_NUMBER_RE.sub("", heading_text(block.text)).rstrip(":").strip()
        if " ".join(name.lower().split()) not in SHARED_SECTIONS:
            continue
        covered = next((h.start for h in headings[index + 1 :] if h.rank <= block.rank), end)
        found.append((block.start, covered))
    return found
