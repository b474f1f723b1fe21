"""[merge] style = "squash" on real git: one commit per task on the target, with the merge's
tree and our trailers, found again by them (idempotent, "merged" for cleanup), and the target
moved only by compare-and-swap."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.git import (
    SESSION_TRAILER,
    SQUASHED_TRAILER,
    TASK_TRAILER,
    commit_changes,
    find_branches,
    list_merges,
    merge_task,
    prepare_workspace,
)
from autopilot.git import merge as git_merge
from autopilot.infra import CONFIG_FILE, RepoConfigError, load_repo_config
from autopilot.models import MergeResult, Workspace
from tests.gitutil import commit_file, git, head, isolate_git, make_repo, trailers, write

SESSION = "sess-sq"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def do_task(repo: Path, state: Path, task: str, files: dict[str, str]) -> Workspace:
    ws = prepare_workspace(repo, "main", state, SESSION, task)
    for number, (name, content) in enumerate(files.items()):
        write(Path(ws.path), name, content)
        commit_changes(ws.path, ws.base_sha, SESSION, task, f"Task {task} part {number}", repo=repo)
    return ws


def squash(repo: Path, ws: Workspace, task: str, *, verified_only: bool = False) -> MergeResult:
    return merge_task(
        repo,
        "main",
        ws.branch,
        SESSION,
        task,
        f"Task {task}",
        verified_only=verified_only,
        style="squash",
    )


def test_a_squash_is_one_commit_on_the_target_with_the_branch_tree_and_trailers(
    repo: Path, tmp_path: Path
) -> None:
    before = head(repo, "main")
    ws = do_task(repo, tmp_path / "state", "1", {"a.txt": "a\n", "b.txt": "b\n"})
    branch_head = head(repo, ws.branch)

    outcome = squash(repo, ws, "1", verified_only=True)

    assert outcome.merged and not outcome.already_merged
    assert git(repo, "rev-list", f"{before}..main").split() == [outcome.merge_sha]
    assert git(repo, "log", "-1", "--format=%P", "main").split() == [before]
    assert head(repo, "main^{tree}") == head(repo, f"{branch_head}^{{tree}}")
    assert trailers(repo, "main") == {
        SESSION_TRAILER: [SESSION],
        TASK_TRAILER: ["1"],
        SQUASHED_TRAILER: [branch_head],
    }
    assert git(repo, "log", "-1", "--format=%s", "main") == "Task 1"
    # The user's checkout of main moved with it.
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "b.txt").read_text() == "b\n"


def test_a_retried_squash_finds_its_commit_by_the_trailers(repo: Path, tmp_path: Path) -> None:
    ws = do_task(repo, tmp_path / "state", "1", {"a.txt": "a\n"})
    first = squash(repo, ws, "1")
    commit_file(repo, "later.txt", "someone else\n")  # the squash is no longer main's head

    again = squash(repo, ws, "1")

    assert again.merged and again.already_merged and again.merge_sha == first.merge_sha
    assert list_merges(repo, "main", SESSION) == [("1", first.merge_sha)]
    assert (
        git(repo, "rev-list", "--count", "--max-parents=1", "--grep=Autopilot-Squashed", "main")
        == "1"
    )


def test_a_squash_after_the_target_moved_keeps_both(repo: Path, tmp_path: Path) -> None:
    ws = do_task(repo, tmp_path / "state", "1", {"a.txt": "task\n"})
    moved = commit_file(repo, "b.txt", "user\n")

    outcome = squash(repo, ws, "1")

    assert outcome.merged
    assert git(repo, "log", "-1", "--format=%P", "main").split() == [moved]
    assert (repo / "a.txt").read_text() == "task\n" and (repo / "b.txt").read_text() == "user\n"


def test_verified_only_squashes_nothing_the_branch_was_not_checked_with(
    repo: Path, tmp_path: Path
) -> None:
    ws = do_task(repo, tmp_path / "state", "1", {"a.txt": "task\n"})
    moved = commit_file(repo, "b.txt", "user\n")

    outcome = squash(repo, ws, "1", verified_only=True)

    assert not outcome.merged and outcome.target_moved
    assert head(repo, "main") == moved


def test_a_squash_is_redone_on_the_new_head_when_the_target_moves_mid_merge(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = do_task(repo, tmp_path / "state", "1", {"a.txt": "task\n"})
    git(repo, "checkout", "-q", "--detach")  # target not checked out: the update-ref path
    real_merge_trees = git_merge.merge_trees
    moved: list[str] = []

    def merge_trees_while_someone_commits(
        cwd: str | Path, ours: str, theirs: str
    ) -> git_merge.TreeMerge:
        result = real_merge_trees(cwd, ours, theirs)
        if not moved:
            tree = git(repo, "rev-parse", "main^{tree}")
            sha = git(repo, "commit-tree", tree, "-p", "main", "-m", "concurrent")
            git(repo, "update-ref", "refs/heads/main", sha)
            moved.append(sha)
        return result

    monkeypatch.setattr(git_merge, "merge_trees", merge_trees_while_someone_commits)
    outcome = squash(repo, ws, "1")

    assert outcome.merged
    assert git(repo, "log", "-1", "--format=%P", "main").split() == [moved[0]]
    assert (
        git(repo, "rev-list", "--count", "--max-parents=1", "--grep=Autopilot-Squashed", "main")
        == "1"
    )


def test_the_agents_own_commits_on_the_target_are_no_merge(repo: Path, tmp_path: Path) -> None:
    # A person fast-forwards main to the branch: its commits carry our session and task
    # trailers, but they are not a merge or squash of ours.
    ws = do_task(repo, tmp_path / "state", "1", {"a.txt": "task\n"})
    git(repo, "merge", "--ff-only", "--quiet", ws.branch)

    assert list_merges(repo, "main", SESSION) == []


def test_cleanup_counts_a_squashed_branch_as_merged(repo: Path, tmp_path: Path) -> None:
    merged_ws = do_task(repo, tmp_path / "state", "1", {"a.txt": "task\n"})
    squash(repo, merged_ws, "1")
    do_task(repo, tmp_path / "state", "2", {"b.txt": "task\n"})

    merged = {branch.task_id: branch.merged for branch in find_branches(repo, "main")}

    assert merged == {"1": True, "2": False}


def test_the_merge_style_is_read_from_the_repository_config(tmp_path: Path) -> None:
    config = tmp_path / CONFIG_FILE
    assert load_repo_config(tmp_path).merge_style == "merge"  # the default: no file
    config.write_text('[merge]\nstyle = "squash"\n')
    assert load_repo_config(tmp_path).merge_style == "squash"
    # rebase is read (a forge rebases); the starter refuses it without one (test_forge_start)
    config.write_text('[merge]\nstyle = "rebase"\n')
    assert load_repo_config(tmp_path).merge_style == "rebase"
    config.write_text('[merge]\nstyle = "octopus"\n')
    with pytest.raises(RepoConfigError, match=r"\[merge\] style = 'octopus' .*merge, squash"):
        load_repo_config(tmp_path)


def test_cleanup_counts_a_branch_squashed_on_the_remotes_target_as_merged(
    repo: Path, tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(origin))
    git(repo, "remote", "add", "origin", str(origin))
    before = head(repo, "main")
    ws = do_task(repo, tmp_path / "state", "1", {"a.txt": "task\n"})
    squash(repo, ws, "1")
    # The squash reached only the remote's main (merged there); the local main is behind.
    git(repo, "push", "--quiet", "origin", "main", ws.branch)
    git(repo, "reset", "--quiet", "--hard", before)

    found = find_branches(repo, "main", remote="origin", fetch=True)

    assert [(branch.remote, branch.merged) for branch in found] == [
        (None, False),
        ("origin", True),
    ]
