"""Notifications through the real pipeline: starter, worker, Temporal, git and the claude CLI,
with webhook receivers on loopback (the installation allows that) and the worker's own
AUTOPILOT_NOTIFY_COMMAND."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from autopilot.infra import ALLOW_PRIVATE_SETTING, NOTIFY_COMMAND_SETTING
from autopilot_testing import PlanFollower, ScriptedModel
from tests.gitutil import head
from tests.harness import autopilot, wait_until
from tests.notify_receiver import Receiver
from tests.test_controls_e2e import plan_text

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

RECORDER = """\
import json, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"body": json.load(sys.stdin), "text": sys.argv[-1]}) + "\\n")
"""


def recorded(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.reliability(
    "a session paused by its budget, and its end, told to a person",
    "real session with --notify and the worker's AUTOPILOT_NOTIFY and AUTOPILOT_NOTIFY_COMMAND: "
    "the pause names the command that resumes it, which is run as given; the end gives the "
    "counts and the target's new head, checked against git",
)
def test_a_paused_and_a_finished_session_notify(tmp_path: Path, repo: Path) -> None:
    hook = tmp_path / "hook.py"
    hook.write_text(RECORDER)
    record = tmp_path / "command.jsonl"
    command = shlex.join([sys.executable, str(hook), str(record)])
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text(("1.1", ""), ("1.2", "")))
    with (
        Receiver().running() as session_hook,
        Receiver().running() as worker_hook,
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        installation.extra_env["AUTOPILOT_NOTIFY"] = worker_hook.url("/operator")
        installation.extra_env[NOTIFY_COMMAND_SETTING] = command
        installation.extra_env[ALLOW_PRIVATE_SETTING] = "1"  # the receivers are on loopback
        session = installation.start_detached(
            plan, repo, "--max-cost-usd", "0.01", "--notify", session_hook.url()
        )

        # Task 1.1 spends the budget: the session pauses and says how to go on.
        paused = session_hook.wait_for("budget_reached", timeout=180)
        assert paused["session_id"] == session and paused["status"] == "running"
        assert paused["reason"].startswith("budget reached: $")
        # Its cost counts when its agent is done, before its merge: that is when it pauses.
        assert paused["counts"] == {"running": 1, "pending": 1}
        resume = paused["resume_command"]
        assert resume.startswith(f"python starter.py resume {session} --max-cost-usd ")
        assert f"`{resume}`" in paused["text"] and paused["content"] == paused["text"]
        assert worker_hook.wait_for("budget_reached")["resume_command"] == resume

        # The command, run as the notification gives it, resumes the session.
        python, script, *args = shlex.split(resume)
        assert (python, script) == ("python", "starter.py")
        resumed = installation.starter(*args)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        done = installation.starter("watch", session)
        assert done.returncode == 0, done.stdout + done.stderr

        ended = session_hook.wait_for("session_ended")
        assert ended["status"] == "completed"
        assert ended["counts"] == {"merged": 2}
        assert (ended["tasks_merged"], ended["tasks_total"]) == (2, 2)
        assert ended["head_sha"] == head(repo, "main")
        assert ended["duration_s"] > 0 and ended["cost_usd"] > 0
        assert head(repo, "main")[:12] in ended["text"]
        assert worker_hook.wait_for("session_ended")["head_sha"] == head(repo, "main")
        assert [r.path for r in worker_hook.received] == ["/operator"] * 2
        status = installation.status(session)
        assert status.notify_failures == []

        # The notify_command got the same bodies on stdin, and the text as its last argument.
        wait_until(lambda: len(recorded(record)) == 2, 30, "the command's two runs")
        lines = recorded(record)
        assert [line["body"]["event"] for line in lines] == ["budget_reached", "session_ended"]
        assert lines[1]["body"] == ended and lines[1]["text"] == ended["text"]
        # The README's example payloads come from here (pytest -s shows them).
        print(json.dumps(paused, indent=2), json.dumps(ended, indent=2), sep="\n")
