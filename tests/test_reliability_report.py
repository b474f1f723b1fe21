"""The reliability report plugin (tests/conftest.py), run in a pytest subprocess on a tiny
project: which runs write the report, and what a row says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

INI = """\
[pytest]
testpaths = t
markers =
    reliability(fault, how): listed in docs/RELIABILITY.md
"""
TESTS = """\
import pytest

@pytest.mark.reliability("disk full", "write | fail")
def test_passes():
    pass

@pytest.mark.reliability("network down", "unplug")
def test_fails():
    assert False

@pytest.mark.reliability("no server", "skip it")
@pytest.mark.skip(reason="not here")
def test_skipped():
    pass

@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.reliability(fault="bad number", how="parametrized")
def test_cases(n):
    pass

def test_unmarked():
    pass
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "test_things.py").write_text(TESTS)
    return tmp_path


def run(project: Path, *args: str, write: str | None = None) -> str | None:
    """Run pytest in `project` with the plugin; the report it wrote, if any."""
    env = {
        name: value for name, value in os.environ.items() if name != "AUTOPILOT_WRITE_RELIABILITY"
    }
    env["PYTHONPATH"] = str(ROOT)
    if write is not None:
        env["AUTOPILOT_WRITE_RELIABILITY"] = write
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert not (project / "docs").exists()  # the tracked doc changes only on purpose
    report = project / "build" / "RELIABILITY.md"
    if not report.exists():
        return None
    text = report.read_text()
    report.unlink()
    return text


def test_a_full_run_writes_one_row_per_marked_test(project: Path) -> None:
    report = run(project)
    assert report is not None
    rows = [line for line in report.splitlines() if line.startswith("| ") and "::" in line]
    assert rows[0].startswith(
        "| disk full | write \\| fail | `t/test_things.py::test_passes` | passed | "
    )
    assert rows[0].endswith(" s |")
    assert [row.split(" | ")[3] for row in rows] == [
        "passed",
        "failed",
        "skipped",
        "passed",
        "passed",
    ]
    assert "`t/test_things.py::test_cases[2]`" in rows[4]
    assert "- Commit: unknown" in report  # not a git repository
    assert "- Command: `python -m pytest -p tests.conftest -p no:cacheprovider`" in report
    assert "- Results: 5 tests, 3 passed, 1 failed, 1 skipped" in report


def test_a_run_in_two_processes_writes_the_same_rows(project: Path) -> None:
    """`./dev test` runs pytest-xdist with two workers: the rows come from their reports."""
    report = run(project, "-n", "2", "--dist", "loadfile", write="1")
    assert report is not None
    rows = [line for line in report.splitlines() if line.startswith("| ") and "::" in line]
    outcomes = sorted((row.split(" | ")[2], row.split(" | ")[3]) for row in rows)
    assert outcomes == [
        ("`t/test_things.py::test_cases[1]`", "passed"),
        ("`t/test_things.py::test_cases[2]`", "passed"),
        ("`t/test_things.py::test_fails`", "failed"),
        ("`t/test_things.py::test_passes`", "passed"),
        ("`t/test_things.py::test_skipped`", "skipped"),
    ]
    assert "- Results: 5 tests, 3 passed, 1 failed, 1 skipped" in report


def test_the_recorded_soak_runs_follow_the_table(project: Path) -> None:
    write_soak = project / "bench" / "results" / "soak.md"
    write_soak.parent.mkdir(parents=True)
    write_soak.write_text("| seed | verdict |\n| 1 | PASS |\n")
    report = run(project)
    assert report is not None
    table_end = report.index("## Soak runs (bench/results/soak.md)")
    assert "`t/test_things.py::test_passes`" in report[:table_end]
    assert report[table_end:].endswith("| seed | verdict |\n| 1 | PASS |\n")


@pytest.mark.parametrize(
    ("args", "write", "written"),
    [
        (["-k", "passes"], None, False),
        (["-m", "reliability"], None, False),
        (["t/test_things.py"], None, False),
        (["-x"], None, False),  # stopped at the first failure: a partial table
        ([], "0", False),
        (["-k", "unmarked"], "1", False),  # no marked test ran
        (["-k", "passes"], "1", True),
    ],
)
def test_when_the_report_is_written(
    project: Path, args: list[str], write: str | None, written: bool
) -> None:
    assert (run(project, *args, write=write) is not None) == written
