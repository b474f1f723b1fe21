"""Reruns and merges the user chooses, through the real pipeline (the real CLI, a scripted
model, a real Temporal server): `retry --fresh` keeps a rejected branch's commit out of the
target's history, and `[merge] style = "squash"` lands one commit per task, found again by its
trailers when the plan runs again."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.git import SESSION_TRAILER, SQUASHED_TRAILER, TASK_TRAILER
from autopilot.models import TaskState
from autopilot_testing import (
    STRUCTURED_OUTPUT,
    Conversation,
    JsonObj,
    PlanFollower,
    Reply,
    Reviewer,
    ScriptedModel,
    ToolCall,
    ToolUses,
    complete_verdict,
)
from tests.gitutil import commit_file, git, trailers
from tests.harness import autopilot, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

BUGGY = "buggy\n"


def plan_text(*task_ids: str) -> str:
    blocks = "".join(
        f"\n### Task {task_id}: Write t{task_id}\n\n**Files:**\n- Create: `t{task_id}.txt`\n\n"
        f"```\n{task_id}\n```\n"
        for task_id in task_ids
    )
    return f"# Reruns\n\n## Batch 1: Files\n{blocks}"


class BuggyReviewer(Reviewer):
    """Rejects a workspace whose t1.txt is the buggy one, approves any other; decided for each
    review (the base class keeps one verdict per prompt, and a rerun's prompt is the same)."""

    def verdict_for(self, conversation: Conversation) -> JsonObj:
        # The workspace is at the sandbox's fixed path, out of this process's sight: the
        # reviewer's prompt carries the diff, which shows what t1.txt holds.
        if f"+{BUGGY.strip()}" in conversation.prompt:
            raw: JsonObj = {
                "verdict": "request_changes",
                "summary": "wrong",
                "findings": [{"message": "t1.txt is buggy", "severity": "blocker"}],
            }
        else:
            raw = {"verdict": "approve", "summary": "fine"}
        return complete_verdict(raw, conversation.prompt)


class RejectedOnce:
    """The agent's first run writes a buggy file, which the reviewer rejects; every run after
    that follows the plan and is approved."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wrote_buggy = False
        self.follower = PlanFollower(reviewer=BuggyReviewer())

    def __call__(self, conversation: Conversation) -> Reply:
        if STRUCTURED_OUTPUT not in conversation.tools and conversation.turn == 0:
            with self._lock:
                buggy_run, self.wrote_buggy = not self.wrote_buggy, True
            if buggy_run:
                assert conversation.cwd is not None
                path = f"{conversation.cwd}/t1.txt"
                return ToolUses([ToolCall("Write", {"file_path": path, "content": BUGGY})])
        return self.follower(conversation)


@pytest.mark.reliability(
    "a rejected task retried with --fresh",
    "real session: the new attempt starts from main's head; the rejected commit is kept on a "
    "set-aside branch and never reaches main's history",
)
def test_retry_fresh_keeps_the_rejected_commit_out_of_main(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text("1"))
    script = RejectedOnce()
    with (
        ScriptedModel(script) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        session = installation.start_detached(
            plan, repo, "--review", "agent", "--review-rounds", "1", "--on-failure", "pause"
        )
        wait_until(lambda: installation.status(session).paused, 150, "the rejection to pause it")
        assert installation.status(session).task("1").state == TaskState.REJECTED
        branch = gitops.branch_name(session, "1")
        rejected = git(repo, "rev-parse", branch)
        assert git(repo, "show", f"{rejected}:t1.txt") == BUGGY.strip()

        retried = installation.starter("retry", session, "1", "--fresh")
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert f"Its branch {branch} is set aside as {branch}--rejected-" in retried.stdout
        assert installation.starter("resume", session).returncode == 0
        done = installation.starter("watch", session)
        assert done.returncode == 0, done.stdout + done.stderr

        aside = f"{branch}--rejected-{rejected[:12]}"
        status = installation.status(session)
        assert status.task("1").state == TaskState.MERGED
        assert status.task("1").set_aside == [aside]
        assert installation.starter("status", session).stdout.count(f"set aside as {aside}") == 1

    assert git(repo, "rev-parse", aside) == rejected  # kept for a look
    assert not _is_ancestor(repo, rejected, "main")
    assert rejected not in git(repo, "rev-list", "main").split()
    assert (repo / "t1.txt").read_text() == "1\n"


@pytest.mark.reliability(
    "a plan run again with --fresh after a task was rejected",
    "real session, then a new run of it: the task starts from main's head, the rejected "
    "commit is set aside and never reaches main's history",
)
def test_a_fresh_rerun_starts_the_rejected_task_from_main(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text("1"))
    flags = ["--repo", str(repo), "--review", "agent", "--review-rounds", "1"]
    with (
        ScriptedModel(RejectedOnce()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        first = installation.starter(str(plan), *flags)
        assert first.returncode == 1, first.stdout + first.stderr  # rejected, not merged
        session = first.stdout.split("Started session ", 1)[1].split()[0]
        branch = gitops.branch_name(session, "1")
        rejected = git(repo, "rev-parse", branch)

        again = installation.starter(str(plan), *flags, "--fresh")
        assert again.returncode == 0, again.stdout + again.stderr
        aside = f"{branch}--rejected-{rejected[:12]}"
        assert installation.status(session).task("1").set_aside == [aside]

    assert git(repo, "rev-parse", aside) == rejected
    assert not _is_ancestor(repo, rejected, "main")
    assert (repo / "t1.txt").read_text() == "1\n"


def _is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(repo), "merge-base", "--is-ancestor", ancestor, descendant],
        check=False,
    )
    assert done.returncode in (0, 1)
    return done.returncode == 0


@pytest.mark.reliability(
    "[merge] style = squash",
    "real session: main gains one commit per task with the trailers; running the plan again "
    "finds both by their trailers and runs no agent",
)
def test_squash_lands_one_commit_per_task_and_a_rerun_skips_them(
    tmp_path: Path, repo: Path
) -> None:
    commit_file(repo, ".autopilot.toml", '[merge]\nstyle = "squash"\n')
    before = git(repo, "rev-parse", "main")
    plan = tmp_path / "plan.md"
    plan.write_text(plan_text("1", "2"))
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        flags = ["--repo", str(repo), "--review", "none", "--concurrency", "1"]
        done = installation.starter(str(plan), *flags)
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]

        landed = git(repo, "rev-list", "--reverse", f"{before}..main").split()
        assert len(landed) == 2
        merges = gitops.list_merges(str(repo), "main", session)
        assert sorted(task for task, _ in merges) == ["1", "2"]
        assert sorted(sha for _, sha in merges) == sorted(landed)
        for task, sha in merges:
            [parent] = git(repo, "log", "-1", "--format=%P", sha).split()  # one parent
            found = trailers(repo, sha)
            assert found[SESSION_TRAILER] == [session] and found[TASK_TRAILER] == [task]
            # Its tree is the merge of its parent and the task's branch head.
            branch_head = found[SQUASHED_TRAILER][0]
            merged = git(repo, "merge-tree", "--write-tree", parent, branch_head)
            assert git(repo, "rev-parse", f"{sha}^{{tree}}") == merged
        requests = len(model.requests)

        again = installation.starter(str(plan), *flags)
        assert again.returncode == 0, again.stdout + again.stderr
        assert git(repo, "rev-list", f"{before}..main").split() == landed[::-1]
        assert len(model.requests) == requests  # no agent ran: both were found merged
        status = installation.status(session)
        assert [task.state for task in status.tasks] == [TaskState.MERGED, TaskState.MERGED]
