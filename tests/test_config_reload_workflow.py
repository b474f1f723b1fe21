"""SessionWorkflow's resume_with_config (`starter.py resume --reload-config`), with stand-in
activities: the new settings reach the tasks started after it (retried ones too), running
ones keep theirs, the update is refused unless the session is paused, and the new settings
are carried into the next run when the session continues as new."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from autopilot.error_types import WORKSPACE_SETUP_FAILED
from autopilot.infra import load_settings
from autopilot.models import (
    CheckCommand,
    ChecksInput,
    ConfigReload,
    ContainerSettings,
    NotifySettings,
    SessionState,
    SetupResult,
    TaskState,
    WorkspaceSettings,
)
from autopilot.operate.commands import CommandError, reload_config
from autopilot.operate.preflight import running_request
from tests.test_workflows import status_until, until
from tests.workflow_stubs import (
    CHECK,
    Stubs,
    check,
    make_batch,
    make_plan,
    make_task,
    review_settings,
    start_session,
    worker,
)
from workflows.session import SessionWorkflow

pytestmark = pytest.mark.timeout(60)

BROKEN = CheckCommand(command="make broken", argv=["make", "broken"])
FIXED_CHECK = CheckCommand(command="make fixed", argv=["make", "fixed"])


def reload(
    *, setup: list[CheckCommand], checks: list[CheckCommand], commit: str = "c0ffee" * 6
) -> ConfigReload:
    return ConfigReload(
        config_commit=commit,
        review=review_settings("checks").model_copy(update={"checks": checks}),
        workspace=WorkspaceSettings(setup=setup),
        container=ContainerSettings(),
        network=["example.org"],
        ports=[443],
        changes=["[workspace] (.autopilot.toml): the setup"],
    )


def checks_run(stubs: Stubs) -> list[tuple[str, ChecksInput]]:
    return [(task_id, given) for name, task_id, given in stubs.calls if name == "run_checks"]


def setup_failure(task_id: str) -> ApplicationError:
    failed = SetupResult(commands=[check(False, "helper not found")], error="x")
    return ApplicationError(
        f"workspace setup command `make broken` exited with 1 (Task {task_id})",
        failed.model_dump(mode="json"),
        type=WORKSPACE_SETUP_FAILED,
        non_retryable=True,
    )


async def test_a_reload_retries_the_setup_failure_and_reaches_every_later_task(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.script("set_up_workspace", "1", setup_failure("1"))
    async with worker(client, stubs) as queue:
        handle = await start_session(
            client,
            queue,
            review=review_settings("checks"),
            workspace=WorkspaceSettings(setup=[BROKEN]),
            config_commit="a" * 40,
            notify=NotifySettings(urls=["https://hooks.example.com/autopilot"]),  # a stand-in
        )
        paused = await status_until(handle, lambda s: s.paused, "the setup failure to pause")
        reason = paused.pause_reason or ""
        assert f"`starter.py resume --reload-config {handle.id}`" in reason
        assert "it retries Task 1" in reason
        assert paused.task("1").state == TaskState.FAILED
        told = await until(
            lambda: [
                given.notification
                for given in stubs.inputs("notify")
                if given.notification.event == "session_paused"
            ],
            "the pause to be notified",
        )
        assert told[0].resume_command == f"python starter.py resume --reload-config {handle.id}"

        resumed = await handle.execute_update(
            SessionWorkflow.resume_with_config, reload(setup=[FIXED_CHECK], checks=[CHECK])
        )
        assert not resumed.paused and resumed.config_commit == "c0ffee" * 6
        assert resumed.config_changes == ["[workspace] (.autopilot.toml): the setup"]
        settings = await handle.query(SessionWorkflow.settings)
        assert settings.config_commit == "c0ffee" * 6 and settings.carry is None
        status = await handle.result()

    assert status.status == SessionState.COMPLETED
    assert status.task("1").retries == 1
    setups = stubs.inputs("set_up_workspace")
    assert [run.settings.setup[0].command for run in setups] == [
        "make broken",  # task 1, before the reload
        "make fixed",  # task 1 again, retried by the reload
        "make fixed",  # task 2: it had not started
    ]
    assert {run.network[0] for run in setups[1:]} == {"example.org"}


async def test_a_running_task_keeps_its_settings_and_the_next_gets_the_new(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1"), make_task("2")))
    stubs.hold("1")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, review=review_settings("checks"))
        await until(lambda: stubs.inputs("run_agent", "1"), "task 1's agent to start")
        await handle.execute_update(SessionWorkflow.pause, "to reload")
        await handle.execute_update(
            SessionWorkflow.resume_with_config, reload(setup=[], checks=[FIXED_CHECK])
        )
        stubs.release("1")
        status = await handle.result()

    assert status.status == SessionState.COMPLETED
    ran = {task_id: given.checks for task_id, given in checks_run(stubs)}
    assert ran["1"] == [CHECK]  # started before the reload
    assert ran["2"] == [FIXED_CHECK]


async def test_a_reload_is_refused_unless_the_session_is_paused(
    client: Client, stubs: Stubs
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.hold("1")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, config_commit="a" * 40)
        await until(lambda: stubs.inputs("run_agent", "1"), "task 1's agent to start")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                SessionWorkflow.resume_with_config, reload(setup=[], checks=[FIXED_CHECK])
            )
        assert "the session is not paused" in str(refused.value.cause)
        assert (await handle.query(SessionWorkflow.settings)).config_commit == "a" * 40
        stubs.release("1")
        finished = await handle.result()
        assert finished.config_commit == "a" * 40 and finished.config_changes == []


async def test_reloaded_settings_survive_continue_as_new(client: Client, stubs: Stubs) -> None:
    tasks = [make_task(str(n)) for n in range(1, 31)]
    stubs.plan = make_plan(make_batch(1, *tasks))
    stubs.hold("1")
    async with worker(client, stubs) as queue:
        handle = await start_session(
            client, queue, concurrency=1, history_limit=200, review=review_settings("checks")
        )
        await until(lambda: stubs.inputs("run_agent", "1"), "task 1's agent to start")
        await handle.execute_update(SessionWorkflow.pause, "to reload")
        await handle.execute_update(
            SessionWorkflow.resume_with_config, reload(setup=[], checks=[FIXED_CHECK])
        )
        stubs.release("1")
        status = await handle.result()

    assert status.runs > 1 and status.status == SessionState.COMPLETED
    assert status.config_commit == "c0ffee" * 6
    last = [given.checks for task_id, given in checks_run(stubs) if task_id == "30"]
    assert last == [[FIXED_CHECK]]


async def test_a_second_start_compares_with_the_reloaded_settings(
    client: Client, stubs: Stubs
) -> None:
    """The same command run again after a reload is measured against the settings the
    session now uses, not those of its start: the new file's settings attach quietly."""
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.hold("1")
    async with worker(client, stubs) as queue:
        handle = await start_session(
            client, queue, review=review_settings("checks"), config_commit="a" * 40
        )
        await until(lambda: stubs.inputs("run_agent", "1"), "task 1's agent to start")
        await handle.execute_update(SessionWorkflow.pause, "to reload")
        change = reload(setup=[FIXED_CHECK], checks=[FIXED_CHECK])
        await handle.execute_update(SessionWorkflow.resume_with_config, change)
        running = await running_request(client, handle)
        stubs.release("1")
        await handle.result()

    assert running.config_commit == change.config_commit
    assert running.workspace == change.workspace and running.review == change.review
    assert running.agent.network == ["example.org"]


async def test_the_starter_refuses_a_reload_of_a_session_that_is_not_paused(
    client: Client, stubs: Stubs, tmp_path: Path
) -> None:
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    stubs.hold("1")
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, config_commit="a" * 40)
        await until(lambda: stubs.inputs("run_agent", "1"), "task 1's agent to start")
        out = io.StringIO()
        settings = load_settings({"AUTOPILOT_STATE_DIR": str(tmp_path / "state")})
        with pytest.raises(CommandError) as refused:
            await reload_config(handle, settings, None, out)
        stubs.release("1")
        await handle.result()

    assert str(refused.value) == (
        f"resume --reload-config refused: session {handle.id} is not paused; pause it first "
        f"(python starter.py pause {handle.id}), so that no task starts between the old "
        "settings and the new"
    )
    assert out.getvalue() == ""  # nothing read, nothing shown
