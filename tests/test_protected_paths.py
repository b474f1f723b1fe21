"""Protected paths (autopilot/infra/protected_paths.py): which paths, what names them, and the
commit step's refusal of a branch that changes one unasked, with real git."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.agent import commit_after_run
from activities.errors import git_errors_as_activity_errors
from autopilot.error_types import PROTECTED_PATHS_CHANGED
from autopilot.git import (
    ProtectedPathsChanged,
    commit_changes,
    merge_target_into_branch,
    prepare_workspace,
)
from autopilot.infra import is_protected, unnamed_protected
from autopilot.models import AgentRun, CommitInput, Workspace, WorkspaceInput
from autopilot.steps.site import decide, workspaces
from tests.gitutil import commit_file, git, isolate_git, make_repo, write

SESSION = "sess-protected"
CI = ".github/workflows/ci.yml"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def workspace(repo: Path, tmp_path: Path, task_id: str = "1") -> Workspace:
    return prepare_workspace(repo, "main", tmp_path / "state", SESSION, task_id)


@pytest.mark.parametrize(
    "path",
    [
        ".autopilot.toml",
        ".claude/settings.json",
        "./.claude/settings.local.json",
        ".claude/commands/x.md",
        ".mcp.json",
        CI,
        ".github/actions/setup/action.yml",
        ".gitlab-ci.yml",
        ".circleci/config.yml",
        ".buildkite/pipeline.yml",
        "Jenkinsfile",
    ],
)
def test_protected(path: str) -> None:
    assert is_protected(path)


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        ".github/CODEOWNERS",
        ".github/dependabot.yml",
        "src/.claude.md",
        "docs/.mcp.json.md",
        ".claudeignore",
        "sub/.autopilot.toml",
        "Jenkinsfile.md",
    ],
)
def test_not_protected(path: str) -> None:
    assert not is_protected(path)


def test_a_files_entry_names_a_path_by_itself_its_folder_or_a_glob() -> None:
    changed = [CI, ".claude/settings.json", ".mcp.json", "src/app.py"]
    assert unnamed_protected(changed, []) == [CI, ".claude/settings.json", ".mcp.json"]
    assert unnamed_protected(changed, [f"./{CI}", ".claude/", "*.json"]) == []
    assert unnamed_protected(changed, [".github/workflows", ".claude/*"]) == [".mcp.json"]
    # A name that only looks alike does not.
    assert unnamed_protected(changed, [".github/work", ".claude/settings"]) == [
        CI,
        ".claude/settings.json",
        ".mcp.json",
    ]


def test_a_branch_that_changes_ci_unasked_is_not_brought_back(repo: Path, tmp_path: Path) -> None:
    ws = workspace(repo, tmp_path)
    path = Path(ws.path)
    write(path, "feature.txt", "the task's work\n")
    write(path, CI, "on: push\njobs: {steal: {runs-on: x, steps: [{run: env}]}}\n")

    with pytest.raises(ApplicationError) as failed, git_errors_as_activity_errors():
        commit_changes(path, ws.base_sha, SESSION, "1", "feat", repo=repo, named=["feature.txt"])

    assert failed.value.type == PROTECTED_PATHS_CHANGED and failed.value.non_retryable
    assert f"the task changes {CI}, which its plan entry does not name" in failed.value.message
    assert "**Files:**" in failed.value.message
    # Nothing came back to the user's repository: no task branch, no incoming ref.
    assert git(repo, "for-each-ref", "refs/heads/autopilot", "refs/autopilot") == ""
    # Removed again in a later commit, the change is gone from the diff: it may come back.
    git(path, "rm", "-q", CI)
    git(path, "commit", "-q", "-m", "take it out")
    commit_changes(path, ws.base_sha, SESSION, "1", "feat", repo=repo)
    assert git(repo, "ls-tree", "-r", "--name-only", ws.branch).split() == [
        "README.md",
        "feature.txt",
    ]


def test_a_branch_whose_task_names_the_path_is_brought_back(repo: Path, tmp_path: Path) -> None:
    ws = workspace(repo, tmp_path)
    path = Path(ws.path)
    write(path, CI, "on: push\n")
    write(path, ".claude/settings.json", "{}\n")

    with pytest.raises(ProtectedPathsChanged, match=r"\.claude/settings\.json"):
        commit_changes(path, ws.base_sha, SESSION, "1", "feat", repo=repo, named=[CI])
    done = commit_changes(
        path, ws.base_sha, SESSION, "1", "feat", repo=repo, named=[CI, ".claude/"]
    )

    assert len(done.commits) == 1
    assert CI in git(repo, "ls-tree", "-r", "--name-only", ws.branch).split()


def test_the_targets_own_ci_change_merged_in_is_not_the_tasks(repo: Path, tmp_path: Path) -> None:
    ws = workspace(repo, tmp_path)
    path = Path(ws.path)
    commit_file(path, "feature.txt", "the task's work\n")
    commit_file(repo, CI, "on: push\n", "The user's CI")  # on main, after the task started
    merged = merge_target_into_branch(path, "main", SESSION, "1", repo=repo)
    assert merged.clean

    done = commit_changes(path, ws.base_sha, SESSION, "1", "feat", repo=repo)

    assert len(done.commits) == 2  # the task's commit and the merge


async def test_a_remote_agents_unasked_ci_change_ends_the_task_and_is_not_pushed(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Remote mode: the agent's own activity commits and pushes; the refusal ends the task
    # there (a failed run, not a lost one to resume), and nothing reaches the remote.
    bare = tmp_path / "project.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(bare))
    url = bare.as_uri()
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "worker"))
    start = WorkspaceInput(
        repo=url,
        target_branch="main",
        state_dir=str(tmp_path / "worker"),
        session_id=SESSION,
        task_id="1",
    )
    ws = workspaces(decide(url)).prepare(start)
    write(Path(ws.path), CI, "on: push\n")
    commit = CommitInput(
        workspace_path=ws.path,
        base_sha=ws.base_sha,
        session_id=SESSION,
        task_id="1",
        message="Task 1",
        repo=url,
        named_files=["notes.txt"],
    )

    with pytest.raises(ApplicationError) as caught:
        await commit_after_run(commit, AgentRun(session_id="s", attempt=1, is_error=False))

    assert caught.value.type == PROTECTED_PATHS_CHANGED and caught.value.non_retryable
    failed = AgentRun.model_validate(caught.value.details[0])
    assert failed.error_type == PROTECTED_PATHS_CHANGED and not failed.lost
    assert git(bare, "for-each-ref", "--format=%(refname)", "refs/heads") == "refs/heads/main"
