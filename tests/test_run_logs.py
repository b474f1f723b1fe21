"""A session's log folders belong to one run: another run's are moved aside, never mixed."""

from __future__ import annotations

from pathlib import Path

from autopilot.infra import RUN_MARK, UNKNOWN_RUN, begin_run


def folders(root: Path) -> dict[str, Path]:
    return {"checks": root / "checks" / "s", "transcripts": root / "transcripts" / "s"}


def test_a_new_run_moves_the_earlier_runs_logs_aside(tmp_path: Path) -> None:
    logs = folders(tmp_path)
    assert begin_run(logs, tmp_path / "aside", "run-1") == []
    (logs["checks"] / "1.1").mkdir()
    (logs["checks"] / "1.1" / "setup.log").write_text("first run\n")

    assert begin_run(logs, tmp_path / "aside", "run-1") == []  # a retried step: nothing moves
    moved = begin_run(logs, tmp_path / "aside", "run-2")

    assert tmp_path / "aside" / "run-1" / "checks" in moved
    assert (tmp_path / "aside" / "run-1" / "checks" / "1.1" / "setup.log").read_text() == (
        "first run\n"
    )
    assert [path.name for path in logs["checks"].iterdir()] == [RUN_MARK]
    assert (logs["checks"] / RUN_MARK).read_text() == "run-2\n"


def test_logs_written_before_runs_were_marked_are_kept_too(tmp_path: Path) -> None:
    logs = folders(tmp_path)
    logs["transcripts"].mkdir(parents=True)
    (logs["transcripts"] / "old.jsonl").write_text("{}\n")

    begin_run(logs, tmp_path / "aside", "run-1")

    kept = tmp_path / "aside" / UNKNOWN_RUN / "transcripts" / "old.jsonl"
    assert kept.read_text() == "{}\n"
    assert not (logs["transcripts"] / "old.jsonl").exists()
