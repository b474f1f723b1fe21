"""A session's logs belong to one run of it.

Running the same plan again reuses its session id, and with it the folders its checks, setup
and transcripts write to. At a new run's start the earlier run's folders are moved aside, under
`previous-runs/<session>/<that run's id>/`, so that what a person finds under `checks/<session>`
is this run's alone, and nothing of before is lost.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["PREVIOUS_RUNS", "RUN_MARK", "UNKNOWN_RUN", "begin_run"]

PREVIOUS_RUNS = "previous-runs"
RUN_MARK = ".run-id"  # in each log folder: the run that wrote it
UNKNOWN_RUN = "before-run-ids"  # folders written before runs were marked
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def begin_run(folders: Mapping[str, Path], aside_root: Path, run_id: str) -> list[Path]:
    """Make each of `folders` (by kind) this run's: one another run wrote is moved to
    `aside_root/<its run id>/<kind>` first. Idempotent: a retried activity finds them marked.
    Returns where earlier logs went."""
    moved = []
    for kind, folder in folders.items():
        earlier = _run_of(folder)
        if earlier == run_id:
            continue
        if earlier is not None:
            aside = aside_root / _UNSAFE.sub("_", earlier)
            aside.mkdir(parents=True, exist_ok=True, mode=0o700)
            target = aside / kind
            for n in range(1, 1000):
                if not target.exists():
                    break
                target = aside / f"{kind}-{n}"
            os.replace(folder, target)
            moved.append(target)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / RUN_MARK).write_text(run_id + "\n")
    return moved


def _run_of(folder: Path) -> str | None:
    """The run that wrote `folder`: None when there is no folder, UNKNOWN_RUN when it is
    unmarked (written before runs were marked)."""
    if not folder.is_dir():
        return None
    try:
        mark = (folder / RUN_MARK).read_text().strip()
    except FileNotFoundError:
        return UNKNOWN_RUN
    return mark or UNKNOWN_RUN
