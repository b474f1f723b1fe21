"""Running the same command again with other settings: what differs, and what can apply."""

from __future__ import annotations

import pytest

from autopilot.models import (
    AgentSettings,
    CheckCommand,
    ContainerSettings,
    ReviewSettings,
    SessionRequest,
    WorkspaceSettings,
)
from autopilot.operate.session_settings import differences, refusal


def request(**changes: object) -> SessionRequest:
    base = SessionRequest(
        session_id="s1", repo="/r", plan_path="/p.md", target_branch="main", state_dir="/s"
    )
    return base.model_copy(update=changes)


def test_the_same_settings_attach_quietly() -> None:
    found = differences(request(), request())
    assert (found.fixed, found.concurrency_note) == ([], "")


def test_another_concurrency_says_how_to_apply_it() -> None:
    found = differences(request(concurrency=1), request(concurrency=3))
    assert found.fixed == []
    assert found.concurrency_note == (
        "note: session s1 runs 1 agent(s) at once, not the 3 of --concurrency; to change it:"
        " python starter.py concurrency s1 3"
    )


@pytest.mark.reliability(
    "the same command again with another --target-branch, --check, agent or budget setting",
    "each setting that cannot apply to the running session is named with both values",
)
def test_settings_that_cannot_change_are_named() -> None:
    wanted = request(
        target_branch="dev",
        agent=AgentSettings(max_turns=5),
        review=ReviewSettings(
            checks=[CheckCommand(command="pytest -q", argv=["pytest", "-q"])],
            check_env=["DATABASE_URL"],
            reviewer_prompt="Be strict.",
        ),
        max_cost_usd=2.0,
    )
    found = differences(request(), wanted)
    assert found.fixed == [
        "  --target-branch: the session runs with 'main', this command gives 'dev'",
        "  --max-turns: the session runs with 40, this command gives 5",
        "  --max-cost-usd: the session runs with None, this command gives 2.0",
        "  --check: the session runs with [], this command gives ['pytest -q']",
        "  check_env (.autopilot.toml): the session runs with [], this command gives"
        " ['DATABASE_URL']",
        "  --reviewer-prompt (flags or .autopilot.toml): this command gives another reviewer"
        " prompt",
    ]
    message = refusal("s1", found.fixed)
    assert message.startswith("session s1 is running with other settings, which cannot change")
    assert message.endswith("Nothing was started.")
    assert "python starter.py cancel s1" in message


def test_another_workspace_table_is_named() -> None:
    wanted = request(workspace=WorkspaceSettings(copy_files=[".env.test"]))
    assert differences(request(), wanted).fixed == [
        "  [workspace] (.autopilot.toml): the session runs with {}, this command gives"
        " {'copy_files': ['.env.test']}",
    ]


def test_other_sandbox_ports_are_named() -> None:
    wanted = request(agent=AgentSettings(ports=[443, 8443]))
    assert differences(request(), wanted).fixed == [
        "  [sandbox] ports (.autopilot.toml): the session runs with [443, 80], this command"
        " gives [443, 8443]",
    ]


def test_another_place_or_image_is_named() -> None:
    wanted = request(
        execution_place="dagger", container=ContainerSettings(image="node:22.12.0-slim")
    )
    assert differences(request(), wanted).fixed == [
        "  --execution-place: the session runs with 'local', this command gives 'dagger'",
        "  --image (or [container], .autopilot.toml): the session runs with {}, this command"
        " gives {'image': 'node:22.12.0-slim'}",
    ]


def test_fresh_and_the_merge_style_cannot_change_while_the_session_runs() -> None:
    found = differences(request(), request(fresh=True, merge_style="squash"))
    assert found.fixed == [
        "  [merge] style (.autopilot.toml): the session runs with 'merge', this command gives "
        "'squash'",
        "  --fresh (for a running session: retry --fresh SESSION TASK): the session runs with "
        "False, this command gives True",
    ]
    # The command that started a fresh run attaches to it again.
    assert differences(request(fresh=True), request(fresh=True)).fixed == []
