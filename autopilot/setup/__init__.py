"""Making a task's workspace ready: copied files, setup commands and their cache."""

from __future__ import annotations

from autopilot.setup.copy_files import (
    CopyProblem,
    check_sources,
    check_untracked,
    copy_in,
    exclude,
)
from autopilot.setup.paths import (
    UnsafePath,
    inside,
)
from autopilot.setup.steps import (
    SetupFailed,
    set_up_workspace,
)

__all__ = [
    "CopyProblem",
    "SetupFailed",
    "UnsafePath",
    "check_sources",
    "check_untracked",
    "copy_in",
    "exclude",
    "inside",
    "set_up_workspace",
]
