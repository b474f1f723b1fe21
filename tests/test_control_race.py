"""A session the status shows paused is resumed, under a CPU hog. With no workflow cache a
status query can answer from events that the control's workflow task is sequenced before, so
`resume` may be refused once as "not paused" (an open race: bench/README.md, "A control
against a loaded machine"); sent again, as a person would, it applies.

The suite runs it once; `AUTOPILOT_RACE_REPEATS=50` runs it 50 times.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from temporalio.client import Client

from autopilot.models import ResumeRequest, SessionState, TaskState
from tests.test_workflows import status_until
from tests.workflow_stubs import (
    Stubs,
    make_batch,
    make_plan,
    make_task,
    operate,
    review_settings,
    start_session,
    verdict,
    worker,
)
from workflows.session import SessionWorkflow

REPEATS = int(os.environ.get("AUTOPILOT_RACE_REPEATS", "1"))
HOG = "import time\nend = time.monotonic() + 300\nwhile time.monotonic() < end: pass\n"


@pytest.fixture
def cpu_hog() -> Iterator[None]:
    """Two busy processes, one per core of this machine, for the test's length (5 min at most
    whatever happens to the test)."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.mark.parametrize("repeat", range(REPEATS))
async def test_a_session_the_status_shows_paused_is_resumed(
    client: Client, stubs: Stubs, cpu_hog: None, repeat: int
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.script("review_changes", "1", verdict("request_changes", "wrong file", ["not a.py"]))
    review = review_settings("agent", rounds=1, on_failure="pause")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, concurrency=1, review=review)
        paused = await status_until(handle, lambda s: s.paused, "the session to pause")
        assert paused.task("1").state == TaskState.REJECTED

        await operate(handle, SessionWorkflow.resume, ResumeRequest())
        final = await handle.result()

    assert final.status == SessionState.INCOMPLETE
    assert final.task("2").state == TaskState.MERGED and not final.paused
