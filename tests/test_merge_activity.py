"""activities.merge.merge_and_tidy: the merge activity's work, against real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.merge import merge_and_tidy
from autopilot.gitops import commit_changes, prepare_workspace
from autopilot.models import MergeInput, Workspace
from tests.gitutil import commit_file, git, isolate_git, make_repo, write

SESSION = "sess-1"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def committed_task(repo: Path, state: Path, task: str, name: str, content: str) -> Workspace:
    ws = prepare_workspace(repo, "main", state, SESSION, task)
    write(Path(ws.path), name, content)
    commit_changes(ws.path, ws.base_sha, SESSION, task, f"Task {task}")
    return ws


def merge_input(repo: Path, ws: Workspace, task: str, worktree: str | None) -> MergeInput:
    return MergeInput(
        repo=str(repo),
        target_branch="main",
        branch=ws.branch,
        session_id=SESSION,
        task_id=task,
        message=f"Merge task {task}",
        worktree=worktree,
    )


def registered_worktrees(repo: Path) -> str:
    return git(repo, "worktree", "list", "--porcelain")


def test_a_landed_merge_takes_the_worktree_and_keeps_the_branch(repo: Path, tmp_path: Path) -> None:
    ws = committed_task(repo, tmp_path / "state", "1", "a.txt", "a\n")

    outcome = merge_and_tidy(merge_input(repo, ws, "1", ws.path))

    assert outcome.merged and not outcome.already_merged and outcome.worktree_removed
    assert git(repo, "show", "main:a.txt") == "a"
    assert not Path(ws.path).exists() and ws.path not in registered_worktrees(repo)
    assert git(repo, "rev-parse", "--verify", ws.branch)  # kept for the record


@pytest.mark.reliability(
    "merge retried after a crash",
    "the retry finds the merge on the target and finishes the worktree's removal",
)
def test_a_retry_after_the_merge_removes_the_worktree_without_merging_twice(
    repo: Path, tmp_path: Path
) -> None:
    ws = committed_task(repo, tmp_path / "state", "1", "a.txt", "a\n")
    first = merge_and_tidy(merge_input(repo, ws, "1", None))  # the crash: worktree left
    assert first.merged and not first.worktree_removed and Path(ws.path).exists()
    head_after_merge = git(repo, "rev-parse", "main")

    retried = merge_and_tidy(merge_input(repo, ws, "1", ws.path))

    assert retried.already_merged and retried.worktree_removed
    assert retried.merge_sha == first.merge_sha == head_after_merge
    assert git(repo, "rev-parse", "main") == head_after_merge
    assert not Path(ws.path).exists()
    # and once more, the worktree already gone
    assert merge_and_tidy(merge_input(repo, ws, "1", ws.path)).worktree_removed


def test_a_conflict_keeps_the_worktree_for_the_conflict_round(repo: Path, tmp_path: Path) -> None:
    ws = committed_task(repo, tmp_path / "state", "1", "README.md", "the task's text\n")
    commit_file(repo, "README.md", "someone else's text\n")

    outcome = merge_and_tidy(merge_input(repo, ws, "1", ws.path))

    assert outcome.conflict and not outcome.merged and not outcome.worktree_removed
    assert Path(ws.path, "README.md").read_text() == "the task's text\n"
    assert ws.path in registered_worktrees(repo)


def test_a_worktree_that_will_not_go_does_not_undo_the_merge(repo: Path, tmp_path: Path) -> None:
    ws = committed_task(repo, tmp_path / "state", "1", "a.txt", "a\n")

    # gitops refuses to remove the main checkout: the merge stands, the session's own
    # removal step gets the worktree
    outcome = merge_and_tidy(merge_input(repo, ws, "1", str(repo)))

    assert outcome.merged and not outcome.worktree_removed
    assert git(repo, "show", "main:a.txt") == "a"
    assert Path(repo, ".git").exists() and Path(ws.path).exists()
