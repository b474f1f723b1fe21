"""The top-level blocks of a markdown document, exactly as markdown-it (CommonMark) reports them.

The plan parser reads little of a document's structure: its top-level headings, paragraphs,
lists (each item's line range) and code blocks. markdown-it builds a token for every block of
every line, which is slow on big plans, so a line scanner reads the common shapes itself and
leaves the rest to markdown-it, with the same result:

- The document is cut at column-0 ATX headings outside column-0 fenced code blocks. Such a
  heading ends every open block but a fenced code block or an HTML block, so each chunk between
  two of them parses alone as it does within the whole document.
- The scanner reads a chunk made of paragraphs (setext headings too), thematic breaks,
  column-0 fenced code, indented code and lists whose items have text on their first line and
  end at a blank line or at a line that ends every open block (a list marker, a thematic break,
  a fence or a heading); what is inside an item does not matter. markdown-it reads any chunk
  with anything else: block quotes, HTML, indented headings or fences, link reference
  definitions, tabs in indentation, lazy continuation lines, deep nesting.
- A chunk markdown-it read may not end at its heading after all: a fenced code block opened by
  an indented fence, or an HTML block, can run across it, and nesting beyond markdown-it's
  limit skips to the end of the document. Then markdown-it reads the whole document.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from markdown_it import MarkdownIt
from markdown_it.common.utils import mdTrim
from markdown_it.token import Token

__all__ = ["Block", "BlockKind", "ScanReport", "top_level_blocks"]

BlockKind = Literal["atx", "setext", "paragraph", "list", "code", "other"]


@dataclass(slots=True)  # not frozen: that makes building one three times slower
class Block:
    """A top-level block: its first line (0-based) and what the plan parser reads of it."""

    start: int
    kind: BlockKind
    rank: int = 0  # headings: 1-6
    text: str = ""  # headings and paragraphs: their inline text; code blocks: the code
    items: tuple[tuple[int, int], ...] = ()  # lists: each item's lines [start, end)


@dataclass(frozen=True)
class ScanReport:
    """Who read a document: chunks by the line scanner, chunks by markdown-it, or markdown-it
    the whole of it."""

    scanned: int = 0
    tokenised: int = 0
    whole: bool = False


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark")
    md.core.ruler.disable("inline")  # block structure and raw inline text are all we need
    return md


MARKDOWN = _markdown()
# A block starting at this token level makes markdown-it skip to the end of the document.
_NESTING_LIMIT: int = MARKDOWN.options["maxNesting"]

_HR_RE = re.compile(r"([*_-])(?:[ \t]*\1){2,}[ \t]*$")
_UNDERLINE_RE = re.compile(r"(?:=+|-+)[ \t]*$")
# Group 1: a bullet; 2 and 3: an ordered item's number and delimiter.
_MARKER_RE = re.compile(r"(?:([-*+])|([0-9]{1,9})([.)]))(?=[ \t]|$)")
# Each container (list item, block quote) adds at least as many leading characters as token
# levels, so a block at markdown-it's nesting limit starts after a run at least this long.
_DEEP_RE = re.compile(rf"[ >*+\-.)0-9]{{{_NESTING_LIMIT - 4}}}")


class _Unsure(Exception):
    """The chunk holds a shape the line scanner does not read: markdown-it reads it."""


def top_level_blocks(
    lines: Sequence[str], first: int, *, fast: bool = True
) -> tuple[list[Block], ScanReport]:
    """The top-level blocks of `lines` from line `first` on (the lines before it are blank to
    markdown-it). `fast=False`: markdown-it reads the whole document."""
    # markdown-it turns NUL into U+FFFD in its text; the scanner would not.
    if fast and "\0" not in "".join(lines):
        scanned = _scanned(lines, first)
        if scanned is not None:
            return scanned
    source = "\n".join([""] * first + list(lines[first:]))
    return _blocks(MARKDOWN.parse(source), 0), ScanReport(whole=True)


# --------------------------------------------------------------------------------------------
# markdown-it
# --------------------------------------------------------------------------------------------


def _blocks(tokens: Sequence[Token], offset: int) -> list[Block]:
    """The top-level blocks of a token stream whose line 0 is line `offset` of the document."""
    blocks: list[Block] = []
    for index, token in enumerate(tokens):
        if token.level or token.map is None or token.nesting < 0:
            continue
        start = token.map[0] + offset
        if token.type == "heading_open":
            kind: BlockKind = "atx" if token.markup.startswith("#") else "setext"
            blocks.append(Block(start, kind, int(token.tag[1:]), tokens[index + 1].content))
        elif token.type == "paragraph_open":
            blocks.append(Block(start, "paragraph", text=tokens[index + 1].content))
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            blocks.append(Block(start, "list", items=_items(tokens, index, offset)))
        elif token.type in ("fence", "code_block"):
            blocks.append(Block(start, "code", text=token.content))
        else:
            blocks.append(Block(start, "other"))
    return blocks


def _items(tokens: Sequence[Token], index: int, offset: int) -> tuple[tuple[int, int], ...]:
    """The line ranges of the items of the top-level list opened by `tokens[index]`."""
    items: list[tuple[int, int]] = []
    index += 1
    while tokens[index].level:  # up to the list's closing token
        token = tokens[index]
        if token.level == 1 and token.type == "list_item_open" and token.map is not None:
            items.append((token.map[0] + offset, token.map[1] + offset))
        index += 1
    return tuple(items)


def _tokenised_chunk(
    lines: Sequence[str], start: int, stop: int, final: bool
) -> list[Block] | None:
    """markdown-it's blocks of lines [start, stop); None if the chunk may not end at `stop`."""
    if final:
        tokens = MARKDOWN.parse("\n".join(lines[start:]))
    else:
        tokens = MARKDOWN.parse("\n".join(lines[start:stop]) + "\n")
        if _runs_on(tokens, lines, start, stop):
            return None
    return _blocks(tokens, start)


def _runs_on(tokens: Sequence[Token], lines: Sequence[str], start: int, stop: int) -> bool:
    """Whether a block of the chunk [start, stop) may go on past its end in the document: a
    fenced code block without its closing fence, an HTML block, or nesting at markdown-it's
    limit (the block that reaches it takes the rest of the document)."""
    for token in tokens:
        if token.level >= _NESTING_LIMIT - 1:
            return True
        if token.level or token.map is None or token.map[1] + start < stop:
            continue
        if token.type == "html_block":
            return True
        if token.type == "fence":
            opened, closed = token.map[0] + start, stop - 1
            if closed == opened or not _closes(lines[closed], token.markup[0], len(token.markup)):
                return True
    return False


# --------------------------------------------------------------------------------------------
# The line scanner
# --------------------------------------------------------------------------------------------


def _scanned(lines: Sequence[str], first: int) -> tuple[list[Block], ScanReport] | None:
    """The blocks, chunk by chunk; None if markdown-it must read the whole document."""
    stop = _line_count(lines)
    blocks: list[Block] = []
    scanned = tokenised = 0
    start = first
    while True:
        try:
            chunk, heading = _scan(lines, start, stop)
            scanned += 1
        except _Unsure:
            heading = _next_heading(lines, start, stop)
            end = stop if heading is None else heading.start
            tokens = _tokenised_chunk(lines, start, end, final=heading is None)
            if tokens is None:
                return None
            chunk = tokens
            tokenised += 1
        blocks += chunk
        if heading is None:
            return blocks, ScanReport(scanned=scanned, tokenised=tokenised)
        blocks.append(heading)
        start = heading.start + 1


def _line_count(lines: Sequence[str]) -> int:
    """markdown-it's count of lines: a last line of only spaces and tabs (the empty one after
    a final newline included) is none."""
    return len(lines) - (not lines[-1].strip(" \t"))


def _next_heading(lines: Sequence[str], start: int, stop: int) -> Block | None:
    """The first column-0 ATX heading from line `start` on, outside column-0 fenced code."""
    number = start
    while number < stop:
        line = lines[number]
        head = line[:1]
        if head == "#":
            heading = _heading(line, number)
            if heading is not None:
                return heading
        elif head == "`" or head == "~":
            fence = _opener(line)
            if fence is not None:
                number = _fence_end(lines, number, stop, *fence)  # a closing fence is no heading
        number += 1
    return None


def _scan(lines: Sequence[str], start: int, stop: int) -> tuple[list[Block], Block | None]:
    """The blocks from line `start` (after a top-level heading, or at the top) up to the next
    column-0 ATX heading, and that heading. Raises `_Unsure` on any shape it does not read."""
    blocks: list[Block] = []
    number = start
    while number < stop:
        line = lines[number]
        rest = line.lstrip(" ")
        if _blank(rest):
            number += 1
            continue
        if len(line) - len(rest) >= 4 or rest[0] == "\t":
            block, number = _code(lines, number, stop)
        elif line[0] == "#" and (heading := _heading(line, number)) is not None:
            return blocks, heading
        else:
            block, number = _block(lines, number, stop, rest)
        blocks.append(block)
    return blocks, None


def _block(lines: Sequence[str], number: int, stop: int, rest: str) -> tuple[Block, int]:
    """The block starting at line `number`, indented 0-3 spaces; `rest` is its text."""
    head = rest[0]
    if head == "`" or head == "~":
        fence = _opener(rest)
        if fence is not None:
            if rest is not lines[number]:  # indented: maybe a top-level fence, maybe not
                raise _Unsure
            closing = _fence_end(lines, number, stop, *fence)
            return _fence(lines, number, closing), min(closing + 1, stop)
    if head in "><[":  # block quote, HTML block, link reference definition
        raise _Unsure
    if head in "*-_" and _HR_RE.match(rest):
        return Block(number, "other"), number + 1
    marker = _MARKER_RE.match(rest) if head in "-*+0123456789" else None
    if marker is not None:
        return _list(lines, number, stop, marker)
    if head == "#" and _atx(rest) is not None:  # indented: top-level, or in a list item
        raise _Unsure
    return _paragraph(lines, number, stop)


def _code(lines: Sequence[str], start: int, stop: int) -> tuple[Block, int]:
    """An indented code block: lines indented 4+ and blank lines, up to its last code line."""
    end = number = start + 1
    while number < stop:
        line = lines[number]
        rest = line.lstrip(" ")
        number += 1
        if _blank(rest):
            continue
        if len(line) - len(rest) < 4 and rest[0] != "\t":
            break
        end = number
    code = [_unindented(line) for line in lines[start:end]]
    return Block(start, "code", text="\n".join(code) + "\n"), end


def _unindented(line: str) -> str:
    """A line of an indented code block (indented 4+, or blank) without its indent."""
    if line.lstrip(" ").startswith("\t"):  # markdown-it expands such tabs partly
        raise _Unsure
    return line[4:]


def _fence(lines: Sequence[str], start: int, closing: int) -> Block:
    """A column-0 fenced code block; its code keeps the newline of its last line, if any."""
    code = "\n".join(lines[start + 1 : closing])
    if closing > start + 1 and closing < len(lines):
        code += "\n"
    return Block(start, "code", text=code)


def _paragraph(lines: Sequence[str], start: int, stop: int) -> tuple[Block, int]:
    """A paragraph, or a setext heading if an underline ends it."""
    number = start + 1
    while number < stop:
        line = lines[number]
        rest = line.lstrip(" ")
        if _blank(rest):
            break
        if len(line) - len(rest) < 4 and rest[0] != "\t":  # else: text, whatever it looks like
            if rest[0] in "=-" and _UNDERLINE_RE.match(rest):
                text = mdTrim("\n".join(lines[start:number]))
                return Block(start, "setext", 1 if rest[0] == "=" else 2, text), number + 1
            if _interrupts(rest):
                break
        number += 1
    return Block(start, "paragraph", text=mdTrim("\n".join(lines[start:number]))), number


def _interrupts(rest: str) -> bool:
    """Whether a line indented 0-3 (`rest` its text) ends a top-level paragraph."""
    head = rest[0]
    if head == "<":  # some HTML blocks do, others do not
        raise _Unsure
    if head == ">":
        return True
    if head == "`" or head == "~":
        return _opener(rest) is not None
    if head == "#":
        return _atx(rest) is not None
    if _HR_RE.match(rest):
        return True
    marker = _MARKER_RE.match(rest)
    # A list interrupts a paragraph only if its first item has text and, if ordered, is 1.
    return (
        marker is not None
        and (marker[2] is None or int(marker[2]) == 1)
        and bool(rest[marker.end() :].strip(" \t"))
    )


def _list(lines: Sequence[str], start: int, stop: int, marker: re.Match[str]) -> tuple[Block, int]:
    """A top-level list: items with the same bullet (or ordered delimiter) as the first."""
    kind = marker[1] or marker[3]
    items: list[tuple[int, int]] = []
    item = start
    while True:
        line = lines[item]
        end = _item_end(lines, item + 1, stop, _content_column(line, marker))
        items.append((item, end))
        if end >= stop:
            break
        line = lines[end]
        rest = line.lstrip(" ")
        # Indented 4+: code. A thematic break (`- - -`) is no item, whatever it looks like.
        if len(line) - len(rest) >= 4 or rest[0] == "\t" or _HR_RE.match(rest):
            break
        next_marker = _MARKER_RE.match(rest)
        if next_marker is None or (next_marker[1] or next_marker[3]) != kind:
            break
        item, marker = end, next_marker
    return Block(start, "list", items=tuple(items)), end


def _content_column(line: str, marker: re.Match[str]) -> int:
    """Where the text of the item starting on `line` begins: its continuation lines' indent."""
    if _DEEP_RE.match(line):
        raise _Unsure
    rest = line.lstrip(" ")
    after = rest[marker.end() :]
    text = after.lstrip(" ")
    if not text.strip(" \t") or text[0] == "\t":  # an empty first line has special rules
        raise _Unsure
    spaces = len(after) - len(text)
    return len(line) - len(rest) + marker.end() + (spaces if spaces <= 4 else 1)


def _item_end(lines: Sequence[str], number: int, stop: int, column: int) -> int:
    """The line after a list item (blank lines before it included): the first line indented
    less than `column` after a blank line, or right after the item's text if it ends every
    open block. Raises `_Unsure` on a line that may be a lazy continuation line."""
    after_blank = False
    while number < stop:
        line = lines[number]
        rest = line.lstrip(" ")
        if _blank(rest):
            after_blank = True
        elif rest[0] == "\t":
            raise _Unsure
        elif len(line) - len(rest) >= column:
            if _DEEP_RE.match(line):
                raise _Unsure
            after_blank = False
        elif after_blank or (len(line) - len(rest) <= 3 and _ends_all(rest)):
            return number
        else:
            raise _Unsure
        number += 1
    return stop


def _ends_all(rest: str) -> bool:
    """Whether a line indented 0-3 ends every block open in a list item before it: nothing
    continues lazily across a list marker, a thematic break, a fence or an ATX heading."""
    return (
        _MARKER_RE.match(rest) is not None
        or _HR_RE.match(rest) is not None
        or _opener(rest) is not None
        or _atx(rest) is not None
    )


# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------


def _heading(line: str, number: int) -> Block | None:
    """The column-0 ATX heading on line `number`, if it is one."""
    heading = _atx(line)
    return None if heading is None else Block(number, "atx", *heading)


def _blank(rest: str) -> bool:
    """Whether a line is blank to markdown-it; `rest`: the line without its leading spaces."""
    return not rest or (rest[0] == "\t" and not rest.strip(" \t"))


def _atx(rest: str) -> tuple[int, str] | None:
    """An ATX heading's rank and text, as markdown-it cuts them; `rest`: the line, unindented."""
    body = rest.lstrip("#")
    rank = len(rest) - len(body)
    if not 1 <= rank <= 6 or (body and body[0] not in " \t"):
        return None
    body = body.rstrip(" \t")
    unclosed = body.rstrip("#")  # a closing sequence needs a space before it
    if len(unclosed) < len(body) and unclosed[-1:] in (" ", "\t"):
        body = unclosed
    return rank, mdTrim(body)


def _opener(rest: str) -> tuple[str, int] | None:
    """A code fence's character and length; `rest`: the line, unindented."""
    char = rest[:1]
    if char != "`" and char != "~":
        return None
    info = rest.lstrip(char)
    length = len(rest) - len(info)
    if length < 3 or (char == "`" and "`" in info):
        return None
    return char, length


def _closes(line: str, char: str, length: int) -> bool:
    """Whether `line` closes a fence of `length` times `char`."""
    rest = line.lstrip(" ")
    if len(line) - len(rest) > 3:
        return False
    tail = rest.lstrip(char)
    return len(rest) - len(tail) >= length and not tail.strip(" \t")


def _fence_end(lines: Sequence[str], start: int, stop: int, char: str, length: int) -> int:
    """The closing line of the fence opened on line `start`, or `stop` if it has none."""
    for number in range(start + 1, stop):
        if _closes(lines[number], char, length):
            return number
    return stop
