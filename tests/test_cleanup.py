"""autopilot.git.cleanup against real repositories in tmp_path (a bare repo stands in for
origin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.git import (
    BranchInfo,
    CleanupAction,
    GitError,
    RepoError,
    apply_cleanup,
    branch_name,
    commit_changes,
    find_branches,
    is_task_branch,
    merge_task,
    plan_cleanup,
    prepare_workspace,
    remove_empty_session_dirs,
    remove_workspace,
)
from autopilot.models import Workspace
from tests.gitutil import commit_file, git, head, isolate_git, write
from tests.test_gitops import HOSTILE_IDS

UNMERGED_REASON = "not merged into main; pass --include-unmerged to remove it"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def origin(tmp_path: Path, repo: Path) -> Path:
    """A bare repository registered as `origin` of `repo`, holding its main."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    return bare


def do_task(repo: Path, state: Path, session: str, task: str, *, merged: bool) -> Workspace:
    """A task's workspace with one commit on its branch, merged into main if asked."""
    ws = prepare_workspace(repo, "main", state, session, task)
    write(Path(ws.path), f"{session}-{task}.txt", "work\n")
    commit_changes(ws.path, ws.base_sha, session, task, f"Task {task}", repo=repo)
    if merged:
        assert merge_task(repo, "main", ws.branch, session, task, f"Merge {task}").merged
    return ws


def refs(repo: Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()


def snapshot(repo: Path, state: Path) -> tuple[list[str], str, list[str]]:
    files = sorted(str(p.relative_to(state)) for p in state.rglob("*")) if state.exists() else []
    return refs(repo), git(repo, "worktree", "list", "--porcelain"), files


def plan(
    repo: Path,
    *,
    remote: str | None = None,
    active: set[str] | None = None,
    keep: list[str] | None = None,
    include_unmerged: bool = False,
    state: Path | None = None,
) -> list[CleanupAction]:
    return plan_cleanup(
        find_branches(repo, "main", remote, state_dir=state),
        active=active or set(),
        keep=keep or [],
        include_unmerged=include_unmerged,
    )


def kinds(actions: list[CleanupAction]) -> list[tuple[str, str]]:
    return [(a.kind, a.target) for a in actions]


def failures(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("FAILED")]


def user_branches(repo: Path) -> None:
    """Branches that only look a bit like ours: cleanup must never touch them."""
    for name in (
        "feature/x",
        "autopilot-notes",
        "autopilot/notes",
        "autopilot/a/b/c",
        "autopilot/日本/x",
        "autopilot/$(id)/x",
        "autopilot/s/-x",
        "Autopilot/s/t",
    ):
        git(repo, "branch", name, "main")


# --------------------------------------------------------------------------------------------
# Finding and planning (a dry run changes nothing)
# --------------------------------------------------------------------------------------------


def test_find_branches_merged_unmerged_and_workspaces(repo: Path, state: Path) -> None:
    done = do_task(repo, state, "s1", "1.2", merged=True)
    open_ws = do_task(repo, state, "s1", "2", merged=False)
    remove_workspace(repo, open_ws.path)
    user_branches(repo)

    found = find_branches(repo, "main", state_dir=state)
    assert found == [
        BranchInfo(
            name="autopilot/s1/1.2",
            session_id="s1",
            task_id="1.2",
            target="main",
            merged=True,
            workspace=done.path,
            head_sha=head(repo, done.branch),
        ),
        BranchInfo(
            name="autopilot/s1/2",
            session_id="s1",
            task_id="2",
            target="main",
            merged=False,
            head_sha=head(repo, open_ws.branch),
        ),
    ]


def test_plan_removes_merged_with_workspace_first_and_keeps_unmerged(
    repo: Path, state: Path
) -> None:
    done = do_task(repo, state, "s1", "1", merged=True)
    open_ws = do_task(repo, state, "s1", "2", merged=False)
    before = snapshot(repo, state)

    actions = plan(repo, state=state)
    assert kinds(actions) == [
        ("remove_workspace", done.path),
        ("delete_branch", "autopilot/s1/1"),
        ("keep", "autopilot/s1/2"),
    ]
    assert actions[1].reason == "merged into main" and actions[1].sha == head(repo, done.branch)
    assert actions[2].reason == UNMERGED_REASON
    assert snapshot(repo, state) == before  # a dry run is find + plan: nothing changed
    assert Path(open_ws.path).is_dir()


def test_include_unmerged_removes_them_too(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "s1", "2", merged=False)
    actions = plan(repo, state=state, include_unmerged=True)
    assert kinds(actions) == [("remove_workspace", ws.path), ("delete_branch", ws.branch)]
    assert "include-unmerged" in actions[1].reason

    lines = apply_cleanup(repo, actions, remote=None, state_dir=state)
    assert not failures(lines)
    assert git(repo, "branch", "--list", ws.branch) == ""
    assert not Path(ws.path).exists()


def test_active_branches_are_never_touched(repo: Path, state: Path) -> None:
    running = do_task(repo, state, "s1", "1", merged=True)
    pending = do_task(repo, state, "s1", "2", merged=False)
    active = {running.branch, pending.branch}
    actions = plan(repo, state=state, active=active, include_unmerged=True)
    assert [(a.kind, a.reason) for a in actions] == [("keep", "its task is still running")] * 2

    apply_cleanup(repo, actions, remote=None, state_dir=state)
    assert Path(running.path).is_dir() and Path(pending.path).is_dir()
    assert head(repo, running.branch) and head(repo, pending.branch)


def test_keep_patterns(repo: Path, state: Path) -> None:
    do_task(repo, state, "s1", "1", merged=True)
    do_task(repo, state, "s2", "1", merged=True)
    do_task(repo, state, "s2", "2", merged=False)
    actions = plan(repo, state=state, keep=["autopilot/s1/*", "*/[", "*/2"], include_unmerged=True)
    kept = {a.target: a.reason for a in actions if a.kind == "keep"}
    assert kept == {
        "autopilot/s1/1": "kept: matches --keep autopilot/s1/*",
        "autopilot/s2/2": "kept: matches --keep */2",
    }
    assert ("delete_branch", "autopilot/s2/1") in kinds(actions)


def test_branch_in_the_main_checkout_is_kept(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "s1", "1", merged=True)
    remove_workspace(repo, ws.path)
    git(repo, "checkout", "-q", ws.branch)
    [info] = find_branches(repo, "main", state_dir=state)
    assert info.main_checkout and info.workspace == str(repo)
    [action] = plan_cleanup([info], active=set(), keep=[], include_unmerged=True)
    assert action.kind == "keep" and "main checkout" in action.reason


# --------------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------------


def test_apply_removes_workspace_then_branch_and_is_idempotent(repo: Path, state: Path) -> None:
    first = do_task(repo, state, "s1", "1", merged=True)
    second = do_task(repo, state, "s2", "1", merged=True)
    kept = do_task(repo, state, "s2", "2", merged=False)
    user_branches(repo)
    actions = plan(repo, state=state)
    first_sha, second_sha = head(repo, first.branch), head(repo, second.branch)

    lines = apply_cleanup(repo, actions, remote=None, state_dir=state)
    assert lines == [
        f"removed workspace {first.path}",
        f"deleted branch {first.branch} (was {first_sha[:12]})",
        f"removed workspace {second.path}",
        f"deleted branch {second.branch} (was {second_sha[:12]})",
        f"kept {kept.branch}: {UNMERGED_REASON}",
    ]
    assert not (state / "worktrees" / "s1").exists()  # gone with its last worktree
    assert Path(kept.path).is_dir()  # s2 still holds the kept task's worktree
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1  # the main one
    assert git(repo, "branch", "--list", "autopilot/s1/*", "autopilot/s2/1") == ""
    for name in ("feature/x", "autopilot-notes", "autopilot/notes", "autopilot/a/b/c"):
        assert git(repo, "branch", "--list", name)

    # Planning again finds nothing to do; replaying the old plan changes nothing either.
    assert [a.kind for a in plan(repo, state=state)] == ["keep"]
    before = snapshot(repo, state)
    again = apply_cleanup(repo, actions, remote=None, state_dir=state)
    assert not failures(again)
    assert f"branch {first.branch} is already gone" in again
    assert f"workspace {first.path} is already gone" in again
    assert snapshot(repo, state) == before


def test_a_failing_action_is_reported_and_the_rest_done(repo: Path, state: Path) -> None:
    ws1 = do_task(repo, state, "s1", "1", merged=True)
    ws2 = do_task(repo, state, "s1", "2", merged=True)
    remove_workspace(repo, ws1.path)
    actions = plan(repo, state=state)
    git(repo, "checkout", "-q", ws1.branch)  # the user checks it out after the plan was made

    lines = apply_cleanup(repo, actions, remote=None, state_dir=state)
    [failed] = failures(lines)
    assert failed.startswith(f"FAILED to delete branch {ws1.branch}: `git branch")
    assert "checked out" in failed  # git's own words
    assert git(repo, "symbolic-ref", "--short", "HEAD") == ws1.branch
    assert f"removed workspace {ws2.path}" in lines
    assert git(repo, "branch", "--list", ws2.branch) == ""


def test_a_branch_that_moved_since_the_plan_is_left_alone(repo: Path, state: Path) -> None:
    ws = do_task(repo, state, "s1", "1", merged=True)
    remove_workspace(repo, ws.path)
    actions = plan(repo, state=state)
    git(repo, "branch", "-f", ws.branch, commit_file(repo, "new.txt", "new work\n"))
    git(repo, "reset", "-q", "--hard", "HEAD~1")

    [line] = apply_cleanup(repo, actions, remote=None)
    assert line.startswith(f"skipped branch {ws.branch}: it moved")
    assert git(repo, "branch", "--list", ws.branch)


def test_a_worktree_outside_the_state_dir_is_not_forced(
    repo: Path, state: Path, tmp_path: Path
) -> None:
    ws = do_task(repo, state, "s1", "1", merged=True)
    remove_workspace(repo, ws.path)
    mine = tmp_path / "my-worktree"
    git(repo, "worktree", "add", "-q", str(mine), ws.branch)
    write(mine, "precious.txt", "uncommitted\n")
    git(mine, "add", "precious.txt")

    actions = plan(repo, state=state)
    assert kinds(actions) == [("remove_workspace", str(mine)), ("delete_branch", ws.branch)]
    lines = apply_cleanup(repo, actions, remote=None, state_dir=state)
    assert len(failures(lines)) == 2  # git refuses both: changes there, branch checked out
    assert (mine / "precious.txt").read_text() == "uncommitted\n"


def test_hand_made_actions_cannot_reach_other_branches(repo: Path, state: Path) -> None:
    user_branches(repo)
    before = refs(repo)
    targets = ["feature/x", "main", "autopilot-notes", "autopilot/a/b/c", "-D", "autopilot/日本/x"]
    actions = [CleanupAction(kind="delete_branch", target=t, reason="x") for t in targets]
    actions.append(CleanupAction(kind="delete_remote_branch", target="feature/x", reason="x"))
    lines = apply_cleanup(repo, actions, remote=None)
    assert len(failures(lines)) == len(actions)
    assert all("not an autopilot task branch" in line for line in lines)
    assert refs(repo) == before


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_hostile_ids(repo: Path, state: Path, hostile: str) -> None:
    name = branch_name(hostile, hostile)
    git(repo, "branch", name, "main")
    [info] = find_branches(repo, "main", state_dir=state)
    assert info.name == name and info.merged
    assert f"autopilot/{info.session_id}/{info.task_id}" == name
    assert apply_cleanup(repo, plan(repo, state=state, keep=[hostile]), remote=None) == [
        f"deleted branch {name} (was {head(repo)[:12]})"
    ]


def test_task_branch_shape() -> None:
    assert is_task_branch("autopilot/s1/1.2") and is_task_branch("autopilot/s_1/id-0a1b2c3d")
    for name in ("autopilot/s1", "autopilot/s/t/u", "autopilot-s/t/u", "feature/x", "autopilot"):
        assert not is_task_branch(name), name
    for part in ("-x", ".x", "a..b", "x.", "x.lock", "日本", "$(id)", "a b", ""):
        assert not is_task_branch(f"autopilot/{part}/t"), part


def test_an_autopilot_shaped_target_is_never_listed(repo: Path) -> None:
    git(repo, "branch", "autopilot/s/main", "main")
    assert find_branches(repo, "autopilot/s/main") == []
    with pytest.raises(RepoError, match="does not exist"):
        find_branches(repo, "nope")


def test_empty_session_folders_only(tmp_path: Path, state: Path) -> None:
    root = state / "worktrees"
    (root / "empty").mkdir(parents=True)
    write(root / "busy" / "t1", "file.txt", "x\n")
    write(root, "stray.txt", "x\n")
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")

    assert remove_empty_session_dirs(state) == [f"removed empty folder {root / 'empty'}"]
    assert sorted(p.name for p in root.iterdir()) == ["busy", "link", "stray.txt"]
    assert (tmp_path / "elsewhere").is_dir()
    assert remove_empty_session_dirs(tmp_path / "no-state") == []


# --------------------------------------------------------------------------------------------
# Remote branches
# --------------------------------------------------------------------------------------------


def test_remote_branches_deleted_by_push(repo: Path, state: Path, origin: Path) -> None:
    merged = do_task(repo, state, "s1", "1", merged=True)
    unmerged = do_task(repo, state, "s1", "2", merged=False)
    user_branches(repo)
    git(repo, "push", "-q", "origin", "--all")
    git(repo, "fetch", "-q", "origin")
    found = find_branches(repo, "main", "origin", state_dir=state)
    assert [(b.remote, b.name, b.merged) for b in found] == [
        (None, merged.branch, True),
        (None, unmerged.branch, False),
        ("origin", merged.branch, True),
        ("origin", unmerged.branch, False),
    ]

    actions = plan(repo, state=state, remote="origin")
    assert kinds(actions)[3:] == [
        ("delete_remote_branch", merged.branch),
        ("keep", f"origin/{unmerged.branch}"),
    ]
    lines = apply_cleanup(repo, actions, remote="origin", state_dir=state)
    assert not failures(lines) and lines[3].startswith(f"deleted origin/{merged.branch}")
    assert git(origin, "branch", "--list", merged.branch) == ""
    assert git(origin, "branch", "--list", unmerged.branch)
    assert git(repo, "branch", "-r", "--list", f"origin/{merged.branch}") == ""
    for name in ("feature/x", "autopilot-notes", "autopilot/notes", "main"):
        assert git(origin, "branch", "--list", name)

    assert {a.kind for a in plan(repo, state=state, remote="origin")} == {"keep"}
    assert not failures(apply_cleanup(repo, actions, remote="origin"))


def test_remote_branch_merged_only_on_the_remote_target(repo: Path, origin: Path) -> None:
    name = branch_name("s1", "1")
    git(repo, "branch", name, "main")
    commit_file(repo, "a.txt", "a\n")
    git(repo, "push", "-q", "origin", f"HEAD:{name}", "HEAD:main")
    git(repo, "reset", "-q", "--hard", "HEAD~1")  # the local main is behind origin/main
    git(repo, "branch", "-f", name, "origin/main")
    git(repo, "fetch", "-q", "origin")
    assert [(b.remote, b.merged) for b in find_branches(repo, "main", "origin")] == [
        (None, False),
        ("origin", True),
    ]


def test_stale_remote_refs_fetch_and_already_gone(repo: Path, origin: Path) -> None:
    names = [branch_name("s1", "1"), branch_name("s1", "2")]
    for name in names:
        git(repo, "branch", name, "main")
        git(repo, "push", "-q", "origin", name)
        git(repo, "branch", "-D", name)
    git(origin, "branch", "-D", names[0])  # deleted on the remote by someone else

    assert len(find_branches(repo, "main", "origin")) == 2  # no fetch: as last known
    actions = plan(repo, remote="origin")
    lines = apply_cleanup(repo, actions, remote="origin")
    assert lines[0] == f"branch {names[0]} is already gone from origin"
    assert lines[1].startswith(f"deleted origin/{names[1]}")
    assert find_branches(repo, "main", "origin") == []

    git(repo, "branch", names[0], "main")
    git(repo, "push", "-q", "origin", names[0])
    git(repo, "branch", "-D", names[0])
    git(origin, "branch", "-D", names[0])
    assert len(find_branches(repo, "main", "origin")) == 1
    assert find_branches(repo, "main", "origin", fetch=True) == []


def test_remote_branch_pushed_to_since_the_plan_is_kept(repo: Path, origin: Path) -> None:
    name = branch_name("s1", "1")
    git(repo, "push", "-q", "origin", f"main:{name}")
    git(repo, "fetch", "-q", "origin")
    actions = plan(repo, remote="origin")
    newer = commit_file(repo, "b.txt", "b\n")
    git(repo, "push", "-q", "origin", f"{newer}:refs/heads/{name}")

    [failed] = failures(apply_cleanup(repo, actions, remote="origin"))
    assert failed.startswith(f"FAILED to delete remote branch {name}")
    assert git(origin, "branch", "--list", name)


@pytest.mark.parametrize("remote", ["--upload-pack=touch pwned", "nope", "/tmp/x", "-v"])
def test_only_configured_remotes(repo: Path, origin: Path, remote: str, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="no remote named"):
        find_branches(repo, "main", remote)
    action = CleanupAction(kind="delete_remote_branch", target=branch_name("s", "t"), reason="x")
    [line] = apply_cleanup(repo, [action], remote=remote)
    assert line.startswith("FAILED") and "no remote named" in line
    assert not (repo / "pwned").exists() and not (tmp_path / "pwned").exists()
    with pytest.raises(ValueError, match="needs a remote"):
        find_branches(repo, "main", fetch=True)


def test_a_branch_recorded_with_a_worktree_loads_it_as_its_workspace() -> None:
    recorded = {
        "name": "autopilot/s1/1",
        "session_id": "s1",
        "task_id": "1",
        "target": "main",
        "merged": True,
        "worktree": "/state/worktrees/s1/1",
        "head_sha": "0" * 40,
    }
    assert BranchInfo.model_validate(recorded).workspace == "/state/worktrees/s1/1"
