"""The one reader of files the user names: kind and size checked before a byte is read."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from autopilot.infra import FileTooBig, IsDirectory, NotRegularFile, check_regular, read_regular


def test_a_regular_file_is_read_up_to_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_regular(path, 10) == b"x" * 10
    check_regular(path, 10)
    with pytest.raises(FileTooBig, match="is 10 bytes, over the 9 bytes limit"):
        read_regular(path, 9)
    with pytest.raises(FileTooBig, match="is 10 bytes, over the 9 bytes limit"):
        check_regular(path, 9)


def test_what_is_not_a_regular_file_is_named(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: an open without O_NONBLOCK would wait for ever
    with pytest.raises(NotRegularFile, match=r"it is a FIFO \(named pipe\)"):
        read_regular(fifo, 100)
    with pytest.raises(NotRegularFile, match="it is a character device"):
        read_regular("/dev/zero", 100)  # would never end
    with pytest.raises(NotRegularFile, match="it is a character device"):
        check_regular(Path("/dev/zero"), 100)
    with pytest.raises(IsDirectory, match="it is a directory"):
        read_regular(tmp_path, 100)
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "sock"))
        with pytest.raises(NotRegularFile, match="it is a socket"):
            check_regular(tmp_path / "sock", 100)


def test_a_link_is_followed_to_what_it_names(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(NotRegularFile, match="character device"):
        read_regular(tmp_path / "zero", 100)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing", 100)
