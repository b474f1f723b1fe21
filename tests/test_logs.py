"""Logged tracebacks carry no local variables: they hold what the code was handling (the API
key in the egress proxy, a run token), and logs are kept and shared."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from autopilot.infra import configure_logging

SECRET = "sk-ant-not-for-the-log-0123456789"


def fail_with_a_secret_in_hand() -> None:
    api_key = SECRET
    raise RuntimeError(f"upstream refused ({len(api_key)} characters sent)")


def test_a_logged_traceback_shows_no_locals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "worker.jsonl"
    configure_logging(log_file)
    try:
        fail_with_a_secret_in_hand()
    except RuntimeError:
        logging.getLogger("egress").exception("connection failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    console, written = capsys.readouterr().err, log_file.read_text()
    assert "fail_with_a_secret_in_hand" in console and "fail_with_a_secret_in_hand" in written
    assert SECRET not in console
    assert SECRET not in written
