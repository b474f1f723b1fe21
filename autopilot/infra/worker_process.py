"""Is a worker polling? If not, start one in the background (embedded mode only); and stop a
worker this process started.

`python starter.py plan.md` should just work; the worker it starts is detached, so the session
keeps running when the starter is interrupted or the terminal closes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from autopilot.infra.config import Settings
from autopilot.infra.malloc_arenas import worker_environment
from autopilot.infra.private_files import open_private

WORKER_SCRIPT = Path(__file__).resolve().parents[2] / "worker.py"
WORKER_START_TIMEOUT_S = 90.0


class WorkerStartFailed(Exception):
    """The background worker did not come up; the message carries its log's end."""


async def has_pollers(client: Client, task_queue: str) -> bool:
    found = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return len(found.pollers) > 0


async def ensure_worker(client: Client, settings: Settings, task_queue: str) -> Path | None:
    """Start a background worker unless one polls the queue. Returns its log file if started."""
    if await has_pollers(client, task_queue):
        return None
    log_path = settings.path("logs", f"worker-{time.strftime('%Y%m%d-%H%M%S')}.log")
    with open_private(log_path, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), "--task-queue", task_queue],
            env=worker_environment(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    settings.path("logs", "worker.pid").write_text(f"{worker.pid}\n")
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-10:]
            raise WorkerStartFailed(
                f"the background worker exited with code {worker.returncode}:\n"
                + "\n".join(tail)
                + f"\n(full log: {log_path})"
            )
        if await has_pollers(client, task_queue):
            return log_path
        await asyncio.sleep(0.5)  # polling the server for the worker: bounded by the deadline
    raise WorkerStartFailed(
        f"the background worker did not start polling within {WORKER_START_TIMEOUT_S:.0f}s; "
        f"see {log_path}"
    )


def stop_worker(worker: subprocess.Popen[bytes], grace_s: float) -> None:
    """Stop a worker this process started as an operator would: SIGTERM, which lets it hand
    its runs over, and a kill only when it is still there after `grace_s`."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            worker.kill()
