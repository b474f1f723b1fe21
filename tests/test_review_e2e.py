"""The review gate end to end: the real CLI as worker agent and as reviewer (scripted model),
the repo's checks, feedback rounds, and the conflict round after a conflicting merge."""

from __future__ import annotations

import json
import shlex
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from autopilot import git as gitops
from autopilot.models import TaskState
from autopilot.review import finding_headline
from autopilot_testing import (
    STRUCTURED_OUTPUT,
    Conversation,
    PlanFollower,
    Reply,
    Reviewer,
    ScriptedModel,
    Text,
    ToolCall,
    ToolUses,
)
from tests.gitutil import git
from tests.harness import autopilot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def task_block(task_id: str, title: str, path: str, content: str) -> str:
    return f"""
### Task {task_id}: {title}

**Files:**
- Create: `{path}`

```
{content}
```
"""


REVIEW_PLAN = (
    "# Review rounds\n\n## Batch 1: Reviewed\n"
    + task_block("1.1", "Approved at once", "a.txt", "a")
    + task_block("1.2", "Reviewer asks once", "b.txt", "b")
    + task_block("1.3", "Check fails once", "c.txt", "c")
    + task_block("1.4", "Never good enough", "d.txt", "d")
)
# The check: no text file may contain the word FIXME.
CHECK = "sh -c '! grep -rn FIXME --include=*.txt .'"
FINDING_12 = "b.txt must end with a newline and say b"


def session_id_of(output: str) -> str:
    return output.split("Started session ", 1)[1].split()[0]


class ReviewRounds:
    """Worker agent and reviewer for REVIEW_PLAN, by task."""

    def __init__(self) -> None:
        self.reviews: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.reviewer = Reviewer(self.verdict)
        self.follower = PlanFollower(reviewer=self.reviewer)

    def verdict(self, conversation: Conversation) -> dict[str, Any]:
        task_id = (conversation.task() or ("?",))[0]
        with self._lock:
            self.reviews[task_id] += 1
            seen = self.reviews[task_id]
        if task_id == "1.4" or (task_id == "1.2" and seen == 1):
            return {
                "verdict": "request_changes",
                "summary": "not yet",
                "findings": [
                    {"message": FINDING_12, "file": "b.txt", "line": 1, "severity": "major"}
                    if task_id == "1.2"
                    else {"message": "d.txt is not what I want", "severity": "blocker"}
                ],
            }
        return {"verdict": "approve", "summary": "fine"}

    def __call__(self, conversation: Conversation) -> Reply:
        task = conversation.task()
        first_try = "<findings>" not in conversation.prompt
        if (
            task
            and task[0] == "1.3"
            and first_try
            and STRUCTURED_OUTPUT not in conversation.tools
            and conversation.turn == 0
        ):
            # The first try leaves a FIXME behind: the check fails, the fix round repairs it.
            assert conversation.cwd is not None
            return ToolUses(
                [
                    ToolCall(
                        "Write",
                        {"file_path": f"{conversation.cwd}/c.txt", "content": "c FIXME\n"},
                    )
                ]
            )
        return self.follower(conversation)


@pytest.mark.reliability(
    "reviewer requests changes; a repo check fails; a task is never approved",
    "real session, scripted reviewer: findings and check output go back to the agent, fixed "
    "tasks merge, the rejected one is not merged (branch kept), exit 1",
)
def test_review_rounds_checks_and_rejection(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(REVIEW_PLAN)
    script = ReviewRounds()
    with (
        ScriptedModel(script) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(
            str(plan), "--repo", str(repo), "--check", CHECK, "--review-rounds", "2"
        )
        assert done.returncode == 1, done.stdout + done.stderr  # 1.4 was rejected
        session = session_id_of(done.stdout)
        status = installation.status(session)
        tasks = {task.id: task for task in status.tasks}

        # 1.1: approved by the checks and the reviewer on the first round.
        first = tasks["1.1"]
        assert first.state == TaskState.MERGED and len(first.reviews) == 1
        assert first.reviews[0].approved and first.reviews[0].verdict is not None
        assert first.reviews[0].checks[0].passed and first.reviews[0].checks[0].command == CHECK

        # 1.2: changes requested, the agent got the finding, approved on round 2.
        second = tasks["1.2"]
        assert second.state == TaskState.MERGED
        assert [review.approved for review in second.reviews] == [False, True]
        assert second.reviews[0].findings[0].message == FINDING_12
        # The fix round's prompt carried the finding (in the agent's resumed session).
        sent_to_agent = [
            json.dumps(c.messages)
            for c in model.requests
            if c.task() == ("1.2", "Reviewer asks once") and STRUCTURED_OUTPUT not in c.tools
        ]
        assert any(FINDING_12 in messages for messages in sent_to_agent)
        # ... and round 2 resumed round 1's Claude session in the same worktree.
        rounds = [path for path in second.transcripts if Path(path).name.startswith("round-")]
        sessions = [json.loads(Path(path).read_text().splitlines()[0]) for path in rounds]
        assert [event["session_id"] for event in sessions] == [sessions[0]["session_id"]] * 2

        # 1.3: the check failed, its output went back to the agent, the fix passed it.
        third = tasks["1.3"]
        assert third.state == TaskState.MERGED
        assert [review.approved for review in third.reviews] == [False, True]
        failed_check = third.reviews[0].checks[0]
        assert not failed_check.passed and "c.txt" in failed_check.output_tail
        assert Path(failed_check.output_path).is_file()
        # What a person reads of it: the command, its log and the lines that say what failed.
        headline = finding_headline(third.reviews[0].findings[0])
        assert f"(log: {failed_check.output_path})" in headline.splitlines()[0]
        assert "c.txt" in headline and "FIXME" in headline
        assert (repo / "c.txt").read_text() == "c\n"

        # 1.4: still rejected after the last round; branch kept, nothing merged.
        fourth = tasks["1.4"]
        assert fourth.state == TaskState.REJECTED and len(fourth.reviews) == 2
        assert "still not approved after 2 review round(s)" in (fourth.last_error or "")
        assert "d.txt is not what I want" in (fourth.last_error or "")
        assert not (repo / "d.txt").exists()
        assert git(repo, "rev-parse", "--verify", "-q", fourth.branch)  # the branch is kept
        assert "Task 1.4 (Never good enough): rejected" in done.stdout
        # The morning's next step: the same command again, for just what did not merge.
        assert "unfinished task(s) (1.4)" in done.stdout
        assert f"--check {shlex.quote(CHECK)}" in done.stdout.split("run the same command")[-1]

        merged = [task_id for task_id, _ in gitops.list_merges(str(repo), "main", session)]
        assert sorted(merged) == ["1.1", "1.2", "1.3"]
        # The reviewer never changed a worktree (it had read-only tools; any change would
        # have been restored and reported as ReviewerChangedTree).
        reviewer_tools = {
            tool for c in model.requests if STRUCTURED_OUTPUT in c.tools for tool in c.tools
        }
        assert not reviewer_tools & {"Write", "Edit", "Bash"}, reviewer_tools


CONFLICT_PLAN = (
    "# Two tasks, one file\n\n## Batch 1: Parallel\n"
    + task_block("1.1", "Alpha", "shared.txt", "alpha")
    + task_block("1.2", "Beta", "shared.txt", "beta")
)


class Conflicting:
    """Both tasks start from the same base (1.1 waits for 1.2's first request); the conflict
    round is resolved by writing both lines, or not at all."""

    def __init__(self, resolve: bool) -> None:
        self.resolve = resolve
        self.both_started = threading.Event()
        self.follower = PlanFollower()
        self.conflict_prompts: list[str] = []

    def __call__(self, conversation: Conversation) -> Reply:
        task = conversation.task()
        if STRUCTURED_OUTPUT in conversation.tools or task is None:
            return self.follower(conversation)
        if "[conflict]" in conversation.prompt:
            return self.conflict(conversation)
        if task[0] == "1.2":
            self.both_started.set()
        reply = self.follower(conversation)
        if task[0] == "1.1" and conversation.turn == 0:
            reply.hold = self.both_started
        return reply

    def conflict(self, conversation: Conversation) -> Reply:
        if conversation.turn == 0:
            self.conflict_prompts.append(conversation.prompt)
        if not self.resolve:
            return Text("I cannot resolve this.")
        assert conversation.cwd is not None
        if conversation.turn == 0:
            path = f"{conversation.cwd}/shared.txt"
            return ToolUses(
                [
                    ToolCall("Read", {"file_path": path}),
                    ToolCall("Bash", {"command": "printf 'alpha\\nbeta\\n' > shared.txt"}),
                ]
            )
        if conversation.turn == 1:
            return ToolUses(
                [ToolCall("Bash", {"command": "git add -A && git commit -q --no-edit"})]
            )
        return Text("Resolved: both lines kept.")


@pytest.mark.parametrize("resolve", [True, False], ids=["resolved", "unresolved"])
@pytest.mark.reliability(
    "two parallel tasks change the same file (merge conflict)",
    "real session: the loser gets one conflict round; resolved, both merge; unresolved, target "
    "untouched, branch kept, exit 1",
)
def test_conflicting_parallel_tasks(tmp_path: Path, repo: Path, resolve: bool) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text(CONFLICT_PLAN)
    script = Conflicting(resolve)
    with (
        ScriptedModel(script) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo), "--concurrency", "2")
        session = session_id_of(done.stdout)
        status = installation.status(session)
        merged = [task_id for task_id, _ in gitops.list_merges(str(repo), "main", session)]
        loser = next(task for task in status.tasks if task.conflict_round)
        winner = next(task for task in status.tasks if not task.conflict_round)
        assert merged[0] == winner.id
        assert len(script.conflict_prompts) == 1 and "shared.txt" in script.conflict_prompts[0]
        assert git(repo, "status", "--porcelain") == ""
        if resolve:
            assert done.returncode == 0, done.stdout + done.stderr
            assert merged == [winner.id, loser.id]
            assert (repo / "shared.txt").read_text() == "alpha\nbeta\n"
            assert loser.state == TaskState.MERGED
            assert loser.reviews and loser.reviews[-1].approved  # a fresh review after it
        else:
            assert done.returncode == 1, done.stdout + done.stderr
            assert merged == [winner.id]
            assert loser.state == TaskState.CONFLICT
            assert "left conflicts with main" in (loser.last_error or "")
            assert "untouched" in (loser.last_error or "")
            # The target holds exactly the winner's work; the loser's branch is kept as it was.
            assert (repo / "shared.txt").read_text() == f"{winner.title.lower()}\n"
            assert git(repo, "rev-parse", "--verify", "-q", loser.branch)
            assert "<<<<<<<" not in git(repo, "show", "main:shared.txt")
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
