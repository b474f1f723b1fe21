"""The task workflow retries a failed agent attempt and keeps a record of every attempt."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.models import TaskState
from autopilot_testing import (
    Conversation,
    HttpError,
    PlanFollower,
    Reply,
    ScriptedModel,
)
from tests.harness import autopilot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PLAN = """\
# One task

### Task 1: Write it

**Files:**
- Create: `it.txt`

```
it
```
"""


class OverloadedFirst:
    """The model is overloaded on the first request, then follows the plan."""

    def __init__(self) -> None:
        self._follower = PlanFollower()
        self.failed = 0

    def __call__(self, conversation: Conversation) -> Reply:
        if not self.failed:
            self.failed += 1
            return HttpError(529, "overloaded_error", "Overloaded")
        return self._follower(conversation)


@pytest.mark.reliability(
    "model API overloaded (HTTP 529) on the first request",
    "real session: the attempt fails, is retried and merges; both attempts' transcripts kept",
)
def test_a_failed_attempt_is_retried_and_recorded(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    with (
        ScriptedModel(OverloadedFirst()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo))
        assert done.returncode == 0, done.stdout + done.stderr
        assert (repo / "it.txt").read_text() == "it\n"
        session_id = done.stdout.split("Started session ", 1)[1].split()[0]
        task = installation.status(session_id).tasks[0]
        assert task.state == TaskState.MERGED
        assert task.attempts == 2
        # Every attempt's transcript is kept, the failed one's too, and the reviewer's.
        names = [Path(path).name for path in task.transcripts]
        assert len(names) == 3, names
        assert names[0].startswith("round-1-attempt-1-")
        assert names[1].startswith("round-1-attempt-2-")
        assert names[2].startswith("review-round-1-attempt-1-")
        first = Path(task.transcripts[0]).read_text()
        assert '"is_error":true' in first.replace(" ", "")
        assert task.cost_usd > 0
