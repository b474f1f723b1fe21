"""A task's workspace is a repository of its own: what a hostile agent does inside it never
reaches the user's repository except as commits the pipeline checks (autopilot.git, real
git). The sandbox that keeps the agent's writes inside the workspace is tested in
tests/test_sandbox.py; these are the steps the pipeline itself runs there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autopilot import git as gitops
from autopilot.git import (
    WorkspaceBroken,
    commit_changes,
    config_file_values,
    incoming_ref,
    merge_task,
    prepare_workspace,
)
from autopilot.infra import remove_path
from autopilot.models import CommitResult, Workspace
from tests.gitutil import commit_file, git, head, isolate_git, make_repo, write

SESSION = "sess-1"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def ws(repo: Path, tmp_path: Path) -> Workspace:
    return prepare_workspace(repo, "main", tmp_path / "state", SESSION, "1")


def commit(repo: Path, ws: Workspace) -> CommitResult:
    return commit_changes(ws.path, ws.base_sha, SESSION, "1", "Task 1", repo=repo)


def test_a_workspace_shares_no_writable_git_file_with_the_repository(
    repo: Path, ws: Workspace
) -> None:
    path = Path(ws.path)
    assert (path / ".git").is_dir()  # not a worktree's .git file pointing into the repo
    assert git(path, "rev-parse", "--git-common-dir") == ".git"
    user_objects = Path(git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir"))
    alternates = (path / ".git/objects/info/alternates").read_text().split()
    assert alternates == [str(user_objects / "objects")]
    # no object file is a hardlink into the user's store
    linked = [f for f in (path / ".git").rglob("*") if f.is_file() and os.stat(f).st_nlink > 1]
    assert linked == []
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not list((path / ".git").glob("hooks/*"))


def test_commits_come_back_through_a_private_ref_and_land_on_the_task_branch(
    repo: Path, ws: Workspace
) -> None:
    write(Path(ws.path), "a.txt", "a\n")
    done = commit(repo, ws)
    assert head(repo, ws.branch) == done.head_sha
    assert git(repo, "show", f"{ws.branch}:a.txt") == "a"
    # the private landing ref is gone once the branch points at the checked commit
    assert git(repo, "for-each-ref", gitops.INCOMING_PREFIX) == ""


@pytest.mark.reliability(
    "the agent moves the target branch in its workspace (`git update-ref refs/heads/main`)",
    "only its workspace's own ref moves: the user's main is untouched, only the task branch "
    "comes back",
)
def test_moving_main_in_the_workspace_does_not_move_the_users_main(
    repo: Path, ws: Workspace
) -> None:
    main_before = head(repo, "main")
    sneaky = commit_file(Path(ws.path), "sneaky.txt", "unreviewed\n")
    git(ws.path, "update-ref", "refs/heads/main", sneaky)
    git(ws.path, "update-ref", "refs/heads/autopilot/other/1", sneaky)
    commit(repo, ws)
    assert head(repo, "main") == main_before
    assert git(repo, "branch", "--list", "autopilot/other/*") == ""
    assert head(repo, ws.branch) == sneaky  # the task's own commit, to be reviewed


@pytest.mark.reliability(
    "the agent rewrites its branch so that it no longer descends from the task's base",
    "the commits are refused (WorkspaceBroken): the task branch and the target are untouched",
)
def test_a_branch_that_left_its_base_is_refused(repo: Path, ws: Workspace) -> None:
    path = Path(ws.path)
    git(path, "checkout", "-q", "--orphan", "tmp")
    git(path, "rm", "-q", "-rf", ".")
    commit_file(path, "evil.txt", "no history\n")
    git(path, "branch", "-M", ws.branch)
    with pytest.raises(WorkspaceBroken, match="does not descend from"):
        commit(repo, ws)
    assert git(repo, "branch", "--list", ws.branch) == ""
    assert git(repo, "for-each-ref", incoming_ref(SESSION, "1")) != ""  # kept for a look


@pytest.mark.reliability(
    "the agent points its workspace's .git at the user's repository",
    "our next step refuses the workspace (WorkspaceBroken); the user's repository is untouched",
)
def test_a_git_dir_moved_to_the_users_repository_is_refused(repo: Path, ws: Workspace) -> None:
    path = Path(ws.path)
    remove_path(path / ".git")
    (path / ".git").write_text(f"gitdir: {repo / '.git'}\n")
    write(path, "a.txt", "a\n")
    refs_before = git(repo, "for-each-ref")
    with pytest.raises(WorkspaceBroken, match=r"no longer has a \.git directory"):
        commit(repo, ws)
    assert git(repo, "for-each-ref") == refs_before
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.reliability(
    "the agent configures commands in its workspace (hooks, a clean filter, fsmonitor, commondir)",
    "our commit there runs none of them: the config is put back before the step",
)
def test_what_the_agent_configures_in_its_workspace_never_runs(
    repo: Path, ws: Workspace, tmp_path: Path
) -> None:
    path = Path(ws.path)
    ran = tmp_path / "ran"
    marker = f"sh -c 'echo $0 >> {ran}'"
    hooks = path / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("pre-commit", "post-commit", "prepare-commit-msg", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\necho {hook} >> {ran}\n")
        (hooks / hook).chmod(0o755)
    git(path, "config", "core.hooksPath", str(hooks))
    git(path, "config", "filter.evil.clean", f"{marker} clean; cat")
    git(path, "config", "core.fsmonitor", f"{marker} fsmonitor")
    git(path, "config", "include.path", str(tmp_path / "more.cfg"))
    (path / ".git" / "commondir").write_text(str(repo / ".git"))
    write(path, ".gitattributes", "* filter=evil\n")
    write(path, "a.txt", "a\n")

    commit(repo, ws)

    assert not ran.exists()
    assert git(repo, "show", f"{ws.branch}:a.txt") == "a"
    values = config_file_values((path / ".git" / "config").read_bytes(), tmp_path)
    assert values == gitops.WORKSPACE_SETTINGS | {
        "user.name": "Test User",
        "user.email": "test@example.com",
    }
    assert not (path / ".git" / "commondir").exists()


def test_a_users_hook_never_runs_for_our_merge(repo: Path, ws: Workspace, tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    hook = repo / ".git" / "hooks" / "post-merge"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\necho post-merge >> {ran}\n")
    hook.chmod(0o755)
    write(Path(ws.path), "a.txt", "a\n")
    commit(repo, ws)
    assert merge_task(repo, "main", ws.branch, SESSION, "1", "Merge task 1").merged
    assert not ran.exists()


@pytest.mark.parametrize(
    "name",
    [
        'Ann "the dev" O\'Neil',
        "back\\slash",
        "# not a comment ; nor this",
        "  spaced  ",
        "tab\there",
    ],
)
def test_a_workspace_keeps_any_identity_exactly(tmp_path: Path, name: str) -> None:
    repo = make_repo(tmp_path / "repo")
    git(repo, "config", "user.name", name)
    ws = prepare_workspace(repo, "main", tmp_path / "state", SESSION, "1")
    values = config_file_values(Path(ws.path, ".git", "config").read_bytes(), tmp_path)
    assert values["user.name"] == name.strip()
    assert {k: values[k] for k in gitops.WORKSPACE_SETTINGS} == gitops.WORKSPACE_SETTINGS


def test_a_huge_file_the_agent_leaves_is_refused_before_git_reads_it(
    repo: Path, ws: Workspace
) -> None:
    path = Path(ws.path)
    write(path, "src/ok.py", "print('fine')\n")
    with open(path / "src" / "dump.bin", "wb") as huge:  # 64 GiB of nothing: sparse
        huge.truncate(64 * 2**30)
    with pytest.raises(gitops.FilesTooLarge, match=r"src/dump\.bin \(65,536 MiB\)"):
        commit(repo, ws)
    assert head(path) == ws.base_sha  # nothing was staged or committed
    assert git(repo, "for-each-ref", "--format=%(refname)", "refs/autopilot/") == ""
    assert git(repo, "rev-parse", "main") == ws.base_sha

    (path / "src" / "dump.bin").unlink()
    assert commit(repo, ws).commits  # what is left commits as usual
