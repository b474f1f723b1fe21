"""Remote mode's review gate and conflict round, with a task's steps spread over two workers
that share only the remote: checks, the reviewer, fix rounds and the conflict round each run
on whichever worker takes them, which makes the workspace again from the remote when it lacks
it. Judged by the remote."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.models import TaskState
from autopilot_testing import PlanFollower, ScriptedModel
from tests.gitutil import git
from tests.harness import Autopilot, autopilot
from tests.machines import Remote, checkout_state, served_remote, start_machine
from tests.test_review_e2e import (
    CHECK,
    CONFLICT_PLAN,
    FINDING_12,
    REVIEW_PLAN,
    Conflicting,
    ReviewRounds,
)
from tests.test_worker_capacity_e2e import plan_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def two_machines(installation: Autopilot, tmp_path: Path, repo: Path) -> None:
    assert installation.starter("list").returncode == 0  # the one Temporal server
    for name in ("m0", "m1"):
        start_machine(installation, tmp_path / "machines", name, repo, "--max-agents", "1")


def run_remote(
    installation: Autopilot, plan: Path, remote: Remote, *flags: str
) -> tuple[int, str, str]:
    done = installation.starter(str(plan), "--remote", remote.url, "--no-worker", *flags)
    session = done.stdout.split("Started session ", 1)[1].split()[0]
    return done.returncode, session, done.stdout + done.stderr


def merged(remote: Remote, session: str) -> list[str]:
    return [task for task, _ in gitops.list_merges(str(remote.bare), "main", session)]


def test_review_rounds_and_checks_on_a_remote(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(REVIEW_PLAN)
    before = checkout_state(repo)
    with (
        served_remote(tmp_path, repo) as remote,
        ScriptedModel(ReviewRounds()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        two_machines(installation, tmp_path, repo)
        code, session, output = run_remote(
            installation, plan, remote, "--check", CHECK, "--review-rounds", "2"
        )
        assert code == 1, output  # 1.4 was rejected
        tasks = {task.id: task for task in installation.status(session).tasks}
        shown = installation.starter("status", session).stdout

    assert sorted(merged(remote, session)) == ["1.1", "1.2", "1.3"]
    assert [r.approved for r in tasks["1.2"].reviews] == [False, True]
    assert tasks["1.2"].reviews[0].findings[0].message == FINDING_12
    # 1.3's first round left a FIXME: the check (on some worker) failed, the fix passed it.
    third = tasks["1.3"]
    assert [r.approved for r in third.reviews] == [False, True]
    assert (
        not third.reviews[0].checks[0].passed and "c.txt" in third.reviews[0].checks[0].output_tail
    )
    assert git(remote.bare, "show", "main:c.txt") == "c"
    # 1.4 rejected: not merged, its work kept on the remote as a task ref, not a branch
    # (branch-push CI never runs it), and status says how to fetch it; the merged tasks'
    # refs are gone. Nothing under refs/heads/ but the target.
    assert tasks["1.4"].state == TaskState.REJECTED
    assert remote.branches() == ["main"]
    assert remote.task_refs() == [f"refs/{tasks['1.4'].branch}"]
    assert f"git fetch {remote.url} refs/{tasks['1.4'].branch}" in shown
    assert f"the remote's main is at {git(remote.bare, 'rev-parse', 'main')[:12]}" in shown
    assert checkout_state(repo) == before


@pytest.mark.parametrize("resolve", [True, False], ids=["resolved", "unresolved"])
def test_conflict_round_on_a_remote(tmp_path: Path, repo: Path, resolve: bool) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(CONFLICT_PLAN)
    script = Conflicting(resolve)
    before = checkout_state(repo)
    with (
        served_remote(tmp_path, repo) as remote,
        ScriptedModel(script) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        two_machines(installation, tmp_path, repo)
        code, session, output = run_remote(installation, plan, remote, "--concurrency", "2")
        status = installation.status(session)

    loser = next(task for task in status.tasks if task.conflict_round)
    winner = next(task for task in status.tasks if not task.conflict_round)
    assert len(script.conflict_prompts) >= 1 and "shared.txt" in script.conflict_prompts[0]
    if resolve:
        assert code == 0, output
        assert merged(remote, session) == [winner.id, loser.id]
        assert git(remote.bare, "show", "main:shared.txt") == "alpha\nbeta"
        assert loser.reviews and loser.reviews[-1].approved  # a fresh review after it
        assert remote.branches() == ["main"]
        assert remote.task_refs() == []
    else:
        assert code == 1, output
        assert merged(remote, session) == [winner.id]
        assert loser.state == TaskState.CONFLICT
        assert "left conflicts with main" in (loser.last_error or "")
        assert git(remote.bare, "show", "main:shared.txt") == winner.title.lower()
        assert remote.branches() == ["main"]
        assert remote.task_refs() == [f"refs/{loser.branch}"]  # kept, as no branch
        assert "<<<<<<<" not in git(remote.bare, "show", "main:shared.txt")
    assert checkout_state(repo) == before


SETUP_CONFIG = """\
[review]
mode = "checks"
checks = ["test -f deps/ready"]

[workspace]
setup = ["sh -c 'mkdir -p deps && echo ok > deps/ready'"]
cache_key = ["deps.lock"]
cache_dirs = ["deps"]
"""


def test_every_worker_sets_up_its_own_copy_of_a_workspace(tmp_path: Path, repo: Path) -> None:
    """The setup's output stays on the machine it ran on: a step on another worker (the
    agent, the checks) sets its own copy up first, or its check would fail."""
    (repo / ".autopilot.toml").write_text(SETUP_CONFIG)
    (repo / "deps.lock").write_text("deps 1\n")
    git(repo, "add", ".autopilot.toml", "deps.lock")
    git(repo, "commit", "-q", "-m", "setup and a check that needs it")
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(4))
    with (
        served_remote(tmp_path, repo) as remote,
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        two_machines(installation, tmp_path, repo)
        code, session, output = run_remote(installation, plan, remote, "--concurrency", "2")
        status = installation.status(session)
    assert code == 0, output
    assert sorted(merged(remote, session)) == ["1", "2", "3", "4"]
    # Every task approved on its first round: its checks found the setup's output.
    assert [len(task.reviews) for task in status.tasks] == [1, 1, 1, 1]
    assert all(task.reviews[0].checks[0].passed for task in status.tasks)
    caches = list((tmp_path / "machines").glob("m*/state/setup-cache/*"))
    assert caches, "the setup cache was filled on a worker"
