"""The line scanner against markdown-it: the same top-level blocks and plans, for any input."""

from __future__ import annotations

import random

import pytest

from autopilot.plan import Block, PlanError, PlanIssue, ScanReport, top_level_blocks
from autopilot.plan import blocks as plan_blocks
from autopilot.plan import parser as plan_parser
from bench.plans import plan_text

Outcome = dict[str, object] | list[PlanIssue]


def read(text: str, *, fast: bool) -> tuple[list[Block], ScanReport]:
    """The blocks of `text` as `parse_plan` reads them."""
    lines = plan_parser.plan_lines(text)
    _, first = plan_parser.split_front_matter(lines)
    return top_level_blocks(lines, first, fast=fast)


def outcome(text: str, *, fast: bool) -> Outcome:
    try:
        return plan_parser.parse_text(text, "plan.md", fast=fast).model_dump()
    except PlanError as error:
        return error.issues


def check(text: str, *, plans: bool = True) -> ScanReport:
    """Assert both paths read the same blocks in `text` and (if `plans`) give the same plan or
    issues; how the fast path read it. The blocks are all the paths differ in."""
    fast, report = read(text, fast=True)
    reference, _ = read(text, fast=False)
    assert fast == reference, f"blocks differ for {text!r}"
    if plans:
        assert outcome(text, fast=True) == outcome(text, fast=False), f"plans differ: {text!r}"
    return report


# --------------------------------------------------------------------------------------------
# Which path reads what
# --------------------------------------------------------------------------------------------


def test_the_benchmark_plan_is_scanned_without_markdown_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = plan_text(200)
    report = check(text)
    assert report == ScanReport(scanned=report.scanned, tokenised=0, whole=False)
    assert report.scanned > 200  # a chunk per heading

    def no_markdown_it(source: str) -> None:
        raise AssertionError("markdown-it tokenised the benchmark plan")

    monkeypatch.setattr(plan_blocks.MARKDOWN, "parse", no_markdown_it)
    assert plan_parser.parse_plan(text, "plan.md").task_count() == 200


@pytest.mark.parametrize(
    "text",
    [
        "**Files:**\n- a.py\n```\ncode\n```\n",  # an item, then a fence
        "**Files:**\n- a.py\n***\ntext\n",  # an item, then a thematic break
        "**Files:**\n* a.py\n* * *\n",  # a thematic break, not an item
        "- a.py\n### Task 2: b\nb\n",  # an item, then a heading
        "1. one\n   more\n2) two\n\n   - nested\n10. ten\n",
        "Text\n- a list interrupts it\n2. this does not\n",
        "Text\n*\n1.\n+  \nnor do empty items\n",
        "Title\n===\n\nSub\n---\n",  # setext headings
        "```\n    ```\nstill code\n```\n",  # indented 4: no closing fence
        "text\n\n    indented code\n\n      more\n",
    ],
)
def test_the_scanner_reads_common_shapes(text: str) -> None:
    report = check("### Task 1: a\n" + text)
    assert (report.tokenised, report.whole) == (0, False)


@pytest.mark.parametrize(
    "text",
    [
        "# T\n\n> a quote\n\n## Batch 1: A\n### Task 1.1: a\nDo it.\n",  # block quote
        "### Task 1: a\n- item\nlazy line\n### Task 2: b\nb\n",  # lazy continuation
        "### Task 1: a\n  ## indented heading\n### Task 2: b\nb\n",
        "### Task 1: a\n<div>\nx\n</div>\n\n### Task 2: b\nb\n",  # HTML, closed before
        "### Task 1: a\n[ref]: /url\n### Task 2: b\nb\n",  # link reference definition
        "### Task 1: a\n-\n  item on the next line\n### Task 2: b\nb\n",  # empty first line
        # A fence closed on the chunk's last line ends there in the document too.
        "### Task 1: a\n> quote\n\n```\ncode\n```\n### Task 2: b\nb\n",
    ],
)
def test_a_chunk_the_scanner_does_not_read_goes_to_markdown_it(text: str) -> None:
    report = check(text)
    assert (report.tokenised, report.whole) == (1, False)
    assert report.scanned >= 1


@pytest.mark.parametrize(
    "text",
    [
        # An indented fence is a top-level one: the heading after it is code.
        "### Task 1: a\n  ```\n### Task 2: in code\n```\nx\n",
        # An HTML block runs up to a blank line, over the heading.
        "### Task 1: a\n<div>\n### Task 2: in HTML\n\nx\n",
        # Nested beyond markdown-it's limit: the rest of the document is skipped.
        "### Task 1: a\n" + "- " * 11 + "x\n### Task 2: b\nb\n",
        "### Task 1: a\nNUL \0 in the text\n",  # markdown-it replaces it in its text
    ],
)
def test_a_chunk_that_may_not_end_at_its_heading_sends_the_document_to_markdown_it(
    text: str,
) -> None:
    assert check(text) == ScanReport(whole=True)


def test_a_nested_indented_fence_does_not_cross_the_heading() -> None:
    text = "### Task 1: a\n- item\n  ```\n  code\n### Task 2: b\nb\n"
    assert check(text) == ScanReport(scanned=3)


# --------------------------------------------------------------------------------------------
# Random documents
# --------------------------------------------------------------------------------------------

# Common plan shapes: what the line scanner should read.
COMMON = [
    ["## Batch {n}: Title {n}"],
    ["### Batch {n}"],
    ["### Task {n}.{m}: Do {m}"],
    ["#### Task {n}.{m}a: Do more"],
    ["## Task {m}: Flat"],
    ["# Plan title"],
    ["## Notes"],
    ["#### Details ###"],
    ["### Notes on C#"],
    [""],
    [""],
    ["", ""],
    ["Do the thing."],
    ["Some text", "over two lines."],
    ["**Files:**"],
    ["**Files:** `src/a{m}.py`, b.py"],
    ["**File:**", "- Create: `src/x.py`", "- Modify: `src/y.py:1-9`"],
    ["**Verification:**"],
    ["**Verification:** `pytest` passes"],
    ["**Depends on:** Task {n}.{m}"],
    ["**Depends on:**", "- Task {n}.1"],
    ["**Dependencies:** Batch {n}"],
    ["**Dependencies:** None"],
    ["**Execution Mode:** local"],
    ["**Execution Mode:** dagger"],
    ["**Commit:** feat: add {m}"],
    ["**Commit:**", "```", "feat: in code", "```"],
    ["**Commit:**", "", "    feat: indented code"],
    ["- Create: `src/{m}.py`"],
    ["- item one", "- item two"],
    ["* star item", "* star two"],
    ["+ plus item"],
    ["- dash", "* star", "+ plus"],
    ["1. first", "2. second"],
    ["1) first"],
    ["3. third"],
    ["- [ ] **Step 1:** Write the test"],
    ["- [x] done"],
    ["- item", "  continued"],
    ["- item", "", "  second paragraph"],
    ["- item", "  - nested", "    - deeper"],
    ["1. step", "   ```bash", "   run", "   ```"],
    ["```python", "def f() -> None:", "    pass", "```"],
    ["```", "## Batch 99: in code", "### Task 99.1: in code", "```"],
    ["~~~", "### Task 98.1: in tildes", "~~~"],
    ["````markdown", "```", "# in code", "```", "````"],
    ["```", "### Task 9.9: closed by a longer fence", "`````"],
    ["~~~ text", "## Batch 9: closed by a longer fence", "~~~~~~"],
    ["---"],
    ["***"],
    ["    indented code"],
    ["Title", "====="],
    ["Subtitle", "--------"],
    ["text with trailing spaces   "],
]

# Shapes the scanner leaves to markdown-it, and edge cases of the shapes it reads.
ODD = [
    [" ## Batch {n}: indented"],
    ["   ### Task {n}.{m}: indented three"],
    ["    ### Task {n}.{m}: indented code"],
    ["##NoSpace"],
    ["####### seven"],
    ["#"],
    ["## Batch {n} ##"],
    ["  ```"],
    ["   ~~~"],
    ["```"],
    ["~~~~"],
    ["```a`b"],
    ["`````"],
    ["- ```", "  # in a list fence"],
    ["> ```", "> # in a quoted fence"],
    ["> quoted"],
    ["> ## Batch {n}: quoted"],
    [">"],
    ["<div>"],
    ["</div>"],
    ["<!-- comment"],
    ["-->"],
    ["<pre>", "# pre", "</pre>"],
    ["<span>inline</span> text"],
    [" <div>"],
    ["==="],
    ["- - -"],
    ["* * *"],
    ["___"],
    ["  ---"],
    ["-"],
    ["- "],
    ["*"],
    ["1."],
    ["2."],
    ["= ="],
    ["--- x"],
    ["\tcode with a tab"],
    [" \ttext after a tab"],
    ["-\ttab item"],
    ["- item\twith tab"],
    ["\t"],
    ["  \t  "],
    ["   "],
    ["lazy continuation"],
    ["  two-space continuation"],
    ["     five-space continuation"],
    ["-     code in an item"],
    ["10. ten"],
    ["1234567890. too long"],
    ["01. zero-led"],
    ["- a", "+ b", "* c"],
    ["1. a", "1) b"],
    ["[foo]: /url"],
    ["[foo]:", "  /url 'title'"],
    ["- - - - - - - - - - x"],
    ["  " * depth + "- deeper" for depth in range(11)],
    ["> > > > > > > > > > > > > > > > > > > > x"],
    ["a\0b"],
    ["\u00a0"],
    ["\u2003text"],
    ["\x0c"],
    ["\x0bvertical tab"],
    ["#\u00a0not a heading"],
    ["text #"],
    ["\\## escaped"],
    ["**Files:**", "- a.py", "lazy.py"],
    ["**Verification:**", "1. one", "", "- [ ] box"],
    ["  - indented item"],
    ["   1. indented ordered"],
    ["-  two spaces", "   aligned"],
    ["- one", "", "", "- two"],
]


def random_plan(rng: random.Random) -> str:
    """Snippets, most of them common plan shapes (how many odd ones varies by plan), mostly
    apart by a blank line; sometimes front matter, CRLF, no final newline."""
    odd_share = rng.choice([0.0, 0.0, 0.03, 0.1, 0.3])
    lines: list[str] = []
    if rng.random() < 0.1:
        lines += ["---", "title: x", "---"]
    for _ in range(rng.randint(1, 30)):
        pool = ODD if rng.random() < odd_share else COMMON
        n, m = rng.randint(1, 3), rng.randint(1, 3)
        lines += [line.format(n=n, m=m) for line in rng.choice(pool)]
        if rng.random() < 0.7:  # blocks apart, as in most plans
            lines.append("")
    text = "\n".join(lines) + rng.choice(["", "\n", "\n\n", "\n  "])
    return text.replace("\n", "\r\n") if rng.random() < 0.05 else text


def test_random_plans_read_the_same_on_both_paths() -> None:
    """The same blocks for every plan; the same plan or issues for every tenth (they follow
    from the blocks, and the plan models take most of the time)."""
    rng = random.Random(20240611)
    reports = [check(random_plan(rng), plans=number % 10 == 0) for number in range(3000)]
    scanned_only = sum(r.scanned > 0 and r.tokenised == 0 and not r.whole for r in reports)
    mixed = sum(r.scanned > 0 and r.tokenised > 0 for r in reports)
    whole = sum(r.whole for r in reports)
    counts = (scanned_only, mixed, whole)
    # Every path is taken, and the scanner reads most chunks (about 80 %).
    assert scanned_only > len(reports) // 3, counts
    assert mixed > len(reports) // 20, counts
    assert whole > len(reports) // 100, counts
    scanned = sum(r.scanned for r in reports)
    assert scanned > 3 * sum(r.tokenised for r in reports), counts
