"""The order test files are handed to the test processes (tests/run_order.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.run_order import (
    E2E_SECONDS,
    SECONDS_PATH,
    costliest_files_first,
    measured_seconds,
    seconds_from_junit,
)

pytest_plugins = ["pytester"]

TESTS = """\
import pytest

def test_a(): pass
def test_b(): pass
"""
E2E_TEST = """\
import pytest

@pytest.mark.e2e
def test_slow(): pass
"""


def collected(pytester: pytest.Pytester, seconds: dict[str, float]) -> list[str]:
    pytester.makeini(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nmarkers =\n    e2e: slow\n"
    )
    pytester.makepyfile(test_cheap=TESTS, test_costly=TESTS, test_marked=E2E_TEST)
    items, _ = pytester.inline_genitems()
    costliest_files_first(items, seconds)
    return [item.nodeid for item in items]


def test_the_costliest_file_goes_first_and_tests_keep_their_order(
    pytester: pytest.Pytester,
) -> None:
    order = collected(
        pytester,
        {"test_cheap.py": 1.0, "test_costly.py": E2E_SECONDS + 5, "test_marked.py": 0.5},
    )
    assert order == [
        "test_costly.py::test_a",
        "test_costly.py::test_b",
        "test_cheap.py::test_a",
        "test_cheap.py::test_b",
        "test_marked.py::test_slow",
    ]


def test_a_file_not_measured_is_costed_by_its_marks(pytester: pytest.Pytester) -> None:
    order = collected(pytester, {"test_cheap.py": 1.0, "test_costly.py": 2.0})
    assert order[0] == "test_marked.py::test_slow"  # an unmeasured end-to-end test
    assert order[1:] == [
        "test_costly.py::test_a",
        "test_costly.py::test_b",
        "test_cheap.py::test_a",
        "test_cheap.py::test_b",
    ]


def test_seconds_come_from_a_junit_report_per_file(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_x" name="test_a" time="1.25"/>'
        '<testcase classname="tests.test_x" name="test_b" time="2.0"/>'
        '<testcase classname="tests.test_y" name="test_c" time="9.5"/>'
        "</testsuite></testsuites>"
    )
    assert seconds_from_junit(report) == {"tests/test_y.py": 9.5, "tests/test_x.py": 3.2}


def test_the_checked_in_table_loads() -> None:
    seconds = measured_seconds()
    assert seconds, f"{SECONDS_PATH} is empty"
    assert all(name.startswith("tests/test_") and cost >= 0 for name, cost in seconds.items())
    assert json.loads(SECONDS_PATH.read_text()) == seconds
