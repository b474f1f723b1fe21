"""autopilot/git/input_check.py: what a worker accepts in an activity's input, field by field
(the end-to-end refusal through a real worker is tests/test_worker_input_e2e.py)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autopilot.git import (
    InputRefused,
    RemoteError,
    check_input,
    checked_remote,
    remote_url,
    shown_url,
)
from autopilot.models import (
    AgentInput,
    AgentSettings,
    ChecksInput,
    MergeInput,
    TargetMergeInput,
    Task,
    TaskRequest,
    VerifyMergeInput,
    Workspace,
    WorkspaceInput,
)
from autopilot.steps.site import is_remote

STATE = "/srv/autopilot/state"
URL = "ssh://git@example.com/team/project.git"


def workspace_input(**fields: Any) -> WorkspaceInput:
    values: dict[str, Any] = {
        "repo": "/home/me/project",
        "target_branch": "main",
        "state_dir": STATE,
        "session_id": "project-plan-all-1234abcd",
        "task_id": "1.2a",
    }
    return WorkspaceInput.model_validate({**values, **fields})


def agent_input(repo: str, state_dir: str, path: str, task_id: str = "1") -> AgentInput:
    task = Task(id=task_id, title="t", batch=1, body="", line=1)
    request = TaskRequest(
        session_id="s1",
        repo=repo,
        target_branch="main",
        state_dir=state_dir,
        task=task,
        agent=AgentSettings(),
    )
    workspace = Workspace(path=path, branch="autopilot/s1/1", base_sha="0" * 40)
    return AgentInput(request=request, workspace=workspace)


def test_what_the_starter_gives_is_accepted() -> None:
    check_input(workspace_input())
    check_input(workspace_input(repo=URL, state_dir=""))
    check_input(workspace_input(repo="git@github.com:team/project.git", state_dir=""))
    check_input(workspace_input(repo="file:///srv/git/project.git", state_dir=""))
    check_input(agent_input("/home/me/project", STATE, f"{STATE}/worktrees/s1/1"))
    check_input(agent_input(URL, "", "/another/machine/state/worktrees/s1/1"))
    remote_checks = ChecksInput(
        workspace_path="/w", checks=[], timeout_s=1, output_dir="checks/s1/1/r1", repo=URL
    )
    check_input(remote_checks)
    # Recorded before inputs named their repository: absolute paths of a local session.
    check_input(ChecksInput(workspace_path="/w", checks=[], timeout_s=1, output_dir="/s/checks/x"))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"repo": "ssh://-oProxyCommand=touch% /tmp/x/p.git", "state_dir": ""}, "repo"),
        ({"repo": "-oProxyCommand=touch /tmp/x:p.git", "state_dir": ""}, "repo"),
        ({"repo": "ext::sh -c touch% /tmp/x", "state_dir": ""}, "repo"),
        ({"repo": "https://me:s3cret@example.com/p.git", "state_dir": ""}, "repo"),
        ({"repo": "https://Example.com/p.git/", "state_dir": ""}, "repo"),
        ({"repo": "project"}, "repo"),
        ({"repo": "ftp://me:s3cret@example.com/p.git"}, "repo"),
        ({"repo": "/home/me/../other"}, "repo"),
        ({"state_dir": "state"}, "state_dir"),
        ({"state_dir": f"{STATE}/../elsewhere"}, "state_dir"),
        ({"session_id": "../../x"}, "session_id"),
        ({"session_id": ".hidden"}, "session_id"),
        ({"task_id": "1/../../x"}, "task_id"),
        ({"task_id": "-rf"}, "task_id"),
        ({"task_id": ""}, "task_id"),
        ({"target_branch": "--upload-pack=touch /tmp/x"}, "target_branch"),
        ({"target_branch": "a..b"}, "target_branch"),
        ({"target_branch": "main:refs/heads/x"}, "target_branch"),
        ({"target_branch": "autopilot/s1/1", "repo": URL, "state_dir": ""}, "target_branch"),
    ],
)
def test_a_hostile_field_is_refused(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(InputRefused) as refused:
        check_input(workspace_input(**fields))
    message = str(refused.value)
    assert named in message and "s3cret" not in message


def test_paths_outside_the_state_dir_are_refused() -> None:
    with pytest.raises(InputRefused, match="input's path"):
        check_input(agent_input("/home/me/project", STATE, "/home/me/.ssh"))
    with pytest.raises(InputRefused, match="task id"):
        check_input(agent_input("/home/me/project", STATE, f"{STATE}/worktrees/s1/1", "../x"))
    outside = ChecksInput(
        workspace_path=f"{STATE}/worktrees/s1/1",
        checks=[],
        timeout_s=1,
        output_dir="/etc/cron.d",
        repo="/home/me/project",
        state_dir=STATE,
    )
    with pytest.raises(InputRefused, match="output_dir"):
        check_input(outside)
    climbing = ChecksInput(
        workspace_path="/w", checks=[], timeout_s=1, output_dir="checks/../../../etc", repo=URL
    )
    with pytest.raises(InputRefused, match="output_dir"):
        check_input(climbing)


def test_a_merge_verifications_nested_inputs_are_checked_too() -> None:
    merge = TargetMergeInput(
        workspace_path=f"{STATE}/worktrees/s1/1",
        target_branch="--upload-pack=touch /tmp/owned",
        session_id="s1",
        task_id="1",
    )
    checks = ChecksInput(
        workspace_path=f"{STATE}/worktrees/s1/1",
        checks=[],
        timeout_s=1,
        output_dir="/etc/cron.d",
        repo="/home/me/project",
        state_dir=STATE,
    )
    with pytest.raises(InputRefused, match="target_branch"):
        check_input(VerifyMergeInput(merge=merge, checks=checks))
    safe = merge.model_copy(update={"target_branch": "main"})
    with pytest.raises(InputRefused, match="output_dir"):
        check_input(VerifyMergeInput(merge=safe, checks=checks))


def test_a_merge_of_an_option_is_refused() -> None:
    merge = MergeInput(
        repo=URL,
        target_branch="main",
        branch="--delete",
        session_id="s1",
        task_id="1",
        message="m",
    )
    with pytest.raises(InputRefused, match="branch"):
        check_input(merge)


URL_PARTS = st.sampled_from(
    [
        "ssh://",
        "https://",
        "http://",
        "git://",
        "file://",
        "ext::",
        "fd::",
        "-",
        "-o",
        "@",
        ":",
        "/",
        "//",
        "..",
        "%2d",
        "user",
        "me:pw",
        "host",
        "[::1]",
        "Example.COM",
        ":22",
        "p.git",
        " ",
        "\t",
        "?",
        "#",
        "~",
        "%40",
        "localhost",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(URL_PARTS, min_size=1, max_size=8).map("".join))
def test_what_the_starter_stores_a_worker_accepts(given: str) -> None:
    """Whatever `remote_url` returns is a remote without secrets and not an option, and the
    worker's check takes it as it is: the two never disagree."""
    try:
        stored = remote_url(given)
    except RemoteError:
        return
    assert is_remote(stored) and not stored.startswith("-")
    assert shown_url(stored) == stored  # nothing in it to hide
    assert checked_remote(stored) == stored
    check_input(workspace_input(repo=stored, state_dir=""))


def test_a_remote_verify_merge_without_a_site_is_checked_as_remote() -> None:
    """The session builds verify_merge's input without a site: its checks' workspace is
    another machine's path, as for every remote input."""
    merge = TargetMergeInput(
        workspace_path="/another/machine/worktrees/s1/1",
        target_branch="main",
        session_id="s1",
        task_id="1",
        repo=URL,
    )
    checks = ChecksInput(
        workspace_path="/another/machine/worktrees/s1/1",
        checks=[],
        timeout_s=1,
        output_dir="checks/s1/1/merged-1",
        repo=URL,
        state_dir="",
    )
    check_input(VerifyMergeInput(merge=merge, checks=checks))
