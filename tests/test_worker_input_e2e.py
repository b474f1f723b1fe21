"""A workflow input is data: a worker checks every repository, path, branch and id in it again,
by the starter's rules, before it runs anything.

Sessions started straight through the Temporal client (no starter to refuse them) with a
hostile input: a remote whose host is an ssh option, a command transport, a state dir outside
the worker's, an id that climbs out of it. A real worker refuses each (InputRefused): no git
ran against the remote (the worker has no cache of it), no file was written outside, the
command in the URL never ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from autopilot.error_types import INPUT_REFUSED
from autopilot.models import SessionRequest, SessionState, SessionStatus
from autopilot_testing import PlanFollower, ScriptedModel
from tests.harness import autopilot
from tests.test_worker_capacity_e2e import plan_of
from workflows.session import SessionWorkflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def refusal(handle: WorkflowHandle[SessionWorkflow, SessionStatus]) -> str:
    """What the session says once the refusal reached it (paused, or failed at its plan)."""
    deadline = asyncio.get_running_loop().time() + 120
    while asyncio.get_running_loop().time() < deadline:
        status = await handle.query(SessionWorkflow.status)
        if status.paused and status.pause_reason:
            return status.pause_reason
        if status.status == SessionState.FAILED:
            return status.error or ""
        await asyncio.sleep(0.2)
    raise AssertionError("timed out waiting for the session to report the refused input")


@pytest.mark.reliability(
    "someone who can start workflows on the task queue sends a hostile session input (an "
    "ssh-option host, ext::, a state dir or an id outside the worker's state dir)",
    "the worker refuses each at the activity boundary (InputRefused, non-retryable): nothing "
    "runs, no git talks to the URL, nothing is written outside its state dir",
)
def test_a_worker_refuses_a_hostile_workflow_input(tmp_path: Path, repo: Path) -> None:
    marker = tmp_path / "owned"
    outside = tmp_path / "outside"
    outside.mkdir()
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        assert installation.starter("list").returncode == 0  # the Temporal server
        installation.start_worker()
        state = str(installation.state_dir.resolve())
        hostile = {
            "option-host": {"repo": f"ssh://-oProxyCommand=touch% {marker}/p.git"},
            "scp-option-host": {"repo": f"-oProxyCommand=touch {marker}:p.git"},
            "ext": {"repo": f"ext::sh -c touch% {marker}"},
            "password": {"repo": "https://me:s3cret@127.0.0.1:9/p.git"},
            "state-outside": {"repo": str(repo), "state_dir": str(outside)},
            "state-climbs": {"repo": str(repo), "state_dir": f"{state}/../../outside"},
            "id-climbs": {"repo": str(repo), "state_dir": state, "session_id": "../../outside"},
        }

        async def run_all() -> dict[str, str]:
            client = await Client.connect(
                installation.address, data_converter=pydantic_data_converter
            )
            said: dict[str, str] = {}
            for name, fields in hostile.items():
                request = SessionRequest.model_validate(
                    {
                        "session_id": f"hostile-{name}-{uuid.uuid4().hex[:6]}",
                        "plan_path": "/plan.md",
                        "plan_text": plan_of(1),
                        "target_branch": "main",
                        "state_dir": "",
                        **fields,
                    }
                )
                handle = await client.start_workflow(
                    SessionWorkflow.run,
                    request,
                    id=f"hostile-{name}-{uuid.uuid4().hex[:6]}",
                    task_queue=installation.env()["AUTOPILOT_TASK_QUEUE"],
                )
                said[name] = await refusal(handle)
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    # Paused, it would wait for a retry; it may also end on its own meanwhile.
                    with contextlib.suppress(RPCError):
                        await handle.terminate("test over")
            return said

        said = asyncio.run(run_all())
        log = installation.worker_log(0).read_text(errors="replace")

    for name, reason in said.items():
        assert "refused the activity input" in reason, (name, reason)
        assert INPUT_REFUSED in reason or "plan:" in reason, (name, reason)
    assert "s3cret" not in said["password"] and "s3cret" not in log
    assert not marker.exists()
    assert list(outside.iterdir()) == []
    # No git ever talked to a hostile URL: this worker made no cache of any remote.
    assert not (installation.state_dir / "remotes").exists()
    assert not (tmp_path / "autopilot" / "outside").exists()
