"""The embedded Temporal dev server (start, reuse, lock, durability, stop, failures) and the
cluster mode of the starter, against real `temporal server start-dev` processes."""

from __future__ import annotations

import os
import signal
import socket
import socketserver
import sqlite3
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter

from autopilot.infra import (
    Settings,
    TemporalUnavailable,
    connect,
    ensure_embedded_server,
    has_pollers,
    load_settings,
    stop_embedded_server,
    temporal_cli,
    temporal_connection,
)
from autopilot.models import SessionRequest
from tests.gitutil import isolate_git, make_repo
from tests.harness import ROOT, clean_env, free_port, wait_until
from workflows.session import SessionWorkflow

pytestmark = pytest.mark.timeout(120)

PLAN = """\
# Tiny plan

### Task 1: Hello

**Files:**
- Create: `hello.py`

```python
HELLO = 1
```
"""


# -- processes and sockets (Linux /proc) -----------------------------------------------------


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(arg) for arg in raw.split(b"\0") if arg]


def processes_mentioning(text: str) -> list[int]:
    """Live processes with `text` in an argument of their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and any(text in arg for arg in cmdline(int(entry.name))):
            if temporal_connection.process_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def server_pids(settings: Settings) -> list[int]:
    """Live `temporal server start-dev` processes using this state dir's database."""
    db = str(settings.state_dir / "temporal" / "autopilot.db")
    return [pid for pid in processes_mentioning(db) if "start-dev" in cmdline(pid)]


def stop_process(pid: int) -> None:
    """SIGTERM, wait with a deadline, then SIGKILL and wait."""
    for signum, timeout in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        try:
            wait_until(
                lambda: not temporal_connection.process_alive(pid),
                timeout,
                f"process {pid} to exit",
            )
            return
        except AssertionError:
            if signum == signal.SIGKILL:
                raise


def _decode(hex_address: str) -> tuple[str, int]:
    """An address of /proc/net/tcp{,6}: host bytes as little-endian 32-bit words, hex port."""
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    host = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(host) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, host), int(port_hex, 16)


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (host, port) of every TCP socket `pid` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(_decode(fields[1]))
    return found


def non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP connect only picks a route: nothing is sent
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# -- fixtures --------------------------------------------------------------------------------


def settings_for(root: Path, **extra: str) -> Settings:
    env = {
        "HOME": str(root / "home"),
        "AUTOPILOT_STATE_DIR": str(root / "state"),
        "AUTOPILOT_TEMPORAL_PORT": str(free_port()),
        "AUTOPILOT_TEMPORAL_UI_PORT": str(free_port()),
    }
    env.update(extra)
    return load_settings(env)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Settings]:
    """Settings of a fresh installation; every server on its database is stopped after."""
    settings = settings_for(tmp_path)
    try:
        yield settings
    finally:
        stop_embedded_server(settings)
        for pid in server_pids(settings):
            stop_process(pid)


def pid_of(settings: Settings) -> int:
    return int((settings.state_dir / "temporal" / "server.pid").read_text())


def port_of(settings: Settings) -> int:
    return int(settings.temporal_address.rpartition(":")[2])


def session_request(tmp_path: Path, settings: Settings) -> SessionRequest:
    return SessionRequest(
        session_id=f"test-session-{uuid.uuid4().hex[:8]}",
        repo=str(tmp_path / "repo"),
        plan_path=str(tmp_path / "plan.md"),
        target_branch="main",
        state_dir=str(settings.state_dir),
    )


# -- ensure_embedded_server ------------------------------------------------------------------


def test_first_call_starts_a_loopback_server_and_the_second_reuses_it(embedded: Settings) -> None:
    assert ensure_embedded_server(embedded) is True
    pid = pid_of(embedded)
    assert server_pids(embedded) == [pid]
    db = embedded.state_dir / "temporal" / "autopilot.db"
    assert db.is_file()
    assert answers("127.0.0.1", port_of(embedded))
    # a write-ahead log: each commit syncs one file instead of making and deleting a journal
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as database:
        assert database.execute("pragma journal_mode").fetchone() == ("wal",)

    # The Web UI comes up a little after the frontend answers.
    wait_until(
        lambda: ("127.0.0.1", embedded.ui_port) in listening_addresses(pid), 30, "the UI port"
    )
    listening = listening_addresses(pid)
    assert ("127.0.0.1", port_of(embedded)) in listening
    assert {host for host, _ in listening} == {"127.0.0.1"}, listening
    other = non_loopback_address()
    if other is not None:
        assert not answers(other, port_of(embedded))
        assert not answers(other, embedded.ui_port)

    assert ensure_embedded_server(embedded) is False
    assert pid_of(embedded) == pid
    assert server_pids(embedded) == [pid]


@pytest.fixture
def headless(tmp_path: Path) -> Iterator[Settings]:
    """Like `embedded`, with AUTOPILOT_TEMPORAL_UI=off."""
    settings = settings_for(tmp_path, AUTOPILOT_TEMPORAL_UI="off")
    try:
        yield settings
    finally:
        stop_embedded_server(settings)
        for pid in server_pids(settings):
            stop_process(pid)


@pytest.mark.reliability(
    "the embedded server's Web UI is not wanted (AUTOPILOT_TEMPORAL_UI=off); its database "
    "and log hold every task's text",
    "real server: started --headless, nothing on the UI port once it answers; its database "
    "and log 0600 in 0700 folders (umask 022)",
)
async def test_the_ui_can_be_off_and_the_servers_files_are_private(headless: Settings) -> None:
    before = os.umask(0o022)
    try:
        await connect(headless)  # starts the server and waits until its frontend is healthy
    finally:
        os.umask(before)
    pid = pid_of(headless)
    argv = cmdline(pid)
    assert "--headless" in argv and "--ui-port" not in argv
    assert ("127.0.0.1", port_of(headless)) in listening_addresses(pid)
    assert ("127.0.0.1", headless.ui_port) not in listening_addresses(pid)
    assert not answers("127.0.0.1", headless.ui_port)
    assert headless.ui_url == ""

    temporal_dir = headless.state_dir / "temporal"
    files = {path.name: stat.S_IMODE(path.stat().st_mode) for path in temporal_dir.iterdir()}
    assert "autopilot.db" in files and set(files.values()) == {0o600}, files
    log = headless.state_dir / "logs" / "temporal-server.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    for folder in (headless.state_dir, temporal_dir, log.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


@pytest.mark.reliability(
    "starter and worker start the embedded server at the same time",
    "three concurrent calls: exactly one server process",
)
def test_concurrent_calls_start_exactly_one_server(embedded: Settings) -> None:
    barrier = threading.Barrier(3)

    def call() -> bool:
        barrier.wait(timeout=10)
        return ensure_embedded_server(embedded)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = [future.result(timeout=90) for future in [pool.submit(call) for _ in range(3)]]
    assert sorted(results) == [False, False, True]
    assert server_pids(embedded) == [pid_of(embedded)]


# -- stop_embedded_server --------------------------------------------------------------------


def test_stop_waits_until_the_server_is_gone_and_a_restart_works(embedded: Settings) -> None:
    assert ensure_embedded_server(embedded) is True
    pid = pid_of(embedded)

    assert stop_embedded_server(embedded) is True
    assert not temporal_connection.process_alive(pid)  # stopped, not merely signalled
    assert not answers("127.0.0.1", port_of(embedded))
    assert not (embedded.state_dir / "temporal" / "server.pid").exists()
    assert server_pids(embedded) == []

    assert stop_embedded_server(embedded) is False  # nothing runs any more
    assert ensure_embedded_server(embedded) is True  # and the next start starts a new one
    assert pid_of(embedded) != pid


@pytest.mark.reliability(
    "no server running, garbage in server.pid", "stop returns False, raises nothing"
)
def test_stop_with_nothing_started(embedded: Settings) -> None:
    assert stop_embedded_server(embedded) is False
    pid_path = embedded.path("temporal", "server.pid")
    pid_path.write_text("not a pid\n")
    assert stop_embedded_server(embedded) is False


@pytest.mark.reliability(
    "stale server.pid whose pid now belongs to another process",
    "stop signals nothing and removes the stale pid file",
)
def test_stop_never_signals_a_process_that_reused_a_stale_pid(embedded: Settings) -> None:
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        pid_path = embedded.path("temporal", "server.pid")
        pid_path.write_text(f"{bystander.pid}\n")
        assert stop_embedded_server(embedded) is False
        assert bystander.poll() is None
        assert not pid_path.exists()  # the stale pid file is gone
    finally:
        assert bystander.stdin is not None
        bystander.stdin.close()
        try:
            bystander.wait(timeout=10)
        except subprocess.TimeoutExpired:
            bystander.kill()
            bystander.wait(timeout=10)


# -- failures --------------------------------------------------------------------------------


class _HangUp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        pass  # close the connection at once: a port used by something that is not Temporal


@pytest.mark.reliability(
    "Temporal port taken by something that is not Temporal",
    "connect raises TemporalUnavailable naming the address and AUTOPILOT_TEMPORAL_PORT; no "
    "server left",
)
async def test_port_held_by_something_else(tmp_path: Path) -> None:
    with socketserver.TCPServer(("127.0.0.1", 0), _HangUp) as squatter:
        thread = threading.Thread(target=squatter.serve_forever, daemon=True)
        thread.start()
        try:
            port = squatter.server_address[1]
            settings = settings_for(tmp_path, AUTOPILOT_TEMPORAL_PORT=str(port))
            assert ensure_embedded_server(settings) is False  # it answers TCP: looks taken
            assert not (settings.state_dir / "temporal" / "server.pid").exists()
            with pytest.raises(TemporalUnavailable) as caught:
                await connect(settings)
        finally:
            squatter.shutdown()
            thread.join(timeout=10)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "not a Temporal server" in message
    assert "AUTOPILOT_TEMPORAL_PORT" in message  # what to do
    assert server_pids(settings) == []


@pytest.mark.reliability(
    "temporal server exits at start",
    "fake binary: error with exit code and log tail; the lock is released, a second try fails "
    "the same way",
)
def test_server_that_exits_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "fake-temporal"
    script.write_text("#!/bin/sh\necho 'fake server: cannot open the database' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setattr(temporal_connection, "temporal_cli", lambda: script)
    settings = settings_for(tmp_path)

    with pytest.raises(TemporalUnavailable) as caught:
        ensure_embedded_server(settings)
    message = str(caught.value)
    assert "exited with code 1" in message
    assert "fake server: cannot open the database" in message  # the log tail
    assert settings.temporal_address in message
    assert not (settings.state_dir / "temporal" / "server.pid").exists()
    # The lock was released: a second attempt fails the same way instead of hanging.
    with pytest.raises(TemporalUnavailable, match="exited with code 1"):
        ensure_embedded_server(settings)


@pytest.mark.reliability(
    "Web UI port taken", "real server start fails naming the port and AUTOPILOT_TEMPORAL_UI_PORT"
)
def test_ui_port_taken(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        ui_port = held.getsockname()[1]
        settings = settings_for(tmp_path, AUTOPILOT_TEMPORAL_UI_PORT=str(ui_port))
        try:
            with pytest.raises(TemporalUnavailable) as caught:
                ensure_embedded_server(settings)
        finally:
            for pid in server_pids(settings):
                stop_process(pid)
    message = str(caught.value)
    assert str(ui_port) in message and "address already in use" in message
    assert "AUTOPILOT_TEMPORAL_UI_PORT" in message


# -- durability ------------------------------------------------------------------------------


@pytest.mark.reliability(
    "embedded Temporal server SIGKILLed",
    "restart on the same database: the running session workflow is there with the same run id",
)
async def test_workflow_survives_a_server_kill(tmp_path: Path, embedded: Settings) -> None:
    assert ensure_embedded_server(embedded) is True
    client = await connect(embedded)
    assert client.data_converter is pydantic_data_converter
    request = session_request(tmp_path, embedded)
    nobody = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        SessionWorkflow.run, request, id=request.session_id, task_queue=nobody
    )
    run_id = handle.result_run_id
    assert run_id

    old_pid = pid_of(embedded)
    os.kill(old_pid, signal.SIGKILL)
    wait_until(
        lambda: not temporal_connection.process_alive(old_pid), 10, "the killed server to be gone"
    )
    assert not answers("127.0.0.1", port_of(embedded))

    assert ensure_embedded_server(embedded) is True  # a new server on the same database
    assert pid_of(embedded) != old_pid
    assert server_pids(embedded) == [pid_of(embedded)]
    client = await connect(embedded)
    try:
        description = await client.get_workflow_handle(request.session_id).describe()
        assert description.status is not None and description.status.name == "RUNNING"
        assert description.run_id == run_id
        again = await client.start_workflow(
            SessionWorkflow.run,
            request,
            id=request.session_id,
            task_queue=nobody,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert again.result_run_id == run_id
    finally:
        await client.get_workflow_handle(request.session_id).terminate("test over")


# -- cluster mode ----------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A dev server we start ourselves, in memory, standing in for a Temporal cluster."""
    port, ui_port = free_port(), free_port()
    log_path = tmp_path / "cluster.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                str(temporal_cli()),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--ui-port",
                str(ui_port),
                "--headless",
                "--log-level",
                "warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: answers("127.0.0.1", port) or server.poll() is not None,
            60,
            "the cluster's dev server to answer",
        )
        assert server.poll() is None, log_path.read_text(errors="replace")
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


async def test_starter_uses_the_cluster_and_starts_nothing_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: str
) -> None:
    home = tmp_path / "home"
    isolate_git(monkeypatch, home)  # HOME too: no TOML profile of the machine's user
    repo = make_repo(tmp_path / "repo")
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN)
    state_dir = tmp_path / "state"
    embedded_port = free_port()
    queue = f"autopilot-cluster-{uuid.uuid4().hex[:8]}"
    env = clean_env()
    env.update(
        TEMPORAL_ADDRESS=cluster,
        AUTOPILOT_STATE_DIR=str(state_dir),
        AUTOPILOT_TEMPORAL_PORT=str(embedded_port),
        AUTOPILOT_TEMPORAL_UI_PORT=str(free_port()),
        AUTOPILOT_TASK_QUEUE=queue,
        PYTHONUNBUFFERED="1",
    )

    done = subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), str(plan), "--repo", str(repo), "--detach"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    started = [line for line in done.stdout.splitlines() if line.startswith("Started session ")]
    assert len(started) == 1, done.stdout
    session = started[0].rsplit(" ", 1)[1]
    assert "background worker" not in done.stdout

    client = await Client.connect(cluster, data_converter=pydantic_data_converter)
    handle = client.get_workflow_handle(session)
    try:
        description = await handle.describe()
        assert description.status is not None and description.status.name == "RUNNING"
        assert description.task_queue == queue
        # No embedded server: no pid file, no database, no process on the state dir, and
        # nothing on the embedded port.
        assert not (state_dir / "temporal" / "server.pid").exists()
        assert not (state_dir / "temporal" / "autopilot.db").exists()
        assert processes_mentioning(str(state_dir)) == []
        assert not answers("127.0.0.1", embedded_port)
        # No worker auto-started: no pid file and nobody polls the session's queue.
        assert not (state_dir / "logs" / "worker.pid").exists()
        assert not await has_pollers(client, queue)
    finally:
        await handle.terminate("test over")
