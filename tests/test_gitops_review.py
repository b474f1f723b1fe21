"""Review and conflict-round support in autopilot.git, against real git repos in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.git import (
    GitError,
    branch_name,
    commit_changes,
    diff_for_review,
    merge_target_into_branch,
    merge_task,
    prepare_workspace,
    restore_tree,
    tree_fingerprint,
    unresolved_conflicts,
)
from autopilot.models import Workspace
from tests.gitutil import commit_file, git, head, isolate_git, make_repo, trailers, write

SESSION = "sess-1"
TASK = "1"
# Built, not written out: this file must not itself look like a conflicted file.
START, SEP, END = "<" * 7, "=" * 7, ">" * 7


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def ws(repo: Path, tmp_path: Path) -> Workspace:
    return prepare_workspace(repo, "main", tmp_path / "state", SESSION, TASK)


def parents(cwd: Path, rev: str = "HEAD") -> list[str]:
    return git(cwd, "rev-list", "--parents", "-n1", rev).split()[1:]


def subject(cwd: Path, rev: str = "HEAD") -> str:
    return git(cwd, "log", "-1", "--format=%s", rev)


def merging(cwd: Path) -> bool:
    return git(cwd, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False) != ""


def conflicting(repo: Path, ws: Workspace) -> tuple[Path, str, str]:
    """Task and target both edit README.md after the task started; the target also adds a
    file. Returns (workspace, branch head, target head)."""
    wt = Path(ws.path)
    commit_file(wt, "README.md", "hello from the task\n", "task edits README")
    commit_file(wt, "task.txt", "task\n", "task adds task.txt")
    commit_file(repo, "other.txt", "target\n", "target adds other.txt")
    target = commit_file(repo, "README.md", "hello from the target\n", "target edits README")
    return wt, head(wt), target


def start_conflict(repo: Path, ws: Workspace) -> tuple[Path, str, str]:
    wt, branch_head, target = conflicting(repo, ws)
    result = merge_target_into_branch(wt, "main", SESSION, TASK, repo=repo)
    assert not result.clean
    return wt, branch_head, target


# --------------------------------------------------------------------------------------------
# diff_for_review
# --------------------------------------------------------------------------------------------


def test_diff_has_stat_first_then_patch_and_lists_changed_files(ws: Workspace) -> None:
    wt = Path(ws.path)
    commit_file(wt, "README.md", "hello\nworld\n")
    commit_file(wt, "src/new.py", "print('hi')\n")

    review = diff_for_review(wt, ws.base_sha)

    assert not review.truncated
    assert review.changed_files == ["README.md", "src/new.py"]
    stat, _, patch = review.diff.partition("diff --git ")
    assert "README.md" in stat and "src/new.py" in stat and "2 files changed" in stat
    assert "create mode 100644 src/new.py" in stat
    assert "+world" in patch and "+print('hi')" in patch


def test_diff_without_changes_says_so(ws: Workspace) -> None:
    review = diff_for_review(ws.path, ws.base_sha)
    assert review.changed_files == [] and not review.truncated
    assert "no changes" in review.diff


def test_diff_of_a_non_utf8_file_does_not_fail(ws: Workspace) -> None:
    wt = Path(ws.path)
    (wt / "latin1.txt").write_bytes(b"caf\xe9\n")
    git(wt, "add", "latin1.txt")
    git(wt, "commit", "-q", "-m", "latin-1")
    assert "caf\ufffd" in diff_for_review(wt, ws.base_sha).diff


def test_diff_is_truncated_with_a_note(ws: Workspace) -> None:
    wt = Path(ws.path)
    commit_file(wt, "a_big.txt", "".join(f"line {i}\n" for i in range(2000)))
    commit_file(wt, "b_small.txt", "small\n")

    review = diff_for_review(wt, ws.base_sha, limit_chars=3000)

    assert review.truncated
    assert review.changed_files == ["a_big.txt", "b_small.txt"]
    shown, _, note = review.diff.partition("[diff truncated: ")
    assert len(shown) <= 3001
    assert "b_small.txt" in shown  # in the --stat summary, though its patch is cut
    assert "+small" not in review.diff
    assert "left out" in note and "1 more file(s) not shown" in note
    assert "last file shown is cut off" in note and "read those files" in note
    assert len(review.diff) < 3000 + 500


def test_diff_excludes_the_targets_changes_after_a_target_merge(repo: Path, ws: Workspace) -> None:
    wt = Path(ws.path)
    commit_file(wt, "task.txt", "task\n")
    target = commit_file(repo, "other.txt", "target\n")
    assert merge_target_into_branch(wt, "main", SESSION, TASK, repo=repo).clean
    commit_file(wt, "after.txt", "after the merge\n")

    for base in (ws.base_sha, target):  # a workspace has no target branch: shas
        review = diff_for_review(wt, base)
        assert review.changed_files == ["after.txt", "task.txt"], base
        assert "other.txt" not in review.diff


def test_diff_after_a_conflict_round_shows_the_resolution(repo: Path, ws: Workspace) -> None:
    wt, _, target = start_conflict(repo, ws)
    write(wt, "README.md", "hello from both\n")
    commit_changes(wt, ws.base_sha, SESSION, TASK, "Task 1", repo=repo)

    for base in (ws.base_sha, target):
        review = diff_for_review(wt, base)
        assert review.changed_files == ["README.md", "task.txt"]
        assert "-hello from the target\n+hello from both" in review.diff
        assert "other.txt" not in review.diff


def test_diff_keeps_an_agents_own_side_branch(ws: Workspace) -> None:
    wt = Path(ws.path)
    commit_file(wt, "first.txt", "first\n")
    git(wt, "checkout", "-q", "-b", "side")
    commit_file(wt, "side.txt", "side\n")
    git(wt, "checkout", "-q", ws.branch)
    git(wt, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    assert diff_for_review(wt, ws.base_sha).changed_files == ["first.txt", "side.txt"]


def test_diff_with_an_unknown_base(ws: Workspace) -> None:
    with pytest.raises(GitError, match="names no commit"):
        diff_for_review(ws.path, "no-such-branch")


# --------------------------------------------------------------------------------------------
# tree_fingerprint and restore_tree
# --------------------------------------------------------------------------------------------


def git_path(wt: Path, name: str) -> Path:
    """Where git keeps `name` for this workspace (the common dir for hooks and config)."""
    return Path(wt, git(wt, "rev-parse", "--git-path", name))


def with_ignored_build(repo: Path, tmp_path: Path) -> Path:
    """A task workspace whose repo ignores build/ and *.log, with a build output in it."""
    commit_file(repo, ".gitignore", "build/\n*.log\n")
    wt = Path(prepare_workspace(repo, "main", tmp_path / "state", SESSION, "2").path)
    write(wt, "build/lib/module.py", "compiled = 1\n")
    return wt


def test_fingerprint_is_stable_when_nothing_happens(repo: Path, tmp_path: Path) -> None:
    wt = with_ignored_build(repo, tmp_path)
    write(wt, "dirty.txt", "uncommitted\n")
    write(wt, "run.log", "ignored output\n")
    write(wt / ".git" / "hooks", "pre-commit", "#!/bin/sh\nexit 0\n")
    git(wt, "update-ref", "refs/worktree/mark", "HEAD")
    assert tree_fingerprint(wt) == tree_fingerprint(wt)


def test_fingerprint_sees_every_kind_of_change(ws: Workspace) -> None:
    wt = Path(ws.path)
    seen = [tree_fingerprint(wt)]

    def changed() -> None:
        now = tree_fingerprint(wt)
        assert now not in seen
        seen.append(now)

    write(wt, "notes/untracked.txt", "new\n")
    changed()
    write(wt, "README.md", "edited once\n")
    changed()
    write(wt, "README.md", "edited twice\n")  # the status line stays ` M README.md`
    changed()
    git(wt, "add", "README.md")
    changed()
    git(wt, "commit", "-q", "-m", "reviewer commits")
    changed()
    git(wt, "checkout", "-q", "-b", "elsewhere")
    changed()


def test_fingerprint_sees_ignored_files_and_their_content(repo: Path, tmp_path: Path) -> None:
    wt = with_ignored_build(repo, tmp_path)
    before = tree_fingerprint(wt)
    (wt / "build" / "lib" / "module.py").write_text("compiled = 2\n")  # same name and size
    after_edit = tree_fingerprint(wt)
    assert after_edit != before
    write(wt, "run.log", "noise\n")
    assert tree_fingerprint(wt) not in (before, after_edit)


def test_fingerprint_sees_a_hook_and_a_config_change(ws: Workspace) -> None:
    wt = Path(ws.path)
    before = tree_fingerprint(wt)
    hook = write(wt / ".git" / "hooks", "post-checkout", "#!/bin/sh\necho one\n")
    with_hook = tree_fingerprint(wt)
    assert with_hook != before
    hook.write_text("#!/bin/sh\necho two\n")
    with_edited_hook = tree_fingerprint(wt)
    assert with_edited_hook not in (before, with_hook)
    git(wt, "config", "alias.st", "!echo three")
    assert tree_fingerprint(wt) not in (before, with_hook, with_edited_hook)


def test_fingerprint_sees_the_workspaces_refs_but_not_the_users_repository(
    repo: Path, ws: Workspace
) -> None:
    wt = Path(ws.path)
    before = tree_fingerprint(wt)
    # Other tasks commit and merge in the user's repository while a review runs.
    commit_file(repo, "target.txt", "merged meanwhile\n")
    git(repo, "branch", "autopilot/sess-1/other", "HEAD")
    assert tree_fingerprint(wt) == before
    # A ref of the workspace moves: a new one, then the same one again.
    start = head(wt)
    git(wt, "update-ref", "refs/heads/mark", start)
    marked = tree_fingerprint(wt)
    assert marked != before
    git(wt, "update-ref", "refs/heads/mark", commit_file(wt, "x.txt", "x\n"))
    assert tree_fingerprint(wt) not in (before, marked)


def test_fingerprint_of_a_repository_of_its_own_sees_every_ref(tmp_path: Path) -> None:
    # The shape a workspace has as a standalone repository (a clone), not a linked worktree.
    standalone = make_repo(tmp_path / "standalone")
    commit_file(standalone, "second.txt", "2\n")
    git(standalone, "branch", "side", "HEAD~1")
    seen = [tree_fingerprint(standalone)]

    def changed() -> None:
        now = tree_fingerprint(standalone)
        assert now not in seen
        seen.append(now)

    git(standalone, "tag", "v1")
    changed()
    git(standalone, "branch", "-f", "side", "HEAD")
    changed()
    git(standalone, "pack-refs", "--all")  # refs move into packed-refs
    changed()
    git(standalone, "update-ref", "refs/heads/side", "HEAD~1")  # a packed ref moves
    changed()
    write(standalone / ".git" / "hooks", "pre-commit", "#!/bin/sh\n")
    changed()
    git(standalone, "config", "diff.external", "echo")
    changed()
    assert tree_fingerprint(standalone) == seen[-1]


def worktree_state(wt: Path) -> tuple[str, ...]:
    """What restore_tree puts back: HEAD, the branch, files (ignored ones too), no merge."""
    return (
        head(wt),
        git(wt, "symbolic-ref", "-q", "HEAD", check=False),
        git(wt, "status", "--porcelain=v1", "--untracked-files=all", "--ignored"),
        git(wt, "diff", "HEAD"),
        str(merging(wt)),
    )


def test_restore_tree_undoes_a_reviewers_edits_commits_and_branch_switch(
    repo: Path, tmp_path: Path
) -> None:
    commit_file(repo, ".gitignore", "*.log\n")
    ws = prepare_workspace(repo, "main", tmp_path / "state", SESSION, TASK)
    wt = Path(ws.path)
    start = commit_file(wt, "task.txt", "task\n")
    write(wt, "pytest.log", "ignored output\n")
    before = worktree_state(wt)

    write(wt, "task.txt", "reviewer edit\n")
    write(wt, "scratch/new.txt", "reviewer file\n")
    git(wt, "commit", "-q", "-am", "reviewer commit")
    git(wt, "checkout", "-q", "-b", "reviewer-branch")
    write(wt, "README.md", "on the other branch\n")

    restore_tree(wt, start, branch=ws.branch)

    assert worktree_state(wt) == before
    assert head(wt, ws.branch) == start
    assert (wt / "task.txt").read_text() == "task\n"
    assert not (wt / "scratch").exists()
    assert (wt / "pytest.log").exists()  # ignored files are kept (no clean -x)
    restore_tree(wt, start, branch=ws.branch)  # idempotent
    assert worktree_state(wt) == before


def test_restore_tree_aborts_a_merge_in_progress(repo: Path, ws: Workspace) -> None:
    wt, branch_head, target = conflicting(repo, ws)
    before = worktree_state(wt)
    git(wt, "merge", target, check=False)
    assert merging(wt)

    restore_tree(wt, branch_head)

    assert not merging(wt)
    assert worktree_state(wt) == before


# --------------------------------------------------------------------------------------------
# merge_target_into_branch
# --------------------------------------------------------------------------------------------


def test_merge_target_when_already_up_to_date(repo: Path, ws: Workspace) -> None:
    wt = Path(ws.path)
    task_head = commit_file(wt, "task.txt", "task\n")
    result = merge_target_into_branch(wt, "main", SESSION, TASK, repo=repo)
    assert result.clean and result.already_up_to_date
    assert result.head_sha == head(wt) == task_head


def test_clean_merge_of_the_target_is_committed_with_trailers(repo: Path, ws: Workspace) -> None:
    wt = Path(ws.path)
    task_head = commit_file(wt, "task.txt", "task\n")
    target = commit_file(repo, "other.txt", "target\n")

    result = merge_target_into_branch(wt, "main", SESSION, TASK, repo=repo)

    assert result.clean and not result.already_up_to_date and result.conflict_files == []
    assert result.head_sha == head(wt)
    assert parents(wt) == [task_head, target]
    assert subject(wt) == f"Merge main into {branch_name(SESSION, TASK)} for task {TASK}"
    assert trailers(wt, "HEAD") == {"Autopilot-Session": [SESSION], "Autopilot-Task": [TASK]}
    assert head(repo, "main") == target
    assert git(repo, "status", "--porcelain") == ""
    again = merge_target_into_branch(wt, "main", SESSION, TASK, repo=repo)
    assert again.already_up_to_date and again.head_sha == result.head_sha


def test_conflicting_merge_leaves_markers_for_the_agent(repo: Path, ws: Workspace) -> None:
    wt, branch_head, target = conflicting(repo, ws)

    result = merge_target_into_branch(wt, "main", SESSION, TASK, repo=repo)

    assert not result.clean and result.conflict_files == ["README.md"]
    assert result.head_sha == branch_head == head(wt)
    assert merging(wt)
    text = (wt / "README.md").read_text()
    assert text.startswith(f"{START} HEAD\nhello from the task\n{SEP}\nhello from the target\n")
    assert (wt / "other.txt").read_text() == "target\n"  # the clean part is merged
    # The target branch and the user's checkout are untouched.
    assert head(repo, "main") == target
    assert (repo / "README.md").read_text() == "hello from the target\n"
    assert git(repo, "status", "--porcelain") == ""


def test_merge_target_retry_while_the_merge_is_in_progress(repo: Path, ws: Workspace) -> None:
    wt, branch_head, target = start_conflict(repo, ws)
    markers = (wt / "README.md").read_text()

    again = merge_target_into_branch(wt, "main", SESSION, TASK, repo=repo)

    assert not again.clean and again.conflict_files == ["README.md"]
    assert again.head_sha == branch_head and head(repo, "main") == target
    assert merging(wt) and (wt / "README.md").read_text() == markers


def test_merge_target_retry_finishes_a_clean_merge_left_uncommitted(
    repo: Path, ws: Workspace
) -> None:
    wt = Path(ws.path)
    task_head = commit_file(wt, "task.txt", "task\n")
    target = commit_file(repo, "other.txt", "target\n")
    git(wt, "merge", "--no-ff", "--no-commit", target)  # as if we crashed before committing

    result = merge_target_into_branch(wt, "main", SESSION, TASK, repo=repo)

    assert result.clean and not merging(wt)
    assert parents(wt) == [task_head, target]
    assert trailers(wt, "HEAD")["Autopilot-Task"] == [TASK]


def test_merge_target_refuses_uncommitted_changes(repo: Path, ws: Workspace) -> None:
    commit_file(repo, "other.txt", "target\n")
    write(Path(ws.path), "README.md", "uncommitted\n")
    with pytest.raises(GitError, match=r"uncommitted changes to README\.md"):
        merge_target_into_branch(ws.path, "main", SESSION, TASK, repo=repo)
    assert not merging(Path(ws.path))


# --------------------------------------------------------------------------------------------
# unresolved_conflicts
# --------------------------------------------------------------------------------------------


def test_unresolved_conflicts_lists_unmerged_and_added_files_with_markers(
    repo: Path, ws: Workspace
) -> None:
    wt, _, _ = start_conflict(repo, ws)
    assert unresolved_conflicts(wt) == ["README.md"]

    git(wt, "add", "README.md")  # staged with its markers: no longer unmerged
    assert git(wt, "ls-files", "--unmerged") == ""
    assert unresolved_conflicts(wt) == ["README.md"]

    write(wt, "README.md", "hello from both\n")
    git(wt, "add", "README.md")
    assert unresolved_conflicts(wt) == []


def test_unresolved_conflicts_ignores_marker_lines_from_either_side(
    repo: Path, ws: Workspace
) -> None:
    doc = f"How a conflict looks:\n{START} ours\na\n{SEP}\nb\n{END} theirs\n"
    commit_file(Path(ws.path), "task-doc.md", doc)
    commit_file(repo, "target-doc.md", doc)
    wt, _, _ = start_conflict(repo, ws)
    assert unresolved_conflicts(wt) == ["README.md"]


def test_unresolved_conflicts_catches_markers_the_agent_committed(
    repo: Path, ws: Workspace
) -> None:
    wt, _, _ = start_conflict(repo, ws)
    git(wt, "commit", "-q", "-am", "agent concludes the merge with its markers")
    assert not merging(wt) and len(parents(wt)) == 2
    assert unresolved_conflicts(wt) == ["README.md"]


def test_no_conflicts_outside_a_merge(ws: Workspace) -> None:
    assert unresolved_conflicts(ws.path) == []


# --------------------------------------------------------------------------------------------
# commit_changes concluding the merge, then merging the task
# --------------------------------------------------------------------------------------------


def test_commit_changes_concludes_the_merge_then_merge_task_succeeds(
    repo: Path, ws: Workspace
) -> None:
    wt, branch_head, target = start_conflict(repo, ws)
    task_commits = git(wt, "rev-list", "--reverse", f"{ws.base_sha}..{branch_head}").split()
    write(wt, "README.md", "hello from both\n")  # resolved, not staged

    outcome = commit_changes(wt, ws.base_sha, SESSION, TASK, "Task 1", repo=repo)

    assert outcome.committed_leftovers and not merging(wt)
    assert parents(wt) == [branch_head, target]
    assert subject(wt) == f"Merge main into {branch_name(SESSION, TASK)} for task {TASK}"
    assert trailers(wt, "HEAD") == {"Autopilot-Session": [SESSION], "Autopilot-Task": [TASK]}
    assert [c.sha for c in outcome.commits] == [*task_commits, outcome.head_sha]
    assert git(wt, "status", "--porcelain") == ""
    again = commit_changes(wt, ws.base_sha, SESSION, TASK, "Task 1", repo=repo)  # idempotent
    assert again.head_sha == outcome.head_sha and not again.committed_leftovers

    merged = merge_task(repo, "main", ws.branch, SESSION, TASK, "Merge task 1")

    assert merged.merged and not merged.conflict
    assert parents(repo, "main") == [target, outcome.head_sha]
    assert (repo / "README.md").read_text() == "hello from both\n"
    assert (repo / "task.txt").read_text() == "task\n"
    assert (repo / "other.txt").read_text() == "target\n"


def test_commit_changes_concludes_a_merge_resolved_as_ours(repo: Path, ws: Workspace) -> None:
    wt, branch_head, target = start_conflict(repo, ws)
    git(wt, "checkout", "--ours", "README.md")
    git(wt, "rm", "-qf", "other.txt")  # the tree now equals HEAD: nothing staged to commit

    commit_changes(wt, ws.base_sha, SESSION, TASK, "Task 1", repo=repo)

    assert not merging(wt) and parents(wt) == [branch_head, target]


def test_commit_changes_refuses_conflict_markers(repo: Path, ws: Workspace) -> None:
    wt, branch_head, _ = start_conflict(repo, ws)
    git(wt, "add", "--all")  # the agent staged the file with its markers

    with pytest.raises(GitError, match=r"conflict markers .* in README\.md"):
        commit_changes(wt, ws.base_sha, SESSION, TASK, "Task 1", repo=repo)

    assert merging(wt) and head(wt) == branch_head
