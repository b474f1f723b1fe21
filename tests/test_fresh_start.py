"""Starting a task afresh on real git: its branch's work is set aside under a name of its own
(never deleted), its workspace goes, and the task starts again from the target's head."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.git import (
    LOCAL,
    GitError,
    commit_changes,
    merge_task,
    prepare_workspace,
    set_aside_name,
    start_afresh,
)
from autopilot.models import WorkspaceInput
from tests.gitutil import commit_file, git, head, isolate_git, make_repo, write

SESSION = "sess-fresh"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def rejected_work(repo: Path, state: Path, task: str = "1") -> str:
    """A task's branch with a commit of its own (as a rejected run leaves it); its head."""
    ws = prepare_workspace(repo, "main", state, SESSION, task)
    write(Path(ws.path), "bug.txt", "buggy\n")
    commit_changes(ws.path, ws.base_sha, SESSION, task, "buggy", repo=repo)
    return head(repo, ws.branch)


def prepare_fresh(repo: Path, state: Path, task: str = "1") -> tuple[str, str]:
    """The workspace prepared with fresh: (its set-aside branch, its base)."""
    ws = LOCAL.prepare(
        WorkspaceInput(
            repo=str(repo),
            target_branch="main",
            state_dir=str(state),
            session_id=SESSION,
            task_id=task,
            fresh=True,
        )
    )
    return ws.set_aside, ws.base_sha


def test_fresh_sets_the_branch_aside_and_starts_from_the_targets_head(
    repo: Path, state: Path
) -> None:
    rejected = rejected_work(repo, state)
    moved = commit_file(repo, "later.txt", "main moved on\n")

    aside, base = prepare_fresh(repo, state)

    branch = f"autopilot/{SESSION}/1"
    assert aside == set_aside_name(branch, rejected) == f"{branch}--rejected-{rejected[:12]}"
    assert head(repo, aside) == rejected  # kept, for a look
    workspace = state / "worktrees" / SESSION / "1"
    # The new attempt starts from main's head (its branch comes back with its first commit).
    assert head(workspace, "HEAD") == moved == base
    assert git(repo, "rev-parse", "--verify", "--quiet", branch, check=False) == ""
    assert not (workspace / "bug.txt").exists()
    assert (workspace / "later.txt").read_text() == "main moved on\n"


def test_a_retried_fresh_prepare_keeps_its_fresh_start(repo: Path, state: Path) -> None:
    rejected = rejected_work(repo, state)
    first, _ = prepare_fresh(repo, state)

    again, base = prepare_fresh(repo, state)  # the activity retried after a lost completion

    assert again == ""  # nothing of its own to set aside: the fresh branch has no commits
    assert head(repo, first) == rejected
    assert head(state / "worktrees" / SESSION / "1", "HEAD") == base == head(repo, "main")
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/autopilot/").split()
    assert refs == [f"refs/heads/{first}"]


def test_fresh_without_a_branch_just_prepares(repo: Path, state: Path) -> None:
    aside, base = prepare_fresh(repo, state)
    assert aside == "" and base == head(repo, "main")


def test_fresh_leaves_a_merged_task_alone(repo: Path, state: Path) -> None:
    rejected_work(repo, state)
    merged = merge_task(repo, "main", f"autopilot/{SESSION}/1", SESSION, "1", "Merge task 1")

    assert start_afresh(repo, "main", state, SESSION, "1") == ""

    assert head(repo, f"autopilot/{SESSION}/1")  # still there, as merged
    ws = LOCAL.prepare(
        WorkspaceInput(
            repo=str(repo),
            target_branch="main",
            state_dir=str(state),
            session_id=SESSION,
            task_id="1",
            fresh=True,
        )
    )
    assert ws.already_merged and ws.merge_sha == merged.merge_sha


def test_fresh_refuses_a_branch_checked_out_by_the_user(repo: Path, state: Path) -> None:
    rejected = rejected_work(repo, state)
    git(repo, "checkout", "-q", f"autopilot/{SESSION}/1")

    with pytest.raises(GitError, match="is checked out at"):
        start_afresh(repo, "main", state, SESSION, "1")

    assert head(repo, f"autopilot/{SESSION}/1") == rejected


def test_commits_left_in_a_workspace_are_set_aside_too(repo: Path, state: Path) -> None:
    rejected_work(repo, state)
    # A worker died after the agent's second commit, before it was brought back.
    workspace = state / "worktrees" / SESSION / "1"
    write(workspace, "more.txt", "more\n")
    git(workspace, "add", "more.txt")
    git(workspace, "commit", "-q", "-m", "second")
    left = head(workspace, "HEAD")

    aside, _ = prepare_fresh(repo, state)

    assert aside.endswith(left[:12]) and head(repo, aside) == left


def test_a_rewritten_workspace_is_not_trusted(repo: Path, state: Path) -> None:
    rejected = rejected_work(repo, state)
    workspace = state / "worktrees" / SESSION / "1"
    git(workspace, "reset", "-q", "--hard", "HEAD~1")
    write(workspace, "other.txt", "rewritten\n")
    git(workspace, "add", "other.txt")
    git(workspace, "commit", "-q", "-m", "rewritten")

    aside, _ = prepare_fresh(repo, state)

    assert head(repo, aside) == rejected  # the branch, as it was brought back
