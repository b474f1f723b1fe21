"""The forge activities (activities/forge.py) with real git over `git daemon` and an
in-process forge that records what it was asked: the branch is pushed before the pull request
is opened (found again, never opened twice, on a retry), rate limits are waited out
heartbeating, a merged pull request's branch goes, and each kind of forge failure becomes the
error type the workflow decides on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.forge import ForgeActivities, token_env
from autopilot.error_types import FORGE_DENIED, FORGE_REFUSED, FORGE_UNAVAILABLE
from autopilot.forge.interface import (
    ForgeDenied,
    ForgeRateLimited,
    ForgeRefused,
    ForgeUnavailable,
)
from autopilot.models import (
    ForgeGate,
    ForgeMergeResult,
    ForgeSettings,
    GateInput,
    MergeStyle,
    PublishInput,
    PullRequestMergeInput,
    PullRequestRef,
)
from tests.gitutil import commit_file, git
from tests.test_remote_starter import served, url

__all__ = ["served", "url"]  # the remote's fixtures, used here too

SETTINGS = ForgeSettings(kind="github", repo="octo/project", poll_s=0.01, poll_max_s=0.02)
BRANCH = "autopilot/s-1/1"
HEAD = "autopilot-pr/s-1/1"


class _Forge:
    """One repository's pull requests, kept in memory; `fail` raises before the next calls."""

    def __init__(self, bare: Path) -> None:
        self.bare = bare
        self.opened: dict[str, PullRequestRef] = {}
        self.calls: list[str] = []
        self.fail: list[Exception] = []
        self.gates: list[ForgeGate] = []
        self.deleted: list[str] = []

    def _next(self, call: str) -> None:
        self.calls.append(call)
        if self.fail:
            raise self.fail.pop(0)

    def open_pull_request(
        self, head_branch: str, base_branch: str, title: str, body: str, labels: list[str]
    ) -> PullRequestRef:
        self._next("open")
        # The branch is on the forge before the pull request is asked for.
        pushed = git(self.bare, "rev-parse", f"refs/heads/{head_branch}")
        found = self.opened.get(head_branch)
        if found is None:
            number = len(self.opened) + 1
            found = PullRequestRef(
                number=number, url=f"https://github.test/pull/{number}", head_branch=head_branch
            )
            self.opened[head_branch] = found
        return found.model_copy(update={"head_sha": pushed})

    def gate(self, number: int, require_approval: int) -> ForgeGate:
        self._next("gate")
        return self.gates.pop(0)

    def merge(
        self, number: int, expected_head_sha: str, style: MergeStyle, title: str, message: str
    ) -> ForgeMergeResult:
        self._next("merge")
        return ForgeMergeResult(outcome="merged", merge_sha="m" * 40)

    def delete_branch(self, branch: str) -> None:
        self._next("delete")
        self.deleted.append(branch)


def _activities(forge: _Forge) -> ForgeActivities:
    def connect(settings: ForgeSettings) -> _Forge:
        assert settings.repo == "octo/project"
        return forge

    def no_env(settings: ForgeSettings, url: str) -> Mapping[str, str]:
        return {}  # git daemon takes pushes without credentials

    return ForgeActivities(connect, no_env)  # type: ignore[arg-type]


def _task_commit(tmp_path: Path, served: Path, text: str) -> str:
    """A task's work on the remote, where remote mode's agent activity pushes it."""
    clone = tmp_path / "clone"
    if not clone.exists():
        git(tmp_path, "clone", "--quiet", str(served / "project.git"), str(clone))
    sha = commit_file(clone, "task.txt", text)
    git(clone, "push", "--quiet", "origin", f"{sha}:refs/autopilot/s-1/1")
    return sha


def _publish_input(url: str) -> PublishInput:
    return PublishInput(
        forge=SETTINGS,
        repo=url,
        session_id="s-1",
        task_id="1",
        branch=BRANCH,
        head_branch=HEAD,
        target_branch="main",
        title="Task 1: One",
        body="body",
    )


def test_publish_pushes_then_opens_and_a_retry_finds_the_same_pull_request(
    tmp_path: Path, served: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    bare = served / "project.git"
    forge = _Forge(bare)
    first = _task_commit(tmp_path, served, "one\n")
    env = ActivityEnvironment()
    ref = asyncio.run(env.run(_activities(forge).publish, _publish_input(url)))
    assert (ref.number, ref.head_sha) == (1, first)
    assert git(bare, "rev-parse", f"refs/heads/{HEAD}") == first
    # A feedback round's new commit, published again: the same pull request, the new head.
    second = _task_commit(tmp_path, served, "two\n")
    forge.fail = [ForgeRateLimited("secondary rate limit", 0.01)]
    again = asyncio.run(env.run(_activities(forge).publish, _publish_input(url)))
    assert (again.number, again.head_sha) == (1, second)
    assert forge.calls == ["open", "open", "open"] and len(forge.opened) == 1


def test_watch_waits_out_rate_limits_and_returns_the_decision(tmp_path: Path) -> None:
    forge = _Forge(tmp_path)
    pending = ForgeGate(state="open", head_sha="h", mergeable_state="unknown")
    forge.gates = [pending, ForgeGate(state="open", head_sha="h", mergeable_state="clean")]
    forge.fail = [ForgeRateLimited("primary rate limit", 0.01)]
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    request = GateInput(forge=SETTINGS, number=1, head_sha="h")
    verdict = asyncio.run(env.run(_activities(forge).watch, request))
    assert verdict.decision == "merge" and forge.calls == ["gate", "gate", "gate"]
    assert beats  # it heartbeat while it waited


def test_merge_deletes_the_branch_once_merged(tmp_path: Path) -> None:
    forge = _Forge(tmp_path)
    request = PullRequestMergeInput(
        forge=SETTINGS,
        number=1,
        expected_head_sha="h",
        head_branch=HEAD,
        style="squash",
        title="Task 1: One",
        message="m",
    )
    result = asyncio.run(ActivityEnvironment().run(_activities(forge).merge, request))
    assert result.outcome == "merged" and forge.deleted == [HEAD]


@pytest.mark.parametrize(
    ("error", "error_type", "non_retryable"),
    [
        (ForgeDenied("401 Bad credentials"), FORGE_DENIED, True),
        (ForgeRefused("422 Validation Failed"), FORGE_REFUSED, True),
        (ForgeUnavailable("502 Bad Gateway"), FORGE_UNAVAILABLE, False),
    ],
)
def test_forge_failures_become_the_error_types_the_workflow_decides_on(
    tmp_path: Path, error: Exception, error_type: str | None, non_retryable: bool
) -> None:
    forge = _Forge(tmp_path)
    forge.fail = [error]
    request = GateInput(forge=SETTINGS, number=1, head_sha="h")
    with pytest.raises(ApplicationError) as failed:
        asyncio.run(ActivityEnvironment().run(_activities(forge).watch, request))
    assert failed.value.type == error_type and failed.value.non_retryable == non_retryable


def test_the_push_gets_the_worker_s_token_for_the_forge_s_host_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    env = token_env(SETTINGS, "http://127.0.0.1:8123/octo/project.git")
    assert env["GIT_CONFIG_KEY_0"] == "http.http://127.0.0.1:8123/.extraheader"
    assert "t0ken" not in env["GIT_CONFIG_VALUE_0"]  # base64, in git's config, not argv
    assert token_env(SETTINGS, "git@github.com:octo/project.git") == {}  # ssh: the key
