"""`resume --reload-config` on the starter's side: the target's `.autopilot.toml` read as a
start reads it, the session's flags kept over it, and which changes apply or are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.infra import CONFIG_FILE, RepoReviewConfig
from autopilot.models import (
    CheckCommand,
    ContainerSettings,
    NotifySettings,
    ReviewSettings,
    SessionRequest,
)
from autopilot.operate.committed_config import config_from
from autopilot.operate.config_reload import (
    ReloadError,
    TargetConfig,
    read_target_config,
    reloaded_request,
)
from autopilot.operate.session_settings import reload_changes, reload_refusal
from autopilot.plan import PAYLOAD_LIMIT
from tests.git_daemon import git_daemon
from tests.gitutil import commit_file, git, head, isolate_git, make_repo

PINNED = b"""[review]
checks = ["make test"]
reviewer_model = "file-model"

[workspace]
setup = ["make broken-deps"]
"""
HEAD = b"""[review]
checks = ["make test", "make lint"]
reviewer_model = "new-file-model"

[workspace]
setup = ["make deps"]

[sandbox]
network = ["registry.npmjs.org"]
"""


def parsed(text: bytes) -> RepoReviewConfig:
    return config_from(lambda name: text if name == CONFIG_FILE else None, "/repo")


def running_request(**changes: object) -> SessionRequest:
    """A session started from PINNED with `--review checks --check 'make e2e'`."""
    pinned = parsed(PINNED)
    review = ReviewSettings(
        mode="checks",  # the flag: the file leaves it at its default
        checks=[*(pinned.checks or []), CheckCommand(command="make e2e", argv=["make", "e2e"])],
        reviewer_model="file-model",
    )
    base = SessionRequest(
        session_id="s1",
        repo="/repo",
        plan_path="/p.md",
        target_branch="main",
        state_dir="/s",
        review=review,
        workspace=pinned.workspace,
        config_commit="a" * 40,
    )
    return base.model_copy(update=changes)


def test_the_heads_file_replaces_the_pinned_one_under_the_sessions_flags() -> None:
    running = running_request()
    files = TargetConfig(commit="b" * 40, pinned=parsed(PINNED), head=parsed(HEAD))
    reloaded = reloaded_request(running, files)

    assert reloaded.config_commit == "b" * 40
    assert reloaded.review.mode == "checks"  # --review stays over the file
    assert reloaded.review.reviewer_model == "new-file-model"  # the file's, now the new one
    assert [check.command for check in reloaded.review.checks] == [
        "make test",
        "make lint",
        "make e2e",  # --check, after the file's, as a start layers them
    ]
    assert [step.command for step in reloaded.workspace.setup] == ["make deps"]
    assert reloaded.agent.network == ["registry.npmjs.org"]

    applied, fixed = reload_changes(running, reloaded)
    assert fixed == []
    assert any(line.startswith("[workspace] (.autopilot.toml): ") for line in applied)
    assert any(line.startswith("[sandbox] network (.autopilot.toml): [] -> ") for line in applied)
    assert any(line.startswith("--check: ") for line in applied)


def test_a_given_image_stays_over_the_files_container() -> None:
    running = running_request(container=ContainerSettings(image="node:22-slim"))
    head_cfg = parsed(HEAD + b'\n[container]\nimage = "python:3.12-slim"\n')
    files = TargetConfig(commit="b" * 40, pinned=parsed(PINNED), head=head_cfg)
    assert reloaded_request(running, files).container.image == "node:22-slim"


def test_new_notification_targets_are_refused_by_name() -> None:
    running = running_request()
    head_cfg = parsed(HEAD + b'\n[notify]\nnotify = ["https://hooks.example.com/x"]\n')
    files = TargetConfig(commit="b" * 40, pinned=parsed(PINNED), head=head_cfg)
    applied, fixed = reload_changes(running, reloaded_request(running, files))

    assert applied and len(fixed) == 1
    assert fixed[0].startswith("--notify (or [notify] notify, .autopilot.toml): [] -> ")
    message = reload_refusal("s1", "b" * 40, fixed)
    assert message.startswith(
        f"resume --reload-config refused: the .autopilot.toml of {'b' * 12} changes settings"
        " that session s1 cannot change while it runs:\n  --notify"
    )
    assert "Nothing was changed; the session is still paused." in message


def test_the_same_file_changes_nothing() -> None:
    running = running_request(notify=NotifySettings())
    files = TargetConfig(commit="b" * 40, pinned=parsed(PINNED), head=parsed(PINNED))
    assert reload_changes(running, reloaded_request(running, files)) == ([], [])


def test_the_target_head_is_read_from_its_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path / "home")
    repo = make_repo(tmp_path / "repo")
    pinned = commit_file(repo, CONFIG_FILE, PINNED.decode())
    commit_file(repo, CONFIG_FILE, HEAD.decode(), "fix the setup")
    running = running_request(repo=str(repo), config_commit=pinned)

    files = read_target_config(running, tmp_path / "state")
    assert files.commit == head(repo, "main") != pinned
    assert files.pinned.reviewer_model == "file-model"
    assert files.head.network == ["registry.npmjs.org"]

    commit_file(repo, CONFIG_FILE, "[review\n", "a broken file")
    with pytest.raises(ReloadError) as broken:
        read_target_config(running, tmp_path / "state")
    assert str(repo / CONFIG_FILE) in str(broken.value)


def test_a_session_without_its_config_commit_cannot_reload(tmp_path: Path) -> None:
    with pytest.raises(ReloadError, match="started before sessions kept the commit"):
        read_target_config(running_request(config_commit=""), tmp_path)


def test_a_remote_sessions_file_is_read_from_the_remotes_target_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path / "home")
    repo = make_repo(tmp_path / "repo")
    pinned = commit_file(repo, CONFIG_FILE, PINNED.decode())
    served = tmp_path / "served"
    served.mkdir()
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(served / "project.git"))
    fixed = commit_file(repo, CONFIG_FILE, HEAD.decode(), "fix the setup")
    git(repo, "push", "--quiet", str(served / "project.git"), "main")
    commit_file(repo, CONFIG_FILE, "[review\n", "not pushed: the remote's head counts")
    with git_daemon(served) as daemon:
        running = running_request(repo=daemon.url("project.git"), config_commit=pinned)
        files = read_target_config(running, tmp_path / "state")

    assert files.commit == fixed
    assert files.pinned.reviewer_model == "file-model"
    assert files.head.network == ["registry.npmjs.org"]
    assert not (tmp_path / "state").exists()  # its fetches were made aside, and dropped


def test_a_reviewer_prompt_over_the_payload_limit_is_refused() -> None:
    # As a reviewer_prompt_file gives it (the file itself is kept under 1 MiB).
    source = f"/repo/{CONFIG_FILE}"
    huge = parsed(HEAD).model_copy(
        update={"reviewer_prompt": "x" * (PAYLOAD_LIMIT + 1), "source": source}
    )
    files = TargetConfig(commit="b" * 40, pinned=parsed(PINNED), head=huge)
    with pytest.raises(ReloadError) as refused:
        reloaded_request(running_request(), files)
    assert "the reviewer prompt alone is" in str(refused.value)
    assert f"in /repo/{CONFIG_FILE} at {'b' * 12}" in str(refused.value)
    assert str(refused.value).endswith("The session keeps its settings, paused.")
