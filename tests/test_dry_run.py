"""`starter.py PLAN --dry-run`: the run's checks, then everything the session would run, as text
and as JSON; `--offline` names what it skipped; remote caches made while checking reach the
state dir only when a run is accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.client import Client

import starter
from autopilot.git import CACHES, CachesAside
from autopilot.infra import load_settings
from autopilot.operate import preflight
from tests.gitutil import commit_file, git, make_repo
from tests.harness import ROOT, clean_env, free_port
from tests.test_starter import GOOD_PLAN, assert_user_error, run_starter, write_plan
from workflows.session import SessionWorkflow

CONFIG = """\
[review]
mode = "checks"
checks = ["pytest -q"]
check_env = ["DATABASE_URL"]

[sandbox]
network = ["pypi.org"]

[notify]
notify = ["https://user:pw@hooks.example.com/T000/SECRET"]

[workspace]
setup = ["uv sync"]
cache_key = ["uv.lock"]
cache_dirs = [".venv"]
after_restore = ["uv sync --offline"]

[container]
image = "ghcr.io/me/agent:1.2"
packages = ["git", "curl"]
user = "dev"

[merge]
style = "squash"
"""


@pytest.fixture
def configured(repo: Path) -> Path:
    commit_file(repo, ".autopilot.toml", CONFIG)
    return repo


def test_the_dry_run_shows_what_the_session_would_run(tmp_path: Path, configured: Path) -> None:
    plan = write_plan(tmp_path)
    flags = [
        "--repo",
        str(configured),
        "--dry-run",
        "--offline",
        "--execution-place",
        "dagger",
        "--image",
    ]
    flags.append("registry.example.com:5000/me/other:2@sha256:" + "0" * 64)  # over the file's
    done = run_starter(
        tmp_path,
        str(plan),
        *flags,
        "--notify",
        "https://other.example.net/path-secret",
        env={"AUTOPILOT_NOTIFY_COMMAND": "notify-send Autopilot"},
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for shown in (
        f"Merge: into main of {configured}; 4 agent(s) at once; on failure: continue",
        "Merge style: squash (one commit per task)",
        "Review: checks, 3 round(s)",
        "Checks (each 900 s): pytest -q",
        "Check environment: PATH, HOME, LANG, TMPDIR, DATABASE_URL",
        "Setup commands (each 900 s): uv sync",
        "After a cache restore: uv sync --offline",
        "Network the agents and checks may reach (besides the model API): pypi.org",
        "Container: image registry.example.com:5000/me/other:2@sha256:" + "0" * 64 + ", user "
        "dev, packages git, curl; engine: (not checked)",
        "Notify URLs (shown by host): https://hooks.example.com, https://other.example.net",
        "Notify command (this installation's AUTOPILOT_NOTIFY_COMMAND): notify-send Autopilot",
        "Skipped (--offline): the container engine's preflight; the Temporal connection",
        "Dry run: nothing was started.",
    ):
        assert shown in text, text
    assert "SECRET" not in text and "pw" not in text and "path-secret" not in text


def test_the_json_report_carries_the_same(tmp_path: Path, configured: Path) -> None:
    plan = write_plan(tmp_path)
    flags = ["--repo", str(configured), "--dry-run", "--offline", "--json"]
    done = run_starter(tmp_path, str(plan), *flags)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["merge"] == {
        "repo": str(configured),
        "target_branch": "main",
        "concurrency": 1,
        "style": "squash",
    }
    assert report["review"]["checks"] == ["pytest -q"]
    assert report["setup"] == ["uv sync"]
    assert report["after_restore"] == ["uv sync --offline"]
    assert report["network"] == ["pypi.org"]
    assert report["notify"]["urls"] == ["https://hooks.example.com"]
    assert report["container"] is None  # no batch runs in a container
    [batch] = report["batches"]
    assert (batch["place"], [task["id"] for task in batch["tasks"]]) == ("local", ["1"])
    assert batch["tasks"][0]["files"] == ["one.txt"]
    assert report["skipped"] == ["the Temporal connection, and a running session's settings"]
    assert "SECRET" not in done.stdout


def test_offline_is_for_the_dry_run_only(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--offline")
    assert_user_error(done, "--offline is for --dry-run only")
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--json")
    assert_user_error(done, "--json is for --dry-run only")


def test_an_offline_dry_run_of_a_remote_checks_its_url_only(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    remote = "ssh://git@unreachable.invalid/team/project.git"
    done = run_starter(tmp_path, str(plan), "--remote", remote, "--dry-run", "--offline")
    assert done.returncode == 0, done.stderr
    assert "Skipped (--offline): the remote's answer, push rights and .autopilot.toml" in (
        done.stdout
    )
    refused = run_starter(
        tmp_path, str(plan), "--remote", "ext::sh", "--dry-run", "--offline", "--json"
    )
    assert_user_error(refused, "names a git remote helper")
    assert refused.stdout == ""  # a refusal is the message on stderr, with --json too


async def test_a_dry_run_asks_temporal_and_starts_nothing(
    tmp_path: Path, repo: Path, client: Client
) -> None:
    plan = write_plan(tmp_path, GOOD_PLAN)
    address = client.service_client.config.target_host
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--dry-run", temporal=address)
    assert done.returncode == 0, done.stderr
    assert f"Temporal: answers at {address}" in done.stdout
    session = next(line for line in done.stdout.splitlines() if line.startswith("Session: "))
    session_id = session.removeprefix("Session: ").split()[0]
    async for _ in client.list_workflows(f"WorkflowId = '{session_id}'"):
        raise AssertionError("the dry run started a session")


def _remote(tmp_path: Path) -> str:
    seed = make_repo(tmp_path / "seed")
    git(tmp_path, "clone", "-q", "--bare", str(seed), str(tmp_path / "remote.git"))
    return (tmp_path / "remote.git").as_uri()


def test_caches_made_aside_are_dropped_unless_adopted(tmp_path: Path) -> None:
    url, state = _remote(tmp_path), tmp_path / "state"
    state.mkdir()
    with CachesAside(state) as aside:
        assert aside.workspaces.read_file(url, "main", "README.md") == b"hello\n"
        folder = aside.workspaces.state_dir
    assert not folder.exists()
    assert list(state.iterdir()) == []  # refused: nothing reached the state dir

    with CachesAside(state) as aside:
        aside.workspaces.read_file(url, "main", "README.md")
        aside.adopt()
    [cache] = (state / CACHES).glob("*.git")
    assert git(cache, "rev-parse", "refs/heads/main") == git(tmp_path / "seed", "rev-parse", "HEAD")
    assert not list((state / CACHES).glob(".making-*"))

    # A cache already there is the worker's: kept as it is.
    marker = cache / "kept"
    marker.write_text("")
    with CachesAside(state) as aside:
        aside.workspaces.read_file(url, "main", "README.md")
        aside.adopt()
    assert marker.exists()


async def test_a_running_session_with_other_settings_is_refused_both_ways(
    tmp_path: Path, repo: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session runs (on a queue no worker polls) with one review round; the same command
    with three is refused by the run and by the dry run alike, naming the difference."""
    plan = write_plan(tmp_path)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    args = starter.parse_command_line([str(plan), "--repo", str(repo), "--review-rounds", "1"])
    request = preflight.validate(args, load_settings())
    handle = await client.start_workflow(
        SessionWorkflow.run, request, id=request.session_id, task_queue=f"none-{uuid4().hex}"
    )
    try:
        address = client.service_client.config.target_host
        answers = []
        for extra in ([], ["--dry-run"]):
            flags = [str(plan), "--repo", str(repo), "--review-rounds", "3", *extra]
            done = run_starter(tmp_path, *flags, temporal=address)
            assert_user_error(done, f"session {request.session_id} is running with other")
            answers.append(done.stderr)
        assert answers[0] == answers[1]
        same = run_starter(
            tmp_path, *[str(plan), "--repo", str(repo), "--review-rounds", "1", "--dry-run"],
            temporal=address,
        )  # fmt: skip
        assert same.returncode == 0, same.stderr
        assert "(running: the run attaches to it)" in same.stdout
    finally:
        await handle.terminate("test over")


def test_a_dry_run_never_starts_the_embedded_server(tmp_path: Path, repo: Path) -> None:
    """Embedded mode with no server running: the dry run says the run would start one, and
    starts none (no process, no database in the state dir)."""
    plan = write_plan(tmp_path)
    env = clean_env()
    env.update(
        AUTOPILOT_STATE_DIR=str(tmp_path / "state"),
        AUTOPILOT_TEMPORAL_PORT=str(free_port()),
        AUTOPILOT_TEMPORAL_UI_PORT=str(free_port()),
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), str(plan), "--repo", str(repo), "--dry-run"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "is not running; the run starts it" in done.stdout
    assert not (tmp_path / "state" / "temporal").exists()
