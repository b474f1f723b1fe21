"""`starter.py resume --reload-config` end to end: the real worker, server, sandbox and CLI
(scripted model). A failing setup pauses the session; the person commits a fixed
`.autopilot.toml` on the target branch and runs one command: the session shows the
difference, retries the task with the fixed setup and merges it. A change the session cannot
take mid-session is refused by name, with nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopilot.infra import CONFIG_FILE
from autopilot.models import ACTIVE_SESSION_STATES, SessionState, SessionStatus, TaskState
from autopilot_testing import PlanFollower, ScriptedModel
from tests.gitutil import commit_file, git, head
from tests.harness import autopilot, wait_until
from tests.test_setup_e2e import FAILING_SETUP, NEEDS_SETUP, SETUP, configure, plan_text

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def config_text(setup: str, extra: str = "") -> str:
    """configure()'s file with another setup command (and more tables)."""
    return (
        f'[review]\nmode = "checks"\nchecks = {json.dumps([NEEDS_SETUP])}\n\n'
        f"[workspace]\nsetup = {json.dumps([setup])}\n"
        'cache_key = ["deps.lock"]\ncache_dirs = ["deps"]\ncopy = [".env.test"]\n' + extra
    )


@pytest.mark.reliability(
    "a failing setup is fixed in .autopilot.toml while the session is paused",
    "real session: `resume --reload-config` refuses a broken file and a new notify target "
    "by name with nothing changed, then shows the [workspace] difference, retries the task "
    "with the fixed setup and merges it",
)
def test_a_fixed_config_reaches_the_paused_session(tmp_path: Path, repo: Path) -> None:
    configure(repo, FAILING_SETUP, [NEEDS_SETUP])
    started_from = head(repo, "main")
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text(("1.1", "")))
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(plan, repo)

        def paused() -> SessionStatus | None:
            found = installation.status(session)
            return found if found.paused else None

        status = wait_until(paused, 180, "the session to pause on the failing setup", 1.0)
        assert f"`starter.py resume --reload-config {session}`" in (status.pause_reason or "")

        # A file that does not parse is refused as a start refuses it, naming it.
        commit_file(repo, CONFIG_FILE, "[review\n", "a broken file")
        broken = installation.starter("resume", "--reload-config", session)
        assert broken.returncode == 2, broken.stdout + broken.stderr
        assert "Traceback" not in broken.stderr
        assert str(repo / CONFIG_FILE) in broken.stdout + broken.stderr
        assert installation.status(session).paused

        # A notification target is not for a running session to take: refused by name.
        notify = '\n[notify]\nnotify = ["https://hooks.example.com/autopilot"]\n'
        commit_file(repo, CONFIG_FILE, config_text(SETUP, notify), "fix the setup, notify")
        refused = installation.starter("resume", "--reload-config", session)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        said = refused.stdout + refused.stderr
        assert "cannot change while it runs:\n  --notify (or [notify] notify" in said
        assert "Nothing was changed; the session is still paused." in said
        unchanged = installation.status(session)
        assert unchanged.paused and unchanged.config_commit == started_from

        commit_file(repo, CONFIG_FILE, config_text(SETUP), "fix the setup")
        fixed_at = head(repo, "main")
        resumed = installation.starter("resume", "--reload-config", session)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert (
            f"the {CONFIG_FILE} of main at {fixed_at[:12]} changes, for the tasks started "
            "from now on:\n  [workspace] (.autopilot.toml): "
        ) in resumed.stdout
        assert f"  settings: the {CONFIG_FILE} of {fixed_at[:12]}" in resumed.stdout

        def ended() -> SessionStatus | None:
            found = installation.status(session)
            return found if found.status not in ACTIVE_SESSION_STATES else None

        final = wait_until(ended, 240, "the session to end after the reload", 1.0)
        text = installation.starter("status", session).stdout
        over = installation.starter("resume", "--reload-config", session)
        assert over.returncode == 2 and "has finished (completed)" in over.stdout + over.stderr

    assert final.status == SessionState.COMPLETED, final
    task = final.tasks[0]
    assert task.state == TaskState.MERGED and task.retries == 1
    assert task.setup_runs[-1].commands[0].command == SETUP
    assert task.reviews[-1].checks[0].passed  # the check needs what the fixed setup made
    assert final.config_commit == fixed_at
    assert final.config_changes and final.config_changes[0].startswith("[workspace]")
    assert f"settings: the {CONFIG_FILE} of {fixed_at[:12]}" in text
    assert "reloaded: [workspace] (.autopilot.toml): " in text
    assert "t1.1.txt" in git(repo, "ls-tree", "-r", "--name-only", "main").split()
    assert model.requests  # the agent ran once the setup was fixed
