"""The remote kind of workspace (autopilot/git/remote.py) on real git over real transports:
a `git daemon` on 127.0.0.1 and file:// URLs. Each "worker" is a RemoteWorkspaces with a state
dir of its own; every test is judged by reading the remote with git."""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autopilot.git import (
    PREFLIGHT_REF,
    ConflictsRemain,
    RemoteError,
    RemoteWorkspaces,
    TaskBranchMoved,
    WorkspaceKind,
    branch_name,
    bring_back,
    cache_path,
    check_remote,
    checked_remote,
    commit_changes,
    locked,
    merge_target_into_branch,
    merge_task,
    remote_url,
    shown_url,
    workspace_dir,
)
from autopilot.git import remote as remote_module
from autopilot.git.merge import merge_in
from autopilot.models import (
    CommitInput,
    MergeInput,
    MergeResult,
    RemoveWorkspaceInput,
    TargetMergeInput,
    Workspace,
    WorkspaceInput,
    WorkspaceOrigin,
)
from autopilot.steps.site import is_remote, target_head
from tests.git_daemon import git_daemon
from tests.gitutil import commit_file, git, isolate_git, make_repo, write
from tests.harness import free_port

SESSION = "sess-r"
# What a request from another machine carries: that machine's state dir, not this worker's.
ELSEWHERE = "/nonexistent/state-of-another-machine"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """The folder the daemon serves, holding project.git: a bare repository with main."""
    seed = make_repo(tmp_path / "seed")
    commit_file(seed, "notes.txt", "one\ntwo\nthree\n")
    base = tmp_path / "served"
    base.mkdir()
    git(base, "clone", "--quiet", "--bare", str(seed), "project.git")
    return base


@pytest.fixture
def bare(served: Path) -> Path:
    return served / "project.git"


@pytest.fixture(params=["git-daemon", "file"])
def url(request: pytest.FixtureRequest, served: Path, bare: Path) -> Iterator[str]:
    if request.param == "file":
        yield remote_url(str(bare))
        return
    with git_daemon(served) as daemon:
        yield daemon.url("project.git")


@pytest.fixture
def daemon_url(served: Path) -> Iterator[str]:
    with git_daemon(served) as daemon:
        yield daemon.url("project.git")


# --------------------------------------------------------------------------------------------
# Judging the remote by git alone
# --------------------------------------------------------------------------------------------


def remote_branches(bare: Path) -> list[str]:
    return git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def remote_task_refs(bare: Path) -> list[str]:
    """The remote's task refs, named as their branches: refs/autopilot/<s>/<t> is
    autopilot/<s>/<t>. Task branches are never under refs/heads/ (checked here too)."""
    assert not [name for name in remote_branches(bare) if name.startswith("autopilot/")]
    out = git(bare, "for-each-ref", "--format=%(refname)", "refs/autopilot")
    return [ref.removeprefix("refs/") for ref in out.split()]


def merged_tasks(bare: Path, target: str = "main") -> list[str]:
    """The task of each merge on the target's first-parent history, oldest first."""
    out = git(
        bare,
        "log",
        "--first-parent",
        "--merges",
        "--reverse",
        "--format=%(trailers:key=Autopilot-Task,valueonly,unfold)%x1e",
        target,
    )
    return [record.strip() for record in out.split("\x1e") if record.strip()]


def assert_remote_is_tidy(bare: Path, *tasks: str) -> None:
    """Each task merged exactly once; nothing on the remote but main (a merged task's branch
    is deleted there)."""
    assert sorted(merged_tasks(bare)) == sorted(tasks)
    assert remote_branches(bare) == ["main"]
    assert remote_task_refs(bare) == []


# --------------------------------------------------------------------------------------------
# A task's steps through the interface
# --------------------------------------------------------------------------------------------


def start(url: str, task: str) -> WorkspaceInput:
    return WorkspaceInput(
        repo=url, target_branch="main", state_dir=ELSEWHERE, session_id=SESSION, task_id=task
    )


def commit_input(url: str, ws: Workspace, task: str, *, in_place: bool = True) -> CommitInput:
    """The agent's commit (in place, in its activity), or the workflow's own commit step."""
    return CommitInput(
        workspace_path=ws.path,
        base_sha=ws.base_sha,
        session_id=SESSION,
        task_id=task,
        message=f"Task {task}",
        repo=url,
        in_place=in_place,
    )


def merge_input(url: str, task: str) -> MergeInput:
    return MergeInput(
        repo=url,
        target_branch="main",
        branch=branch_name(SESSION, task),
        session_id=SESSION,
        task_id=task,
        message=f"Merge task {task}",
    )


def work(kind: WorkspaceKind, url: str, task: str, files: dict[str, str]) -> Workspace:
    """Prepare the task's workspace, let the "agent" write `files`, commit."""
    ws = kind.prepare(start(url, task))
    for name, content in files.items():
        write(Path(ws.path), name, content)
    kind.commit(commit_input(url, ws, task))
    return ws


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def test_which_repositories_are_remotes() -> None:
    for url in (
        "file:///srv/git/project.git",
        "ssh://git@example.com/team/project.git",
        "git://example.com/project.git",
        "https://example.com/team/project.git",
        "http://example.com/project",
        "git@github.com:team/project.git",
        "example.com:project.git",
    ):
        assert is_remote(url), url
    for local in ("/home/me/project", "/srv/git/a:b", "ext::sh -c id", "ftp://example.com/x"):
        assert not is_remote(local), local


def test_what_remote_accepts_normalised(tmp_path: Path) -> None:
    odd = tmp_path / "with space" / "100%.git"
    odd.mkdir(parents=True)
    as_url = remote_url(str(odd))
    assert as_url == odd.as_uri() and "%20" in as_url and "%25" in as_url
    git(odd, "init", "--quiet", "--bare")
    assert git(tmp_path, "ls-remote", as_url) == ""  # git reads it back as that directory
    relative = Path("with space") / "100%.git"
    assert remote_url(str(tmp_path / "with space" / ".." / relative)) == as_url
    assert remote_url(as_url) == as_url
    assert remote_url("file://localhost/srv/x.git/") == "file:///srv/x.git"
    assert remote_url(" HTTPS://Example.COM:8443/Team/Project.git/ ") == (
        "https://example.com:8443/Team/Project.git"
    )
    assert remote_url("ssh://Me@Example.COM:2222/p.git") == "ssh://Me@example.com:2222/p.git"
    assert remote_url("git@GitHub.com:Team/Project.git") == "git@github.com:Team/Project.git"
    assert remote_url("ssh://git@Example.com/p.git") == "ssh://git@example.com/p.git"
    assert cache_path(tmp_path, remote_url("https://EXAMPLE.com/p.git/")) == cache_path(
        tmp_path, "https://example.com/p.git"
    )
    assert cache_path(tmp_path, "https://example.com/a/p.git") != cache_path(
        tmp_path, "https://example.com/b/p.git"
    )
    assert cache_path(tmp_path, "https://example.com/a/p.git").name.startswith("p-")


@pytest.mark.reliability(
    "`--remote` names something that is not a usable git remote (another transport, a "
    "command, an option, a missing directory, a URL without a repository)",
    "remote_url refuses each before git sees it, with a message naming what was given "
    "(its password hidden) and the forms accepted",
)
@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("", "is empty"),
        ("ext::sh -c 'touch /tmp/owned'", "remote helper"),
        ("fd::3", "remote helper"),
        ("transport::x/y", "remote helper"),
        ("ftp://example.com/p.git", "ftp://"),
        ("-oProxyCommand=touch /tmp/owned", "starts with '-'"),
        ("/does/not/exist", "neither a URL nor a directory"),
        ("https://example.com", "names no repository"),
        ("file://otherhost/srv/p.git", "another machine"),
        ("ssh://-oProxyCommand=x/p.git", "no host name"),
        ("example.com:-oProxyCommand=x", "a path starting with '-'"),
        ("ssh://example.com/-oProxyCommand=x", "a path starting with '-'"),
    ],
)
def test_what_remote_refuses(given: str, why: str) -> None:
    with pytest.raises(RemoteError) as refused:
        remote_url(given)
    message = str(refused.value)
    assert why in message and "Give a git remote" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("given", "what"),
    [
        ("https://me:s3cret@example.com/p.git", "a password"),
        ("http://me:s3cret@example.com/p.git", "a password"),
        ("ssh://git:s3cret@example.com/p.git", "a password"),
        ("ssh://git:@example.com/p.git", "a password"),
        ("https://ghp_s3cret@github.com/team/p.git", "a user part"),
        ("https://oauth2:s3cret@gitlab.com/team/p.git", "a password"),
        ("git://s3cret@example.com/p.git", "a user part"),
        ("me:s3cret@example.com:team/p.git", "user:password@host"),
    ],
)
def test_credentials_in_a_url_are_refused(given: str, what: str) -> None:
    with pytest.raises(RemoteError) as refused:
        remote_url(given)
    message = str(refused.value)
    assert "carries" in message and what in message and "s3cret" not in message
    assert "credential.helper" in message and "gh auth setup-git" in message
    assert "ssh" in message


def test_a_host_that_is_an_option_is_no_remote() -> None:
    for given in ("-oProxyCommand=touch /tmp/x:p", "ssh://-oProxyCommand=x/p.git", "-h:p"):
        assert not is_remote(given), given
        with pytest.raises(RemoteError):
            remote_url(given)


def test_a_worker_accepts_only_urls_as_the_starter_stores_them() -> None:
    assert checked_remote("ssh://git@example.com/p.git") == "ssh://git@example.com/p.git"
    for given in (
        "ext::sh -c touch% /tmp/x",
        "-oProxyCommand=x:p",
        "ssh://-oProxyCommand=x/p.git",
        "https://me:s3cret@example.com/p.git",
        "https://Example.com/p.git/",  # not normalised: the starter never stored it
        "/home/me/project",
    ):
        with pytest.raises(RemoteError):
            checked_remote(given)


def test_a_password_is_never_shown() -> None:
    assert shown_url("https://me:s3cret@example.com/p.git") == "https://***:***@example.com/p.git"
    assert shown_url("ssh://me:s3cret@example.com/p.git") == "ssh://me:***@example.com/p.git"
    assert shown_url("https://ghp_s3cret@example.com/p.git") == "https://***@example.com/p.git"
    assert shown_url("me:s3cret@example.com:p.git") == "me:***@example.com:p.git"
    assert shown_url("https://example.com/p.git") == "https://example.com/p.git"
    assert shown_url("git@example.com:p.git") == "git@example.com:p.git"


# --------------------------------------------------------------------------------------------
# Tasks end to end over two workers
# --------------------------------------------------------------------------------------------


def test_the_remote_kind_is_a_workspace_kind(tmp_path: Path) -> None:
    assert isinstance(RemoteWorkspaces(tmp_path), WorkspaceKind)


def test_two_workers_run_a_session_and_a_rejected_merge_push_is_recomputed(
    tmp_path: Path, url: str, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    b = RemoteWorkspaces(tmp_path / "worker-b")
    ws1 = work(a, url, "1", {"one.txt": "from worker a\n"})
    ws2 = work(b, url, "2", {"two.txt": "from worker b\n"})
    # Each worker's workspace is under its own state dir, reading its own cache's objects.
    assert Path(ws1.path) == workspace_dir(tmp_path / "worker-a", SESSION, "1")
    assert Path(ws2.path) == workspace_dir(tmp_path / "worker-b", SESSION, "2")
    alternates = (Path(ws1.path) / ".git/objects/info/alternates").read_text().split()
    assert alternates == [str(a.shared_objects(url))]
    assert a.shared_objects(url).parent == a.cache_path(url)
    assert a.cache_path(url).is_relative_to(tmp_path / "worker-a")
    # The task branches are on the remote, pushed by the commit step.
    assert git(bare, "show", f"{ws1.branch}:one.txt") == "from worker a"
    assert git(bare, "show", f"{ws2.branch}:two.txt") == "from worker b"

    # Worker a fetches main and computes its merge; worker b's merge lands in between, so
    # a's compare-and-swap push is refused and a fetches and merges again.
    calls: list[str] = []
    b_outcome: list[MergeResult] = []

    def interleaved(repo: Path, request: MergeInput) -> MergeResult:
        calls.append(str(repo))
        if repo == a.cache_path(url) and not b_outcome:
            b_outcome.append(b.merge(merge_input(url, "2")))
        return merge_in(repo, request)

    monkeypatch.setattr(remote_module, "merge_in", interleaved)
    main_before = git(bare, "rev-parse", "main")
    outcome = a.merge(merge_input(url, "1"))

    assert b_outcome[0].merged and not b_outcome[0].already_merged
    assert outcome.merged and not outcome.already_merged
    assert calls.count(str(a.cache_path(url))) == 2  # computed twice: the first push refused
    assert git(bare, "rev-parse", "main") == outcome.merge_sha
    assert merged_tasks(bare) == ["2", "1"]
    assert git(bare, "rev-parse", "main^1") == b_outcome[0].merge_sha
    assert git(bare, "rev-parse", f"{b_outcome[0].merge_sha}^1") == main_before
    assert git(bare, "show", "main:one.txt") == "from worker a"
    assert git(bare, "show", "main:two.txt") == "from worker b"
    assert_remote_is_tidy(bare, "1", "2")
    # A retry on either worker finds the merge on the remote and pushes nothing.
    monkeypatch.setattr(remote_module, "merge_in", merge_in)
    for worker in (a, b):
        again = worker.merge(merge_input(url, "1"))
        assert again.already_merged and again.merge_sha == outcome.merge_sha
    assert git(bare, "rev-parse", "main") == outcome.merge_sha

    for worker, task in ((a, "1"), (b, "2")):
        remove = RemoveWorkspaceInput(
            repo=url, state_dir=ELSEWHERE, session_id=SESSION, task_id=task
        )
        worker.remove(remove)
        worker.remove(remove)
    assert not Path(ws1.path).exists() and not Path(ws2.path).exists()
    assert a.prepare(start(url, "1")).already_merged


@pytest.mark.reliability(
    "a worker dies between merging a task in its cache and pushing the merge to the remote",
    "the merge is made in worker a's cache and not pushed; the task's merge retried on worker b "
    "and then on worker a leaves the remote's main with exactly one merge of it",
)
def test_a_crash_between_the_merge_and_its_push_merges_once(
    tmp_path: Path, url: str, bare: Path
) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    b = RemoteWorkspaces(tmp_path / "worker-b")
    ws = work(a, url, "1", {"one.txt": "one\n"})
    main_before = git(bare, "rev-parse", "main")
    with a.cache(url, "main") as cache:  # the merge step's pieces, up to the push
        cache.sync(["main", ws.branch])
        # (Its own message: a merge made in the same second with the same one is the same
        # commit, and could not tell the two attempts apart.)
        local = merge_task(cache.path, "main", ws.branch, SESSION, "1", "Merge task 1 on a")
    assert local.merged and local.merge_sha is not None
    assert git(a.cache_path(url), "rev-parse", "main") == local.merge_sha
    assert git(bare, "rev-parse", "main") == main_before  # "crashed" before the push

    on_b = b.merge(merge_input(url, "1"))
    assert on_b.merged and not on_b.already_merged and on_b.merge_sha != local.merge_sha
    on_a = a.merge(merge_input(url, "1"))
    assert on_a.already_merged and on_a.merge_sha == on_b.merge_sha
    assert git(a.cache_path(url), "rev-parse", "main") == on_b.merge_sha  # the remote's again
    assert git(bare, "rev-parse", "main") == on_b.merge_sha
    assert_remote_is_tidy(bare, "1")


def test_a_crash_between_the_bring_back_and_its_push_is_pushed_by_the_merge(
    tmp_path: Path, url: str, bare: Path
) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    ws = a.prepare(start(url, "1"))
    write(Path(ws.path), "one.txt", "one\n")
    with a.cache(url) as cache:  # the commit step's pieces, up to the push
        commit_changes(ws.path, ws.base_sha, SESSION, "1", "Task 1", repo=cache.path)
    assert ws.branch not in remote_task_refs(bare)
    assert a.merge(merge_input(url, "1")).merged
    assert git(bare, "show", "main:one.txt") == "one"
    assert_remote_is_tidy(bare, "1")


@pytest.mark.reliability(
    "the worker running a task dies after pushing its branch; another worker goes on with it",
    "worker b prepares the task from the remote's branch (worker a's commit, not its "
    "uncommitted leftovers); when worker a comes back its stale workspace is made again from "
    "the remote, and the task is merged once with both workers' commits",
)
def test_task_branches_are_pushed_outside_refs_heads(tmp_path: Path, url: str, bare: Path) -> None:
    """A forge's CI that runs on branch pushes never sees an unreviewed task: its commits go
    to refs/autopilot/<session>/<task>, and only the reviewed merge reaches refs/heads/."""
    ws = work(RemoteWorkspaces(tmp_path / "worker-a"), url, "1", {"one.txt": "one\n"})
    refs = git(bare, "for-each-ref", "--format=%(refname)").split()
    assert refs == [f"refs/{ws.branch}", "refs/heads/main"]
    assert git(bare, "show", f"refs/{ws.branch}:one.txt") == "one"


def test_a_remote_that_refuses_non_fast_forwards_takes_task_refs(
    tmp_path: Path, url: str, bare: Path
) -> None:
    """`receive.denyNonFastForwards` (a common server setting) is no obstacle: task refs and
    the merge only ever move forward, and deleting a merged task's ref is no rewrite."""
    git(bare, "config", "receive.denyNonFastForwards", "true")
    a = RemoteWorkspaces(tmp_path / "worker-a")
    work(a, url, "1", {"one.txt": "one\n"})
    work(a, url, "2", {"two.txt": "two\n"})
    assert a.merge(merge_input(url, "1")).merged
    assert a.merge(merge_input(url, "2")).merged
    assert_remote_is_tidy(bare, "1", "2")


@pytest.mark.reliability(
    "a session started before task refs moved out of refs/heads/ is running when its workers "
    "are upgraded: its task branches are under refs/heads/autopilot/",
    "a worker with no workspace reads the legacy branch, pushes on under refs/autopilot/, and "
    "the merge deletes both refs",
)
def test_an_in_flight_task_whose_branch_is_under_refs_heads_is_picked_up(
    tmp_path: Path, url: str, bare: Path
) -> None:
    old = work(RemoteWorkspaces(tmp_path / "worker-a"), url, "1", {"one.txt": "one\n"})
    # As a worker of the version before pushed it.
    pushed = git(bare, "rev-parse", f"refs/{old.branch}")
    git(bare, "update-ref", f"refs/heads/{old.branch}", pushed)
    git(bare, "update-ref", "-d", f"refs/{old.branch}")

    b = RemoteWorkspaces(tmp_path / "worker-b")
    ws = b.prepare(start(url, "1"))
    assert git(Path(ws.path), "rev-parse", "HEAD") == pushed
    assert (Path(ws.path) / "one.txt").read_text() == "one\n"
    write(Path(ws.path), "two.txt", "two\n")
    b.commit(commit_input(url, ws, "1"))
    assert git(bare, "show", f"refs/{ws.branch}:two.txt") == "two"
    assert git(bare, "rev-parse", f"refs/heads/{ws.branch}") == pushed  # left until the merge

    assert b.merge(merge_input(url, "1")).merged
    assert git(bare, "ls-tree", "--name-only", "main").split() == [
        "README.md",
        "notes.txt",
        "one.txt",
        "two.txt",
    ]
    assert_remote_is_tidy(bare, "1")


def test_a_legacy_task_branch_found_merged_is_deleted(tmp_path: Path, url: str, bare: Path) -> None:
    """A legacy branch whose task the target has already (merged by the version before, its
    branch left by a crash): the merge finds it and deletes the branch."""
    a = RemoteWorkspaces(tmp_path / "worker-a")
    ws = work(a, url, "1", {"one.txt": "one\n"})
    head = git(bare, "rev-parse", f"refs/{ws.branch}")
    assert a.merge(merge_input(url, "1")).merged
    git(bare, "update-ref", f"refs/heads/{ws.branch}", head)
    again = RemoteWorkspaces(tmp_path / "worker-b").merge(merge_input(url, "1"))
    assert again.already_merged
    assert_remote_is_tidy(bare, "1")


def test_a_task_pushed_by_one_worker_is_continued_by_another(
    tmp_path: Path, url: str, bare: Path
) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    b = RemoteWorkspaces(tmp_path / "worker-b")
    on_a = work(a, url, "1", {"a.txt": "by a\n"})
    write(Path(on_a.path), "left.txt", "uncommitted when a died\n")

    on_b = b.prepare(start(url, "1"))
    assert on_b.base_sha == on_a.base_sha
    assert (Path(on_b.path) / "a.txt").read_text() == "by a\n"
    assert not (Path(on_b.path) / "left.txt").exists()
    write(Path(on_b.path), "b.txt", "by b\n")
    b.commit(commit_input(url, on_b, "1"))
    pushed = git(bare, "rev-parse", on_b.branch)
    assert git(bare, "merge-base", "--is-ancestor", git(bare, "rev-parse", "main"), pushed) == ""

    back = a.prepare(start(url, "1"))  # a is back, with its workspace of before
    assert back.path == on_a.path
    assert git(Path(back.path), "rev-parse", "HEAD") == pushed
    assert (Path(back.path) / "b.txt").read_text() == "by b\n"
    assert not (Path(back.path) / "left.txt").exists()
    assert a.merge(merge_input(url, "1")).merged
    assert git(bare, "ls-tree", "--name-only", "main").split() == [
        "README.md",
        "a.txt",
        "b.txt",
        "notes.txt",
    ]
    assert_remote_is_tidy(bare, "1")


def test_a_workspace_with_unpushed_commits_is_kept(tmp_path: Path, url: str, bare: Path) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    ws = work(a, url, "1", {"a.txt": "pushed\n"})
    commit_file(Path(ws.path), "later.txt", "the agent's own commit, not pushed yet\n")
    head = git(Path(ws.path), "rev-parse", "HEAD")
    assert a.prepare(start(url, "1")).path == ws.path
    assert git(Path(ws.path), "rev-parse", "HEAD") == head  # a retry goes on from it
    a.commit(commit_input(url, ws, "1"))
    assert git(bare, "rev-parse", ws.branch) == head


@pytest.mark.reliability(
    "two workers run the same task at once (a run thought lost was not), and both push",
    "the later push is refused as TaskBranchMoved, the remote keeps the first worker's "
    "branch, and preparing the task again on the refused worker starts from it",
)
def test_a_task_branch_moved_by_another_worker_is_not_overwritten(
    tmp_path: Path, url: str, bare: Path
) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    b = RemoteWorkspaces(tmp_path / "worker-b")
    on_a = a.prepare(start(url, "1"))
    on_b = b.prepare(start(url, "1"))
    write(Path(on_b.path), "b.txt", "by b\n")
    by_b = b.commit(commit_input(url, on_b, "1"))
    write(Path(on_a.path), "a.txt", "by a\n")
    with pytest.raises(TaskBranchMoved, match="another worker pushed the task"):
        a.commit(commit_input(url, on_a, "1"))
    assert git(bare, "rev-parse", on_a.branch) == by_b.head_sha
    again = a.prepare(start(url, "1"))
    assert (Path(again.path) / "b.txt").exists() and not (Path(again.path) / "a.txt").exists()
    write(Path(again.path), "a.txt", "by a, after b\n")
    a.commit(commit_input(url, again, "1"))
    assert a.merge(merge_input(url, "1")).merged
    assert git(bare, "ls-tree", "--name-only", "main").split() == [
        "README.md",
        "a.txt",
        "b.txt",
        "notes.txt",
    ]
    assert_remote_is_tidy(bare, "1")


def test_a_real_conflict_goes_to_the_conflict_round(tmp_path: Path, url: str, bare: Path) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    b = RemoteWorkspaces(tmp_path / "worker-b")
    work(a, url, "1", {"notes.txt": "one\nTWO by a\nthree\n"})
    ws2 = work(b, url, "2", {"notes.txt": "one\n2 by b\nthree\n"})
    assert a.merge(merge_input(url, "1")).merged
    main_after_1 = git(bare, "rev-parse", "main")

    conflict = b.merge(merge_input(url, "2"))
    assert conflict.conflict and not conflict.merged
    assert conflict.conflict_files == ["notes.txt"]
    assert git(bare, "rev-parse", "main") == main_after_1  # untouched

    round_ = b.merge_target(
        TargetMergeInput(
            workspace_path=ws2.path, target_branch="main", session_id=SESSION, task_id="2", repo=url
        )
    )
    assert not round_.clean and round_.conflict_files == ["notes.txt"]
    write(Path(ws2.path), "notes.txt", "one\nTWO by a, 2 by b\nthree\n")
    b.commit(commit_input(url, ws2, "2"))
    resolved = b.merge(merge_input(url, "2"))
    assert resolved.merged and not resolved.conflict
    assert git(bare, "show", "main:notes.txt") == "one\nTWO by a, 2 by b\nthree"
    assert_remote_is_tidy(bare, "1", "2")


def test_removal_touches_only_this_workers_own_workspaces(tmp_path: Path, url: str) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    ws = work(a, url, "1", {"one.txt": "1\n"})
    elsewhere = tmp_path / "other-machine" / "worktrees" / SESSION / "1"
    elsewhere.mkdir(parents=True)
    a.remove_at(url, str(elsewhere))  # a path another worker reported
    a.remove_at(url, str(Path(ws.path).parent.parent))  # the worktrees folder itself
    a.remove_at(url, str(Path(ws.path).parent))  # the session's folder
    assert elsewhere.is_dir() and Path(ws.path).is_dir()
    a.remove_at(url, ws.path)
    assert not Path(ws.path).exists()
    a.remove_at(url, ws.path)  # again: nothing there, nothing done


def test_a_missing_target_branch_is_a_remote_error(tmp_path: Path, url: str) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    with pytest.raises(RemoteError, match="has no branch 'develop'"):
        a.prepare(start(url, "1").model_copy(update={"target_branch": "develop"}))


# --------------------------------------------------------------------------------------------
# The cache and its lock
# --------------------------------------------------------------------------------------------


def test_one_cache_per_remote_made_aside_and_never_cloned_again(
    tmp_path: Path, daemon_url: str, bare: Path
) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    cache = a.cache_path(daemon_url)
    leftover = cache.with_name(f".making-{cache.name}")  # a worker killed while making it
    leftover.mkdir(parents=True)
    (leftover / "half").write_text("")
    work(a, daemon_url, "1", {"one.txt": "1\n"})
    assert not leftover.exists()
    assert git(cache, "rev-parse", "--is-bare-repository") == "true"
    assert git(cache, "config", "gc.auto") == "0"
    assert git(cache, "config", "core.hooksPath") == "/dev/null"
    assert not list((cache / "hooks").glob("*"))
    assert git(cache, "rev-parse", "main") == git(bare, "rev-parse", "main")
    marker = cache / "objects" / "marker"
    marker.write_text("")  # a new clone would not have it
    work(a, daemon_url, "2", {"two.txt": "2\n"})
    assert marker.exists()
    assert [p.name for p in cache.parent.iterdir() if p.suffix == ".git"] == [cache.name]


def test_a_cache_wide_fetch_never_moves_a_task_branch_back_under_its_push(
    tmp_path: Path, daemon_url: str, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch of every branch from another thread, right between a bring-back and its push,
    waits for the push: the task branch stays where the bring-back put it."""
    a = RemoteWorkspaces(tmp_path / "worker-a")
    ws = work(a, daemon_url, "1", {"one.txt": "first\n"})
    fetches: list[threading.Thread] = []

    def refresh() -> None:  # another step's fetch of every branch
        with a.cache(daemon_url) as cache:
            cache.refresh()

    def bring_back_then_fetch(*args: Any, **kwargs: Any) -> str:
        head = bring_back(*args, **kwargs)
        fetch = threading.Thread(target=refresh)
        fetch.start()
        fetches.append(fetch)
        fetch.join(timeout=1.0)  # enough for a fetch that is not held off to run
        return head

    monkeypatch.setattr(remote_module, "bring_back", bring_back_then_fetch)
    write(Path(ws.path), "one.txt", "second\n")
    done = a.commit(commit_input(daemon_url, ws, "1"))
    for fetch in fetches:
        fetch.join(timeout=30)
        assert not fetch.is_alive()
    cache = a.cache_path(daemon_url)
    assert git(cache, "rev-parse", ws.branch) == done.head_sha
    assert git(bare, "rev-parse", ws.branch) == done.head_sha


def test_the_cache_lock_holds_off_another_process(tmp_path: Path) -> None:
    """Workers in several processes may share a state dir: the lock is a `flock` too."""
    cache = tmp_path / "state" / "remotes" / "p-0123.git"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path\n"
            "from autopilot.git.remote_cache import locked\n"
            "with locked(Path(sys.argv[1])):\n"
            "    print('held', flush=True); sys.stdin.readline()\n",
            str(cache),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline() == "held\n"
        with open(cache.with_suffix(".lock"), "a") as lock_file:
            with pytest.raises(BlockingIOError):
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with its holder
            fcntl.flock(lock_file, fcntl.LOCK_UN)
        with locked(cache):
            pass
    finally:
        holder.kill()
        holder.wait()


# --------------------------------------------------------------------------------------------
# The starter's preflight
# --------------------------------------------------------------------------------------------


def test_a_usable_remote_passes_and_nothing_changes_on_it(url: str, bare: Path) -> None:
    git(bare, "symbolic-ref", "HEAD", "refs/heads/main")
    before = git(bare, "for-each-ref")
    checked = check_remote(url, "main")
    assert checked.target_branch == "main"
    assert checked.head_sha == git(bare, "rev-parse", "main")
    assert check_remote(url).target_branch == "main"  # the remote's default branch
    assert check_remote(url, "refs/heads/main").target_branch == "main"
    assert git(bare, "for-each-ref") == before
    assert PREFLIGHT_REF not in git(bare, "for-each-ref", "--format=%(refname)")


@pytest.mark.reliability(
    "the remote does not answer: nothing listens on its port",
    "check_remote against a free port on 127.0.0.1: RemoteError saying it does not answer "
    "and what to check",
)
def test_a_remote_that_does_not_answer() -> None:
    url = f"git://127.0.0.1:{free_port()}/project.git"
    with pytest.raises(RemoteError) as refused:
        check_remote(url, "main", timeout_s=20)
    assert f"the remote {url} does not answer" in str(refused.value)
    assert "reachable" in str(refused.value)


@pytest.mark.reliability(
    "the remote's host accepts the connection and then never answers",
    "check_remote against a listening socket that never replies: RemoteError once the "
    "timeout passes, git and its children stopped",
)
def test_a_remote_that_hangs_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # connections complete in the backlog; nothing is ever read or sent
        url = f"git://127.0.0.1:{silent.getsockname()[1]}/project.git"
        began = time.monotonic()
        with pytest.raises(RemoteError) as refused:
            check_remote(url, "main", timeout_s=1.0)
        assert time.monotonic() - began < 15
    assert "did not answer within 1 s" in str(refused.value)


@pytest.mark.reliability(
    "the session names a target branch the remote does not have",
    "check_remote with `develop` on a remote with only main: RemoteError listing its branches",
)
def test_an_unknown_target_branch_lists_what_exists(url: str, bare: Path) -> None:
    git(bare, "branch", "release/2.0", "main")
    git(bare, "branch", f"autopilot/{SESSION}/9", "main")
    with pytest.raises(RemoteError) as refused:
        check_remote(url, "develop")
    message = str(refused.value)
    assert "has no branch 'develop'" in message
    assert "its branches include: main, release/2.0." in message
    with pytest.raises(RemoteError, match="is not a branch name"):
        check_remote(url, "a..b")


@pytest.mark.reliability(
    "the remote answers but refuses pushes (no push rights)",
    "check_remote against a git daemon without receive-pack: RemoteError saying there are no "
    "push rights and what to use instead",
)
def test_a_remote_without_push_rights(served: Path) -> None:
    with git_daemon(served, receive_pack=False) as daemon:
        url = daemon.url("project.git")
        with pytest.raises(RemoteError) as refused:
            check_remote(url, "main")
    message = str(refused.value)
    assert f"no push rights on the remote {url}" in message
    assert "dry-run push" in message


def test_a_checkout_with_the_target_checked_out_is_refused(tmp_path: Path) -> None:
    checkout = make_repo(tmp_path / "checkout")
    with pytest.raises(RemoteError, match="Give a bare repository instead"):
        check_remote(str(checkout), "main")


def test_remote_errors_hide_the_password(tmp_path: Path) -> None:
    url = f"http://me:s3cret@127.0.0.1:{free_port()}/project.git"
    with pytest.raises(RemoteError) as refused:
        check_remote(url, "main", timeout_s=20)
    assert "s3cret" not in str(refused.value) and "***:***@" in str(refused.value)


# --------------------------------------------------------------------------------------------
# A task's steps on different workers: each finds the workspace, or makes it from the remote
# --------------------------------------------------------------------------------------------


def place(ws: Workspace, task: str) -> WorkspaceOrigin:
    return WorkspaceOrigin(
        session_id=SESSION, task_id=task, target_branch="main", base_sha=ws.base_sha
    )


def head_of(path: str) -> str:
    return git(Path(path), "rev-parse", "HEAD")


def test_a_step_on_a_worker_without_the_workspace_makes_it_from_the_pushed_branch(
    tmp_path: Path, url: str, bare: Path
) -> None:
    a, b = RemoteWorkspaces(tmp_path / "worker-a"), RemoteWorkspaces(tmp_path / "worker-b")
    ws = work(a, url, "1", {"one.txt": "one\n"})  # the agent's step, pushed by its commit
    on_b = b.here(url, ws.path, place(ws, "1"))
    assert on_b.made and on_b.path != ws.path
    assert Path(on_b.path, "one.txt").read_text() == "one\n"
    assert head_of(on_b.path) == git(bare, "rev-parse", ws.branch)
    assert b.here(url, ws.path, place(ws, "1")) == (on_b.path, False)  # found the second time
    # B goes on with the task (a fix round) and pushes: A's copy is behind, so A makes it again.
    write(Path(on_b.path), "two.txt", "two\n")
    b.commit(commit_input(url, ws, "1"))
    on_a = a.here(url, ws.path, place(ws, "1"))
    assert on_a == (ws.path, True)
    assert Path(ws.path, "two.txt").read_text() == "two\n"


def test_before_the_first_push_a_workspace_is_made_at_the_task_s_base(
    tmp_path: Path, url: str, bare: Path
) -> None:
    """Setup on another worker than the prepare, after the target moved on: the workspace
    starts where the task started, not at the target's new head."""
    a, b = RemoteWorkspaces(tmp_path / "worker-a"), RemoteWorkspaces(tmp_path / "worker-b")
    ws = a.prepare(start(url, "1"))
    work(a, url, "2", {"two.txt": "two\n"})
    assert a.merge(merge_input(url, "2")).merged
    on_b = b.here(url, ws.path, place(ws, "1"))
    assert on_b.made and head_of(on_b.path) == ws.base_sha
    assert not Path(on_b.path, "two.txt").exists()


def test_a_commit_step_keeps_the_work_in_its_workspace_and_makes_one_only_where_none_is(
    tmp_path: Path, url: str, bare: Path
) -> None:
    a, b = RemoteWorkspaces(tmp_path / "worker-a"), RemoteWorkspaces(tmp_path / "worker-b")
    ws = work(a, url, "1", {"one.txt": "one\n"})
    # The workflow's commit step on B (after the agent's activity committed and pushed on A):
    # B makes the workspace from the remote, finds nothing new, reports the task's commits.
    on_b = b.commit(commit_input(url, ws, "1", in_place=False))
    assert not on_b.no_changes and on_b.head_sha == git(bare, "rev-parse", ws.branch)
    assert [c.subject for c in on_b.commits] == ["Task 1"]


def test_a_clean_merge_of_the_target_is_pushed_for_the_steps_that_follow(
    tmp_path: Path, url: str, bare: Path
) -> None:
    a, b = RemoteWorkspaces(tmp_path / "worker-a"), RemoteWorkspaces(tmp_path / "worker-b")
    ws = work(a, url, "1", {"one.txt": "one\n"})
    work(a, url, "2", {"two.txt": "two\n"})
    assert a.merge(merge_input(url, "2")).merged
    merged = b.merge_target(target_merge(url, ws, "1"))  # the conflict round, on B
    assert merged.clean and not merged.already_up_to_date
    assert git(bare, "rev-parse", ws.branch) == merged.head_sha  # on the remote for the review
    assert git(bare, "show", f"{ws.branch}:two.txt") == "two"


def test_a_conflict_round_s_commit_without_the_workspace_finds_the_conflicts_again(
    tmp_path: Path, url: str, bare: Path
) -> None:
    """The agent left the conflict unresolved on A; the commit step runs on C, which has no
    workspace: it merges the target in again and says what the agent's commit said."""
    a, c = RemoteWorkspaces(tmp_path / "worker-a"), RemoteWorkspaces(tmp_path / "worker-c")
    ws = work(a, url, "1", {"notes.txt": "one\nTWO by 1\nthree\n"})
    work(a, url, "2", {"notes.txt": "one\nTWO by 2\nthree\n"})
    assert a.merge(merge_input(url, "2")).merged
    assert not a.merge_target(target_merge(url, ws, "1")).clean
    request = commit_input(url, ws, "1", in_place=False).model_copy(
        update={"conflict_target": "main"}
    )
    with pytest.raises(ConflictsRemain):
        a.commit(request)
    with pytest.raises(ConflictsRemain):
        c.commit(request)
    assert remote_branches(bare) == ["main"]
    assert remote_task_refs(bare) == [ws.branch]
    assert "<<<<<<<" not in git(bare, "show", f"{ws.branch}:notes.txt")


def target_merge(url: str, ws: Workspace, task: str) -> TargetMergeInput:
    return TargetMergeInput(
        workspace_path=ws.path,
        target_branch="main",
        session_id=SESSION,
        task_id=task,
        repo=url,
        base_sha=ws.base_sha,
    )


def test_a_clean_target_merge_whose_push_was_lost_is_pushed_by_the_retry(
    tmp_path: Path, url: str, bare: Path
) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    ws = work(a, url, "1", {"one.txt": "one\n"})
    work(a, url, "2", {"two.txt": "two\n"})
    assert a.merge(merge_input(url, "2")).merged
    pushed_before = git(bare, "rev-parse", ws.branch)
    with a.cache(url) as cache:  # the step's merge, then a crash before its push
        cache.sync(["main"])
        merge_target_into_branch(ws.path, "main", SESSION, "1", repo=cache.path)
    assert git(bare, "rev-parse", ws.branch) == pushed_before
    again = a.merge_target(target_merge(url, ws, "1"))
    assert again.clean and again.already_up_to_date
    assert git(bare, "rev-parse", ws.branch) == head_of(ws.path) != pushed_before


def test_the_commit_step_on_a_worker_with_an_old_copy_uses_what_the_remote_has(
    tmp_path: Path, url: str, bare: Path
) -> None:
    """A's copy is behind (B went on with the task): the workflow's commit step on A makes
    the workspace again; the agent's own commit there would have been refused instead."""
    a, b = RemoteWorkspaces(tmp_path / "worker-a"), RemoteWorkspaces(tmp_path / "worker-b")
    ws = work(a, url, "1", {"one.txt": "one\n"})
    on_b = b.here(url, ws.path, place(ws, "1"))
    write(Path(on_b.path), "two.txt", "two\n")
    b.commit(commit_input(url, ws, "1"))
    with pytest.raises(TaskBranchMoved):  # the agent's commit, in A's old copy
        write(Path(ws.path), "three.txt", "three\n")
        a.commit(commit_input(url, ws, "1"))
    step = a.commit(commit_input(url, ws, "1", in_place=False))
    assert step.head_sha == git(bare, "rev-parse", ws.branch)
    assert [c.subject for c in step.commits] == ["Task 1", "Task 1"]
    assert not Path(ws.path, "three.txt").exists()


def test_a_broken_or_earlier_copy_is_made_again(tmp_path: Path, url: str, bare: Path) -> None:
    a = RemoteWorkspaces(tmp_path / "worker-a")
    ws = a.prepare(start(url, "1"))
    # The agent replaced its .git: the copy cannot be trusted, it is made again.
    shutil.rmtree(Path(ws.path, ".git"))
    Path(ws.path, ".git").symlink_to(bare)
    again = a.here(url, ws.path, place(ws, "1"))
    assert again.made and Path(ws.path, ".git").is_dir() and not Path(ws.path, ".git").is_symlink()
    # A copy of an earlier try, from another base (the target moved since): made again at
    # the base this try started from.
    work(a, url, "2", {"two.txt": "two\n"})
    assert a.merge(merge_input(url, "2")).merged
    newer = place(ws, "1").model_copy(update={"base_sha": git(bare, "rev-parse", "main")})
    moved = a.here(url, ws.path, newer)
    assert moved.made and head_of(moved.path) == newer.base_sha


def test_a_workers_copies_of_merged_tasks_go_at_its_next_prepare(
    tmp_path: Path, url: str, bare: Path
) -> None:
    """B made copies of tasks 1 and 2 (their checks ran there); A merged them and removed
    only its own. B's next prepare in the session removes B's copies of merged tasks, and
    keeps the one of a task not merged."""
    a, b = RemoteWorkspaces(tmp_path / "worker-a"), RemoteWorkspaces(tmp_path / "worker-b")
    one = work(a, url, "1", {"one.txt": "one\n"})
    two = work(a, url, "2", {"two.txt": "two\n"})
    copies = [
        Path(b.here(url, ws.path, place(ws, task)).path) for ws, task in ((one, "1"), (two, "2"))
    ]
    assert a.merge(merge_input(url, "1")).merged
    b.prepare(start(url, "3"))
    assert not copies[0].exists() and copies[1].is_dir()


def test_the_target_head_is_read_from_the_remote_or_the_local_repository(
    tmp_path: Path, daemon_url: str, bare: Path
) -> None:
    """What `status` and the session-ended notification show: the remote's head in remote
    mode, the repository's in local mode."""
    assert target_head(daemon_url, "main") == git(bare, "rev-parse", "main")
    local = make_repo(tmp_path / "local")
    assert target_head(str(local), "main") == git(local, "rev-parse", "main")
    with pytest.raises(RemoteError, match="has no branch 'gone'"):
        target_head(daemon_url, "gone")


# --------------------------------------------------------------------------------------------
# Starting afresh, and squash merges, on the remote
# --------------------------------------------------------------------------------------------


def test_fresh_sets_the_remote_task_ref_aside_and_starts_from_main(
    tmp_path: Path, url: str, bare: Path
) -> None:
    kind = RemoteWorkspaces(tmp_path / "worker")
    ws = work(kind, url, "1", {"bug.txt": "buggy\n"})
    branch = branch_name(SESSION, "1")
    rejected = git(bare, "rev-parse", f"refs/autopilot/{SESSION}/1")
    main = git(bare, "rev-parse", "main")

    again = kind.prepare(start(url, "1").model_copy(update={"fresh": True}))

    aside = f"{branch}--rejected-{rejected[:12]}"
    assert again.set_aside == aside and again.base_sha == main
    assert remote_task_refs(bare) == [aside]  # kept there, for a look; the task ref is gone
    assert git(bare, "rev-parse", f"refs/{aside}") == rejected
    assert not (Path(ws.path) / "bug.txt").exists()
    # A retried prepare finds its fresh start: nothing more is set aside.
    assert kind.prepare(start(url, "1").model_copy(update={"fresh": True})).set_aside == ""
    assert remote_task_refs(bare) == [aside]

    write(Path(again.path), "good.txt", "good\n")
    kind.commit(commit_input(url, again, "1"))
    assert kind.merge(merge_input(url, "1")).merged
    log = git(bare, "rev-list", "main").split()
    assert rejected not in log


def test_a_squash_on_the_remote_is_one_commit_found_again(
    tmp_path: Path, url: str, bare: Path
) -> None:
    kind = RemoteWorkspaces(tmp_path / "worker")
    work(kind, url, "1", {"a.txt": "a\n"})
    before = git(bare, "rev-parse", "main")
    squash = merge_input(url, "1").model_copy(update={"style": "squash"})

    first = kind.merge(squash)
    again = kind.merge(squash)

    assert first.merged and again.already_merged and again.merge_sha == first.merge_sha
    assert git(bare, "rev-list", f"{before}..main").split() == [first.merge_sha]
    assert git(bare, "log", "-1", "--format=%P", "main").split() == [before]
    assert remote_task_refs(bare) == []  # merged: its task ref goes
