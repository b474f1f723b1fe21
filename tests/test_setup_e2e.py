"""[workspace] end to end: the real worker, server, sandbox and CLI (scripted model). A check
that needs what the setup installs passes, the second task gets the setup from the cache, a
copied file reaches the workspaces and never the target, and a failing setup pauses the
session with its command and output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autopilot.infra import PREVIOUS_RUNS, RUN_MARK
from autopilot.models import SessionStatus, TaskState
from autopilot_testing import PlanFollower, ScriptedModel
from tests.gitutil import commit_file, git
from tests.harness import autopilot, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

# The setup writes a module the first check sources (a shell "import"); the second check
# reads the file copied in from the user's checkout.
SETUP = "sh -c 'mkdir -p deps && echo VALUE=42 > deps/helper.sh'"
NEEDS_SETUP = "sh -c '. deps/helper.sh && test \"$VALUE\" = 42'"
NEEDS_COPY = "grep -q LOCAL_SETTING=on .env.test"
FAILING_SETUP = "sh -c 'echo resolving helper; echo helper 9.9 not found >&2; exit 3'"


def plan_text(*tasks: tuple[str, str]) -> str:
    """A one-batch plan; each task writes t<id>.txt. (id, depends-on or "")."""
    parts = ["# Setup\n\n## Batch 1: All\n"]
    for task_id, depends in tasks:
        parts.append(f"\n### Task {task_id}: Write {task_id}\n")
        if depends:
            parts.append(f"\n**Depends on:** Task {depends}\n")
        parts.append(f"\n**Files:**\n- Create: `t{task_id}.txt`\n\n```\n{task_id}\n```\n")
    return "".join(parts)


def configure(repo: Path, setup: str, checks: list[str]) -> None:
    # A JSON array of strings is a TOML array too.
    commit_file(
        repo,
        ".autopilot.toml",
        f'[review]\nmode = "checks"\nchecks = {json.dumps(checks)}\n\n'
        f"[workspace]\nsetup = {json.dumps([setup])}\n"
        'cache_key = ["deps.lock"]\ncache_dirs = ["deps"]\ncopy = [".env.test"]\n',
    )
    commit_file(repo, "deps.lock", "helper 1.0\n")
    (repo / ".env.test").write_text("LOCAL_SETTING=on\n")  # the user's own, untracked


@pytest.mark.reliability(
    "a repository's checks need installed dependencies and local files",
    "real session: [workspace] setup runs once in the sandbox and the second task gets its "
    "result from the cache; the check needing it passes; the copied file reaches each "
    "workspace and never the target branch",
)
def test_setup_cache_and_copied_files(tmp_path: Path, repo: Path) -> None:
    configure(repo, SETUP, [NEEDS_SETUP, NEEDS_COPY])
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text(("1.1", ""), ("1.2", "1.1")))
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo))
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        tasks = {task.id: task for task in installation.status(session).tasks}
        text = installation.starter("status", session).stdout

    first, second = tasks["1.1"], tasks["1.2"]
    assert first.state == second.state == TaskState.MERGED
    assert first.reviews[-1].checks[0].passed and first.reviews[-1].checks[1].passed
    assert first.setup.startswith("ran 1 command(s)") and second.setup == "from cache"
    assert "    setup: from cache" in text
    ran = first.setup_runs[0]
    assert ran.copied == [".env.test"] and ran.commands[0].command == SETUP
    assert Path(ran.commands[0].output_path).is_file()
    assert second.setup_runs[0].from_cache and second.setup_runs[0].key == ran.key
    # The marker: one setup log in the whole session, for two tasks.
    logs = list((installation.state_dir / "checks" / session).glob("*/setup/setup-*.log"))
    assert len(logs) == 1, logs
    cached = installation.state_dir / "setup-cache" / ran.key / "tree" / "deps" / "helper.sh"
    assert cached.read_text() == "VALUE=42\n"

    # Judged by git: the copied file and the setup's folder never reached the target.
    merged = git(repo, "ls-tree", "-r", "--name-only", "main").split()
    assert {"t1.1.txt", "t1.2.txt"} <= set(merged)
    history = git(repo, "log", "--all", "--format=", "--name-only").split()
    assert ".env.test" not in history and not any(path.startswith("deps/") for path in history)
    assert (repo / ".env.test").read_text() == "LOCAL_SETTING=on\n"
    assert git(repo, "status", "--porcelain") == "?? .env.test"


@pytest.mark.reliability(
    "a workspace setup command fails",
    "real session: the task fails before any agent run (no attempt spent) and the session "
    "pauses with the command and the end of its output",
)
def test_failing_setup_pauses_the_session(tmp_path: Path, repo: Path) -> None:
    configure(repo, FAILING_SETUP, ["true"])
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

        status = wait_until(
            paused,
            180,
            "the session to pause on the failing setup",
            interval=1.0,
        )
        cancelled = installation.starter("cancel", session)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        first_logs = sorted((installation.state_dir / "checks" / session).rglob("*.log"))
        first_run = (installation.state_dir / "checks" / session / RUN_MARK).read_text().strip()
        assert first_logs

        # The same command again: the same session id, a new run. Its logs replace the first
        # run's, which are kept under that run's id.
        assert installation.start_detached(plan, repo) == session
        wait_until(paused, 180, "the second run to pause too", interval=1.0)
        assert installation.starter("cancel", session).returncode == 0
        assert model.requests == []  # no agent ever ran
    checks = installation.state_dir / "checks" / session
    assert (checks / RUN_MARK).read_text().strip() != first_run
    assert len(list(checks.rglob("*.log"))) == len(first_logs)  # this run's alone
    kept = installation.state_dir / PREVIOUS_RUNS / session / first_run / "checks"
    assert sorted(path.relative_to(kept) for path in kept.rglob("*.log")) == [
        path.relative_to(installation.state_dir / "checks" / session) for path in first_logs
    ]

    reason = status.pause_reason or ""
    assert "Task 1.1 cannot run on this setup (WorkspaceSetupFailed)" in reason
    assert f"`{FAILING_SETUP}` exited with 3" in reason
    assert "resolving helper\nhelper 9.9 not found" in reason
    task = status.tasks[0]
    assert task.state == TaskState.FAILED and task.attempts == 0
    assert task.setup == f"failed: {FAILING_SETUP[:60]}"  # kept short: the status is compact
    failed = task.setup_runs[0].commands[0]
    assert failed.exit_code == 3 and "helper 9.9 not found" in failed.output_tail
