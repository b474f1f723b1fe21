"""The benchmark works end to end (`--quick`: tiny sizes). Figures are not asserted: only that
every section ran, every run merged its tasks, and the JSON and PNG were written.

Not collected by `./dev test` (pytest's testpaths is tests/); run it with
`.venv/bin/python -m pytest bench/test_smoke.py`, or move it under tests/.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import chart
from bench.report import table
from bench.sections import fastest
from tests.harness import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_quick_benchmark_runs_every_section(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--results",
            str(tmp_path / "results"),
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads((tmp_path / "results" / "quick.json").read_text())
    sections = {"compare", "sweep", "scale", "payload", "parse", "sandbox_start"}
    assert set(results["settings"]["sections"]) == sections
    assert results["failures"] == []
    row = results["compare"][0]
    assert row["baseline"]["merged"] == row["none"]["merged"] == row["tasks"]
    assert row["sandboxed"]["merged"] == row["tasks"] and row["containment"] > 0
    assert row["both"]["merged"] == row["tasks"] and row["ratio_none"] > 0
    levels = results["sweep"]["levels"]
    assert [level["concurrency"] for level in levels] == [1, 2]
    for level in levels:  # the bare work ran beside the pipeline at each concurrency
        assert level["bare"]["concurrency"] == level["concurrency"]
        assert level["bare"]["merged"] == level["merged"] == results["sweep"]["tasks"]
        assert level["bare_speedup"] > 0 and level["of_bare"] > 0
    assert results["scale"]["max_events"] > 0 and results["probe"]["ok"]
    assert len(results["probe"]["session_events"]) >= 2  # it reached its limit: continued
    assert results["parse"]["best_s"] > 0
    assert set(results["sandbox_start"]["parts"]) == {
        "setpriv",
        "bwrap",
        "socat bridge",
        "proxy's first request",
    }
    assert {t["status"] for t in results["targets"]} <= {"PASS", "MISS", "-"}
    for heading in ("Per-task wall time", "Concurrency sweep", "Targets"):
        assert heading in done.stdout
    png = (tmp_path / "results" / "quick.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert not (tmp_path / "work").exists()  # the scratch space is removed


def test_chart_and_table_helpers(tmp_path: Path) -> None:
    results = json.loads((ROOT / "bench" / "results" / "quick.json").read_text())
    shown = [panel.__name__ for panel in chart.panels(results)]
    assert shown == ["compare_panel", "overhead_panel", "sweep_panel", "rss_panel", "parse_panel"]
    scale_only = {"scale": {**results["scale"], "reused_compare_run": False}}
    assert [panel.__name__ for panel in chart.panels(scale_only)] == ["rss_panel"]
    for name, figures in (("all", results), ("nothing", {})):
        data = chart.draw(figures, tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR", name
    assert table(["a", "b"], [["x", "1"], ["yy", "22"]]).splitlines()[2] == "x    1"


def test_a_sweep_level_keeps_its_fastest_run_and_shows_a_failed_one() -> None:
    runs = [
        {"wall_s": 39.1, "ok": True, "error": ""},
        {"wall_s": 33.7, "ok": True, "error": ""},
    ]
    assert fastest(runs) == {"wall_s": 33.7, "ok": True, "error": "", "runs_s": [39.1, 33.7]}
    runs.append({"wall_s": 20.0, "ok": False, "error": "starter exit code 1"})
    best = fastest(runs)
    assert (best["ok"], best["error"], best["runs_s"]) == (
        False,
        "starter exit code 1",
        [39.1, 33.7, 20.0],
    )
