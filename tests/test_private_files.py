"""What the pipeline writes under the state dir is its owner's alone: the state dir 0700 (an
existing wider one tightened), logs, transcripts, check output and plan snapshots 0600, with
the permissive umask most users have."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from autopilot.agent import AgentFailure, run_claude
from autopilot.git import prepare_workspace, workspace_dir
from autopilot.infra import Settings, load_settings, logs
from autopilot.models import CheckCommand, Plan
from autopilot.plan import snapshots as plan_snapshots
from autopilot.review import run_check
from tests.gitutil import isolate_git, make_repo

SHA = "ab" * 32


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _permissive_umask() -> Iterator[None]:
    """Files made by the umask alone would be readable by everyone (0644, 0755)."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {"HOME": str(tmp_path / "home"), "AUTOPILOT_STATE_DIR": str(tmp_path / "a" / "state")}
    )


@pytest.mark.reliability(
    "other users on the machine could read transcripts, logs and check output",
    "umask 022: state dir 0700 (a wider one tightened on start), logs, transcripts, check "
    "output and plan snapshots 0600",
)
def test_a_new_state_dir_and_its_folders_are_private(settings: Settings) -> None:
    assert mode(settings.state_dir) == 0o700
    assert mode(settings.state_dir.parent) == 0o700  # made for it, too
    log = settings.path("logs", "worker.log")
    assert mode(log.parent) == 0o700


def test_an_existing_wider_state_dir_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    settings = load_settings({"HOME": str(tmp_path), "AUTOPILOT_STATE_DIR": str(state)})
    assert mode(settings.state_dir) == 0o700


def test_the_worker_log_is_private(settings: Settings) -> None:
    log = settings.state_dir / "logs" / "worker.jsonl"
    log.parent.mkdir()
    log.write_text("")
    log.chmod(0o644)  # left by an earlier version
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure_logging(log)
        structlog.get_logger("test").info("something the worker did")
    finally:  # the logging set-up is process-wide: leave it as the other tests expect
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:], root.level = handlers, level
        structlog.reset_defaults()
    assert "something the worker did" in log.read_text()
    assert mode(log) == 0o600


async def test_a_transcript_and_the_agents_stderr_are_private(
    settings: Settings, tmp_path: Path
) -> None:
    fake = tmp_path / "claude"
    fake.write_text(
        "#!/bin/sh\n"
        'echo \'{"type":"system","subtype":"init","session_id":"fake"}\'\n'
        "echo 'some warning' >&2\n"
    )
    fake.chmod(0o755)
    transcript = settings.state_dir / "transcripts" / "s" / "t" / "task-1.jsonl"
    with pytest.raises(AgentFailure):
        async with asyncio.timeout(30):
            await run_claude(
                [str(fake)],
                cwd=tmp_path,
                env={"PATH": "/usr/bin:/bin"},
                prompt="hello",
                session_id="ours",
                transcript=transcript,
                idle_timeout_s=30,
                on_progress=lambda progress: None,
            )
    assert "system" in transcript.read_text()
    assert mode(transcript) == 0o600
    assert mode(transcript.with_suffix(".stderr")) == 0o600
    assert mode(transcript.parent) == mode(transcript.parent.parent) == 0o700


def test_check_output_is_private(settings: Settings, tmp_path: Path) -> None:
    output = settings.state_dir / "checks" / "s" / "t" / "round-1" / "check-1-echo.log"
    check = CheckCommand(command="echo secret", argv=["echo", "secret"])
    result = run_check(tmp_path, check, 30, output)
    assert result.passed and output.read_text() == "secret\n"
    assert mode(output) == 0o600
    assert mode(output.parent) == 0o700


def test_a_plan_snapshot_is_private(settings: Settings) -> None:
    plan_snapshots.save(settings.state_dir, Plan(path="/plan.md", sha256=SHA, batches=[]))
    snapshot = plan_snapshots.snapshot_path(settings.state_dir, SHA)
    assert mode(snapshot) == 0o600
    assert mode(snapshot.parent) == 0o700


def test_the_worktrees_folder_is_private(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path / "git-home")
    repo = make_repo(tmp_path / "repo")
    prepare_workspace(repo, "main", settings.state_dir, "s", "t")
    session_folder = workspace_dir(settings.state_dir, "s", "t").parent
    assert mode(session_folder) == mode(session_folder.parent) == 0o700
