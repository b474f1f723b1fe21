"""The site module decides once where a task runs; the steps read what they are given."""

from __future__ import annotations

from pathlib import Path

import pytest

from autopilot.git.kinds import LOCAL
from autopilot.git.remote import RemoteWorkspaces
from autopilot.models import (
    AgentSettings,
    ChecksInput,
    CommitInput,
    ContainerSettings,
    TargetMergeInput,
    Task,
    TaskRequest,
    VerifyMergeInput,
    WorkspaceOrigin,
)
from autopilot.steps.site import decide, site_of, task_site, workspaces


def request(repo: str, container: ContainerSettings | None = None) -> TaskRequest:
    return TaskRequest(
        session_id="s",
        repo=repo,
        target_branch="main",
        state_dir="/state",
        task=Task(id="1", title="t", body="b", batch=1, line=1),
        agent=AgentSettings(),
        container=container,
    )


def test_a_path_is_local_and_a_url_is_remote() -> None:
    local = decide("/home/me/shop")
    assert (local.kind, local.place, local.inside) == ("local", "local", "/workspace/shop")
    remote = decide("git@example.com:team/shop.git", "dagger")
    assert (remote.kind, remote.place, remote.inside) == ("remote", "dagger", "/workspace/shop")
    assert remote.remote and not local.remote


def test_a_task_with_container_settings_runs_in_a_container() -> None:
    assert task_site(request("/home/me/shop")).place == "local"
    assert task_site(request("/home/me/shop", ContainerSettings())).place == "dagger"


def test_the_prepared_site_says_how_to_make_the_workspace_again() -> None:
    place = WorkspaceOrigin(session_id="s", task_id="1", target_branch="main", base_sha="abc")
    site = decide("ssh://example.com/shop.git").prepared("/state/worktrees/s/1", place)
    assert site.workspace == "/state/worktrees/s/1" and site.make_again == place


def test_a_step_reads_the_site_it_carries_and_decides_only_without_one() -> None:
    carried = decide("git@example.com:team/shop.git")
    commit = CommitInput(
        workspace_path="/w", base_sha="a", session_id="s", task_id="1", message="m", repo="/r"
    )
    assert site_of(commit).kind == "local"  # recorded before: decided from its repository
    assert site_of(commit.model_copy(update={"site": carried})) is carried
    merge = TargetMergeInput(
        workspace_path="/w", target_branch="main", session_id="s", task_id="1", repo="git@h:p.git"
    )
    checks = ChecksInput(workspace_path="/w", checks=[], timeout_s=1, output_dir="/o")
    assert site_of(VerifyMergeInput(merge=merge, checks=checks)).remote


def test_the_workspaces_follow_the_decided_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path))
    assert workspaces(decide("/home/me/shop")) is LOCAL
    assert isinstance(workspaces(decide("git@example.com:team/shop.git")), RemoteWorkspaces)
