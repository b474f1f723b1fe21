"""`starter.py --remote`: a remote that cannot take a session is refused before anything
starts (exit 2, what to fix, no traceback); a good one gives a session request that carries
the plan, names no state dir, and has the settings of the remote's own .autopilot.toml."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

import starter
from autopilot.git import RemoteWorkspaces
from autopilot.infra import load_settings
from autopilot.operate import preflight
from autopilot.operate.remote_repo_config import load_remote_config
from tests.git_daemon import git_daemon
from tests.gitutil import commit_file, git, make_repo
from tests.harness import free_port
from tests.test_starter import GOOD_PLAN, assert_user_error, run_starter, write_plan


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """project.git (bare, main) under the folder a daemon serves."""
    seed = make_repo(tmp_path / "seed")
    base = tmp_path / "served"
    base.mkdir()
    git(base, "clone", "--quiet", "--bare", str(seed), "project.git")
    return base


@pytest.fixture
def url(served: Path) -> Iterator[str]:
    with git_daemon(served) as daemon:
        yield daemon.url("project.git")


def push_config(tmp_path: Path, served: Path, files: dict[str, str]) -> None:
    """Commit `files` on the remote's main (as a user of the remote would)."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(served / "project.git"), str(clone))
    for name, text in files.items():
        commit_file(clone, name, text)
    git(clone, "push", "--quiet", "origin", "main")


def test_a_remote_that_does_not_answer_is_refused(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    silent = f"git://127.0.0.1:{free_port()}/project.git"
    done = run_starter(tmp_path, str(plan), "--remote", silent)
    assert_user_error(done, "error: the remote", "does not answer", "reachable")


def test_an_unknown_target_branch_is_refused(tmp_path: Path, url: str) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--remote", url, "--target-branch", "nope")
    assert_user_error(done, "has no branch 'nope'", "its branches include: main")


def test_a_remote_without_push_rights_is_refused(tmp_path: Path, served: Path) -> None:
    plan = write_plan(tmp_path)
    with git_daemon(served, receive_pack=False) as daemon:
        done = run_starter(tmp_path, str(plan), "--remote", daemon.url("project.git"))
    assert_user_error(done, "no push rights", "--enable=receive-pack")
    assert git(served / "project.git", "branch", "--list", "autopilot/*") == ""


def test_a_url_that_is_not_a_remote_is_refused(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--remote", "ext::sh -c touch% /tmp/pwned")
    assert_user_error(done, "remote helper", "Give a git remote")


def test_repo_and_remote_together_are_refused(tmp_path: Path, url: str) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--remote", url, "--repo", str(tmp_path))
    assert_user_error(done, "--repo and --remote name two repositories")


def test_copied_files_are_refused_in_remote_mode(tmp_path: Path, served: Path, url: str) -> None:
    push_config(tmp_path, served, {".autopilot.toml": '[workspace]\ncopy = [".env"]\n'})
    done = run_starter(tmp_path, str(write_plan(tmp_path)), "--remote", url)
    assert_user_error(done, "[workspace] copy names files from your checkout", "--repo")


def test_a_bad_config_on_the_remote_names_the_remote(
    tmp_path: Path, served: Path, url: str
) -> None:
    push_config(tmp_path, served, {".autopilot.toml": "[review]\nrounds = 'many'\n"})
    done = run_starter(tmp_path, str(write_plan(tmp_path)), "--remote", url)
    assert_user_error(done, f"{url} (main)", "rounds")
    assert "autopilot-remote-config-" not in done.stderr


def test_the_request_carries_the_plan_and_the_remote_s_settings(
    tmp_path: Path, served: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_config(
        tmp_path,
        served,
        {
            ".autopilot.toml": '[review]\nchecks = ["true"]\nreviewer_prompt_file = "docs/r.md"\n',
            "docs/r.md": "Check the spelling.\n",
        },
    )
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    plan = write_plan(tmp_path)
    args = starter.parse_command_line([str(plan), "--remote", url])
    request = preflight.validate(args, load_settings())
    assert (request.repo, request.target_branch, request.state_dir) == (url, "main", "")
    assert request.plan_text == plan.read_text()
    assert [check.command for check in request.review.checks] == ["true"]
    assert request.review.reviewer_prompt == "Check the spelling.\n"
    assert request.session_id.startswith("project-plan-all-")
    # The same remote and plan are the same session; another remote is another.
    assert preflight.validate(args, load_settings()).session_id == request.session_id
    local = preflight.validate(
        argparse.Namespace(**{**vars(args), "remote": None, "repo": str(tmp_path / "seed")}),
        load_settings(),
    )
    assert local.session_id != request.session_id


def test_a_plan_too_big_to_carry_is_refused(tmp_path: Path, url: str) -> None:
    """A remote session carries its plan's text and its parse through Temporal: a plan of
    1 MiB does not fit in the 2 MiB payload limit twice (a local session would run it)."""
    body = "\n".join(f"line {n:06d} of a long listing" for n in range(36_000))  # ~1 MiB
    plan = write_plan(tmp_path, GOOD_PLAN.replace("one\n```", f"{body}\n```"))
    assert plan.stat().st_size > 2**20
    done = run_starter(tmp_path, str(plan), "--remote", url)
    assert_user_error(done, "a remote session carries its plan", "split the plan")


def test_the_settings_are_read_at_the_commit_the_session_starts_from(
    tmp_path: Path, served: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_config(tmp_path, served, {".autopilot.toml": '[review]\nchecks = ["true"]\n'})
    started_from = git(served / "project.git", "rev-parse", "main")
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    args = starter.parse_command_line([str(write_plan(tmp_path)), "--remote", url])
    assert preflight.validate(args, load_settings()).config_commit == started_from

    # A later push (a merged task, say) moves the branch, not what that commit says.
    later = commit_file(tmp_path / "clone", ".autopilot.toml", '[review]\nchecks = ["false"]\n')
    git(tmp_path / "clone", "push", "--quiet", "origin", "main")
    remote = RemoteWorkspaces(tmp_path / "state")
    pinned = load_remote_config(remote, url, "main", started_from)
    assert [check.command for check in pinned.checks or []] == ["true"]
    moved = load_remote_config(remote, url, "main", later)
    assert [check.command for check in moved.checks or []] == ["false"]


@pytest.mark.reliability(
    "`--remote` carries credentials (user:password@, a token as the user) or names a host "
    "that is an ssh option",
    "the starter refuses it (exit 2) before anything is stored or dialled, its message names "
    "git's credential helpers and never shows the secret",
)
@pytest.mark.parametrize(
    ("given", "fragments"),
    [
        ("http://me:s3cret@127.0.0.1:{port}/project.git", ["carries a password"]),
        ("https://ghp_s3cret@127.0.0.1:{port}/project.git", ["carries a user part"]),
        ("git://s3cret@127.0.0.1:{port}/project.git", ["carries a user part"]),
        ("me:s3cret@127.0.0.1:project.git", ["user:password@host"]),
        ("ssh://-oProxyCommand=touch% {marker}/project.git", ["has no host name"]),
        ("-oProxyCommand=touch {marker}:project.git", ["starts with '-'"]),
    ],
)
def test_credentials_and_option_hosts_are_refused(
    tmp_path: Path, served: Path, given: str, fragments: list[str]
) -> None:
    marker = tmp_path / "owned"
    with git_daemon(served) as daemon:
        url = given.format(port=daemon.port, marker=marker)
        done = run_starter(tmp_path, str(write_plan(tmp_path)), "--remote", url)
    assert_user_error(done, "--remote", *fragments)
    if "s3cret" in given:
        assert "credential.helper" in done.stderr and "gh auth setup-git" in done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert not marker.exists()
    assert not (tmp_path / "state" / "temporal").exists()  # no session was started


def test_a_target_branch_shaped_like_a_task_branch_is_refused(
    tmp_path: Path, served: Path, url: str
) -> None:
    git(served / "project.git", "branch", "autopilot/s1/1", "main")
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--remote", url, "--target-branch", "autopilot/s1/1")
    assert_user_error(done, "shaped like an autopilot task branch")
