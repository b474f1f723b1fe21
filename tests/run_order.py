"""The order test files are handed to the test processes: the costliest first.

With `--dist loadfile` each file runs whole in one process, handed out in collection order.
xdist's default order (most tests first) sent the one-test end-to-end files, a minute each,
last, so one process ran them while the others sat idle. Longest first keeps every process
busy to the end. The costs are seconds per file measured in a full run (tests/file_seconds.json,
on a loaded machine: only their ratios matter); a file not listed is costed by its marks.

Refresh the table from a full run's JUnit report:

    .venv/bin/python -m pytest -n 3 --dist loadfile --junitxml=build/junit.xml
    .venv/bin/python -m tests.run_order build/junit.xml
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest

SECONDS_PATH = Path(__file__).with_name("file_seconds.json")
# A file missing from the table: an end-to-end test starts servers, workers and agents.
E2E_SECONDS = 30.0
OTHER_SECONDS = 0.2


def measured_seconds(path: Path = SECONDS_PATH) -> dict[str, float]:
    """Seconds per test file (path relative to the repository, with '/')."""
    if not path.is_file():
        return {}
    loaded = json.loads(path.read_text())
    return {str(name): float(seconds) for name, seconds in loaded.items()}


def _guess(items: Iterable[pytest.Item]) -> float:
    return sum(E2E_SECONDS if item.get_closest_marker("e2e") else OTHER_SECONDS for item in items)


def costliest_files_first(items: list[pytest.Item], seconds: dict[str, float]) -> None:
    """Reorder `items` in place, file by file, the costliest file first; tests keep their
    order within a file and files of equal cost keep theirs."""
    by_file: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        by_file[item.nodeid.split("::", 1)[0]].append(item)
    cost = {name: seconds.get(name, _guess(found)) for name, found in by_file.items()}
    ordered = sorted(by_file, key=lambda name: -cost[name])  # sorted() is stable
    items[:] = [item for name in ordered for item in by_file[name]]


def seconds_from_junit(report: Path) -> dict[str, float]:
    """Seconds per test file from a JUnit XML report (pytest --junitxml)."""
    totals: dict[str, float] = defaultdict(float)
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "")
        if module:
            totals[module.replace(".", "/") + ".py"] += float(case.get("time", "0"))
    return {name: round(totals[name], 1) for name in sorted(totals, key=lambda n: -totals[n])}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.run_order JUNIT_XML", file=sys.stderr)
        return 2
    SECONDS_PATH.write_text(json.dumps(seconds_from_junit(Path(argv[0])), indent=1) + "\n")
    print(f"wrote {SECONDS_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
