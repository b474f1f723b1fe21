"""autopilot.git against real git repositories in tmp_path (no network)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.errors import git_errors_as_activity_errors
from activities.merge import merge_and_tidy
from autopilot import git as gitops
from autopilot.error_types import CHECKOUT_IN_THE_WAY
from autopilot.git import (
    GitError,
    RepoError,
    branch_name,
    check_repo,
    commit_changes,
    find_task_merge,
    git_version,
    identity_env,
    list_merges,
    merge_task,
    prepare_workspace,
    remove_workspace,
    require_git,
    workspace_dir,
)
from autopilot.git import merge as git_merge
from autopilot.git import refs as git_refs
from autopilot.infra import remove_path
from autopilot.models import MergeInput, MergeResult, Workspace
from tests.gitutil import commit_file, git, head, isolate_git, make_repo, trailers, write

SESSION = "sess-1"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def do_task(
    repo: Path, state: Path, task: str, files: dict[str, str], session: str = SESSION
) -> Workspace:
    """Prepare the task's workspace, write `files` there and commit them."""
    ws = prepare_workspace(repo, "main", state, session, task)
    for name, content in files.items():
        write(Path(ws.path), name, content)
    commit_changes(ws.path, ws.base_sha, session, task, f"Task {task}", repo=repo)
    return ws


def merge(repo: Path, ws: Workspace, task: str, session: str = SESSION) -> MergeResult:
    return merge_task(repo, "main", ws.branch, session, task, f"Merge task {task}")


def merge_commits(repo: Path, ref: str = "main") -> list[str]:
    return git(repo, "rev-list", "--first-parent", "--min-parents=2", ref).split()


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------

HOSTILE_IDS = [
    "../../etc",
    "..",
    ".",
    "a b",
    "$(rm -rf)",
    "`id`",
    "ünïcødé",
    "日本",
    "",
    ".hidden",
    "-x",
    "x.lock",
    "x.lock.lock",
    "x.",
    "a/b",
    "a..b",
    "@{u}",
    "@",
    "a~1^2:b?*[",
    "back\\slash",
    "new\nline",
    "x" * 300,
]
SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")


def test_plain_ids_are_kept() -> None:
    assert branch_name("s1", "31.1a") == "autopilot/s1/31.1a"
    assert workspace_dir("/st", "s1", "31.1a") == Path("/st/worktrees/s1/31.1a")


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
@pytest.mark.reliability(
    "hostile session/task ids (.., /, $(), newline, .lock, 300 chars, ...)",
    "branch names pass git check-ref-format; worktree paths stay under the state dir",
)
def test_hostile_ids_make_safe_branches_and_paths(hostile: str, tmp_path: Path) -> None:
    name = branch_name(hostile, hostile)
    parts = name.split("/")
    assert parts[0] == "autopilot" and len(parts) == 3
    for part in parts[1:]:
        assert SAFE_COMPONENT.match(part), part
        assert ".." not in part and not part.endswith((".", ".lock"))
        assert len(part) <= 80
    check = subprocess.run(
        ["git", "check-ref-format", "--branch", name], capture_output=True, check=False
    )
    assert check.returncode == 0, name

    state_dir = tmp_path / "state"
    path = workspace_dir(state_dir, hostile, hostile)
    assert path.parent.parent == state_dir / "worktrees"
    assert path.resolve().is_relative_to((state_dir / "worktrees").resolve())
    assert path.name == parts[2]


def test_distinct_ids_get_distinct_names() -> None:
    ids = ["a b", "a_b", "a/b", "a.b", "a..b", "x.lock", "x", "", "-x"]
    names = {branch_name("s", task) for task in ids}
    assert len(names) == len(ids)
    assert branch_name("s", "a b") == branch_name("s", "a b")  # deterministic


# --------------------------------------------------------------------------------------------
# Workspaces
# --------------------------------------------------------------------------------------------


def test_prepare_creates_branch_and_workspace_from_target(repo: Path, state: Path) -> None:
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    assert ws == Workspace(
        path=str(workspace_dir(state, SESSION, "1")),
        branch=f"autopilot/{SESSION}/1",
        base_sha=head(repo),
    )
    path = Path(ws.path)
    assert (path / "README.md").read_text() == "hello\n"
    assert git(path, "symbolic-ref", "HEAD") == f"refs/heads/{ws.branch}"
    assert git(repo, "status", "--porcelain") == ""


def test_prepare_twice_reuses_the_workspace(repo: Path, state: Path) -> None:
    first = prepare_workspace(repo, "main", state, SESSION, "1")
    agent_sha = commit_file(Path(first.path), "work.txt", "agent\n")
    write(Path(first.path), "draft.txt", "uncommitted\n")
    commit_file(repo, "other.txt", "target moved\n")  # the target moves on

    second = prepare_workspace(repo, "main", state, SESSION, "1")
    assert second == first  # base_sha is still where the branch forked
    assert head(Path(second.path)) == agent_sha
    assert (Path(second.path) / "draft.txt").read_text() == "uncommitted\n"


@pytest.mark.reliability(
    "worktree directory deleted by hand",
    "prepare again: the same worktree comes back at the branch's commit",
)
def test_prepare_after_workspace_dir_deleted_by_hand(repo: Path, state: Path) -> None:
    first = prepare_workspace(repo, "main", state, SESSION, "1")
    write(Path(first.path), "work.txt", "agent\n")
    agent_sha = commit_changes(first.path, first.base_sha, SESSION, "1", "x", repo=repo).head_sha
    remove_path(Path(first.path))  # what was brought back is on the task branch

    second = prepare_workspace(repo, "main", state, SESSION, "1")
    assert second == first
    assert head(Path(second.path)) == agent_sha
    assert (Path(second.path) / "work.txt").read_text() == "agent\n"


@pytest.mark.reliability(
    "a worker killed while making a workspace (half a repository left aside)",
    "prepare again: the workspace is made whole; a half one never stands at its path",
)
def test_prepare_remakes_a_workspace_left_half_made(repo: Path, state: Path) -> None:
    path = workspace_dir(state, SESSION, "1")
    half = path.with_name(f".making-{path.name}")
    write(half, "README.md", "half\n")  # killed during the checkout of a new workspace
    (half / ".git").mkdir()
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    assert ws.path == str(path) and not half.exists()
    assert git(path, "status", "--porcelain") == "" and head(path) == head(repo)


@pytest.mark.reliability(
    "leftover unregistered directory at the worktree path", "prepare: replaced by a clean worktree"
)
def test_prepare_replaces_a_leftover_unregistered_dir(repo: Path, state: Path) -> None:
    path = workspace_dir(state, SESSION, "1")
    write(path, "junk.txt", "left over\n")
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    assert ws.path == str(path)
    assert not (path / "junk.txt").exists()
    assert git(path, "status", "--porcelain") == ""


@pytest.mark.reliability(
    "stale index.lock left by a killed git",
    "a fresh lock is kept; one older than STALE_LOCK_SECONDS is removed and commits work",
)
def test_prepare_removes_only_stale_index_locks(repo: Path, state: Path) -> None:
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    lock = Path(git(ws.path, "rev-parse", "--absolute-git-dir")) / "index.lock"
    lock.write_text("")
    prepare_workspace(repo, "main", state, SESSION, "1")
    assert lock.exists()  # fresh: some git may hold it

    old = time.time() - gitops.STALE_LOCK_SECONDS - 5
    os.utime(lock, (old, old))
    prepare_workspace(repo, "main", state, SESSION, "1")
    assert not lock.exists()
    write(Path(ws.path), "a.txt", "a\n")
    assert commit_changes(
        ws.path, ws.base_sha, SESSION, "1", "works", repo=repo
    ).committed_leftovers


@pytest.mark.reliability(
    "task worktree switched to another branch", "prepare raises GitError naming the branch"
)
def test_prepare_refuses_a_workspace_on_another_branch(repo: Path, state: Path) -> None:
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    git(ws.path, "checkout", "-q", "-b", "elsewhere")
    with pytest.raises(GitError, match=r"is on refs/heads/elsewhere, not on"):
        prepare_workspace(repo, "main", state, SESSION, "1")


@pytest.mark.reliability(
    "task prepared again after it merged (retry after a crash)",
    "prepare reports already_merged with the merge sha; no worktree made",
)
def test_prepare_reports_an_already_merged_task(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})
    outcome = merge(repo, ws, "1")
    remove_workspace(repo, ws.path)

    again = prepare_workspace(repo, "main", state, SESSION, "1")
    assert again == Workspace(
        path="",
        branch=ws.branch,
        base_sha=head(repo),
        already_merged=True,
        merge_sha=outcome.merge_sha,
    )
    assert not Path(ws.path).exists()


def test_prepare_with_unknown_target(repo: Path, state: Path) -> None:
    with pytest.raises(RepoError, match="branch 'nope' does not exist"):
        prepare_workspace(repo, "nope", state, SESSION, "1")
    with pytest.raises(RepoError, match="does not exist"):
        prepare_workspace(repo / "gone", "main", state, SESSION, "1")


# --------------------------------------------------------------------------------------------
# Commits
# --------------------------------------------------------------------------------------------


@pytest.mark.reliability(
    "commit step run twice (activity retried)",
    "the second commit_changes commits nothing new and returns the same commits",
)
def test_commit_leftovers_with_trailers(repo: Path, state: Path) -> None:
    commit_file(repo, ".gitignore", "*.log\n")
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    path = Path(ws.path)
    write(path, "README.md", "changed\n")
    write(path, "new/dir/file.txt", "new\n")
    write(path, "debug.log", "ignored\n")

    outcome = commit_changes(
        ws.path, ws.base_sha, SESSION, "1", "Task 1: do it\n\nBody.", repo=repo
    )
    assert outcome.committed_leftovers and not outcome.no_changes
    assert [c.subject for c in outcome.commits] == ["Task 1: do it"]
    assert outcome.head_sha == outcome.commits[0].sha == head(path)
    assert trailers(path, "HEAD") == {"Autopilot-Session": [SESSION], "Autopilot-Task": ["1"]}
    changed = git(path, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(changed) == ["README.md", "new/dir/file.txt"]
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert (path / "debug.log").exists()

    again = commit_changes(ws.path, ws.base_sha, SESSION, "1", "Task 1: do it", repo=repo)
    assert not again.committed_leftovers and not again.no_changes
    assert again.commits == outcome.commits


@pytest.mark.reliability("agent changed nothing", "commit_changes: no_changes, no commit")
def test_commit_with_nothing_to_do(repo: Path, state: Path) -> None:
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    outcome = commit_changes(ws.path, ws.base_sha, SESSION, "1", "Task 1", repo=repo)
    assert outcome.no_changes and not outcome.committed_leftovers
    assert outcome.commits == [] and outcome.head_sha == ws.base_sha


def test_agent_commits_are_listed_oldest_first(repo: Path, state: Path) -> None:
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    path = Path(ws.path)
    first = commit_file(path, "a.txt", "a\n", "agent one")
    second = commit_file(path, "b.txt", "b\n", "agent two")
    write(path, "c.txt", "c\n")

    outcome = commit_changes(ws.path, ws.base_sha, SESSION, "1", "leftovers", repo=repo)
    assert [(c.sha, c.subject) for c in outcome.commits[:2]] == [
        (first, "agent one"),
        (second, "agent two"),
    ]
    assert [c.subject for c in outcome.commits] == ["agent one", "agent two", "leftovers"]
    assert outcome.committed_leftovers


def test_commit_message_edge_cases_keep_trailers(repo: Path, state: Path) -> None:
    ws = prepare_workspace(repo, "main", state, SESSION, "task 1")
    write(Path(ws.path), "a.txt", "a\n")
    message = "Subject\n\n# not a comment\n---\nmore\n\nSigned-off-by: Someone <s@x>"
    commit_changes(ws.path, ws.base_sha, SESSION, "task 1", message, repo=repo)
    body = git(ws.path, "log", "-1", "--format=%B")
    assert "# not a comment" in body and "Signed-off-by: Someone <s@x>" in body
    assert trailers(Path(ws.path), "HEAD") == {
        "Autopilot-Session": [SESSION],
        "Autopilot-Task": ["task 1"],
    }


def test_commit_identity_defaults_only_when_unconfigured(tmp_path: Path, state: Path) -> None:
    bare_identity = make_repo(tmp_path / "anon", identity=False)
    ws = prepare_workspace(bare_identity, "main", state, SESSION, "1")
    write(Path(ws.path), "a.txt", "a\n")
    commit_changes(ws.path, ws.base_sha, SESSION, "1", "x", repo=bare_identity)
    assert git(ws.path, "log", "-1", "--format=%an <%ae>|%cn") == (
        "CC3 Autopilot <autopilot@localhost>|CC3 Autopilot"
    )

    configured = make_repo(tmp_path / "named")
    ws = prepare_workspace(configured, "main", tmp_path / "st2", SESSION, "1")
    write(Path(ws.path), "a.txt", "a\n")
    commit_changes(ws.path, ws.base_sha, SESSION, "1", "x", repo=configured)
    assert git(ws.path, "log", "-1", "--format=%an <%ae>") == "Test User <test@example.com>"


def test_identity_env_for_the_agent(tmp_path: Path) -> None:
    anon = make_repo(tmp_path / "anon", identity=False)
    env = identity_env(anon)
    assert env == {
        "GIT_AUTHOR_NAME": "CC3 Autopilot",
        "GIT_COMMITTER_NAME": "CC3 Autopilot",
        "GIT_AUTHOR_EMAIL": "autopilot@localhost",
        "GIT_COMMITTER_EMAIL": "autopilot@localhost",
    }
    git(anon, "config", "user.name", "Someone")
    assert set(identity_env(anon)) == {"GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"}
    assert identity_env(make_repo(tmp_path / "named")) == {}


def test_commit_refuses_a_workspace_on_another_branch(repo: Path, state: Path) -> None:
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    git(ws.path, "checkout", "-q", "--detach")
    with pytest.raises(GitError, match="detached HEAD"):
        commit_changes(ws.path, ws.base_sha, SESSION, "1", "x", repo=repo)


def test_trailer_values_must_be_single_line(repo: Path, state: Path) -> None:
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    write(Path(ws.path), "a.txt", "a\n")
    git(ws.path, "branch", "-m", branch_name(SESSION, "1\n2"))
    with pytest.raises(ValueError, match="trailer"):
        commit_changes(ws.path, ws.base_sha, SESSION, "1\n2", "x", repo=repo)


# --------------------------------------------------------------------------------------------
# Merges
# --------------------------------------------------------------------------------------------


def test_merge_into_checked_out_target(repo: Path, state: Path) -> None:
    old_head = head(repo)
    ws = do_task(repo, state, "1", {"a.txt": "from task\n", "README.md": "edited\n"})
    branch_head = head(repo, ws.branch)

    outcome = merge_task(repo, "main", ws.branch, SESSION, "1", "Merge task 1\n\nDetails.")
    assert outcome.merged and not outcome.already_merged and not outcome.conflict
    assert outcome.merge_sha == head(repo) == head(repo, "main")
    assert (repo / "a.txt").read_text() == "from task\n"
    assert (repo / "README.md").read_text() == "edited\n"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "log", "-1", "--format=%P").split() == [old_head, branch_head]
    assert git(repo, "log", "-1", "--format=%s") == "Merge task 1"
    assert trailers(repo, "HEAD") == {"Autopilot-Session": [SESSION], "Autopilot-Task": ["1"]}
    assert find_task_merge(repo, "main", SESSION, "1") == outcome.merge_sha
    assert find_task_merge(repo, "main", SESSION, "2") is None
    assert find_task_merge(repo, "main", "other-session", "1") is None


def test_merge_into_target_not_checked_out(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "from task\n"})
    git(repo, "checkout", "-q", "-b", "user-work")
    user_head = head(repo)

    outcome = merge(repo, ws, "1")
    assert outcome.merged and outcome.merge_sha == head(repo, "main")
    assert head(repo) == user_head  # the user's checkout did not move
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "user-work"
    assert not (repo / "a.txt").exists()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "show", "main:a.txt") == "from task"
    assert "autopilot: merge" in git(repo, "reflog", "-1", "--format=%gs", "main")


@pytest.mark.reliability(
    "merge run twice (activity retried)",
    "the second merge reports already_merged with the same sha; one merge commit",
)
def test_merge_twice_is_already_merged(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})
    first = merge(repo, ws, "1")
    second = merge(repo, ws, "1")
    assert second.merged and second.already_merged and second.merge_sha == first.merge_sha
    assert merge_commits(repo) == [first.merge_sha]


@pytest.mark.reliability(
    "worker dies mid-merge after the merge commit, before the target moves",
    "crash injected into gitops: target unchanged and clean; the retry merges once",
)
def test_crash_after_commit_tree_then_retry_merges_once(
    repo: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})
    old_head = head(repo)

    def crash(*_args: object) -> bool:
        raise KeyboardInterrupt("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(git_merge, "_advance_in_checkout", crash)
        with pytest.raises(KeyboardInterrupt):
            merge(repo, ws, "1")
    assert head(repo) == old_head  # the unpublished merge commit is harmless garbage
    assert git(repo, "status", "--porcelain") == ""

    retry = merge(repo, ws, "1")
    assert retry.merged and not retry.already_merged
    again = merge(repo, ws, "1")
    assert again.already_merged and again.merge_sha == retry.merge_sha
    assert merge_commits(repo) == [retry.merge_sha]


@pytest.mark.reliability(
    "merge conflict with the target branch",
    "conflict reported with the files; target branch, checkout and files unchanged",
)
def test_conflict_leaves_target_untouched(repo: Path, state: Path) -> None:
    commit_file(repo, "other.txt", "x\n")
    ws = do_task(repo, state, "1", {"README.md": "task\n", "other.txt": "task\n", "ok": "1"})
    commit_file(repo, "README.md", "user\n")
    commit_file(repo, "other.txt", "user\n")
    before = head(repo)

    outcome = merge(repo, ws, "1")
    assert not outcome.merged and outcome.conflict
    assert outcome.conflict_files == ["README.md", "other.txt"]
    assert "CONFLICT (content): Merge conflict in README.md" in outcome.message
    assert "unchanged" in outcome.message
    assert head(repo, "main") == before
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (repo / "README.md").read_text() == "user\n"


def test_merge_after_target_moved(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "task\n"})
    moved = commit_file(repo, "b.txt", "user\n")

    outcome = merge(repo, ws, "1")
    assert outcome.merged
    assert git(repo, "log", "-1", "--format=%P").split() == [moved, head(repo, ws.branch)]
    assert (repo / "a.txt").read_text() == "task\n"
    assert (repo / "b.txt").read_text() == "user\n"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.reliability(
    "target branch advanced by someone else during the merge",
    "a commit injected between tree merge and ref update: the merge is redone on the new tip",
)
def test_merge_retries_when_target_moves_mid_merge(
    repo: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "task\n"})
    git(repo, "checkout", "-q", "--detach")  # target not checked out: the update-ref path
    real_merge_trees = git_merge.merge_trees
    moved: list[str] = []

    def merge_trees_while_someone_commits(
        cwd: str | Path, ours: str, theirs: str
    ) -> git_merge.TreeMerge:
        result = real_merge_trees(cwd, ours, theirs)
        if not moved:  # someone else advances main between our read and our update
            tree = git(repo, "rev-parse", "main^{tree}")
            sha = git(repo, "commit-tree", tree, "-p", "main", "-m", "concurrent")
            git(repo, "update-ref", "refs/heads/main", sha)
            moved.append(sha)
        return result

    monkeypatch.setattr(git_merge, "merge_trees", merge_trees_while_someone_commits)
    outcome = merge(repo, ws, "1")
    assert outcome.merged
    assert git(repo, "log", "-1", "--format=%P", "main").split() == [
        moved[0],
        head(repo, ws.branch),
    ]


@pytest.mark.reliability(
    "user editing the checked-out target branch",
    "merge refused naming the file, nothing changed; merges once the file is clean",
)
def test_local_changes_in_user_checkout_block_merge(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"README.md": "task\n"})
    write(repo, "README.md", "user is editing\n")
    before = head(repo)

    with pytest.raises(GitError) as caught:
        merge(repo, ws, "1")
    text = str(caught.value)
    assert str(repo) in text and "local changes" in text and "Commit or stash" in text
    assert "README.md" in text  # git's own words name the file
    assert head(repo, "main") == before
    assert (repo / "README.md").read_text() == "user is editing\n"
    assert find_task_merge(repo, "main", SESSION, "1") is None

    git(repo, "checkout", "--", "README.md")  # the user resolves it; a retry merges
    assert merge(repo, ws, "1").merged
    assert (repo / "README.md").read_text() == "task\n"


# --------------------------------------------------------------------------------------------
# The user's checkout is never damaged
# --------------------------------------------------------------------------------------------


def ignore(repo: Path, *patterns: str) -> None:
    """Commit a .gitignore with `patterns` on the checked-out branch."""
    commit_file(repo, ".gitignore", "".join(f"{pattern}\n" for pattern in patterns))


def do_forced_task(repo: Path, state: Path, task: str, files: dict[str, str]) -> Workspace:
    """A task whose commit adds `files` even where they are ignored (`git add -f`)."""
    ws = prepare_workspace(repo, "main", state, SESSION, task)
    for name, content in files.items():
        write(Path(ws.path), name, content)
    git(ws.path, "add", "-f", "--", *files)
    git(ws.path, "commit", "-q", "-m", f"Task {task}")
    gitops.bring_back(repo, ws.path, SESSION, task, ws.base_sha)
    return ws


def refused(repo: Path, ws: Workspace, task: str) -> str:
    """Merge, expecting the refusal; the target, its checkout and the task branch unchanged."""
    before, branch_head = head(repo, "main"), head(repo, ws.branch)
    with pytest.raises(gitops.CheckoutInTheWay) as caught:
        merge(repo, ws, task)
    assert head(repo, "main") == before
    assert head(repo, ws.branch) == branch_head  # the task branch is kept
    assert find_task_merge(repo, "main", SESSION, task) is None
    text = str(caught.value)
    assert f"python starter.py retry {task}" in text and "left unchanged" in text
    return text


@pytest.mark.reliability(
    "the user's checkout holds an ignored .env (a secret) and the task adds a .env",
    "merge refused naming the file and the way forward; .env and the target unchanged; "
    "merges once the file is moved",
)
def test_an_ignored_file_the_merge_adds_is_never_overwritten(repo: Path, state: Path) -> None:
    ignore(repo, ".env")
    ws = do_forced_task(repo, state, "1", {".env": "TOKEN=from-the-task\n", "a.txt": "a\n"})
    write(repo, ".env", "TOKEN=secret\n")

    text = refused(repo, ws, "1")
    assert str(repo) in text and ".env" in text and "a.txt" not in text
    assert (repo / ".env").read_text() == "TOKEN=secret\n"
    assert not (repo / "a.txt").exists()

    (repo / ".env").rename(repo / ".env.mine")  # the user moves it; a retry merges
    assert merge(repo, ws, "1").merged
    assert (repo / ".env.mine").read_text() == "TOKEN=secret\n"
    assert (repo / ".env").read_text() == "TOKEN=from-the-task\n"


@pytest.mark.reliability(
    "the task replaces an ignored directory of the user's checkout with a file",
    "merge refused naming the directory; the directory and its files intact",
)
def test_an_ignored_directory_the_merge_replaces_is_kept(repo: Path, state: Path) -> None:
    ignore(repo, "build/")
    ws = do_forced_task(repo, state, "1", {"build": "now a file\n"})
    write(repo, "build/cache.bin", "precious\n")

    assert "build/" in refused(repo, ws, "1")
    assert (repo / "build" / "cache.bin").read_text() == "precious\n"


def test_an_untracked_file_the_merge_adds_is_refused(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"notes.txt": "task\n"})
    write(repo, "notes.txt", "the user's own\n")

    assert "notes.txt" in refused(repo, ws, "1")
    assert (repo / "notes.txt").read_text() == "the user's own\n"


def test_an_untracked_file_where_the_merge_needs_a_directory_is_refused(
    repo: Path, state: Path
) -> None:
    ignore(repo, "docs")
    ws = do_forced_task(repo, state, "1", {"docs/guide.md": "task\n"})
    write(repo, "docs", "the user's file, not a directory\n")

    text = refused(repo, ws, "1")
    assert "docs" in text and "guide.md" not in text
    assert (repo / "docs").read_text() == "the user's file, not a directory\n"


def test_an_untracked_directory_takes_a_new_file_beside_the_users(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"d/x.txt": "task\n"})
    write(repo, "d/y.txt", "the user's own\n")

    assert merge(repo, ws, "1").merged
    assert (repo / "d" / "x.txt").read_text() == "task\n"
    assert (repo / "d" / "y.txt").read_text() == "the user's own\n"


def test_a_tracked_directory_replaced_by_a_file_merges(repo: Path, state: Path) -> None:
    commit_file(repo, "lib/a.py", "a\n")
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    git(ws.path, "rm", "-q", "-r", "lib")
    write(Path(ws.path), "lib", "a file now\n")
    commit_changes(ws.path, ws.base_sha, SESSION, "1", "Task 1", repo=repo)

    assert merge(repo, ws, "1").merged
    assert (repo / "lib").read_text() == "a file now\n"


def stop_on_a_conflict(repo: Path, *command: str) -> None:
    """Make `side` and `main` change README.md apart, then run `command` (with `side` last)
    on main: it stops on the conflict, leaving its state in the checkout."""
    git(repo, "checkout", "-q", "-b", "side")
    commit_file(repo, "README.md", "side\n")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "README.md", "main\n")
    git(repo, *command, "side", check=False)


@pytest.mark.parametrize(
    ("command", "state_file", "what"),
    [
        (("rebase",), "rebase-merge", "a rebase"),
        (("merge", "--no-edit"), "MERGE_HEAD", "a merge"),
        (("cherry-pick",), "CHERRY_PICK_HEAD", "a cherry-pick"),
    ],
)
@pytest.mark.reliability(
    "a rebase, merge or cherry-pick in progress in the user's checkout of the target",
    "a real one stopped on a conflict: merge refused, the target and the operation's state "
    "untouched; merges once it is aborted",
)
def test_an_operation_in_progress_in_the_checkout_refuses_the_merge(
    repo: Path, state: Path, command: tuple[str, ...], state_file: str, what: str
) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "task\n"})
    stop_on_a_conflict(repo, *command)
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir"))
    operation = sorted(p.name for p in git_dir.iterdir())
    index = git(repo, "ls-files", "--stage")

    text = refused(repo, ws, "1")
    assert f"{what} is in progress" in text and str(repo) in text
    assert (git_dir / state_file).exists()
    assert sorted(p.name for p in git_dir.iterdir()) == operation
    assert git(repo, "ls-files", "--stage") == index
    assert "<<<<<<<" in (repo / "README.md").read_text()
    if state_file == "rebase-merge":  # main is detached meanwhile; the rebase will move it
        assert (git_dir / "rebase-merge" / "head-name").read_text().strip() == "refs/heads/main"

    abort = {"rebase-merge": "rebase", "MERGE_HEAD": "merge", "CHERRY_PICK_HEAD": "cherry-pick"}
    git(repo, abort[state_file], "--abort")
    assert merge(repo, ws, "1").merged
    assert (repo / "a.txt").read_text() == "task\n"


def test_a_rebase_of_the_target_in_another_worktree_refuses_the_merge(
    repo: Path, state: Path, tmp_path: Path
) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "task\n"})
    git(repo, "checkout", "-q", "-b", "side")
    commit_file(repo, "README.md", "side\n")
    git(repo, "checkout", "-q", "--detach")
    other = tmp_path / "other"
    git(repo, "worktree", "add", "-q", str(other), "main")
    commit_file(other, "README.md", "main\n")
    git(other, "rebase", "side", check=False)

    text = refused(repo, ws, "1")
    assert "a rebase is in progress" in text and str(other) in text


@pytest.mark.reliability(
    "the target branch is not checked out; the user's checkout has an ignored .env",
    "merges as before (only the ref moves); the checkout and its .env untouched",
)
def test_a_target_not_checked_out_merges_whatever_the_checkout_holds(
    repo: Path, state: Path
) -> None:
    ignore(repo, ".env")
    ws = do_forced_task(repo, state, "1", {".env": "TOKEN=from-the-task\n"})
    git(repo, "checkout", "-q", "-b", "user-work")
    write(repo, ".env", "TOKEN=secret\n")

    outcome = merge(repo, ws, "1")
    assert outcome.merged and outcome.merge_sha == head(repo, "main")
    assert (repo / ".env").read_text() == "TOKEN=secret\n"
    assert git(repo, "show", "main:.env") == "TOKEN=from-the-task"


def test_a_refused_merge_is_a_non_retryable_activity_error(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"notes.txt": "task\n"})
    write(repo, "notes.txt", "the user's own\n")
    request = MergeInput(
        repo=str(repo),
        target_branch="main",
        branch=ws.branch,
        session_id=SESSION,
        task_id="1",
        message="Merge task 1",
        workspace_path=ws.path,
    )
    with pytest.raises(ApplicationError) as caught, git_errors_as_activity_errors():
        merge_and_tidy(request)
    assert caught.value.type == CHECKOUT_IN_THE_WAY and caught.value.non_retryable
    assert Path(ws.path).is_dir()  # the worktree stays with the branch for the retry


def test_branch_already_contained_in_target(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})
    git(repo, "merge", "-q", "--ff-only", ws.branch)
    outcome = merge(repo, ws, "1")
    assert outcome.merged and outcome.already_merged and outcome.merge_sha is None
    assert "already contained" in outcome.message
    assert merge_commits(repo) == []


def test_list_merges_in_merge_order(repo: Path, state: Path) -> None:
    shas: dict[str, str | None] = {}
    for task in ["2", "1", "3"]:
        ws = do_task(repo, state, task, {f"{task}.txt": task})
        shas[task] = merge(repo, ws, task).merge_sha
    other = do_task(repo, state, "1", {"o.txt": "o"}, session="other")
    merge(repo, other, "1", session="other")

    assert list_merges(repo, "main", SESSION) == [(t, shas[t]) for t in ["2", "1", "3"]]
    assert [t for t, _ in list_merges(repo, "main", "other")] == ["1"]
    assert list_merges(repo, "main", "nobody") == []


# --------------------------------------------------------------------------------------------
# Removing workspaces
# --------------------------------------------------------------------------------------------


@pytest.mark.reliability(
    "workspace removed twice", "the second removal is a no-op; the branch is kept"
)
def test_remove_workspace_is_idempotent_and_keeps_branch(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})
    write(Path(ws.path), "dirty.txt", "x")
    remove_workspace(repo, ws.path)
    assert not Path(ws.path).exists()
    assert ws.path not in git(repo, "worktree", "list", "--porcelain")
    assert git(repo, "show", f"{ws.branch}:a.txt") == "a"
    remove_workspace(repo, ws.path)  # again: nothing to do

    write(Path(ws.path), "leftover.txt", "x")  # a stray dir git does not know
    remove_workspace(repo, ws.path)
    assert not Path(ws.path).exists()


def test_the_last_removed_workspace_takes_the_session_folder(repo: Path, state: Path) -> None:
    first = do_task(repo, state, "1", {"a.txt": "a\n"})
    second = do_task(repo, state, "2", {"b.txt": "b\n"})
    for task in ("1", "2"):  # what its sandboxed runs left: a home, Claude sessions
        write(gitops.agent_space_path(state, SESSION, task) / "agent", "home/.cache", "x")
    session_folder = Path(first.path).parent
    remove_workspace(repo, first.path)
    assert session_folder.is_dir()  # task 2's worktree is still in it
    assert not gitops.agent_space_path(state, SESSION, "1").exists()
    remove_workspace(repo, second.path)
    assert not session_folder.exists()
    again = do_task(repo, state, "3", {"c.txt": "c\n"})  # a later task makes it again
    assert Path(again.path).parent == session_folder and Path(again.path).is_dir()


def test_remove_workspace_refuses_the_main_checkout(repo: Path) -> None:
    with pytest.raises(GitError, match="main checkout"):
        remove_workspace(repo, repo)
    with pytest.raises(GitError, match="main checkout"):
        remove_workspace(repo, repo.parent)
    assert (repo / "README.md").exists()


def half_made_worktree_entry(repo: Path, tmp_path: Path, stage: str) -> Path:
    """What another `git worktree add` shows for a moment: its commondir file made but not
    yet written, or its `locked` file (held while it initializes) unreadable, here a
    directory where git expects the file it is about to delete."""
    entry = repo / ".git" / "worktrees" / "other"
    entry.mkdir(parents=True)
    checkout = tmp_path / "other-checkout"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {entry}\n")
    (entry / "gitdir").write_text(f"{checkout / '.git'}\n")
    if stage == "commondir":
        (entry / "commondir").write_text("")
    else:
        (entry / "commondir").write_text("../..\n")
        (entry / "locked").mkdir()
    return entry


def finish_worktree_entry(entry: Path) -> None:
    (entry / "commondir").write_text("../..\n")
    if (entry / "locked").is_dir():
        (entry / "locked").rmdir()


@pytest.mark.reliability(
    "worktree listed while another task's `git worktree add` writes its entry",
    "the listing waits for the entry and tries again instead of failing the step",
)
@pytest.mark.parametrize("stage", ["commondir", "locked"])
def test_a_listing_waits_for_a_worktree_entry_being_written(
    repo: Path, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    entry = half_made_worktree_entry(repo, tmp_path, stage)
    waits: list[int] = []

    def other_add_finishes(failures: int) -> None:
        waits.append(failures)
        finish_worktree_entry(entry)

    monkeypatch.setattr(git_refs, "_wait_for_worktree_entry", other_add_finishes)
    ws = prepare_workspace(repo, "main", state, SESSION, "1")

    assert waits == [1]
    assert Path(ws.path).is_dir()
    assert str(tmp_path / "other-checkout") in git(repo, "worktree", "list", "--porcelain")


@pytest.mark.parametrize("stage", ["commondir", "locked"])
def test_a_worktree_entry_that_stays_half_made_fails_with_git_s_message(
    repo: Path, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    half_made_worktree_entry(repo, tmp_path, stage)
    waits: list[int] = []
    monkeypatch.setattr(git_refs, "_wait_for_worktree_entry", waits.append)

    with pytest.raises(GitError, match=rf"failed to read .*worktrees/other/{stage}"):
        prepare_workspace(repo, "main", state, SESSION, "1")
    assert waits == list(range(1, gitops.WORKTREE_LIST_ATTEMPTS))

    # any other failure of the listing is not waited for
    waits.clear()
    with pytest.raises(GitError, match="cannot change to"):
        remove_workspace(tmp_path / "no-repo", tmp_path / "wt")
    assert waits == []


# --------------------------------------------------------------------------------------------
# Validating the repository
# --------------------------------------------------------------------------------------------


def test_check_repo_ok(repo: Path) -> None:
    write(repo, "untracked.txt", "fine\n")
    result = check_repo(repo / ".", None)
    assert result.path == str(repo.resolve())
    assert result.target_branch == "main" and result.head_sha == head(repo)
    assert result.checked_out_at == str(repo.resolve())
    assert check_repo(repo, "main") == result


def test_check_repo_target_elsewhere(repo: Path) -> None:
    git(repo, "branch", "dev")
    write(repo, "README.md", "dirty, but not where dev is checked out\n")
    result = check_repo(repo, "dev")
    assert result.target_branch == "dev" and result.checked_out_at is None


@pytest.mark.reliability(
    "repo path missing, a file, or not a git repository", "check_repo raises RepoError saying which"
)
def test_check_repo_missing_and_not_a_repo(tmp_path: Path) -> None:
    with pytest.raises(RepoError, match="does not exist"):
        check_repo(tmp_path / "missing", None)
    write(tmp_path, "file.txt", "x")
    with pytest.raises(RepoError, match="not a directory"):
        check_repo(tmp_path / "file.txt", None)
    (tmp_path / "plain").mkdir()
    with pytest.raises(RepoError, match="not a git repository"):
        check_repo(tmp_path / "plain", None)


@pytest.mark.reliability(
    "bare repository, or a path inside .git", "check_repo raises RepoError saying which"
)
def test_check_repo_bare_and_git_dir(tmp_path: Path, repo: Path) -> None:
    git(tmp_path, "init", "-q", "--bare", "bare.git")
    with pytest.raises(RepoError, match="bare repository"):
        check_repo(tmp_path / "bare.git", "main")
    with pytest.raises(RepoError, match=r"inside a \.git directory"):
        check_repo(repo / ".git", "main")


@pytest.mark.reliability(
    "repository without commits", "check_repo: 'no commits yet; make a first commit'"
)
def test_check_repo_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "empty")
    with pytest.raises(RepoError, match="no commits yet; make a first commit"):
        check_repo(tmp_path / "empty", None)


@pytest.mark.reliability(
    "detached HEAD and no target branch given",
    "check_repo asks for the target branch; with one it works",
)
def test_check_repo_detached_head(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    with pytest.raises(RepoError, match="detached HEAD; name the target branch"):
        check_repo(repo, None)
    assert check_repo(repo, "main").target_branch == "main"


@pytest.mark.reliability(
    "unknown or malformed target branch", "check_repo names the branches that exist"
)
def test_check_repo_unknown_target(repo: Path) -> None:
    git(repo, "branch", "dev")
    with pytest.raises(RepoError, match=r"no branch 'nope'.*include: .*dev") as caught:
        check_repo(repo, "nope")
    assert "main" in str(caught.value)
    with pytest.raises(RepoError, match=r"'-bad\.\.name' is not a branch"):
        check_repo(repo, "-bad..name")


def test_check_repo_takes_branches_only(repo: Path) -> None:
    git(repo, "tag", "v1.0")
    git(repo, "branch", "feature/x")
    assert check_repo(repo, "refs/heads/main").target_branch == "main"
    assert check_repo(repo, "feature/x").target_branch == "feature/x"
    for name in ("refs/tags/v1.0", "v1.0", "HEAD", head(repo), "refs/remotes/origin/main"):
        with pytest.raises(RepoError, match=f"'{re.escape(name)}' is not a branch"):
            check_repo(repo, name)


def test_a_merge_never_moves_a_tag(repo: Path, state: Path) -> None:
    git(repo, "tag", "v1.0")
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})
    with pytest.raises(RepoError, match=r"'refs/tags/v1\.0' is not a branch"):
        merge_task(repo, "refs/tags/v1.0", ws.branch, SESSION, "1", "Merge task 1")
    assert head(repo, "v1.0") == head(repo, "main")


@pytest.mark.reliability(
    "uncommitted tracked changes in the target checkout",
    "check_repo lists the files (first five and a count)",
)
def test_check_repo_tracked_changes(repo: Path) -> None:
    for i in range(7):
        commit_file(repo, f"f{i}.txt", "x\n")
    for i in range(7):
        write(repo, f"f{i}.txt", "changed\n")
    git(repo, "add", "f0.txt")  # staged counts too
    with pytest.raises(RepoError) as caught:
        check_repo(repo, "main")
    text = str(caught.value)
    assert "f0.txt, f1.txt, f2.txt, f3.txt, f4.txt and 2 more" in text
    assert "commit or stash them first" in text and str(repo) in text


@pytest.mark.reliability(
    "uncommitted changes in another worktree that has the target checked out",
    "check_repo names that worktree and file",
)
def test_check_repo_tracked_changes_in_other_worktree(repo: Path, tmp_path: Path) -> None:
    git(repo, "branch", "dev")
    other = tmp_path / "dev-checkout"
    git(repo, "worktree", "add", "-q", str(other), "dev")
    write(other, "README.md", "changed\n")
    with pytest.raises(RepoError, match=r"dev-checkout has uncommitted changes.*README\.md"):
        check_repo(repo, "dev")


@pytest.mark.reliability(
    "merge in progress in the target checkout", "check_repo: finish or abort it first"
)
def test_check_repo_merge_in_progress(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "side")
    commit_file(repo, "README.md", "side\n")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "README.md", "main\n")
    git(repo, "merge", "side", check=False)
    with pytest.raises(RepoError, match=r"a merge is in progress in .*; finish or abort it first"):
        check_repo(repo, "main")


@pytest.mark.reliability(
    "rebase in progress in the target checkout", "check_repo: a rebase is in progress"
)
def test_check_repo_rebase_in_progress(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "side")
    commit_file(repo, "README.md", "side\n")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "README.md", "main\n")
    git(repo, "rebase", "side", check=False)
    with pytest.raises(RepoError, match="a rebase is in progress"):
        check_repo(repo, "main")


@pytest.mark.reliability("git older than required", "require_git raises naming the needed version")
def test_git_version_and_requirement() -> None:
    version = git_version()
    assert version >= (2, 38, 0)
    assert require_git() == version
    with pytest.raises(GitError, match=r"too old.*needs git >= 99\.0\.0"):
        require_git(min=(99, 0, 0))


# --------------------------------------------------------------------------------------------
# The merge activity's work: merge, then the worktree (activities/merge.py)
# --------------------------------------------------------------------------------------------


def merge_input(repo: Path, ws: Workspace, task: str, worktree: str | None) -> MergeInput:
    return MergeInput(
        repo=str(repo),
        target_branch="main",
        branch=ws.branch,
        session_id=SESSION,
        task_id=task,
        message=f"Merge task {task}",
        workspace_path=worktree,
    )


def test_a_landed_merge_takes_the_workspace_and_keeps_the_branch(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})

    outcome = merge_and_tidy(merge_input(repo, ws, "1", ws.path))

    assert outcome.merged and not outcome.already_merged and outcome.workspace_removed
    assert git(repo, "show", "main:a.txt") == "a"
    assert not Path(ws.path).exists()
    assert ws.path not in git(repo, "worktree", "list", "--porcelain")
    assert git(repo, "rev-parse", "--verify", ws.branch)  # kept for the record


@pytest.mark.reliability(
    "merge retried after a crash",
    "the retry finds the merge on the target and finishes the worktree's removal",
)
def test_a_retry_after_the_merge_removes_the_workspace_without_merging_twice(
    repo: Path, state: Path
) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})
    first = merge_and_tidy(merge_input(repo, ws, "1", None))  # the crash: worktree left
    assert first.merged and not first.workspace_removed and Path(ws.path).exists()
    head_after_merge = head(repo, "main")

    retried = merge_and_tidy(merge_input(repo, ws, "1", ws.path))

    assert retried.already_merged and retried.workspace_removed
    assert retried.merge_sha == first.merge_sha == head_after_merge
    assert head(repo, "main") == head_after_merge
    assert not Path(ws.path).exists()
    # and once more, the worktree already gone
    assert merge_and_tidy(merge_input(repo, ws, "1", ws.path)).workspace_removed


def test_a_conflict_keeps_the_workspace_for_the_conflict_round(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"README.md": "the task's text\n"})
    commit_file(repo, "README.md", "someone else's text\n")

    outcome = merge_and_tidy(merge_input(repo, ws, "1", ws.path))

    assert outcome.conflict and not outcome.merged and not outcome.workspace_removed
    assert Path(ws.path, "README.md").read_text() == "the task's text\n"
    assert gitops.is_workspace_repo(ws.path)


def test_a_workspace_that_will_not_go_does_not_undo_the_merge(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "1", {"a.txt": "a\n"})

    # gitops refuses to remove the main checkout: the merge stands, the session's own
    # removal step gets the worktree
    outcome = merge_and_tidy(merge_input(repo, ws, "1", str(repo)))

    assert outcome.merged and not outcome.workspace_removed
    assert git(repo, "show", "main:a.txt") == "a"
    assert Path(repo, ".git").exists() and Path(ws.path).exists()


@pytest.mark.reliability(
    "worker killed during `git worktree add -b` (the task branch's ref lock left behind)",
    "real git: a stale refs/heads/<branch>.lock is removed and the worktree is made",
)
def test_a_stale_lock_on_the_task_branch_is_cleared(tmp_path: Path, repo: Path) -> None:
    branch = gitops.branch_name("sess", "1")
    lock = repo / ".git" / f"refs/heads/{branch}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))

    workspace = gitops.prepare_workspace(repo, "main", tmp_path / "state", "sess", "1")

    assert Path(workspace.path).is_dir() and not lock.exists()


@pytest.mark.reliability(
    "a session from before workspaces had repositories of their own (a linked worktree)",
    "prepare reuses the worktree; commits land on the shared branch as before",
)
def test_a_worktree_of_an_earlier_version_is_still_used(repo: Path, state: Path) -> None:
    path = workspace_dir(state, SESSION, "1")
    branch = gitops.branch_name(SESSION, "1")
    git(repo, "worktree", "add", "-q", "-b", branch, str(path), "main")
    ws = prepare_workspace(repo, "main", state, SESSION, "1")
    assert ws.path == str(path) and not gitops.is_workspace_repo(path)
    write(path, "a.txt", "a\n")
    done = commit_changes(ws.path, ws.base_sha, SESSION, "1", "x", repo=repo)
    assert git(repo, "rev-parse", branch) == done.head_sha
    remove_workspace(repo, ws.path)
    assert str(path) not in git(repo, "worktree", "list", "--porcelain")
