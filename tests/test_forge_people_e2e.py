"""Forge mode with people and limits, end to end against the GitHub stand-in: a required
approval holds a task "waiting for review" (said once, no agent slot held) until a person
approves; a pull request a person closes ends its task rejected, saying who; secondary rate
limits are waited out; and the starter refuses a token the forge refuses, or a target branch
it lacks (exit 2, nothing started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autopilot.infra.notify_targets import ALLOW_PRIVATE_SETTING
from autopilot.models import SessionState, TaskState
from autopilot_testing import PlanFollower, ScriptedModel
from tests.gitutil import commit_file
from tests.harness import autopilot, free_port, wait_until
from tests.notify_receiver import Receiver
from tests.test_forge_e2e import NAME, OWNER, _credentials, _head_ref
from tests.test_worker_capacity_e2e import plan_of

standin = pytest.importorskip("autopilot_testing.github_standin")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _config(server: Any, approvals: int) -> str:
    return (
        f'[forge]\nkind = "github"\nrepo = "{OWNER}/{NAME}"\napi_url = "{server.api_url}"\n'
        f"require_approval = {approvals}\npoll_s = 0.3\npoll_max_s = 1.0\n"
        '\n[merge]\nstyle = "squash"\n'
    )


def test_people_approve_close_and_rate_limits_wait(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(2))
    with (
        standin.GitHubStandIn(tmp_path / "github", free_port()) as server,
        Receiver().running() as hook,
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        token = server.add_user("autopilot-bot", permission="write")
        server.add_user("ana", permission="write")
        commit_file(repo, ".autopilot.toml", _config(server, 1))
        server.create_repo(OWNER, NAME, source=repo)
        installation.extra_env["GITHUB_TOKEN"] = token
        installation.extra_env[ALLOW_PRIVATE_SETTING] = "1"  # the receiver is on loopback
        _credentials(installation.root / "home", server, token)
        installation.start_worker("--max-agents", "2")
        started = installation.starter(
            str(plan), "--remote", server.git_url(OWNER, NAME), "--detach", "--no-worker",
            "--concurrency", "1", "--review", "none", "--notify", hook.url(),
        )  # fmt: skip
        assert started.returncode == 0, started.stdout + started.stderr
        session = started.stdout.split("session ", 1)[1].split()[0]

        def pull_of(task: str) -> dict[str, Any] | None:
            head = f"autopilot-pr/{session}/{task}"
            return next((p for p in server.pulls(OWNER, NAME) if _head_ref(p) == head), None)

        # Both wait for a person at once: waiting holds no slot, at concurrency 1.
        wait_until(lambda: len(hook.delivered("pull_request_waiting")) >= 2, 180, "both waiting")
        assert {n["task_id"] for n in hook.delivered("pull_request_waiting")} == {"1", "2"}
        waiting = installation.status(session)
        assert all("waiting for review" in task.forge_phase for task in waiting.tasks)
        one, two = pull_of("1"), pull_of("2")
        assert one is not None and two is not None
        server.review(OWNER, NAME, one["number"], "ana", "APPROVE", body="Good.")
        server.close_pull(OWNER, NAME, two["number"], "ana")
        # The pipeline's next calls meet GitHub's secondary rate limit: waited out.
        server.rate_limit_next(3, kind="secondary", wait_s=1.0)
        done = installation.starter("watch", session, timeout=200)
        status = installation.status(session)
        waits = [n["task_id"] for n in hook.delivered("pull_request_waiting")]
        violations = list(server.violations)

    assert status.status == SessionState.INCOMPLETE, done.stdout
    assert status.task("1").state == TaskState.MERGED
    assert sorted(waits) == ["1", "2"]  # said once each
    assert violations == []
    assert status.task("2").state == TaskState.REJECTED, status.task("2").last_error
    assert "closed by ana" in (status.task("2").last_error or "")


def test_the_starter_refuses_what_the_forge_refuses(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(1))
    with (
        standin.GitHubStandIn(tmp_path / "github", free_port()) as server,
        autopilot(tmp_path / "autopilot", {}) as installation,
    ):
        token = server.add_user("autopilot-bot", permission="write")
        reader = server.add_user("reader", permission="read")
        commit_file(repo, ".autopilot.toml", _config(server, 0))
        server.create_repo(OWNER, NAME, source=repo)
        _credentials(installation.root / "home", server, token)
        url = server.git_url(OWNER, NAME)
        refusals = {}
        for name, given in (("bad", "not-a-token"), ("read", reader), ("none", "")):
            installation.extra_env["GITHUB_TOKEN"] = given
            refusals[name] = installation.starter(str(plan), "--remote", url, "--dry-run")
        installation.extra_env["GITHUB_TOKEN"] = token
        accepted = installation.starter(str(plan), "--remote", url, "--dry-run")

    for name, done in refusals.items():
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "GITHUB_TOKEN" in done.stderr, done.stderr
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert f"forge: github {OWNER}/{NAME} ({server.api_url})" in accepted.stdout
    assert "each task: a pull request" in accepted.stdout
