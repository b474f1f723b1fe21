"""Leave a process that used a Temporal client without tearing the interpreter down.

The SDK's Rust runtime keeps threads that can still call into Python while CPython
finalizes, and that aborts the process (SIGABRT, "Fatal Python error: PyGILState_Release:
thread state ... must be current when releasing", temporalio/sdk-python#300) after its work
is done: seen here on a starter that had started its session and printed everything. So the
entry points flush what they wrote and their logs, then exit at once with their code. The
project registers no atexit handlers that this would skip.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing left to save
            pass
    os._exit(code)
