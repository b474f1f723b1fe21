"""The task workflow decides the task's site once and carries it in every step's input."""

from __future__ import annotations

from temporalio.client import Client

from autopilot.models import TaskSite
from tests.test_workflows import run_task
from tests.workflow_stubs import (
    REPO,
    Stubs,
    check,
    make_task,
    review_settings,
    task_request,
)


async def test_every_step_is_given_the_site_decided_when_the_task_was_prepared(
    client: Client, stubs: Stubs
) -> None:
    stubs.script("run_checks", "1", [check(True, "all green")])
    result = await run_task(
        client, stubs, task_request(make_task("1"), review=review_settings("both"))
    )

    assert result.outcome == "ready", result.error
    (prepare,) = stubs.inputs("prepare_workspace")
    assert prepare.site == TaskSite(
        repo=REPO, kind="local", inside=prepare.site.inside, place="local"
    )
    (agent,) = stubs.inputs("run_agent")
    (checks,) = stubs.inputs("run_checks")
    (reviewer,) = stubs.inputs("review_changes")
    sites = [agent.site, agent.commit.site, checks.site, reviewer.site]
    assert all(site == sites[0] for site in sites), sites
    prepared = sites[0]
    assert (prepared.kind, prepared.workspace) == ("local", result.workspace_path)
    assert prepared.make_again is not None and prepared.make_again.base_sha == result.base_sha
