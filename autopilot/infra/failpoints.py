"""Named points where a fault test can stop a worker: the crash windows that no outside
signal hits on purpose (between a merge landing and its activity completing, say).

Armed only by AUTOPILOT_FAILPOINTS (`name=/path/to/marker`, comma-separated), which nothing
but the tests sets. At an armed point reached for the first time, the worker writes the
marker and waits there for ever: the test, seeing the marker, kills it. A point whose marker
exists is passed: the next worker goes on.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

FAILPOINTS_ENV = "AUTOPILOT_FAILPOINTS"
AFTER_MERGE = "after-merge"  # the target moved; the merge activity has not completed
# Forge mode: the pull request is open; the publish activity has not completed (the session
# has not recorded it).
AFTER_PR_OPENED = "after-pr-opened"


def _armed() -> dict[str, Path]:
    armed: dict[str, Path] = {}
    for item in os.environ.get(FAILPOINTS_ENV, "").split(","):
        name, _, marker = item.partition("=")
        if name.strip() and marker.strip():
            armed[name.strip()] = Path(marker.strip())
    return armed


def reach(name: str) -> None:
    """Stop here for good if `name` is armed and not yet reached (see the module's doc)."""
    marker = _armed().get(name)
    if marker is None or marker.exists():
        return
    marker.write_text(f"{os.getpid()}\n")
    threading.Event().wait()  # until the test kills the worker
