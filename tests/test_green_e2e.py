"""Main always green, end to end: two tasks that pass their checks alone and fail them together
(one renames a function, the other adds a test that calls it by its old name), run at once
through the real pipeline (real CLI, scripted model, real git, pytest as the repo's check in
the sandbox). The one that merges second is checked merged with the first, fails, gets a round,
fixes it, and merges; every commit the target ever pointed at passes the check."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import threading
from io import BytesIO
from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.models import SessionStatus, TaskState
from autopilot_testing import (
    STRUCTURED_OUTPUT,
    Conversation,
    PlanFollower,
    Reply,
    ScriptedModel,
    Text,
    ToolCall,
    ToolUses,
)
from tests.gitutil import commit_file, git
from tests.harness import autopilot
from tests.machines import served_remote
from tests.test_remote_review_e2e import run_remote, two_machines
from tests.test_review_e2e import CONFLICT_PLAN, Conflicting

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

# The check: the package's tests, with the venv's Python (pytest is there); no cache folder.
CHECK = f"{sys.executable} -m pytest -q -p no:cacheprovider"
PACKAGE = {
    ".gitignore": "__pycache__/\n",
    "pytest.ini": "[pytest]\ntestpaths = tests\n",
    "calc/__init__.py": "",
    "calc/core.py": "def f(x):\n    return x + 1\n",
    "calc/report.py": "from calc.core import f\n\n\ndef report(x):\n    return f'f={f(x)}'\n",
    "tests/__init__.py": "",
    "tests/test_report.py": (
        "from calc.report import report\n\n\ndef test_report():\n    assert report(1) == 'f=2'\n"
    ),
}
RENAMED_CORE = "def g(x):\n    return x + 1\n"
RENAMED_REPORT = "from calc.core import g\n\n\ndef report(x):\n    return f'f={g(x)}'\n"
TEST_OF_F = "from calc.core import f\n\n\ndef test_f():\n    assert f(2) == 3\n"
TEST_OF_G = "from calc.core import g\n\n\ndef test_g():\n    assert g(2) == 3\n"
PLAN = f"""# Two tasks that pass alone

## Batch 1: Parallel

### Task 1.1: Rename f to g

**Files:**
- Modify: `calc/core.py`
- Modify: `calc/report.py`

```python
{RENAMED_CORE}```

```python
{RENAMED_REPORT}```

### Task 1.2: Test f directly

**Files:**
- Create: `tests/test_core.py`

```python
{TEST_OF_F}```
"""
TOGETHER = "fail `"  # the merged-checks round's prompt: "... fail `<check>` together"


class PassAloneFailTogether:
    """Both tasks start from the same base (1.1 waits for 1.2's first request); the round
    after the failed merged checks writes the test of the renamed function."""

    def __init__(self) -> None:
        self.both_started = threading.Event()
        self.follower = PlanFollower()
        self.together_prompts: list[str] = []

    def __call__(self, conversation: Conversation) -> Reply:
        task = conversation.task()
        if STRUCTURED_OUTPUT in conversation.tools or task is None:
            return self.follower(conversation)
        if TOGETHER in conversation.prompt and "together" in conversation.prompt:
            return self.fix_together(conversation)
        if task[0] == "1.2":
            self.both_started.set()
        reply = self.follower(conversation)
        if task[0] == "1.1" and conversation.turn == 0:
            reply.hold = self.both_started
        return reply

    def fix_together(self, conversation: Conversation) -> Reply:
        assert conversation.cwd is not None
        path = f"{conversation.cwd}/tests/test_core.py"
        if conversation.turn == 0:
            self.together_prompts.append(conversation.prompt)
            return ToolUses([ToolCall("Read", {"file_path": path})])
        if conversation.turn == 1:
            return ToolUses([ToolCall("Write", {"file_path": path, "content": TEST_OF_G})])
        if conversation.turn == 2:
            command = "git add -A && git commit -q -m 'Test g, the renamed f'"
            return ToolUses([ToolCall("Bash", {"command": command})])
        return Text("The test calls g now, as the target renamed f.")


def make_package(repo: Path) -> None:
    for name, content in PACKAGE.items():
        commit_file(repo, name, content, f"Add {name}")


def check_passes_at(repo: Path, commit: str, scratch: Path) -> subprocess.CompletedProcess[str]:
    """The check on `commit`'s tree, in a scratch folder of its own."""
    tree = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    folder = scratch / commit
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=BytesIO(tree)) as archive:
        archive.extractall(folder, filter="data")
    return subprocess.run(
        CHECK.split(), cwd=folder, capture_output=True, text=True, timeout=120, check=False
    )


def run_flags() -> list[str]:
    return ["--concurrency", "2", "--review", "checks", "--check", CHECK]


@pytest.mark.reliability(
    "two parallel tasks pass their checks alone and fail them together",
    "real session with verify_merged: the second is checked merged with the first, gets a "
    "round, merges fixed; every commit of the target passes the check",
)
def test_main_never_holds_a_failing_tree(tmp_path: Path, repo: Path) -> None:
    make_package(repo)
    start = git(repo, "rev-parse", "main")
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    script = PassAloneFailTogether()
    with (
        ScriptedModel(script) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo), *run_flags())
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        status = installation.status(session)
        shown = installation.starter("status", session).stdout
    assert_green(repo, start, session, status, script, tmp_path)
    assert "they failed together once: a merged-checks round followed" in shown
    assert (repo / "tests/test_core.py").read_text() == TEST_OF_G  # the user's checkout too


def test_main_never_holds_a_failing_tree_on_a_remote(tmp_path: Path, repo: Path) -> None:
    """The same on a shared remote, each step on whichever of two workers takes it: the
    verification merges and checks wherever it runs, and the merge is a compare-and-swap push."""
    make_package(repo)
    start = git(repo, "rev-parse", "main")
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    script = PassAloneFailTogether()
    with (
        served_remote(tmp_path, repo) as remote,
        ScriptedModel(script) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        two_machines(installation, tmp_path, repo)
        code, session, output = run_remote(installation, plan, remote, *run_flags())
        assert code == 0, output
        status = installation.status(session)
    assert_green(remote.bare, start, session, status, script, tmp_path)


def assert_green(
    repo: Path,
    start: str,
    session: str,
    status: SessionStatus,
    script: PassAloneFailTogether,
    tmp_path: Path,
) -> None:
    merged = [task_id for task_id, _ in gitops.list_merges(str(repo), "main", session)]
    assert sorted(merged) == ["1.1", "1.2"]
    # Every commit the target pointed at, from the start on, passes the check.
    history = git(repo, "rev-list", "--first-parent", f"{start}~1..main").split()
    assert len(history) >= 3  # the start and the two merges
    for commit in history:
        checked = check_passes_at(repo, commit, tmp_path / "history")
        assert checked.returncode == 0, f"main at {commit[:12]} fails:\n{checked.stdout}"

    tasks = {task.id: task for task in status.tasks}
    first, second = tasks[merged[0]], tasks[merged[1]]
    # The second was checked merged with the first, failed, got its round, and merged fixed.
    assert second.state == first.state == TaskState.MERGED
    assert second.merged_checks_round and not second.conflict_round
    assert second.merge_checks >= 1
    assert (first.merge_checks, first.merged_checks_round) == (0, False)
    assert len(script.together_prompts) == 1
    assert "test_core.py" in script.together_prompts[0]
    # status --json reads both its runs: the first one's review, then the round's
    assert [review.approved for review in second.reviews] == [True, True]
    assert second.reviews[-1].checks[0].passed
    assert git(repo, "show", "main:tests/test_core.py") + "\n" == TEST_OF_G
    assert git(repo, "show", "main:calc/core.py") + "\n" == RENAMED_CORE


def test_a_conflict_found_by_the_verification_gets_the_conflict_round(
    tmp_path: Path, repo: Path
) -> None:
    """With checks on, a branch that conflicts with the moved target is found so by the
    verification's merge in its workspace (left in progress there): the conflict round goes on
    from it, resolves it, and the branch merges after a fresh review."""
    plan = tmp_path / "plan.md"
    plan.write_text(CONFLICT_PLAN)
    script = Conflicting(resolve=True)
    with (
        ScriptedModel(script) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(
            str(plan),
            "--repo",
            str(repo),
            "--concurrency",
            "2",
            "--review",
            "checks",
            "--check",
            "true",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        status = installation.status(session)

    loser = next(task for task in status.tasks if task.conflict_round)
    winner = next(task for task in status.tasks if not task.conflict_round)
    merged = [task_id for task_id, _ in gitops.list_merges(str(repo), "main", session)]
    assert merged == [winner.id, loser.id]
    assert (loser.merge_checks, loser.merged_checks_round, winner.merge_checks) == (1, False, 0)
    assert len(script.conflict_prompts) == 1 and "shared.txt" in script.conflict_prompts[0]
    assert (repo / "shared.txt").read_text() == "alpha\nbeta\n"
