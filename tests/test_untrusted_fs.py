"""autopilot/infra/untrusted_fs.py: under a tree the agent could have changed, no link is
followed, nothing blocks on a FIFO, nothing huge is read whole, nothing outside changes."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from autopilot.infra import UntrustedPath, untrusted_fs

HUGE = 64 * 1024**3  # sparse: no disk used, but never to be read whole


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder and a file that are not the agent's: they must never change."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "bashrc").write_text("the worker's own\n")
    (folder / "keep").mkdir()
    (folder / "keep" / "file").write_text("kept\n")
    return folder


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under root: its mode and its content (a link's target)."""
    seen: dict[str, tuple[int, bytes]] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                body = os.fsencode(os.readlink(path))
            elif stat.S_ISREG(mode):
                body = path.read_bytes()
            else:
                body = b""
            seen[str(path.relative_to(root))] = (mode, body)
    return seen


def plant(tree: Path, name: str, kind: str, outside: Path) -> None:
    path = tree / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "link to a file":
        path.symlink_to(outside / "bashrc")
    elif kind == "link to a folder":
        path.symlink_to(outside / "keep")
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "huge sparse file":
        with path.open("wb") as handle:
            handle.truncate(HUGE)
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    else:
        raise AssertionError(kind)


KINDS = ["link to a file", "link to a folder", "FIFO", "huge sparse file", "link to /dev/zero"]


@pytest.mark.parametrize("kind", KINDS)
def test_reading_refuses_anything_but_a_small_regular_file(
    tmp_path: Path, outside: Path, kind: str
) -> None:
    tree = tmp_path / "tree"
    plant(tree, "config", kind, outside)
    with pytest.raises(UntrustedPath):
        untrusted_fs.read_file(tree, "config", limit=1024)


def test_reading_a_regular_file_and_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"12345")
    assert untrusted_fs.read_file(tmp_path, "a", "f", limit=5) == b"12345"
    with pytest.raises(UntrustedPath):
        untrusted_fs.read_file(tmp_path, "a", "f", limit=4)
    with pytest.raises(UntrustedPath):
        untrusted_fs.read_file(tmp_path, "a", limit=5)  # a folder
    with pytest.raises(FileNotFoundError):
        untrusted_fs.read_file(tmp_path, "a", "missing", limit=5)


@pytest.mark.parametrize(
    "operation",
    [
        lambda tree: untrusted_fs.read_file(tree, ".git", "config", limit=1024),
        lambda tree: untrusted_fs.write_file(tree, ".git", "config", data=b"evil\n"),
        lambda tree: untrusted_fs.make_dirs(tree, ".git", "info"),
        lambda tree: untrusted_fs.remove(tree, ".git", "file"),
    ],
    ids=["read", "write", "make_dirs", "remove"],
)
def test_a_link_on_the_way_is_refused_and_nothing_outside_changes(
    tmp_path: Path, outside: Path, operation: Callable[[Path], object]
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (outside / "keep" / "config").write_text("outside config\n")
    (outside / "keep" / "file").write_text("outside file\n")
    (tree / ".git").symlink_to(outside / "keep")
    before = snapshot(outside)
    with pytest.raises(UntrustedPath):
        operation(tree)
    assert snapshot(outside) == before


@pytest.mark.parametrize("kind", KINDS)
def test_writing_replaces_what_is_there_and_nothing_outside_changes(
    tmp_path: Path, outside: Path, kind: str
) -> None:
    tree = tmp_path / "tree"
    plant(tree, ".git/config", kind, outside)
    before = snapshot(outside)
    untrusted_fs.write_file(tree, ".git", "config", data=b"ours\n", mode=0o600)
    written = tree / ".git" / "config"
    assert not written.is_symlink() and written.read_bytes() == b"ours\n"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert snapshot(outside) == before
    assert sorted(os.listdir(tree / ".git")) == ["config"]  # nothing left aside


def test_writing_over_a_folder_replaces_it(tmp_path: Path) -> None:
    (tmp_path / "config" / "deep").mkdir(parents=True)
    untrusted_fs.write_file(tmp_path, "config", data=b"ours\n")
    assert (tmp_path / "config").read_bytes() == b"ours\n"


@pytest.mark.parametrize("kind", KINDS)
def test_removing_a_tree_removes_links_not_what_they_point_at(
    tmp_path: Path, outside: Path, kind: str
) -> None:
    tree = tmp_path / "tree"
    plant(tree, "deep/er/entry", kind, outside)
    (tree / "deep" / "read-only").mkdir()
    (tree / "deep" / "read-only" / "link").symlink_to(outside / "bashrc")
    os.chmod(tree / "deep" / "read-only", 0o500)  # as a Go module cache leaves its folders
    os.chmod(outside / "bashrc", 0o444)
    before = snapshot(outside)
    untrusted_fs.remove_path(tree)
    assert not tree.exists() and not tree.is_symlink()
    assert snapshot(outside) == before  # no chmod through the link either


@pytest.mark.parametrize("kind", ["link to a file", "link to a folder"])
def test_removing_a_link_removes_only_the_link(tmp_path: Path, outside: Path, kind: str) -> None:
    plant(tmp_path, "workspace", kind, outside)
    before = snapshot(outside)
    untrusted_fs.remove_path(tmp_path / "workspace")
    assert not (tmp_path / "workspace").is_symlink()
    assert snapshot(outside) == before


def test_removing_what_is_not_there_is_no_error(tmp_path: Path) -> None:
    untrusted_fs.remove(tmp_path, "missing", "deeper")
    untrusted_fs.remove_path(tmp_path / "missing")


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_made_real_replaces_whatever_was_there(
    tmp_path: Path, outside: Path, kind: str
) -> None:
    plant(tmp_path, "space/tmp", kind, outside)
    before = snapshot(outside)
    untrusted_fs.replace_with_dir(tmp_path / "space" / "tmp")
    assert untrusted_fs.is_real_dir(tmp_path, "space", "tmp")
    assert snapshot(outside) == before


def test_lstat_at_sees_a_link_as_a_link(tmp_path: Path, outside: Path) -> None:
    plant(tmp_path, "git", "link to a folder", outside)
    found = untrusted_fs.lstat_at(tmp_path, "git")
    assert found is not None and stat.S_ISLNK(found.st_mode)
    assert not untrusted_fs.is_real_dir(tmp_path, "git")
    assert untrusted_fs.lstat_at(tmp_path, "git", "file") is None  # not through the link
    assert untrusted_fs.lstat_at(tmp_path, "missing") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_tree_we_may_not_read_is_removed_by_its_own_fds(tmp_path: Path, outside: Path) -> None:
    # A worker that is not root: folders left without read or write permission (a Go module
    # cache, a hostile `chmod 0`) are made removable through their own fds, links untouched.
    nobody = 65534
    tree = tmp_path / "tree"
    plant(tree, "read-only/link", "link to a file", outside)
    plant(tree, "unreadable/file", "huge sparse file", outside)
    for folder, _, files in os.walk(tree):
        os.chown(folder, nobody, nobody)
        for name in files:
            os.lchown(os.path.join(folder, name), nobody, nobody)
    os.chmod(tree / "read-only", 0o500)
    os.chmod(tree / "unreadable", 0o000)
    os.chmod(tmp_path, 0o777)  # nobody may remove `tree` from it
    os.chmod(outside / "bashrc", 0o666)  # a chmod through the link would show
    before = snapshot(outside)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports by its exit status
        code = 1
        try:
            os.chdir(tmp_path)  # its parents are root's alone (0700)
            os.setgid(nobody)
            os.setuid(nobody)
            untrusted_fs.remove_path(Path("tree"))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not tree.exists()
    assert snapshot(outside) == before


def test_a_tree_deeper_than_our_fds_and_stack_is_removed(tmp_path: Path, outside: Path) -> None:
    depth = 3000  # past the default 1,024 fds and 1,000 frames
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    os.mkdir("deep", dir_fd=fd)
    for level in range(depth):
        child = os.open("deep" if level == 0 else "d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
        os.mkdir("d", dir_fd=fd)
        os.symlink(outside / "keep", "link", dir_fd=fd)
    os.close(fd)
    before = snapshot(outside)
    untrusted_fs.remove_path(tmp_path / "deep")
    assert not (tmp_path / "deep").exists()
    assert snapshot(outside) == before
