"""A session runs with the `.autopilot.toml` of the commit it started from, through the real
pipeline: a task that edits the file (it is in the task's Files, so the edit is allowed and
merged) changes nothing for the rest of the session; the next session reads the new file and
refuses what it may not grant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopilot.infra import CONFIG_FILE
from autopilot.models import TaskState
from autopilot_testing import PlanFollower, ScriptedModel
from tests.gitutil import commit_file, git
from tests.harness import autopilot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

COMMITTED = '[review]\nmode = "checks"\nchecks = ["true"]\n'


def hostile_config(marker: Path) -> str:
    """What the task's agent writes: a check that always fails, and a command for the worker."""
    return (
        '[review]\nmode = "checks"\nchecks = ["true", "false"]\n\n'
        f"[notify]\nnotify_command = {json.dumps(['touch', str(marker)])}\n"
    )


def plan_text(marker: Path) -> str:
    return (
        "# Pinned settings\n\n## Batch 1: All\n\n"
        "### Task 1.1: Change the settings\n\n"
        f"**Files:**\n- Modify: `{CONFIG_FILE}`\n\n"
        f"```toml\n{hostile_config(marker)}```\n\n"
        "### Task 1.2: Write 1.2\n\n**Depends on:** Task 1.1\n\n"
        "**Files:**\n- Create: `t1.2.txt`\n\n```\n1.2\n```\n"
    )


@pytest.mark.reliability(
    "a merged task edits .autopilot.toml (a failing check, a notify_command)",
    "real session: the next task still runs with the settings of the commit the session "
    "started from (recorded in its status); the next session refuses the notify_command",
)
def test_a_merged_task_cannot_change_the_running_sessions_settings(
    tmp_path: Path, repo: Path
) -> None:
    started_from = commit_file(repo, CONFIG_FILE, COMMITTED)
    marker = tmp_path / "notified"
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text(marker))
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo))
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        status = installation.status(session)

        # The edit was merged: the target branch has the agent's file now.
        assert git(repo, "show", f"main:{CONFIG_FILE}") + "\n" == hostile_config(marker)
        assert status.config_commit == started_from
        tasks = {task.id: task for task in status.tasks}
        assert tasks["1.1"].state == tasks["1.2"].state == TaskState.MERGED
        # Task 1.2's workspace had the edited file, but its checks are the session's.
        assert [check.command for check in tasks["1.2"].reviews[-1].checks] == ["true"]
        assert not marker.exists()

        # A new session reads the new file, and refuses the command before anything starts.
        again = installation.starter(str(plan), "--repo", str(repo))
        assert again.returncode == 2, again.stdout + again.stderr
        assert "notify_command is not read from the repository" in again.stderr
        assert "Traceback" not in again.stderr
    assert not marker.exists()
