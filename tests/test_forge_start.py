"""Forge mode at the start: the settings layered (`--forge`, [forge]), its refusals (exit 2,
what to fix, nothing started) and the dry run's lines, one set of checks for both."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

import starter
from autopilot.forge.interface import ForgeDenied, ForgeRefused
from autopilot.git import CachesAside
from autopilot.infra import load_settings
from autopilot.infra.repo_config import RepoReviewConfig
from autopilot.models import ForgeSettings
from autopilot.operate import preflight
from autopilot.operate.dry_run_report import describe_session, dry_run_report
from autopilot.operate.forge_check import ForgeClient, ForgeProblem, forge_settings
from tests.gitutil import commit_file
from tests.test_remote_starter import push_config, served, url
from tests.test_starter import assert_user_error, run_starter, write_plan

__all__ = ["served", "url"]  # the remote's fixtures, used here too


class _Forge:
    """The forge as the starter's check meets it: access granted, or refused so."""

    def __init__(self, refusal: Exception | None) -> None:
        self.refusal = refusal
        self.asked: list[str] = []

    def check_access(self, target_branch: str) -> None:
        self.asked.append(target_branch)
        if self.refusal is not None:
            raise self.refusal


def _client(forge: _Forge, repo: str | None = "octo/project") -> ForgeClient:
    def connect(settings: ForgeSettings, environ: Mapping[str, str]) -> _Forge:
        assert settings.repo == "octo/project"
        return forge

    return ForgeClient(connect=connect, repo_of=lambda url, api: repo)  # type: ignore[arg-type]


def _validate(tmp_path: Path, url: str, client: ForgeClient, *flags: str) -> preflight.Accepted:
    args = starter.parse_command_line([str(write_plan(tmp_path)), "--remote", url, *flags])
    settings = load_settings()
    with CachesAside(settings.state_dir) as aside:
        return preflight.validate_session(
            args, settings, aside, offline=False, forge_client=lambda: client
        )


def test_forge_mode_needs_remote_mode(tmp_path: Path, repo: Path) -> None:
    done = run_starter(
        tmp_path, str(write_plan(tmp_path)), "--repo", str(repo), "--forge", "github"
    )
    assert_user_error(done, "runs on top of remote mode", "--remote URL")


def test_rebase_is_refused_without_a_forge(tmp_path: Path, repo: Path) -> None:
    commit_file(repo, ".autopilot.toml", '[merge]\nstyle = "rebase"\n')
    done = run_starter(tmp_path, str(write_plan(tmp_path)), "--repo", str(repo))
    assert_user_error(done, 'style = "rebase"', "forge mode only", "--forge github")


def test_the_layering_of_flag_and_file() -> None:
    file_cfg = RepoReviewConfig(forge=ForgeSettings(labels=["bot"], rounds=1))
    settings = forge_settings("github", file_cfg, remote=True, merge_style="rebase")
    assert (settings.kind, settings.labels, settings.rounds) == ("github", ["bot"], 1)
    assert not forge_settings(None, file_cfg, remote=False, merge_style="merge").active
    slow = RepoReviewConfig(forge=ForgeSettings(kind="github", poll_s=60, poll_max_s=10))
    with pytest.raises(ForgeProblem, match="poll_max_s"):
        forge_settings(None, slow, remote=True, merge_style="merge")


def test_the_starter_checks_its_token_and_the_target_branch(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(preflight.UserError, match="needs a token"):
        _validate(tmp_path, url, _client(_Forge(None)), "--forge", "github")
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    forge = _Forge(None)
    accepted = _validate(tmp_path, url, _client(forge), "--forge", "github")
    assert accepted.request.forge.repo == "octo/project" and forge.asked == ["main"]
    text = describe_session(dry_run_report(accepted, load_settings()))
    assert "forge: github octo/project (https://api.github.com)" in text
    assert "each task: a pull request once the pipeline's review approves it" in text
    # The request carries no credential: only where the forge is and how to reach it.
    assert "token" not in accepted.request.forge.model_dump_json().lower()

    denied = _Forge(ForgeDenied("401 Bad credentials"))
    with pytest.raises(preflight.UserError, match="GITHUB_TOKEN") as refused:
        _validate(tmp_path, url, _client(denied), "--forge", "github")
    assert "pull requests read/write" in str(refused.value)
    missing = _Forge(ForgeRefused("the branch main does not exist on octo/project"))
    with pytest.raises(preflight.UserError, match="does not exist"):
        _validate(tmp_path, url, _client(missing), "--forge", "github")
    flags = [str(write_plan(tmp_path)), "--remote", url, "--forge", "github"]
    args = starter.parse_command_line(flags)
    settings = load_settings()
    with CachesAside(settings.state_dir) as aside:
        offline = preflight.validate_session(
            args, settings, aside, offline=True, forge_client=lambda: _client(denied)
        )
    assert preflight.SKIPPED_FORGE in offline.skipped and offline.request.forge.repo
    with pytest.raises(preflight.UserError, match=r"\[forge\] repo"):
        _validate(tmp_path, url, _client(forge, repo=None), "--forge", "github")


def test_the_repository_named_in_the_file_wins(
    tmp_path: Path, served: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    push_config(
        tmp_path, served, {".autopilot.toml": '[forge]\nkind = "github"\nrepo = "octo/project"\n'}
    )
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    accepted = _validate(tmp_path, url, _client(_Forge(None), repo="someone/else"))
    assert accepted.request.forge.active and accepted.request.forge.repo == "octo/project"
