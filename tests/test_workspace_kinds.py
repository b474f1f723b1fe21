"""The workspace interface (autopilot/git/kinds.py) on the local kind: a task's whole life
through it on a real repository, judged by git, and run again at every step as a retry would."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.git import LOCAL, LocalWorkspaces, WorkspaceKind, workspace_dir
from autopilot.models import (
    CommitInput,
    MergeInput,
    RemoveWorkspaceInput,
    TargetMergeInput,
    WorkspaceInput,
)
from tests.gitutil import commit_file, git, head, isolate_git, make_repo, trailers, write

SESSION = "sess-k"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


def test_the_local_kind_is_a_workspace_kind() -> None:
    assert isinstance(LOCAL, LocalWorkspaces)
    assert isinstance(LOCAL, WorkspaceKind)


def test_a_task_from_workspace_to_merge_through_the_interface(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    state = tmp_path / "state"
    start = WorkspaceInput(
        repo=str(repo), target_branch="main", state_dir=str(state), session_id=SESSION, task_id="1"
    )
    ws = LOCAL.prepare(start)
    assert LOCAL.prepare(start) == ws  # a retry finds the same workspace
    assert Path(ws.path) == workspace_dir(state, SESSION, "1")
    assert LOCAL.shared_objects(str(repo)) == repo / ".git" / "objects"

    write(Path(ws.path), "feature.txt", "from the agent\n")
    commit = CommitInput(
        workspace_path=ws.path,
        base_sha=ws.base_sha,
        session_id=SESSION,
        task_id="1",
        message="Task 1",
        repo=str(repo),
    )
    done = LOCAL.commit(commit)
    assert LOCAL.commit(commit).head_sha == done.head_sha  # no second commit
    assert head(repo, ws.branch) == done.head_sha  # brought back to the user's repository

    # The target moves on; the conflict round's merge of it into the task is clean here.
    commit_file(repo, "other.txt", "meanwhile\n")
    target = TargetMergeInput(
        workspace_path=ws.path,
        target_branch="main",
        session_id=SESSION,
        task_id="1",
        repo=str(repo),
    )
    assert LOCAL.merge_target(target).clean
    after_target = LOCAL.commit(commit.model_copy(update={"base_sha": ws.base_sha}))

    merge = MergeInput(
        repo=str(repo),
        target_branch="main",
        branch=ws.branch,
        session_id=SESSION,
        task_id="1",
        message="Merge task 1",
    )
    merged = LOCAL.merge(merge)
    assert merged.merged and merged.merge_sha == head(repo, "main")
    again = LOCAL.merge(merge)
    assert again.already_merged and again.merge_sha == merged.merge_sha
    assert trailers(repo, "main")["Autopilot-Task"] == ["1"]
    assert git(repo, "show", "main:feature.txt") == "from the agent"
    assert (
        git(repo, "merge-base", "--is-ancestor", after_target.head_sha, "main", check=False) == ""
    )

    remove = RemoveWorkspaceInput(
        repo=str(repo), state_dir=str(state), session_id=SESSION, task_id="1"
    )
    LOCAL.remove(remove)
    LOCAL.remove(remove)
    assert not Path(ws.path).exists()
    assert LOCAL.prepare(start).already_merged  # judged by git: merged once, nothing left
    assert git(repo, "rev-list", "--count", "--merges", "--first-parent", "main") == "1"
