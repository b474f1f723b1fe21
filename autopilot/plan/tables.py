"""Task tables: a batch's tasks written as the rows of a markdown table.

    | ID    | Task                      | Files                        | Depends on |
    |-------|---------------------------|------------------------------|------------|
    | 3.1.1 | Config Validation Service | services/config_validator.py |            |

CommonMark has no tables: to the block reader a table is a paragraph whose lines start with
`|`, its second line a delimiter row (`|---|:--:|`). The columns are found by their header
names (case-insensitive, see _ROLES); a table without an id column is not a task table. This
module reads the rows; the parser turns them into tasks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from autopilot.plan.blocks import Block
from autopilot.plan.done_marks import DONE_STATUSES, has_check_mark, strip_done_mark

__all__ = ["Row", "Table", "task_tables"]

_Role = Literal["id", "title", "files", "depends", "status"]
# Header names (lower-cased, stars, backticks and a trailing colon left out) and their roles.
_ROLES: dict[str, _Role] = {
    **dict.fromkeys(("id", "task id", "#", "no", "no.", "number", "ref"), "id"),
    **dict.fromkeys(("title", "task", "name", "description", "summary", "work"), "title"),
    **dict.fromkeys(
        ("files", "file", "deliverables", "deliverable", "paths", "path", "location"), "files"
    ),
    **dict.fromkeys(
        ("depends on", "depends", "dependencies", "dependency", "deps", "prerequisites"),
        "depends",
    ),
    **dict.fromkeys(("status", "state", "done"), "status"),
}
# When several columns could give the title, the first of these names that is there does;
# the others are kept as labelled text.
_TITLE_PREFERENCE = ("title", "task", "name", "description", "summary", "work")
_DELIMITER_CELL_RE = re.compile(r"^:?-+:?$")
_TASK_ID_RE = re.compile(r"^(?:task\s*)?(\d+(?:\.\d+)*[a-z]?)$", re.IGNORECASE | re.ASCII)
# "Depends on 3.1.1, 3.1.2" at the end of a title cell, in parentheses or not; only task ids
# ("a module that depends on the legacy API" is a title).
_ID = r"(?:task\s*)?\d+(?:\.\d+)*[a-z]?"
_DEPENDS_TEXT_RE = re.compile(
    rf"[(\[]?\s*\bdepends\s+on\b\s*:?\s*({_ID}(?:\s*(?:,|;|&|\band\b)\s*{_ID})*)\s*[)\]]?\s*$",
    re.IGNORECASE | re.ASCII,
)


@dataclass(frozen=True)
class Row:
    """One table row: its 1-based line, the cells by role, and the other columns as written."""

    line: int
    id: str  # the id cell without markers and formatting; "" when it is no task id
    id_text: str  # the id cell as written
    title: str
    files: str
    depends: tuple[str, ...]  # the depends cell, and any "depends on ..." in the title cell
    others: tuple[tuple[str, str], ...]  # (header, cell) of the other non-empty cells
    done: bool


@dataclass(frozen=True)
class Table:
    """A table: its lines [start, end) (0-based), its rows; a table without an id column is
    no task table, and has no rows."""

    start: int
    end: int
    rows: tuple[Row, ...]
    has_ids: bool


def task_tables(blocks: Sequence[Block]) -> list[Table]:
    """The tables in the top-level paragraphs of `blocks`, task tables or not."""
    tables: list[Table] = []
    for block in blocks:
        if block.kind == "paragraph" and "|" in block.text:
            tables.extend(_tables_in(block.text.split("\n"), block.start))
    return tables


def _tables_in(lines: Sequence[str], first: int) -> list[Table]:
    tables: list[Table] = []
    index = 0
    while index + 1 < len(lines):
        header, delimiter = _cells(lines[index]), _cells(lines[index + 1])
        if header is None or delimiter is None or not _is_delimiter(delimiter):
            index += 1
            continue
        end = index + 2
        while end < len(lines) and _cells(lines[end]) is not None:
            end += 1
        body = [
            (first + number + 1, _cells(lines[number]) or []) for number in range(index + 2, end)
        ]
        roles = _roles(header, [cells for _, cells in body])
        rows = () if roles is None else tuple(_row(header, roles, c, n) for n, c in body)
        tables.append(Table(first + index, first + end, rows, roles is not None))
        index = end
    return tables


def _cells(line: str) -> list[str] | None:
    """A table line's cells (None: not a table line). A `|` escaped or inside backticks is
    text, not a cell boundary."""
    text = line.strip()
    if not text.startswith("|"):
        return None
    cells: list[str] = []
    current: list[str] = []
    in_code = False
    position = 1
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text) and text[position + 1] == "|":
            current.append("|")
            position += 2
            continue
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        position += 1
    if "".join(current).strip():  # no closing pipe
        cells.append("".join(current).strip())
    return cells


def _is_delimiter(cells: Sequence[str]) -> bool:
    return bool(cells) and all(_DELIMITER_CELL_RE.match(cell.replace(" ", "")) for cell in cells)


def _header_name(cell: str) -> str:
    return " ".join(cell.replace("*", "").replace("`", "").strip().rstrip(":").lower().split())


def _roles(header: Sequence[str], body: Sequence[Sequence[str]]) -> dict[_Role, int] | None:
    """Column index of each role; None when there is no id column (not a task table). Without
    a column named like an id, a `Task` column all of whose cells are task ids is the id
    column (`| Task | Description |` with `| 3.1.1 | ... |`)."""
    names = [_header_name(cell) for cell in header]
    roles: dict[_Role, int] = {}
    for index, name in enumerate(names):
        role = _ROLES.get(name)
        if role is not None and role != "title" and role not in roles:
            roles[role] = index
    if "id" not in roles and "task" in names:
        column = names.index("task")
        cells = [row[column] for row in body if column < len(row) and row[column].strip()]
        if cells and all(_task_id(cell) for cell in cells):
            roles["id"] = column
            names[column] = ""  # not the title, then
    if "id" not in roles:
        return None
    title = next((names.index(name) for name in _TITLE_PREFERENCE if name in names), None)
    if title is not None:
        roles["title"] = title
    return roles


def _row(header: Sequence[str], roles: dict[_Role, int], cells: Sequence[str], line: int) -> Row:
    def cell(role: _Role) -> str:
        index = roles.get(role)
        return cells[index] if index is not None and index < len(cells) else ""

    id_text = cell("id")
    title_done, title = strip_done_mark(cell("title"))
    depends = [cell("depends")]
    written = _DEPENDS_TEXT_RE.search(title)
    if written is not None:
        depends.append(written[1])
        title = title[: written.start()].rstrip(" -\u2013\u2014,;")
    status = _header_name(strip_done_mark(cell("status"))[1])
    used = set(roles.values())
    others = tuple(
        (header[index].replace("*", "").strip(), value)
        for index, value in enumerate(cells)
        if index not in used and index < len(header) and value.strip()
    )
    return Row(
        line=line,
        id=_task_id(id_text),
        id_text=id_text,
        title=title.strip(),
        files=cell("files"),
        depends=tuple(part.strip() for part in depends if part.strip()),
        others=others,
        done=title_done or status in DONE_STATUSES or any(has_check_mark(c) for c in cells),
    )


def _task_id(cell: str) -> str:
    """The task id a cell holds (markers and formatting left out); "" if none."""
    match = _TASK_ID_RE.match(strip_done_mark(_plain(cell))[1])
    return match[1] if match else ""


def _plain(text: str) -> str:
    return text.replace("**", "").replace("`", "").strip()
