"""The worker caps glibc's malloc arenas, unless the user chose a number (MALLOC_ARENA_MAX)."""

from __future__ import annotations

import platform

import pytest

from autopilot.malloc_arenas import limit_malloc_arenas


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_cap() -> None:
    assert limit_malloc_arenas({}) is True


def test_the_users_malloc_arena_max_wins() -> None:
    assert limit_malloc_arenas({"MALLOC_ARENA_MAX": "8"}) is False


def test_no_glibc_no_cap() -> None:
    assert limit_malloc_arenas({}, library="libno-such-libc.so.6") is False
