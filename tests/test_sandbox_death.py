"""A sandbox dies with the process that started it (autopilot/agent/sandbox.py): SIGKILLed
while the sandbox is being set up or with its gateway bridge running, it leaves no process of
the sandbox behind, the bridge's socat included."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from autopilot.agent.process_guard import marked
from tests.harness import wait_until

# The worker's part, in a process of its own to be SIGKILLed: a listening socket where its
# egress proxy would be, one sandboxed command behind the gateway, then its own death, at
# once, after `delay` seconds, or once the command runs ("bridge": the bridge is up by then).
STARTER = """
import os, signal, socket, subprocess, sys, time
from pathlib import Path
from autopilot.agent.process_guard import RUN_MARKER, marked
from autopilot.agent.sandbox import Gateway, Layout, detect_sandbox
root, when, marker = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
proxy = socket.socket(socket.AF_UNIX)
proxy.bind(str(root / "egress.sock"))
proxy.listen()
argv = detect_sandbox().wrap(
    ["sleep", "600"],
    Layout(workdir=root, writable=[root / "space"], tmp=root / "tmp"),
    Gateway(root / "egress.sock"),
)
subprocess.Popen(argv, start_new_session=True, env={**os.environ, RUN_MARKER: marker})
if when == "bridge":
    deadline = time.monotonic() + 60
    while not any(
        "sleep" in " ".join(open(f"/proc/{pid}/cmdline").read().split("\\0"))
        for pid in marked(marker)
    ):
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.01)
else:
    deadline = time.monotonic() + float(when)
    while time.monotonic() < deadline:
        pass
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("when", ["0", "0.01", "0.03", "bridge"])
def test_a_sandbox_dies_with_the_process_that_started_it(tmp_path: Path, when: str) -> None:
    marker = uuid.uuid4().hex
    said = tmp_path / "starter.stderr"
    try:
        with said.open("wb") as stderr:  # not a pipe: a sandbox left behind would hold it
            starter = subprocess.run(
                [sys.executable, "-c", STARTER, str(tmp_path), when, marker],
                cwd=Path(__file__).resolve().parent.parent,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                timeout=120,
                check=False,
            )
        assert starter.returncode == -9, said.read_text()
        wait_until(lambda: not marked(marker), 30, "no process of the sandbox left")
    except AssertionError as err:
        raise AssertionError(f"{err}: {[_described(pid) for pid in marked(marker)]}") from None
    finally:
        for pid in marked(marker):
            os.kill(pid, 9)


def _described(pid: int) -> str:
    """A process left behind, and those under it, for the failure's message."""
    try:
        found = psutil.Process(pid)
        tree = [found, *found.children(recursive=True)]
        return "; ".join(
            f"{each.pid} (parent {each.ppid()}, {each.status()}): {' '.join(each.cmdline())[:80]}"
            for each in tree
        )
    except psutil.Error as err:
        return f"{pid} ({err})"
