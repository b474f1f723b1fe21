"""Parse a markdown master plan into batches of tasks.

The plan is read as CommonMark: only top-level ATX headings (`## ...`) give the plan its
structure, so a `## Batch` line inside a fenced code block, a list or a block quote is never a
heading. The top-level blocks are those markdown-it-py reports; a line scanner reads the common
block shapes itself, much faster, and leaves the rest to markdown-it, with the same result (see
`autopilot.plan.blocks`). Bodies and descriptions are cut verbatim from the source lines, using
the line ranges of the blocks.

Structure:
- `## Batch 31: Title` / `### Batch 31: Title` starts a batch; the text up to its first task is
  the batch description (optional `**Dependencies:**` and `**Execution Mode:**` fields). An
  `**Execution Mode:**` before the first batch is the default of every batch that sets none.
- Batch and task numbers are ASCII digits (a batch number fits a signed 64-bit integer, the
  type of the AutopilotBatch search attribute); other scripts' digits are a near-miss error.
- `**Label:**` lines the parser does not read stay in the text and are listed as kept.
- `### Task 31.1: Title` / `#### Task 31.1a: Title` starts a task; its body runs to the next task
  or batch heading. A non-task heading of a higher rank (fewer `#`) than the task heading ends the
  task; one of rank <= the batch heading's ends the batch. The text after either is plan prose.
- A plan without batch headings is one implicit batch of all its tasks.
- A table in a batch's description whose header has an id column is a list of tasks, one per
  row (autopilot/plan/tables.py), before the batch's heading tasks.
- A heading marked done (autopilot/plan/done_marks.py) makes its section done: its tasks and
  rows are listed in `Plan.done_tasks`, never in a batch, and its text is no plan context. A
  dependency on a done task is met; a task heading outside a batch is no error when done.
- The plan context is the text before the first batch, less done sections, plus the
  SHARED_SECTIONS (Overview, Critical Rules, ...) found outside batches later in the plan.
- Setext headings (`Title` underlined with `===` / `---`) never give structure (a paragraph
  followed by a `---` separator without a blank line is one); a setext h1 can be the plan title.

`parse_plan` is pure: it returns a `Plan` or raises `PlanError` listing every issue it found.
"""

from __future__ import annotations

import gc
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from autopilot.infra import (
    BATCH_NUMBER_MAX,
    FileTooBig,
    InputFileError,
    IsDirectory,
    NotRegularFile,
    printable,
    read_regular,
)
from autopilot.models import (
    Batch,
    DoneTask,
    FileRef,
    IgnoredBlock,
    KeptField,
    Plan,
    PlanWarning,
    Task,
)
from autopilot.plan.blocks import Block, top_level_blocks
from autopilot.plan.done_marks import strip_done_mark
from autopilot.plan.sections import done_lines, heading_text, shared_sections
from autopilot.plan.tables import Row, Table, task_tables

__all__ = [
    "BATCH_NUMBER_MAX",
    "PLAN_SIZE_LIMIT",
    "PlanError",
    "PlanIssue",
    "decode_plan",
    "load_plan",
    "parse_plan",
    "read_plan_bytes",
    "select_batches",
]

# A plan is a text file of a few hundred kB at most (a 10,000-task plan is ~1 MB): anything
# bigger is the wrong file, and would be read into memory whole.
PLAN_SIZE_LIMIT = 8 * 1024 * 1024
IS_A_DIRECTORY = "is a directory, not a plan file; give the path of the markdown plan"


class PlanIssue(BaseModel):
    """One problem in a plan: the 1-based line (0: the file as a whole) and what to do."""

    model_config = ConfigDict(frozen=True)

    line: int
    message: str


class PlanError(Exception):
    """The plan cannot be used; `issues` lists every problem found, sorted by line."""

    def __init__(self, path: str, issues: Iterable[PlanIssue]) -> None:
        self.path = path
        self.issues: list[PlanIssue] = sorted(issues, key=lambda issue: issue.line)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        # A file-level issue (line 0) names the file alone; the path is printed escaped (a
        # newline in a missing file's name would otherwise forge a line of its own).
        shown = printable(self.path)
        return "\n".join(
            f"{shown}:{issue.line}: {issue.message}" if issue.line else f"{shown}: {issue.message}"
            for issue in self.issues
        )

    def __reduce__(self) -> tuple[type[PlanError], tuple[str, list[PlanIssue]]]:
        return (type(self), (self.path, self.issues))


# --------------------------------------------------------------------------------------------
# Headings and field labels
# --------------------------------------------------------------------------------------------

# Between the number and the title: ":", "." (not "31.5"), " - ", en or em dash; or no title.
_SEPARATOR = r"(?:\s*:|\.(?=\s|$)|\s+[-\u2013\u2014](?=\s|$))"
# re.ASCII: `\d` is 0-9 only (not Arabic-Indic or fullwidth digits), and IGNORECASE folds
# ASCII letters only (without it `[a-z]` takes the Kelvin sign and `task` the long s).
_BATCH_RE = re.compile(rf"^batch\s+(\d+)(?:{_SEPARATOR}\s*(.*))?$", re.IGNORECASE | re.ASCII)
_TASK_RE = re.compile(
    rf"^task\s+(\d+(?:\.\d+)*[a-z]?)(?:{_SEPARATOR}\s*(.*))?$", re.IGNORECASE | re.ASCII
)
# A heading that starts like a batch/task heading but is not one is reported, never dropped:
# Unicode on purpose, so a task numbered in another script, or a Kelvin sign after the number,
# is reported, not taken as prose.
_NEAR_MISS_RE = re.compile(r"^(batch|task)\s*#?\d", re.IGNORECASE)

# `**Label:** value` or `**Label**: value` at the start of a line of a top-level paragraph.
_LABEL_RE = re.compile(r"^\*\*\s*([A-Za-z][A-Za-z ]*?)\s*(?::\s*\*\*|\*\*\s*:)\s*(.*)$")
_FieldKind = Literal["files", "verification", "depends", "commit", "mode"]
_LABELS: dict[str, _FieldKind] = {
    "files": "files",
    "file": "files",
    "verification": "verification",
    "verify": "verification",
    "depends on": "depends",
    "depends": "depends",
    "dependencies": "depends",
    "dependency": "depends",
    "commit": "commit",
    "commit message": "commit",
    "execution mode": "mode",
}

_NONE_VALUES = frozenset({"", "none", "-", "\u2013", "\u2014", "n/a", "na", "nothing"})
_TASK_REF_RE = re.compile(
    r"^(?:tasks?\s*)?(\d+(?:\.\d+)*[a-z]?)(?=$|[\s:\-\u2013\u2014])", re.I | re.ASCII
)
_BATCH_REF_RE = re.compile(r"^(?:batch(?:es)?\s*)?(\d+)(?=$|[\s:\-\u2013\u2014])", re.I | re.ASCII)
_LIST_SPLIT_RE = re.compile(r"\s*(?:,|;|&|\band\b)\s*", re.IGNORECASE)
_PARENTHESES_RE = re.compile(r"\([^)]*\)")
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])(?:\s+\[[ xX]\])?(?:\s+|$)")
_CHECKBOX_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\[[ xX]\]")
_LINE_RANGE_RE = re.compile(r":\d+(?:-\d+)?$")
_ACTION_RE = re.compile(r"^([A-Za-z]+)\s*:?$")
_ACTION_PREFIX_RE = re.compile(r"^([A-Za-z]+)\s*:\s+(.*)$")
# `**Execution Mode:**` says how a batch's tasks run, where, or both: `parallel` (up to
# --concurrency at once) or `sequential` (one at a time, in plan order); `local` (the task's
# sandboxed workspace on the worker) or `dagger` (its agent and checks in a Dagger container).
# Words are separated by commas, spaces, `+` or `/`; a remark in parentheses is left out.
_HOW_MODES: dict[str, bool] = {"parallel": False, "sequential": True}  # value: sequential
_WHERE_MODES = ("local", "dagger")
_MODE_SPLIT_RE = re.compile(r"[\s,;+/]+")
_MODE_SYNTAX = (
    "write how the tasks run (`parallel` or `sequential`), where (`local` or `dagger`), or"
    " both, e.g."
    " `**Execution Mode:** sequential, local`"
)
# A task file given as a line of its own, `Create `path`:`, followed by a fenced code block.
_CREATE_RE = re.compile(
    r"^(create|modify|update|edit|add|write|test)\s+(?:file\s+)?`([^`\n]+)`\s*:$",
    re.IGNORECASE | re.ASCII,
)
_SUMMARY_MAX = 80


# --------------------------------------------------------------------------------------------
# Intermediate structures
# --------------------------------------------------------------------------------------------


@dataclass
class _Item:
    text: str
    line: int


@dataclass
class _Field:
    kind: _FieldKind
    label: str
    line: int
    inline: str
    items: list[_Item] = field(default_factory=list)
    code: str | None = None


@dataclass
class _TaskDraft:
    id: str
    title: str
    line: int
    rank: int
    batch: _BatchDraft
    body: str = ""
    files: list[FileRef] = field(default_factory=list)
    verification: list[str] = field(default_factory=list)
    depends: list[tuple[str, int]] = field(default_factory=list)  # (task id, line)
    commit: str | None = None


@dataclass
class _Mode:
    """An `**Execution Mode:**` field as read: each part None when it does not say."""

    line: int
    text: str  # normalised, e.g. "sequential, local"
    sequential: bool | None = None
    place: Literal["local", "dagger"] | None = None


@dataclass
class _BatchDraft:
    number: int
    title: str
    line: int
    rank: int | None  # None: the implicit batch of a plan without batch headings
    done_by: str | None = None  # the heading marking it done (its own, or one above it)
    had_done: bool = False  # some of its tasks are marked done
    plain_table: int | None = None  # the line of a table without an id column, if any
    description: str = ""
    depends: list[tuple[int, int]] = field(default_factory=list)  # (batch number, line)
    mode: _Mode | None = None
    tasks: list[_TaskDraft] = field(default_factory=list)


@dataclass
class _Segment:
    """Lines from `start` (0-based) up to the next segment: what they belong to."""

    start: int
    kind: Literal["pre", "batch", "task", "prose", "stray"]
    batch: _BatchDraft | None = None
    task: _TaskDraft | None = None


class _Issues:
    """What parsing found besides the plan itself: problems, warnings, the fields kept as
    text, and the tasks marked done."""

    def __init__(self) -> None:
        self.items: list[PlanIssue] = []
        self.kept: list[KeptField] = []
        self.warnings: list[PlanWarning] = []
        self.done: list[DoneTask] = []

    def add(self, line: int, message: str) -> None:
        self.items.append(PlanIssue(line=line, message=message))

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(PlanWarning(line=line, message=message))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def read_plan_bytes(path: str | Path) -> bytes:
    """The plan file's bytes, refused (`PlanError`) before reading if it is not a regular file
    (a FIFO would block the reader for ever, a device never end) or is over PLAN_SIZE_LIMIT."""
    name = str(path)

    def refuse(message: str) -> PlanError:
        return PlanError(name, [PlanIssue(line=0, message=message)])

    try:
        return read_regular(name, PLAN_SIZE_LIMIT)
    except FileNotFoundError:
        raise refuse("plan file not found; check the path") from None
    except IsDirectory:
        raise refuse(IS_A_DIRECTORY) from None
    except FileTooBig as err:
        raise refuse(
            f"the plan file {err} of a plan; check that this is the plan, or split it into"
            " several plans"
        ) from None
    except NotRegularFile as err:
        raise refuse(f"{err}; give the path of the markdown plan itself") from None
    except InputFileError as err:
        raise refuse(str(err)) from None


def load_plan(path: str | Path) -> Plan:
    """Read and parse a plan file (UTF-8). Any problem, the file's own included: `PlanError`."""
    return decode_plan(read_plan_bytes(path), str(path))


def decode_plan(raw: bytes, name: str) -> Plan:
    """Parse a plan file's bytes (UTF-8); `name` is the file's, for the messages."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        message = (
            f"the plan file is not valid UTF-8 (first bad byte on line {bad_line}: {exc.reason});"
            " save it as UTF-8"
        )
        raise PlanError(name, [PlanIssue(line=0, message=message)]) from None
    return parse_plan(text, name)


def select_batches(plan: Plan, start: int | None, end: int | None) -> Plan:
    """A copy of `plan` with only the batches numbered start..end (inclusive; None: open).

    Dependencies on batches or tasks outside the range stay in the models: they are assumed
    to be merged already.
    """
    have = _describe_batch_numbers(plan)
    if start is not None and end is not None and start > end:
        message = (
            f"start batch {start} is after end batch {end}; give a start <= end"
            f" (this plan has {have})"
        )
        raise PlanError(plan.path, [PlanIssue(line=0, message=message)])
    chosen = [
        batch.model_copy(deep=True)
        for batch in plan.batches
        if (start is None or batch.number >= start) and (end is None or batch.number <= end)
    ]
    if not chosen:
        wanted = f"{'' if start is None else start}..{'' if end is None else end}"
        message = f"no batch in the range {wanted}; this plan has {have}"
        raise PlanError(plan.path, [PlanIssue(line=0, message=message)])
    return plan.model_copy(update={"batches": chosen})


def parse_plan(text: str, path: str) -> Plan:
    """Parse plan markdown. Raises `PlanError` with every issue found, sorted by line."""
    return parse_text(text, path, fast=True)


def parse_text(text: str, path: str, *, fast: bool) -> Plan:
    """`parse_plan`; `fast=False` reads the blocks with markdown-it alone (the reference)."""
    with _gc_paused():
        return _parse_lines(plan_lines(text), path, fast=fast)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while parsing: the many objects a big plan makes (and
    markdown-it's tokens) would trigger full collections again and again, for no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_lines(lines: list[str], path: str, *, fast: bool) -> Plan:
    """The plan in the lines of a file."""
    issues = _Issues()
    _refuse_nul(lines, path)

    front_matter, fm_lines = split_front_matter(lines)
    # markdown-it reads the front matter as blank lines: line numbers stay those of the file.
    blocks, _ = top_level_blocks(lines, fm_lines, fast=fast)

    title = next(
        (block.text.strip() or None for block in blocks if _is_heading(block) and block.rank == 1),
        None,
    )
    segments, batches = _structure(blocks, fm_lines, title, issues)
    in_done = done_lines(blocks, len(lines))

    ignored: list[IgnoredBlock] = []
    if fm_lines:
        ignored.append(_front_matter_block(front_matter, fm_lines))
    context = ""
    shared: list[str] = []  # shared sections after the preamble: part of the plan context
    plan_mode: _Mode | None = None
    bounds = [segment.start for segment in segments] + [len(lines)]
    pointer = 0
    for number, segment in enumerate(segments):
        start, end = segment.start, bounds[number + 1]
        own: list[Block] = []
        while pointer < len(blocks) and blocks[pointer].start < end:
            if blocks[pointer].start > start or segment.kind in ("pre", "prose", "stray"):
                own.append(blocks[pointer])
            pointer += 1
        if segment.kind in ("pre", "prose"):
            for first, after in _spans_outside(start, end, in_done):  # done ones are listed
                prose = _ignored_block(lines, first, after)
                if prose is not None:
                    ignored.append(prose)
            # Prose inside a batch (after a task a heading ended) is that batch's, not the plan's.
            plan_level = segment.batch is None or segment.batch.rank is None
            if plan_level:
                _rows_outside_batches(task_tables(own), in_done, issues)
            if segment.kind == "prose" and plan_level:
                spans = shared_sections(own, end, in_done)
                shared += [_strip_blank_lines(lines[first:after]) for first, after in spans]
            if segment.kind == "pre":
                # Done sections are history, not instructions: not in every task's prompt.
                context = _strip_blank_lines(
                    [lines[n] for n in range(start, end) if n not in in_done]
                )
                live = [block for block in own if block.start not in in_done]
                plan_mode = _plan_fields(_fields(live, lines, issues, "plan context"), issues)
        elif segment.kind == "batch" and segment.batch is not None:
            tables = task_tables(own)
            _table_tasks(segment.batch, tables, issues)
            in_tables = {
                n for table in tables if table.has_ids for n in range(table.start, table.end)
            }
            segment.batch.description = _strip_blank_lines(
                [lines[n] for n in range(start + 1, end) if n not in in_tables]
            )
            found = _fields(own, lines, issues, f"Batch {segment.batch.number}")
            _batch_fields(segment.batch, found, issues)
        elif segment.kind == "task" and segment.task is not None:
            segment.task.body = _strip_blank_lines(lines[start + 1 : end])
            _task_fields(
                segment.task, _fields(own, lines, issues, f"Task {segment.task.id}"), issues
            )
            _created_files(segment.task, own)

    _taskless_tables(batches, issues)
    _validate(batches, issues)
    if issues.items:
        raise PlanError(path, issues.items)
    context = "\n\n".join(part for part in (context, *shared) if part)

    return Plan(
        path=path,
        title=title,
        front_matter=front_matter,
        context=context,
        # A batch marked done, or all of whose tasks are, has nothing to run.
        batches=[
            _batch_model(batch, plan_mode)
            for batch in batches
            if batch.done_by is None and (batch.tasks or not batch.had_done)
        ],
        ignored=ignored,
        execution_mode=plan_mode.text if plan_mode else "",
        execution_mode_line=plan_mode.line if plan_mode else 0,
        kept_fields=sorted(issues.kept, key=lambda kept: kept.line),
        done_tasks=sorted(issues.done, key=lambda task: task.line),
        warnings=sorted(issues.warnings, key=lambda warning: warning.line),
    )


def _refuse_nul(lines: Sequence[str], path: str) -> None:
    """A NUL byte is never in a text plan (the wrong file, or a broken one): stop at once."""
    for number, line in enumerate(lines, 1):
        if "\0" in line:
            message = (
                "this line holds a NUL byte (\\0), which a markdown plan never has; remove it,"
                " or check that this is the plan and not a binary file"
            )
            raise PlanError(path, [PlanIssue(line=number, message=message)])


# --------------------------------------------------------------------------------------------
# Document structure
# --------------------------------------------------------------------------------------------


def plan_lines(text: str) -> list[str]:
    """The lines of the text, without a byte order mark, for any line ending."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def split_front_matter(lines: list[str]) -> tuple[str, int]:
    """YAML front matter at the very top: (its text, how many lines it spans incl. fences)."""
    if not lines or lines[0].rstrip() != "---":
        return "", 0
    for number in range(1, len(lines)):
        if lines[number].rstrip() in ("---", "..."):
            return "\n".join(lines[1:number]), number + 1
    return "", 0  # never closed: not front matter, just a thematic break


def _is_heading(block: Block) -> bool:
    return block.kind == "atx" or block.kind == "setext"


def _structure(
    blocks: Sequence[Block], first_line: int, title: str | None, issues: _Issues
) -> tuple[list[_Segment], list[_BatchDraft]]:
    """Walk the top-level ATX headings: which lines belong to what (see the module doc). A
    heading marked done makes its section done: its tasks are listed in `issues.done`."""
    headings = [
        (block, *strip_done_mark(heading_text(block.text)))
        for block in blocks
        if block.kind == "atx"
    ]
    batch_matches = [_BATCH_RE.match(text) for _, _, text in headings]
    has_batches = any(batch_matches)

    segments = [_Segment(first_line, "pre")]
    batches: list[_BatchDraft] = []
    batch: _BatchDraft | None = None
    task: _TaskDraft | None = None
    done: tuple[int, str] | None = None  # the done section we are in: its heading's rank, text
    for (block, marked, text), batch_match in zip(headings, batch_matches, strict=True):
        line, rank = block.start + 1, block.rank
        if done is not None and rank <= done[0]:
            done = None
        opens_done = marked and done is None
        if opens_done:
            done = (rank, text)
        task_match = None if batch_match else _TASK_RE.match(text)
        if task_match and done is not None:
            marked_by = "" if opens_done else done[1]
            issues.done.append(
                DoneTask(
                    id=task_match[1],
                    title=(task_match[2] or "").strip(),
                    line=line,
                    marked_by=marked_by,
                )
            )
            if batch is not None:
                batch.had_done = True
            if segments[-1].kind != "pre":  # in the plan's preamble it is cut from the context
                task = None
                segments.append(_Segment(block.start, "prose", batch=batch))
            continue
        if batch_match:
            number = _batch_number(batch_match[1])
            if number is None:
                issues.add(
                    line,
                    f"batch number {_shortened(batch_match[1])} is too large; number batches"
                    f" from 0 to {BATCH_NUMBER_MAX} (a signed 64-bit integer)",
                )
                number = -line  # unique, so it adds no other error
            batch = _BatchDraft(number, (batch_match[2] or "").strip(), line, rank)
            batch.done_by = done[1] if done is not None else None
            batches.append(batch)
            task = None
            segments.append(_Segment(block.start, "batch", batch=batch))
        elif task_match:
            if batch is None and has_batches:
                issues.add(
                    line,
                    f"Task {task_match[1]} is not inside a batch, but this plan has batch"
                    " headings; move it under a `## Batch N: Title` heading",
                )
                task = None
                segments.append(_Segment(block.start, "stray"))
                continue
            if batch is None:
                batch = _BatchDraft(1, title or "All tasks", line, None)
                batches.append(batch)
            task = _TaskDraft(task_match[1], (task_match[2] or "").strip(), line, rank, batch)
            batch.tasks.append(task)
            segments.append(_Segment(block.start, "task", batch=batch, task=task))
        else:
            near = _NEAR_MISS_RE.match(text)
            if near:
                what = "batch" if near[1].lower() == "batch" else "task"  # a long s too
                example = "## Batch 3: Title" if what == "batch" else "### Task 3.1: Title"
                issues.add(
                    line,
                    f"heading '{text}' looks like a {what} heading but cannot be read;"
                    f" write it like `{example}` (separator ':', '.', ' - ' or ' \u2014 ')",
                )
            if batch is not None and batch.rank is not None and rank <= batch.rank:
                batch, task = None, None
                segments.append(_Segment(block.start, "prose"))
            elif task is not None and rank < task.rank:
                task = None
                segments.append(_Segment(block.start, "prose", batch=batch))
    return segments, batches


def _batch_number(digits: str) -> int | None:
    """The batch number written as `digits`; None if it does not fit BATCH_NUMBER_MAX (checked
    on the length first: int() refuses more than 4,300 digits with a ValueError)."""
    digits = digits.lstrip("0") or "0"
    if len(digits) > len(str(BATCH_NUMBER_MAX)) or int(digits) > BATCH_NUMBER_MAX:
        return None
    return int(digits)


def _shortened(digits: str) -> str:
    return digits if len(digits) <= 24 else f"{digits[:10]}...({len(digits)} digits)"


def _strip_blank_lines(lines: Sequence[str]) -> str:
    first, last = _non_blank_span(lines)
    if first < 0:
        return ""
    return "\n".join(lines[first : last + 1])


def _non_blank_span(lines: Sequence[str]) -> tuple[int, int]:
    first, last = 0, len(lines) - 1
    while first <= last and not lines[first].strip():
        first += 1
    if first > last:
        return -1, -1
    while not lines[last].strip():
        last -= 1
    return first, last


def _summary(text: str) -> str:
    text = text.strip()
    if len(text) <= _SUMMARY_MAX:
        return text
    return text[: _SUMMARY_MAX - 3].rstrip() + "..."


def _spans_outside(start: int, end: int, excluded: set[int]) -> list[tuple[int, int]]:
    """The runs [first, after) of the lines start..end-1 that are not in `excluded`."""
    if not excluded:
        return [(start, end)]
    spans: list[tuple[int, int]] = []
    first: int | None = None
    for number in range(start, end):
        if number in excluded:
            if first is not None:
                spans.append((first, number))
            first = None
        elif first is None:
            first = number
    if first is not None:
        spans.append((first, end))
    return spans


def _ignored_block(lines: Sequence[str], start: int, end: int) -> IgnoredBlock | None:
    first, last = _non_blank_span(lines[start:end])
    if first < 0:
        return None
    return IgnoredBlock(
        start_line=start + first + 1,
        end_line=start + last + 1,
        summary=_summary(lines[start + first]),
    )


def _front_matter_block(front_matter: str, fm_lines: int) -> IgnoredBlock:
    first = next((line for line in front_matter.split("\n") if line.strip()), "")
    summary = f"front matter: {first.strip()}" if first else "front matter (empty)"
    return IgnoredBlock(start_line=1, end_line=fm_lines, summary=_summary(summary))


# --------------------------------------------------------------------------------------------
# Fields
# --------------------------------------------------------------------------------------------


def _fields(
    blocks: Sequence[Block], lines: Sequence[str], issues: _Issues, owner: str
) -> list[_Field]:
    """`**Label:** value` lines of top-level paragraphs (setext headings too), with a list or
    code block that follows a label without a value (or one ending in ':'). A label that is no
    field stays text, and is listed in `issues.kept` with `owner`."""
    found: list[_Field] = []
    for position, block in enumerate(blocks):
        if (block.kind != "paragraph" and block.kind != "setext") or "**" not in block.text:
            continue  # no label in it
        current: _Field | None = None
        for offset, raw in enumerate(block.text.split("\n")):
            text = raw.strip()
            match = _LABEL_RE.match(text)
            if match:
                label = " ".join(match[1].lower().split())
                kind = _LABELS.get(label)
                current = None
                if kind is not None:
                    current = _Field(kind, match[1].strip(), block.start + offset + 1, match[2])
                    found.append(current)
                else:
                    issues.kept.append(_kept(match[1], block.start + offset + 1, owner))
            elif current is not None:
                current.inline = f"{current.inline} {text}".strip()
        if current is None or position + 1 >= len(blocks):
            continue
        current.inline = current.inline.strip()
        if current.inline and not current.inline.endswith(":"):
            continue
        following = blocks[position + 1]
        if following.kind == "list":
            current.items = _list_items(following, lines)
        elif following.kind == "code":
            current.code = following.text
    for found_field in found:
        found_field.inline = found_field.inline.strip()
    return found


def _list_items(block: Block, lines: Sequence[str]) -> list[_Item]:
    """The items of the list a field label introduces.

    CommonMark continues a list across blank lines, so `**Files:**` items followed by a blank
    line and `- [ ] **Step 1:** ...` checklist items are one list. The field's items end at the
    first item that is (or is not) a `[ ]` checkbox when the first one is not (or is), or that
    follows a blank line after items that were not separated by blank lines.
    """
    items: list[_Item] = []
    first_is_box: bool | None = None
    tight = False
    for start, end in block.items:
        is_box = _CHECKBOX_RE.match(lines[start]) is not None
        gap = start > 0 and not lines[start - 1].strip()
        if first_is_box is None:
            first_is_box = is_box
        elif is_box != first_is_box or (gap and tight):
            break
        elif len(items) == 1:
            tight = not gap
        items.append(_Item(_item_text(lines[start:end]), start + 1))
    return items


def _item_text(item_lines: Sequence[str]) -> str:
    """A list item's text: its lines without the marker (and `[ ]` box), dedented."""
    first = item_lines[0]
    marker = _LIST_MARKER_RE.match(first)
    width = marker.end() if marker else 0
    out = [first[width:].strip()]
    for line in item_lines[1:]:
        indent = len(line) - len(line.lstrip(" "))
        out.append(line[min(indent, width) :].rstrip())
    return _strip_blank_lines(out)


def _unquote(value: str) -> str:
    value = value.strip()
    if value.startswith("`"):
        ticks = len(value) - len(value.lstrip("`"))
        closing = value.find("`" * ticks, ticks)
        if closing > ticks:
            return value[ticks:closing].strip()
    while len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].strip()
    return value


def _plain(value: str) -> str:
    return value.replace("**", "").replace("`", "").strip().rstrip(".").strip()


def _split_values(value: str) -> list[str]:
    value = _PARENTHESES_RE.sub("", value)
    return [piece.strip() for piece in _LIST_SPLIT_RE.split(value) if piece.strip()]


def _field_values(found: _Field) -> list[tuple[str, int]]:
    """A field's values: its list items, or else its inline text split at commas."""
    if found.items:
        return [(_plain(item.text.split("\n")[0]), item.line) for item in found.items]
    plain = _plain(found.inline)
    if plain.lower() in _NONE_VALUES:
        return []
    return [(piece, found.line) for piece in _split_values(plain)]


def _file_ref(text: str, line: int) -> FileRef | None:
    text = text.strip()
    action = ""
    tick = text.find("`")
    if tick >= 0 and text.find("`", tick + 1) > tick:
        closing = text.find("`", tick + 1)
        path = text[tick + 1 : closing].strip()
        before = _ACTION_RE.match(text[:tick].replace("*", "").strip())
        if before:
            action = before[1].lower()
    else:
        text = text.replace("**", "")
        prefixed = _ACTION_PREFIX_RE.match(text)
        if prefixed:
            action, text = prefixed[1].lower(), prefixed[2]
        words = text.split()
        path = words[0].strip("\"',;") if words else ""
    path = _LINE_RANGE_RE.sub("", path)
    if not path:
        return None
    return FileRef(action=action, path=path, line=line)


def _split_outside_backticks(value: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    in_code = False
    for char in value:
        if char == "`":
            in_code = not in_code
        if char == "," and not in_code:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return [piece.strip() for piece in pieces if piece.strip()]


def _kept(label: str, line: int, owner: str) -> KeptField:
    return KeptField(line=line, label=" ".join(label.split()), owner=owner)


def _dependencies(
    found: _Field, ref: re.Pattern[str], where: str, listing: str, issues: _Issues
) -> Iterator[tuple[str, int]]:
    """A dependency field's references as `ref` reads them (its first group), each with its
    line; a value it cannot read is an issue that says how to list them (`listing`)."""
    for value, line in _field_values(found):
        match = ref.match(value)
        if match is None:
            issues.add(
                line, f"cannot read dependency '{value}' of {where}; {listing} or write `None`"
            )
        else:
            yield match[1], line


def _task_fields(task: _TaskDraft, found: Sequence[_Field], issues: _Issues) -> None:
    commit_line: int | None = None
    where = f"Task {task.id}"
    for item in found:
        if item.kind == "mode":  # a batch's or the plan's field: in a task it is only text
            issues.kept.append(_kept(item.label, item.line, where))
        elif item.kind == "files":
            if item.items:
                refs = [_file_ref(entry.text.split("\n")[0], entry.line) for entry in item.items]
            else:
                refs = [_file_ref(p, item.line) for p in _split_outside_backticks(item.inline)]
            task.files.extend(ref for ref in refs if ref is not None)
        elif item.kind == "verification":
            if item.items:
                task.verification.extend(entry.text for entry in item.items if entry.text)
            elif item.inline:
                task.verification.append(item.inline)
        elif item.kind == "depends":
            listing = "list task ids like `**Depends on:** Task 1.1, Task 1.2`"
            for task_id, line in _dependencies(item, _TASK_REF_RE, where, listing, issues):
                if all(dep != task_id for dep, _ in task.depends):
                    task.depends.append((task_id, line))
        elif item.kind == "commit":
            message = _unquote(item.inline) or _unquote(item.code or "")
            if commit_line is not None:
                issues.add(
                    item.line,
                    f"{where} has a second **Commit:** field (first at line {commit_line});"
                    " keep one",
                )
                continue
            commit_line = item.line
            task.commit = message or None


def _created_files(task: _TaskDraft, blocks: Sequence[Block]) -> None:
    """Files a task gives as a paragraph `Create `path`:` followed by a fenced code block,
    added to its **Files:** (once: a path listed there already is not repeated)."""
    listed = {ref.path for ref in task.files}
    for block, following in itertools.pairwise(blocks):
        if block.kind != "paragraph" or following.kind != "code":
            continue
        match = _CREATE_RE.match(block.text.strip())
        if match is None:
            continue
        path = _LINE_RANGE_RE.sub("", match[2].strip())
        if path and path not in listed:
            listed.add(path)
            task.files.append(FileRef(action=match[1].lower(), path=path, line=block.start + 1))


def _plan_fields(found: Sequence[_Field], issues: _Issues) -> _Mode | None:
    """The plan's default execution mode, from the prose before the first batch; the other
    fields there are only text (plan context)."""
    mode: _Mode | None = None
    for item in found:
        if item.kind != "mode":
            issues.kept.append(_kept(item.label, item.line, "plan context"))
        elif mode is not None:
            issues.add(
                item.line,
                f"the plan has a second default **Execution Mode:** (first at line {mode.line});"
                " keep one",
            )
        else:
            mode = _read_mode(item, "the plan", issues)
    return mode


def _read_mode(item: _Field, where: str, issues: _Issues) -> _Mode | None:
    """An `**Execution Mode:**` value: how, where, or both (see _HOW_MODES, _WHERE_MODES)."""
    written = _plain(item.inline)
    words = [w for w in _MODE_SPLIT_RE.split(_PARENTHESES_RE.sub(" ", written).lower()) if w]
    mode = _Mode(line=item.line, text="")
    problem = "" if words else f"empty Execution Mode for {where}; {_MODE_SYNTAX}"
    for word in words:
        if problem:
            break
        if word in _HOW_MODES:
            if mode.sequential is not None and mode.sequential != _HOW_MODES[word]:
                problem = (
                    f"Execution Mode '{written}' for {where} says both parallel and sequential"
                )
            mode.sequential = _HOW_MODES[word]
        elif word in _WHERE_MODES:
            if mode.place is not None and mode.place != word:
                problem = f"Execution Mode '{written}' for {where} names two places to run"
            mode.place = "local" if word == "local" else "dagger"
        else:
            problem = f"unknown Execution Mode '{written}' for {where}; {_MODE_SYNTAX}"
    if problem:
        issues.add(item.line, problem)
        return None
    parts = [] if mode.sequential is None else ["sequential" if mode.sequential else "parallel"]
    mode.text = ", ".join([*parts, *([mode.place] if mode.place else [])])
    return mode


def _batch_fields(batch: _BatchDraft, found: Sequence[_Field], issues: _Issues) -> None:
    mode_line: int | None = None
    where = f"Batch {batch.number}"
    for item in found:
        if item.kind in ("files", "verification", "commit"):  # a task's fields: text here
            issues.kept.append(_kept(item.label, item.line, where))
        elif item.kind == "depends":
            listing = "list batches like `**Dependencies:** Batch 1, Batch 2`"
            for digits, line in _dependencies(item, _BATCH_REF_RE, where, listing, issues):
                if (number := _batch_number(digits)) is None:
                    issues.add(
                        line,
                        f"{where} depends on batch number {_shortened(digits)}, which is too"
                        f" large; batch numbers go from 0 to {BATCH_NUMBER_MAX}",
                    )
                elif all(dep != number for dep, _ in batch.depends):
                    batch.depends.append((number, line))
        elif item.kind == "mode":
            if mode_line is not None:
                issues.add(
                    item.line,
                    f"{where} has a second **Execution Mode:** field (first at line"
                    f" {mode_line}); keep one",
                )
                continue
            mode_line = item.line
            batch.mode = _read_mode(item, where, issues)


# --------------------------------------------------------------------------------------------
# Done sections and task tables
# --------------------------------------------------------------------------------------------

# A row saying fewer words than this (its title and other text columns) is too thin to act
# on alone: a warning.
THIN_WORDS = 3


def _rows_outside_batches(tables: Sequence[Table], in_done: set[int], issues: _Issues) -> None:
    """Table rows outside any batch: those marked done (or in a done section) are listed as
    done; the others do not run, which a warning says."""
    for table in tables:
        for row in table.rows:
            if not row.id:
                continue
            if row.done or row.line - 1 in in_done:
                issues.done.append(DoneTask(id=row.id, title=row.title, line=row.line))
            else:
                issues.warn(
                    row.line,
                    f"Task {row.id} is a table row outside any batch and not marked done: it"
                    " does not run; move its table under a `### Batch N: Title` heading, or"
                    " mark it done (\u2705)",
                )


def _table_tasks(batch: _BatchDraft, tables: Sequence[Table], issues: _Issues) -> None:
    """The batch's task-table rows as its first tasks (before any task heading's)."""
    rows: list[_TaskDraft] = []
    plain = next((table.start + 1 for table in tables if not table.has_ids), None)
    batch.plain_table = batch.plain_table or plain
    for table in tables:
        for row in table.rows:
            if not row.id:
                if row.id_text.strip() or row.title:
                    issues.warn(
                        row.line,
                        f"this row of Batch {batch.number}'s task table has no task id"
                        f" ('{_shortened(row.id_text)}'), so it is no task; give it an id like"
                        " `3.1.1` if it is one",
                    )
                continue
            if row.done or batch.done_by is not None:
                batch.had_done = True
                issues.done.append(
                    DoneTask(
                        id=row.id, title=row.title, line=row.line, marked_by=batch.done_by or ""
                    )
                )
                continue
            rows.append(_row_task(batch, row, issues))
    batch.tasks[0:0] = rows


def _taskless_tables(batches: Sequence[_BatchDraft], issues: _Issues) -> None:
    """A batch with no tasks but a table without an id column: the author likely meant its
    rows as tasks."""
    for batch in batches:
        if batch.plain_table and not batch.tasks and not batch.had_done:
            issues.warn(
                batch.plain_table,
                f"Batch {batch.number} has no tasks: this table has no id column, so its rows"
                " are no tasks; name the column of task ids `ID` if they are",
            )


def _row_task(batch: _BatchDraft, row: Row, issues: _Issues) -> _TaskDraft:
    """A task from a table row: its body is the row's description with the other columns as
    labelled lines, so the agent reads it like a task written under a heading."""
    body = [row.title or "(no description)", ""]
    if row.files.strip():
        body.append(f"**Files:** {row.files.strip()}")
    values = [
        value
        for written in row.depends
        if (plain := _plain(written)).lower() not in _NONE_VALUES
        for value in _split_values(plain)
    ]
    if values:
        body.append(f"**Depends on:** {', '.join(values)}")
    body += [f"**{header}:** {value}" for header, value in row.others]
    task = _TaskDraft(row.id, row.title, row.line, 0, batch, body="\n".join(body).strip())
    pieces = _split_outside_backticks(re.sub(r"<br\s*/?>|;", ",", row.files, flags=re.I))
    task.files = [ref for piece in pieces if (ref := _file_ref(piece, row.line)) is not None]
    for value in values:
        match = _TASK_REF_RE.match(value)
        if match is None:
            issues.add(
                row.line,
                f"cannot read dependency '{value}' of Task {row.id}; list task ids like"
                " `3.1.1, 3.1.2` in its depends column, or leave it empty",
            )
        elif all(dep != match[1] for dep, _ in task.depends):
            task.depends.append((match[1], row.line))
    # The row's other columns (a Description next to a short Task name) say what to do too.
    words = len(row.title.split()) + sum(len(value.split()) for _, value in row.others)
    if words < THIN_WORDS:
        said = f"says only '{row.title}'" if row.title else "has no description"
        issues.warn(
            row.line,
            f"Task {row.id} {said}: too thin to act on alone; it runs anyway, with its batch's"
            " text and the plan context; say what to do in the row if that is not enough",
        )
    return task


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _validate(batches: Sequence[_BatchDraft], issues: _Issues) -> None:
    tasks = [task for batch in batches for task in batch.tasks]
    done = {task.id: task for task in issues.done}
    if not tasks and done:
        issues.add(
            1,
            f"every task of this plan is marked done ({len(done)} of them): nothing to run;"
            " add tasks, or remove the done marker ((COMPLETE), \u2705) of those to run again",
        )
    elif not tasks and (plain := next((b.plain_table for b in batches if b.plain_table), None)):
        issues.add(
            1,
            f"no tasks found; the table at line {plain} has no id column, so its rows are no"
            " tasks: name the column of task ids `ID` (`| ID | Task | Files |`), or add task"
            " headings like `### Task 1.1: Title` under `## Batch 1: Title` headings",
        )
    elif not tasks:
        issues.add(
            1,
            "no tasks found; add task headings like `### Task 1.1: Title` under"
            " `## Batch 1: Title` headings, or `### Task 1: Title` sections",
        )

    batch_index: dict[int, int] = {}
    for index, batch in enumerate(batches):
        if batch.number in batch_index:
            first = batches[batch_index[batch.number]]
            issues.add(
                batch.line,
                f"Batch {batch.number} is defined twice (lines {first.line} and {batch.line});"
                " give each batch a unique number",
            )
        else:
            batch_index[batch.number] = index

    task_by_id: dict[str, _TaskDraft] = {}
    position: dict[int, int] = {}  # id(task draft) -> index of its batch
    for index, batch in enumerate(batches):
        for task in batch.tasks:
            position[id(task)] = index
            if not task.body.strip():
                issues.add(
                    task.line,
                    f"Task {task.id} has an empty body; describe the work under its heading",
                )
            if task.id in done:
                issues.add(
                    task.line,
                    f"Task {task.id} is defined twice (lines {done[task.id].line}, marked done,"
                    f" and {task.line}); give each task a unique id",
                )
            elif task.id in task_by_id:
                first_task = task_by_id[task.id]
                issues.add(
                    task.line,
                    f"Task {task.id} is defined twice (lines {first_task.line} and {task.line});"
                    " give each task a unique id",
                )
            else:
                task_by_id[task.id] = task

    known_numbers = _number_list(batch.number for batch in batches)
    batch_graph: dict[str, list[str]] = {}
    batch_lines: dict[str, int] = {}
    for index, batch in enumerate(batches):
        name = f"Batch {batch.number}"
        batch_lines.setdefault(name, batch.line)
        edges = batch_graph.setdefault(name, [])
        for number, line in batch.depends:
            if number == batch.number:
                issues.add(
                    line,
                    f"{name} depends on itself; remove Batch {number} from its **Dependencies:**",
                )
            elif number not in batch_index:
                issues.add(
                    line,
                    f"{name} depends on unknown Batch {number} (this plan has {known_numbers});"
                    " fix or remove it in **Dependencies:**",
                )
            else:
                if batch_index[number] > index:
                    issues.add(
                        line,
                        f"{name} depends on Batch {number}, which comes later in the plan;"
                        f" batches run in order, so move Batch {number} before {name}"
                        " or remove the dependency",
                    )
                edges.append(f"Batch {number}")

    task_graph: dict[str, list[str]] = {}
    task_lines: dict[str, int] = {}
    for task in tasks:
        name = f"Task {task.id}"
        if name in task_graph:
            continue  # a duplicate id: already reported
        task_lines[name] = task.line
        edges = task_graph.setdefault(name, [])
        for dep, line in task.depends:
            target = task_by_id.get(dep)
            if dep == task.id:
                issues.add(
                    line,
                    f"{name} depends on itself; remove Task {dep} from its **Depends on:**",
                )
            elif target is None and dep in done:
                continue  # done already: met
            elif target is None:
                issues.add(
                    line,
                    f"{name} depends on unknown Task {dep}; fix the id in **Depends on:**"
                    " or remove it",
                )
            else:
                if position[id(target)] > position[id(task)]:
                    issues.add(
                        line,
                        f"{name} (Batch {task.batch.number}) depends on Task {dep} of"
                        f" Batch {target.batch.number}, which runs later; move Task {dep} to"
                        f" an earlier batch or remove the dependency",
                    )
                edges.append(f"Task {dep}")

    for graph, lines in ((batch_graph, batch_lines), (task_graph, task_lines)):
        for cycle in _cycles(graph, lines):
            issues.add(
                lines[cycle[0]],
                f"dependency cycle: {' -> '.join([*cycle, cycle[0]])} (each depends on the"
                " next); remove one of these dependencies",
            )


def _cycles(graph: dict[str, list[str]], lines: dict[str, int]) -> list[list[str]]:
    """One cycle per back edge of an iterative depth-first search, each starting at its
    earliest node in the file and reported once."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for root in graph:
        if colour[root] != white:
            continue
        path: list[str] = [root]
        on_path: dict[str, int] = {root: 0}
        stack: list[tuple[str, int]] = [(root, 0)]
        colour[root] = grey
        while stack:
            node, next_edge = stack[-1]
            edges = graph[node]
            if next_edge >= len(edges):
                stack.pop()
                path.pop()
                del on_path[node]
                colour[node] = black
                continue
            stack[-1] = (node, next_edge + 1)
            target = edges[next_edge]
            if colour.get(target, black) == grey:
                cycle = path[on_path[target] :]
                first = min(range(len(cycle)), key=lambda n: lines[cycle[n]])
                rotated = tuple(cycle[first:] + cycle[:first])
                if rotated not in seen:
                    seen.add(rotated)
                    cycles.append(list(rotated))
            elif colour.get(target, black) == white:
                colour[target] = grey
                on_path[target] = len(path)
                path.append(target)
                stack.append((target, 0))
    return cycles


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def _batch_model(batch: _BatchDraft, plan_mode: _Mode | None) -> Batch:
    # What the batch does not say, the plan's default says; what neither says is the default:
    # parallel (up to --concurrency), local (None).
    sequential = next(
        (m.sequential for m in (batch.mode, plan_mode) if m and m.sequential is not None), False
    )
    place = next((m.place for m in (batch.mode, plan_mode) if m and m.place), None)
    return Batch(
        number=batch.number,
        title=batch.title,
        description=batch.description,
        dependencies=[number for number, _ in batch.depends],
        execution_place=place,
        sequential=sequential,
        tasks=[
            Task(
                id=task.id,
                title=task.title,
                batch=batch.number,
                body=task.body,
                files=task.files,
                verification=task.verification,
                depends_on=[dep for dep, _ in task.depends],
                commit_message=task.commit,
                line=task.line,
            )
            for task in batch.tasks
        ],
        line=batch.line,
        implicit=batch.rank is None,
    )


def _number_list(numbers: Iterable[int]) -> str:
    """`1-3, 5, 7-8`: sorted numbers with consecutive runs collapsed."""
    ordered = sorted(set(numbers))
    runs: list[str] = []
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        first, last = ordered[index], ordered[end]
        runs.append(str(first) if first == last else f"{first}-{last}")
        index = end + 1
    return ", ".join(runs) if runs else "none"


def _describe_batch_numbers(plan: Plan) -> str:
    if len(plan.batches) == 1 and plan.batches[0].implicit:
        return "only batch 1 (no batch headings: all its tasks form one batch)"
    numbers = _number_list(batch.number for batch in plan.batches)
    return f"batch {numbers}" if len(plan.batches) == 1 else f"batches {numbers}"
