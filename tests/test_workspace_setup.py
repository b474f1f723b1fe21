"""[workspace]: the cache key, the cache, the copied files, the setup steps and the commit
step's guard, as plain functions against real git repositories and real commands (no sandbox:
tests/test_setup_e2e.py runs them in the worker's)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.errors import git_errors_as_activity_errors
from autopilot.error_types import WORKSPACE_FILES_COMMITTED
from autopilot.git import WorkspaceFilesCommitted, commit_changes, prepare_workspace
from autopilot.infra import parse_check, relative_path
from autopilot.models import SetupInput, Workspace, WorkspaceSettings
from autopilot.review import CheckEnv, run_checks
from autopilot.setup import (
    CopyProblem,
    SetupFailed,
    UnsafePath,
    cache,
    check_untracked,
    copy_in,
    exclude,
    inside,
    set_up_workspace,
)
from tests.gitutil import commit_file, git, isolate_git, make_repo

SESSION = "sess-setup"
# The setup writes a module the check needs (sourced: a shell "import"), and notes each run.
SETUP = "sh -c 'mkdir -p deps && echo VALUE=42 > deps/helper.sh && echo ran >> deps/runs'"
CHECK = "sh -c '. deps/helper.sh && test \"$VALUE\" = 42'"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = make_repo(tmp_path / "repo")
    commit_file(path, "deps.lock", "helper 1.0\n")
    (path / ".env.test").write_text("TOKEN_FOR_TESTS=abc\n")  # the user's, untracked
    return path


REPO = "/home/me/project"


def settings(**values: object) -> WorkspaceSettings:
    base: dict[str, object] = {
        "setup": [parse_check(SETUP)],
        "cache_key": ["deps.lock"],
        "cache_dirs": ["deps"],
        "copy_files": [".env.test"],
    }
    return WorkspaceSettings.model_validate(base | values)


def workspace(repo: Path, tmp_path: Path, task_id: str) -> Workspace:
    return prepare_workspace(repo, "main", tmp_path / "state", SESSION, task_id)


def set_up(ws: Workspace, repo: Path, tmp_path: Path, **values: object) -> SetupInput:
    return SetupInput(
        workspace_path=ws.path,
        repo=str(repo),
        state_dir=str(tmp_path / "state"),
        settings=settings(**values),
        output_dir=str(tmp_path / "logs" / Path(ws.path).name),
        target_branch="main",
    )


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def test_relative_paths() -> None:
    assert relative_path("./config//local.toml") == "config/local.toml"
    for bad in ("", "/etc/passwd", "..", "a/../b", ".git", "x/.Git/config", ".", "a\0b"):
        with pytest.raises(ValueError):
            relative_path(bad)


def test_inside_refuses_a_link_on_the_way(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "config").mkdir(parents=True)
    assert inside(root, "config/local.toml") == root / "config" / "local.toml"
    (root / "web").symlink_to(tmp_path)  # the agent pointed a folder elsewhere
    with pytest.raises(UnsafePath, match="web"):
        inside(root, "web/node_modules")


# --------------------------------------------------------------------------------------------
# The cache key and the cache
# --------------------------------------------------------------------------------------------


def test_cache_key_follows_the_lock_files_and_the_commands(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "deps.lock").write_text("helper 1.0\n")
    first = cache.cache_key(ws, settings(), REPO)
    assert first == cache.cache_key(ws, settings(), REPO)  # the same inputs, the same key
    assert len(first) == 64
    (ws / "deps.lock").write_text("helper 2.0\n")
    second = cache.cache_key(ws, settings(), REPO)
    assert second != first
    assert cache.cache_key(ws, settings(setup=[parse_check("true")]), REPO) != second
    (ws / "deps.lock").unlink()
    missing = cache.cache_key(ws, settings(), REPO)
    # A link is never read through: it counts as "not a file", whatever it points at.
    (ws / "deps.lock").symlink_to(tmp_path / "elsewhere")
    assert cache.cache_key(ws, settings(), REPO) not in (missing, first, second)
    os.mkfifo(tmp_path / "fifo")
    (ws / "deps.lock").unlink()
    os.link(tmp_path / "fifo", ws / "deps.lock")  # a FIFO must not block the worker
    assert cache.cache_key(ws, settings(), REPO) not in (missing, first, second)


def test_two_repositories_with_the_same_lock_file_get_different_entries(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "deps.lock").write_text("helper 1.0\n")
    keys = {
        repo: cache.cache_key(ws, settings(), repo)
        for repo in (
            "/home/me/project",
            "/home/me/fork",
            "https://git.example.com/team/project.git",
            "https://git.example.com/other/project.git",
            "git@git.example.com:team/project.git",
        )
    }
    assert len(set(keys.values())) == len(keys)
    # One remote whoever reaches it: its user and password are not part of its identity.
    assert (
        cache.cache_key(ws, settings(), "https://bot:s3cret@git.example.com/team/project.git")
        == keys["https://git.example.com/team/project.git"]
    )
    assert cache.cache_key(
        ws, settings(), "other@git.example.com:team/project.git"
    ) == cache.cache_key(ws, settings(), "git.example.com:team/project.git")


def test_store_and_restore_make_copies_the_workspace_cannot_write_through(
    tmp_path: Path,
) -> None:
    root, ws, later = tmp_path / "cache", tmp_path / "ws", tmp_path / "later"
    (ws / "deps" / "sub").mkdir(parents=True)
    (ws / "deps" / "sub" / "mod.sh").write_text("VALUE=42\n")
    (ws / "deps" / "link").symlink_to("sub/mod.sh")
    entry = cache.store(root, "k1", ws, ["deps", "not-made"])
    assert cache.lookup(root, "k1") == entry and cache.lookup(root, "k2") is None

    later.mkdir()
    (later / "not-made").mkdir()  # a folder the setup did not make goes
    cache.restore(entry, later, ["deps", "not-made"])
    restored = later / "deps" / "sub" / "mod.sh"
    assert restored.read_text() == "VALUE=42\n"
    assert os.readlink(later / "deps" / "link") == "sub/mod.sh"  # a link stays a link
    assert not (later / "not-made").exists()
    cached = entry / cache.TREE / "deps" / "sub" / "mod.sh"
    assert restored.stat().st_ino != cached.stat().st_ino  # no hardlink
    restored.write_text("VALUE=0\n")  # the agent changes its copy...
    assert cached.read_text() == "VALUE=42\n"  # ...never the cache's


def test_two_tasks_storing_the_same_key_at_once_leave_one_whole_entry(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    sources = []
    for index in range(4):
        ws = tmp_path / f"ws{index}"
        (ws / "deps").mkdir(parents=True)
        for file_index in range(50):
            (ws / "deps" / f"f{file_index}").write_text(f"from {index}\n")
        sources.append(ws)
    barrier = threading.Barrier(len(sources))
    errors: list[BaseException] = []

    def build(ws: Path) -> None:
        barrier.wait()
        try:
            cache.store(root, "same", ws, ["deps"])
        except BaseException as err:  # pragma: no cover - shown by the assertion
            errors.append(err)

    threads = [threading.Thread(target=build, args=(ws,)) for ws in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(path.name for path in root.iterdir()) == ["same"]  # nothing half-built left
    contents = {path.read_text() for path in (root / "same" / cache.TREE / "deps").iterdir()}
    assert len(contents) == 1  # all 50 files from one builder: one whole entry


# --------------------------------------------------------------------------------------------
# Copied files
# --------------------------------------------------------------------------------------------


def test_copy_in_and_excluded_from_git(repo: Path, tmp_path: Path) -> None:
    (repo / "config").mkdir()
    (repo / "config" / "local.toml").write_text("debug = true\n")
    (repo / "config" / "local.toml").chmod(0o640)
    ws = Path(workspace(repo, tmp_path, "1").path)
    (ws / ".env.test").symlink_to(tmp_path / "outside")  # replaced, not written through
    assert copy_in(repo, ws, [".env.test", "config/local.toml"]) == [
        ".env.test",
        "config/local.toml",
    ]
    assert (ws / ".env.test").read_text() == "TOKEN_FOR_TESTS=abc\n"
    assert not (ws / ".env.test").is_symlink() and not (tmp_path / "outside").exists()
    assert (ws / "config" / "local.toml").stat().st_mode & 0o777 == 0o640
    exclude(ws, [".env.test", "config/local.toml", "deps"])
    (ws / "deps").mkdir()
    (ws / "deps" / "x").write_text("x")
    assert git(ws, "status", "--porcelain", "--untracked-files=all") == ""


def test_copy_of_a_file_missing_from_the_checkout(repo: Path, tmp_path: Path) -> None:
    ws = Path(workspace(repo, tmp_path, "1").path)
    with pytest.raises(CopyProblem, match=r"'config/local\.toml', which is not a file in your"):
        copy_in(repo, ws, ["config/local.toml"])


def test_copy_goes_through_no_linked_folder_of_the_checkout(repo: Path, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "id_key").write_text("private\n")
    (repo / "keys").symlink_to(secrets)  # a link a merged task could have committed
    ws = Path(workspace(repo, tmp_path, "1").path)
    with pytest.raises(CopyProblem, match="is a link or a file"):
        copy_in(repo, ws, ["keys/id_key"])
    assert not (ws / "keys").exists()
    (repo / ".env.local").symlink_to(repo / ".env.test")  # the user's own link is followed
    copy_in(repo, ws, [".env.local"])
    assert (ws / ".env.local").read_text() == "TOKEN_FOR_TESTS=abc\n"


def test_a_tracked_copy_file_is_refused(repo: Path) -> None:
    check_untracked(repo, "main", settings())  # .env.test is untracked, deps too
    commit_file(repo, "deps/vendored.sh", "x\n")
    with pytest.raises(CopyProblem, match=r"cache_dirs names deps, which the repository tracks"):
        check_untracked(repo, "main", settings())


# --------------------------------------------------------------------------------------------
# The setup, start to end
# --------------------------------------------------------------------------------------------


def test_the_check_passes_only_with_the_setup_and_the_second_workspace_uses_the_cache(
    repo: Path, tmp_path: Path
) -> None:
    check = [parse_check(CHECK)]
    first = workspace(repo, tmp_path, "1")
    unready = run_checks(Path(first.path), check, 30, tmp_path / "unready")
    assert not unready[0].passed  # a fresh checkout has no deps

    done = set_up_workspace(set_up(first, repo, tmp_path), CheckEnv())
    assert not done.from_cache and [run.passed for run in done.commands] == [True]
    assert done.copied == [".env.test"] and done.summary().startswith("ran 1 command(s)")
    assert Path(done.commands[0].output_path).name.startswith("setup-1-sh-c-mkdir")
    assert (Path(first.path) / ".env.test").is_file()
    assert run_checks(Path(first.path), check, 30, tmp_path / "ready")[0].passed

    second = workspace(repo, tmp_path, "2")
    again = set_up_workspace(set_up(second, repo, tmp_path), CheckEnv())
    assert again.from_cache and again.commands == [] and again.key == done.key
    assert again.summary() == "from cache"
    assert (Path(second.path) / "deps" / "runs").read_text() == "ran\n"  # the setup ran once
    assert run_checks(Path(second.path), check, 30, tmp_path / "cached")[0].passed


def test_after_restore_runs_after_a_cache_restore_alone(repo: Path, tmp_path: Path) -> None:
    after = [parse_check("sh -c 'echo restored >> deps/after'")]
    first = workspace(repo, tmp_path, "1")
    done = set_up_workspace(set_up(first, repo, tmp_path, after_restore=after), CheckEnv())
    assert not done.from_cache and [run.command for run in done.commands] == [SETUP]
    second = workspace(repo, tmp_path, "2")
    again = set_up_workspace(set_up(second, repo, tmp_path, after_restore=after), CheckEnv())
    assert again.from_cache and [run.command for run in again.commands] == [after[0].command]
    assert Path(again.commands[0].output_path).name.startswith("after-restore-1-")
    assert (Path(second.path) / "deps" / "after").read_text() == "restored\n"
    assert not (Path(first.path) / "deps" / "after").exists()  # not after the setup itself


def test_a_failing_after_restore_is_a_setup_failure(repo: Path, tmp_path: Path) -> None:
    set_up_workspace(set_up(workspace(repo, tmp_path, "1"), repo, tmp_path), CheckEnv())
    failing = [parse_check("sh -c 'echo stale build >&2; exit 4'")]
    with pytest.raises(SetupFailed) as caught:
        ws = workspace(repo, tmp_path, "2")
        set_up_workspace(set_up(ws, repo, tmp_path, after_restore=failing), CheckEnv())
    message = str(caught.value)
    assert "workspace after-restore command `sh -c 'echo stale build >&2; exit 4'`" in message
    assert "exited with 4" in message and "stale build" in message
    assert caught.value.result.from_cache


def test_another_repository_with_the_same_lock_file_runs_its_own_setup(
    repo: Path, tmp_path: Path
) -> None:
    done = set_up_workspace(set_up(workspace(repo, tmp_path, "1"), repo, tmp_path), CheckEnv())
    assert not done.from_cache and done.commands
    other = make_repo(tmp_path / "other")
    commit_file(other, "deps.lock", "helper 1.0\n")  # the same lock file, byte for byte
    (other / ".env.test").write_text("TOKEN_FOR_TESTS=other\n")
    ws = workspace(other, tmp_path, "2")
    theirs = set_up_workspace(set_up(ws, other, tmp_path), CheckEnv())
    assert not theirs.from_cache and theirs.commands and theirs.key != done.key


def test_set_up_again_only_when_the_lock_file_changed(repo: Path, tmp_path: Path) -> None:
    ws = workspace(repo, tmp_path, "1")
    request = set_up(ws, repo, tmp_path, cache_dirs=[], cache_key=[])
    set_up_workspace(request, CheckEnv())
    assert set_up_workspace(request, CheckEnv()).unchanged  # after a conflict round, say

    request = set_up(ws, repo, tmp_path)  # with the cache: keyed by deps.lock
    first = set_up_workspace(request, CheckEnv())
    assert set_up_workspace(request, CheckEnv()).unchanged
    (Path(ws.path) / "deps.lock").write_text("helper 2.0\n")  # the merge brought a new lock
    changed = set_up_workspace(request, CheckEnv())
    assert not changed.unchanged and changed.key != first.key and changed.commands
    # The setup starts from nothing each time: what is cached depends on the key alone.
    assert (Path(ws.path) / "deps" / "runs").read_text() == "ran\n"


def test_a_failing_setup_says_the_command_and_its_output(repo: Path, tmp_path: Path) -> None:
    ws = workspace(repo, tmp_path, "1")
    failing = parse_check("sh -c 'echo resolving; echo no such package: helper >&2; exit 3'")
    never = parse_check("sh -c 'echo never > ran-after-failure'")
    with pytest.raises(SetupFailed) as caught:
        set_up_workspace(set_up(ws, repo, tmp_path, setup=[failing, never]), CheckEnv())
    message = str(caught.value)
    assert "`sh -c 'echo resolving; echo no such package: helper >&2; exit 3'` exited with 3" in (
        message
    )
    assert "resolving\nno such package: helper" in message
    result = caught.value.result
    assert result.error == message and len(result.commands) == 1
    assert result.summary().startswith("failed: sh -c")
    assert not (Path(ws.path) / "ran-after-failure").exists()  # it stopped at the failure
    assert cache.lookup(cache.cache_root(tmp_path / "state"), result.key) is None


def test_a_missing_copy_file_is_a_setup_failure(repo: Path, tmp_path: Path) -> None:
    ws = workspace(repo, tmp_path, "1")
    with pytest.raises(SetupFailed, match=r"copy names 'missing\.env'"):
        set_up_workspace(set_up(ws, repo, tmp_path, copy_files=["missing.env"]), CheckEnv())


# --------------------------------------------------------------------------------------------
# The commit step: what the setup put there is never committed
# --------------------------------------------------------------------------------------------


def test_copied_files_stay_out_of_the_commits_even_when_force_added(
    repo: Path, tmp_path: Path
) -> None:
    ws = workspace(repo, tmp_path, "1")
    set_up_workspace(set_up(ws, repo, tmp_path), CheckEnv())
    path = Path(ws.path)
    (path / "feature.txt").write_text("the task's work\n")
    git(path, "add", "--force", ".env.test", "deps")  # the agent insists
    done = commit_changes(
        path, ws.base_sha, SESSION, "1", "feat", repo=repo, keep_out=settings().keep_out
    )
    assert len(done.commits) == 1
    committed = git(repo, "ls-tree", "-r", "--name-only", ws.branch).splitlines()
    assert "feature.txt" in committed
    assert ".env.test" not in committed and not any(p.startswith("deps/") for p in committed)


def test_a_branch_whose_commits_hold_a_copied_file_is_not_brought_back(
    repo: Path, tmp_path: Path
) -> None:
    ws = workspace(repo, tmp_path, "1")
    set_up_workspace(set_up(ws, repo, tmp_path), CheckEnv())
    path = Path(ws.path)
    git(path, "add", "--force", ".env.test")
    git(path, "commit", "-q", "-m", "oops: the env file")
    git(path, "rm", "-q", "--cached", ".env.test")  # removed again: still in the history
    git(path, "commit", "-q", "-m", "take it out")
    with pytest.raises(WorkspaceFilesCommitted) as caught:
        commit_changes(
            path, ws.base_sha, SESSION, "1", "feat", repo=repo, keep_out=settings().keep_out
        )
    assert "retry 1" in str(caught.value) and "[workspace] copy" in str(caught.value)
    assert ") hold .env.test, which the workspace setup" in str(caught.value)  # and no more
    # As an activity error: the task fails with this message, and no retry is made.
    with pytest.raises(ApplicationError) as failed, git_errors_as_activity_errors():
        commit_changes(
            path, ws.base_sha, SESSION, "1", "feat", repo=repo, keep_out=settings().keep_out
        )
    assert failed.value.type == WORKSPACE_FILES_COMMITTED and failed.value.non_retryable
    # Nothing came back to the user's repository: no task branch, no incoming ref, no object.
    assert git(repo, "for-each-ref", "refs/heads/autopilot", "refs/autopilot") == ""
    assert git(repo, "log", "--all", "--format=", "--name-only").count(".env.test") == 0


def test_a_workspace_the_agent_worked_in_never_fills_the_cache(repo: Path, tmp_path: Path) -> None:
    """Setup commands run the project's code (install scripts): in a workspace with the
    agent's commits or changes, what they make is partly the agent's and stays there."""
    committed = workspace(repo, tmp_path, "1")
    commit_file(Path(committed.path), "setup.py", "print('the agent was here')\n")
    done = set_up_workspace(set_up(committed, repo, tmp_path), CheckEnv())
    assert done.commands and not done.from_cache
    changed = workspace(repo, tmp_path, "2")
    (Path(changed.path) / "README.md").write_text("changed by the agent\n")
    again = set_up_workspace(set_up(changed, repo, tmp_path), CheckEnv())
    assert again.commands and not again.from_cache  # nothing was cached by the first

    clean = workspace(repo, tmp_path, "3")
    set_up_workspace(set_up(clean, repo, tmp_path), CheckEnv())
    later = workspace(repo, tmp_path, "4")
    assert set_up_workspace(set_up(later, repo, tmp_path), CheckEnv()).from_cache
