"""A full disk gives a clear error, and the retry after space is freed works (real git, a
small tmpfs mounted for the state dir; needs root, as on this project's machines and CI)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from autopilot import git as gitops
from tests.gitutil import commit_file, isolate_git

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.reliability(
    "Disk full",
    "the state dir on a 256 KB tmpfs: preparing a worktree of a 1 MB repo fails saying which "
    "disk is full and what to do; after the disk grows, the retry prepares it",
)
def test_full_disk_is_a_clear_error_and_the_retry_works(
    tmp_path: Path, repo: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path / "home")
    commit_file(repo, "big.bin", "x" * 1_000_000, "a big file")
    with pytest.raises(gitops.GitError) as failed:
        gitops.prepare_workspace(repo, "main", small_disk, "s1", "1.1")
    message = str(failed.value)
    assert f"the disk holding {small_disk}" in message and "is full" in message, message
    assert "free some space" in message

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    workspace = gitops.prepare_workspace(repo, "main", small_disk, "s1", "1.1")
    assert (Path(workspace.path) / "big.bin").stat().st_size == 1_000_000
    gitops.remove_workspace(repo, workspace.path)
