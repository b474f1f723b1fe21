"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gitutil import make_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh repository with one commit (README.md) on `main` and a local identity."""
    return make_repo(tmp_path / "repo")
