"""Container mode up to the engine boundary (autopilot/agent/container*.py).

No container runtime here: the real Dagger SDK talks GraphQL to a stand-in session on a
loopback port (tests/dagger_standin.py), which plays the engine's part for each exec (it
streams the agent's output to the worker's listener as the forwarder would) and each export
(it writes into the host directory). What is asserted is what the SDK sent: the pipeline.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import graphql
import pytest

from autopilot import error_types
from autopilot.agent import (
    ADDRESS_VAR,
    CLI_DOWNLOAD,
    ENGINE_IMAGE,
    FORWARDER_JS,
    FORWARDER_PATH,
    SERVICE_ALIAS,
    SERVICE_PORT,
    STREAM_TOKEN_VAR,
    AgentFailure,
    ContainerFailed,
    EngineAccess,
    EngineLost,
    EngineTimedOut,
    EngineUnavailable,
    StreamListener,
    claude_argv,
    engine_preflight,
)
from autopilot.agent.container import (
    CLI_DIR,
    CONTAINER_CLAUDE,
    MODEL_ALIAS,
    ContainerJob,
    run_check_in_container,
    run_claude_in_container,
)
from autopilot.git import LOCAL
from autopilot.infra import Redactor
from autopilot.models import (
    DEFAULT_CONTAINER_IMAGE,
    AgentProgress,
    AgentSettings,
    CommitInput,
    ContainerSettings,
    WorkspaceInput,
)
from tests.dagger_standin import Container, Directory, ExecResult, StandIn
from tests.gitutil import git, isolate_git, make_repo, write
from tests.harness import free_port, wait_until

KEY = "sk-ant-standin-0123456789abcdef"
SESSION = "4f9d7a52-8a56-4d0a-9d1c-5b0c8d1e2f30"
PROMPT = "Do task 1: write feature.txt"
INSIDE = "/workspace/repo"  # the workspace's fixed path (TaskSite.inside, steps/site.py)


def events(cost: float = 0.25) -> list[bytes]:
    """A short stream-json run: init, two assistant turns, the result."""
    lines: list[dict[str, Any]] = [
        {"type": "system", "subtype": "init", "session_id": SESSION},
        {"type": "assistant", "message": {"id": "m1", "usage": {"output_tokens": 3}}},
        {"type": "assistant", "message": {"id": "m2", "usage": {"output_tokens": 4}}},
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "num_turns": 2,
            "total_cost_usd": cost,
            "result": "done",
        },
    ]
    return [json.dumps(line).encode() + b"\n" for line in lines]


def stream_to_worker(container: Container, lines: list[bytes]) -> socket.socket:
    """What the forwarder does inside: connect to the worker's listener through the bound
    host service, say the run's token, then write the agent's stdout."""
    bindings = [a["service"] for a in container.op("withServiceBinding")]
    services = [container.engine.objects[b] for b in bindings]
    ours = [s for s in services if s.ports[0]["frontend"] == SERVICE_PORT]  # type: ignore[attr-defined]
    port = ours[0].ports[0]["backend"]  # type: ignore[attr-defined]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(container.secret(STREAM_TOKEN_VAR).plaintext.encode() + b"\n")
    for line in lines:
        sock.sendall(line)
    return sock


@pytest.fixture
def standin() -> Iterator[StandIn]:
    engine = StandIn().start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(autouse=True)
def _no_session_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runs connect only through the EngineAccess given: the process's own variables,
    and the SDK's provisioning (a download), must play no part."""
    for name in ("DAGGER_SESSION_PORT", "DAGGER_SESSION_TOKEN", "_EXPERIMENTAL_DAGGER_CLI_BIN"):
        monkeypatch.delenv(name, raising=False)


def access(engine: StandIn) -> EngineAccess:
    return EngineAccess(port=engine.port, token=engine.token)


def fast(**overrides: Any) -> ContainerSettings:
    return ContainerSettings(**({"engine_timeout_s": 20.0} | overrides))


async def run(
    engine: StandIn,
    tmp_path: Path,
    *,
    job: ContainerJob | None = None,
    settings: ContainerSettings | None = None,
    env: dict[str, str] | None = None,
    idle_timeout_s: float = 30.0,
    run_timeout_s: float = 60.0,
    on_progress: Callable[[AgentProgress], None] = lambda _p: None,
) -> Any:
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return await run_claude_in_container(
        access(engine),
        settings or fast(),
        job or ContainerJob(workspace=workspace, inside=INSIDE),
        claude_argv(CONTAINER_CLAUDE, AgentSettings(), SESSION),
        env=env if env is not None else {"ANTHROPIC_API_KEY": KEY, "PATH": "/usr/bin"},
        prompt=PROMPT,
        session_id=SESSION,
        transcript=tmp_path / "transcripts" / "run.jsonl",
        idle_timeout_s=idle_timeout_s,
        run_timeout_s=run_timeout_s,
        on_progress=on_progress,
        redactor=Redactor.from_env({"ANTHROPIC_API_KEY": KEY}),
    )


# ------------------------------------------------------------------------------------------
# The pipeline of one run
# ------------------------------------------------------------------------------------------


async def test_one_run_is_the_pipeline_the_issue_asks_for(
    standin: StandIn,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="gql.transport.httpx")
    workspace, objects, home = tmp_path / "workspace", tmp_path / "objects", tmp_path / "home"
    for folder in (workspace, objects, home):
        folder.mkdir()
    first_turn_seen = threading.Event()
    progress: list[AgentProgress] = []

    def on_progress(update: AgentProgress) -> None:
        progress.append(update)
        if update.turns == 1:
            first_turn_seen.set()

    def engine_exec(container: Container) -> ExecResult:
        lines = events()
        with stream_to_worker(container, lines[:2]) as sock:
            # Streamed, not buffered: the worker reads turn 1 while the exec still runs.
            assert first_turn_seen.wait(20), "the worker never saw the first turn mid-run"
            for line in lines[2:]:
                sock.sendall(line)
        return ExecResult(0, b"".join(lines).decode(), "")

    standin.on_exec = engine_exec
    state, _duration = await run(
        standin,
        tmp_path,
        job=ContainerJob(workspace=workspace, inside=INSIDE, objects=objects, home=home),
        env={
            "ANTHROPIC_API_KEY": KEY,
            "PATH": "/home/me/bin:/usr/bin",
            "HOME": "/home/me",
            "LANG": "C.UTF-8",
            "UNRELATED": "left out",
        },
        on_progress=on_progress,
    )

    assert state.result is not None and state.result["total_cost_usd"] == 0.25
    assert [p.turns for p in progress] == [0, 1, 2, 2]
    assert all(record.authorized for record in standin.queries)

    [ran] = standin.executed()
    ops = [(op.name, op.args) for op in ran.ops]
    names = [name for name, _ in ops]
    # The image, git, and the pinned CLI from the project's package files.
    assert ops[0] == ("from", {"address": DEFAULT_CONTAINER_IMAGE})
    assert ops[1] == ("withExec", {"args": ["apt-get", "update"]})
    assert ops[2] == (
        "withExec",
        {"args": ["apt-get", "install", "-y", "--no-install-recommends", "git", "ca-certificates"]},
    )
    new_files = {a["path"]: a["contents"] for a in ran.op("withNewFile")}
    root = Path(__file__).resolve().parents[1] / "tools" / "claude-code"
    assert new_files[f"{CLI_DIR}/package.json"] == (root / "package.json").read_text()
    assert new_files[f"{CLI_DIR}/package-lock.json"] == (root / "package-lock.json").read_text()
    assert new_files[FORWARDER_PATH] == FORWARDER_JS
    assert {"args": ["npm", "ci", "--no-audit", "--no-fund"]} in ran.op("withExec")
    # The mounts: the workspace and the agent's home, owned by the user; the objects read-only.
    [mounted] = ran.op("withMountedDirectory")
    assert mounted["path"] == str(objects) and mounted["readOnly"] is True
    assert _source(standin, mounted) == str(objects)
    dirs = {a["path"]: (a["owner"], _source(standin, a)) for a in ran.op("withDirectory")}
    assert dirs == {INSIDE: ("node", str(workspace)), "/home/node": ("node", str(home))}
    # The user and workdir come after everything root had to do.
    user_at = names.index("withUser")
    assert ran.op("withUser") == [{"name": "node"}]
    assert names[user_at + 1] == "withWorkdir" and ops[user_at + 1][1] == {"path": INSIDE}
    assert user_at > max(i for i, n in enumerate(names) if n in ("withDirectory", "withNewFile"))
    # The environment: the local run's, with the container's own PATH and HOME.
    env = ran.env()
    assert "ANTHROPIC_API_KEY" not in env and "UNRELATED" not in env
    assert env["HOME"] == "/home/node" and env["USER"] == "node" and env["LANG"] == "C.UTF-8"
    assert env["PATH"].split(":")[0] == str(CONTAINER_CLAUDE.parent)
    assert "/home/me" not in env["PATH"]
    assert env["CLAUDE_CODE_MAX_RETRIES"] == "2" and env["TERM"] == "dumb"
    assert env[ADDRESS_VAR] == f"{SERVICE_ALIAS}:{SERVICE_PORT}"
    # The credential: a secret, by reference.
    secret = ran.secret("ANTHROPIC_API_KEY")
    assert secret.plaintext == KEY
    with_secret = [q for q in standin.pipeline() if "withSecretVariable" in q]
    assert with_secret and all(f'secret: "{secret._id}"' in q for q in with_secret)
    holding = [q for q in standin.pipeline() if KEY in q]
    assert len(holding) == 1 and "setSecret" in holding[0]
    # The exec: the local argv under the forwarder, the prompt on stdin.
    [agent_exec] = [a for a in ran.op("withExec") if a["args"][0] == "node"]
    assert agent_exec == {
        "args": ["node", FORWARDER_PATH, *claude_argv(CONTAINER_CLAUDE, AgentSettings(), SESSION)],
        "stdin": PROMPT,
        "expect": "ANY",
    }
    # The exports: the workspace and the home, exactly (wipe), to their host paths.
    exported = [(d.container is ran, d.source, path, wipe) for d, path, wipe in standin.exports]
    assert exported == [
        (True, INSIDE, str(workspace), True),
        (True, "/home/node", str(home), True),
    ]
    # No log and no file of the run holds the credential.
    transcript = tmp_path / "transcripts" / "run.jsonl"
    assert transcript.read_bytes() == b"".join(events())
    assert KEY not in transcript.with_suffix(".stderr").read_text()
    captured = capfd.readouterr()
    assert KEY not in caplog.text + captured.out + captured.err
    assert "setSecret" not in caplog.text  # gql's request bodies never reach a log


def _source(engine: StandIn, args: dict[str, Any]) -> str:
    found = engine.objects[args["source"]]
    assert isinstance(found, Directory)
    return found.source


async def test_a_model_on_the_worker_loopback_is_reached_through_a_host_service(
    standin: StandIn, tmp_path: Path
) -> None:
    standin.on_exec = lambda _c: ExecResult(0, b"".join(events()).decode(), "")
    env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "http://127.0.0.1:8099/v1"}
    await run(standin, tmp_path, env=env)
    [ran] = standin.executed()
    assert ran.env()["ANTHROPIC_BASE_URL"] == f"http://{MODEL_ALIAS}:8099/v1"
    bindings = {a["alias"]: standin.objects[a["service"]] for a in ran.op("withServiceBinding")}
    model = bindings[MODEL_ALIAS]
    assert model.ports == [{"backend": 8099, "frontend": 8099}]  # type: ignore[attr-defined]
    assert model.host == "127.0.0.1"  # type: ignore[attr-defined]


async def test_without_the_stream_the_output_is_read_from_the_exec(
    standin: StandIn, tmp_path: Path
) -> None:
    # The forwarder could not reach the worker: the exec's buffered stdout has everything.
    standin.on_exec = lambda _c: ExecResult(0, b"".join(events(0.5)).decode(), "")
    state, _ = await run(standin, tmp_path)
    assert state.result is not None and state.result["total_cost_usd"] == 0.5
    assert len(state.message_ids) == 2


async def test_a_failed_agent_is_classified_as_locally(standin: StandIn, tmp_path: Path) -> None:
    standin.on_exec = lambda _c: ExecResult(1, events()[0].decode(), "boom: " + KEY)
    with pytest.raises(AgentFailure) as caught:
        await run(standin, tmp_path)
    assert caught.value.kind == "no_result"
    assert KEY not in str(caught.value)
    assert "[redacted ANTHROPIC_API_KEY]" in str(caught.value)


async def test_an_agent_killed_inside_is_killed_not_failed(
    standin: StandIn, tmp_path: Path
) -> None:
    def killed(container: Container) -> ExecResult:
        [agent] = [a["args"] for a in container.op("withExec") if a["args"][0] == "node"]
        raise graphql.GraphQLError(
            "process exited with 137",
            extensions={
                "_type": "EXEC_ERROR",
                "cmd": agent,
                "exitCode": 137,
                "stdout": events()[0].decode(),
                "stderr": "",
            },
        )

    standin.on_exec = killed
    with pytest.raises(AgentFailure) as caught:
        await run(standin, tmp_path)
    assert caught.value.kind == "killed"
    assert standin.exports == []  # a killed exec has no files to bring back


async def test_an_image_that_cannot_be_built_is_a_setup_error(
    standin: StandIn, tmp_path: Path
) -> None:
    def no_image(_container: Container) -> ExecResult:
        raise graphql.GraphQLError("pull access denied for nosuch/image")

    standin.on_exec = no_image
    with pytest.raises(ContainerFailed) as caught:
        await run(standin, tmp_path, settings=fast(image="nosuch/image:1"))
    assert "pull access denied" in str(caught.value)
    assert caught.value.error_type == error_types.CONTAINER_SETUP
    assert error_types.CONTAINER_SETUP in error_types.SETUP_ERRORS


# ------------------------------------------------------------------------------------------
# Timeouts, cancellation, a lost engine
# ------------------------------------------------------------------------------------------


async def test_an_engine_call_that_never_answers_ends_at_its_timeout(
    standin: StandIn, tmp_path: Path
) -> None:
    standin.on_exec = lambda _c: ExecResult(0, b"".join(events()).decode(), "")
    standin.hang_on = lambda query: "export" in query
    started = time.monotonic()
    with pytest.raises(EngineTimedOut) as caught:
        await run(standin, tmp_path, settings=fast(engine_timeout_s=1.0))
    assert time.monotonic() - started < 15
    assert "exporting the workspace within 1s" in str(caught.value)
    assert caught.value.error_type in error_types.LOST_RUN
    # The call was abandoned: its connection closed.
    wait_until(lambda: standin.aborted, 10, "the stand-in to see the export call abandoned")


async def test_a_silent_agent_is_hung_and_its_container_stopped(
    standin: StandIn, tmp_path: Path
) -> None:
    standin.hang_on = lambda query: "sync" in query
    with pytest.raises(AgentFailure) as caught:
        await run(standin, tmp_path, idle_timeout_s=1.0)
    assert caught.value.kind == "hung"
    wait_until(lambda: standin.aborted, 10, "the stand-in to see the run's call abandoned")


async def test_a_run_past_its_limit_is_the_agents_timeout(standin: StandIn, tmp_path: Path) -> None:
    standin.hang_on = lambda query: "sync" in query
    with pytest.raises(AgentFailure) as caught:
        await run(standin, tmp_path, run_timeout_s=1.0)
    assert caught.value.kind == "timeout"  # the agent's limit: AgentTimedOut, as locally
    assert "longer than its 1s limit" in str(caught.value)
    wait_until(lambda: standin.aborted, 10, "the run's call to be closed")


async def test_cancelling_the_run_closes_the_session(standin: StandIn, tmp_path: Path) -> None:
    import asyncio

    standin.hang_on = lambda query: "sync" in query
    task = asyncio.create_task(run(standin, tmp_path))
    deadline = time.monotonic() + 20
    while not standin.in_flight:
        assert time.monotonic() < deadline, "the run never reached its exec"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The engine sees its client go: that is what stops the container.
    wait_until(lambda: standin.aborted == standin.in_flight, 10, "the exec's call to be closed")
    assert standin.exports == []


async def test_a_lost_connection_is_a_lost_run(standin: StandIn, tmp_path: Path) -> None:
    standin.drop_on = lambda query: "sync" in query
    with pytest.raises(EngineLost) as caught:
        await run(standin, tmp_path)
    assert caught.value.error_type == error_types.RUN_LOST
    assert error_types.RUN_LOST in error_types.LOST_RUN
    assert f"127.0.0.1:{standin.port}" in str(caught.value)


async def test_an_engine_gone_before_the_run_is_lost_too(tmp_path: Path) -> None:
    gone = StandIn(port=free_port())  # never started: nothing listens
    with pytest.raises(EngineLost):
        await run(gone, tmp_path)


async def test_a_wrong_session_token_is_refused(standin: StandIn, tmp_path: Path) -> None:
    wrong = StandIn(token="not-the-token", port=standin.port)
    with pytest.raises(EngineLost):
        await run(wrong, tmp_path)
    assert standin.queries and not any(r.authorized for r in standin.queries)


# ------------------------------------------------------------------------------------------
# Export, then commit on the host
# ------------------------------------------------------------------------------------------


async def test_the_exported_workspace_is_committed_on_the_host(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate_git(monkeypatch, tmp_path / "githome")
    repo = make_repo(tmp_path / "repo")
    start = WorkspaceInput(
        repo=str(repo), target_branch="main", state_dir=str(tmp_path / "state"),
        session_id="sess-c", task_id="1",
    )  # fmt: skip
    ws = LOCAL.prepare(start)
    inside: dict[str, Path] = {}

    def engine_exec(container: Container) -> ExecResult:
        # The container's copy of the workspace, where the agent works.
        copy = tmp_path / "in-container"
        shutil.copytree(ws.path, copy, symlinks=True)
        write(copy, "feature.txt", "from the agent\n")
        (copy / "README.md").unlink()
        inside[INSIDE] = copy
        return ExecResult(0, b"".join(events()).decode(), "")

    def engine_export(directory: Directory, path: str, wipe: bool) -> None:
        assert wipe
        shutil.rmtree(path)
        shutil.copytree(inside[directory.source], path, symlinks=True)

    standin.on_exec, standin.on_export = engine_exec, engine_export
    job = ContainerJob(
        workspace=Path(ws.path), inside=INSIDE, objects=LOCAL.shared_objects(str(repo))
    )
    await run(standin, tmp_path, job=job)

    commit = CommitInput(
        workspace_path=ws.path, base_sha=ws.base_sha, session_id="sess-c", task_id="1",
        message="Task 1", repo=str(repo),
    )  # fmt: skip
    done = LOCAL.commit(commit)
    assert done.committed_leftovers and not done.no_changes
    changed = git(repo, "diff", "--name-status", ws.base_sha, done.head_sha)
    assert changed.splitlines() == ["D\tREADME.md", "A\tfeature.txt"]
    assert git(repo, "show", f"{done.head_sha}:feature.txt") == "from the agent"


# ------------------------------------------------------------------------------------------
# A check in the same image
# ------------------------------------------------------------------------------------------


async def test_a_check_runs_in_the_agents_image(standin: StandIn, tmp_path: Path) -> None:
    standin.on_exec = lambda _c: ExecResult(1, "1 failed\n", "token " + KEY + "\n")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    result = await run_check_in_container(
        access(standin),
        fast(),
        workspace,
        ["pytest", "-q"],
        inside=INSIDE,
        command="pytest -q",
        env={"LANG": "C.UTF-8", "DB_PASSWORD": KEY},
        timeout_s=30,
        output_path=tmp_path / "checks" / "check-1.log",
        redactor=Redactor.from_env({"DB_PASSWORD": KEY}),
    )
    assert not result.passed and result.exit_code == 1 and not result.timed_out
    assert "1 failed" in result.output_tail and KEY not in result.output_tail
    assert KEY not in (tmp_path / "checks" / "check-1.log").read_text()
    [ran] = standin.executed()
    assert ran.op("from") == [{"address": DEFAULT_CONTAINER_IMAGE}]
    assert ran.op("withExec")[-1] == {"args": ["pytest", "-q"], "expect": "ANY"}
    assert ran.op("withUser") == [{"name": "node"}]
    assert ran.op("withWorkdir")[-1] == {"path": INSIDE}  # the sandbox's fixed path
    assert "DB_PASSWORD" not in ran.env() and ran.secret("DB_PASSWORD").plaintext == KEY
    assert standin.exports == []  # a check's writes stay in its container


async def test_a_check_past_its_timeout_is_timed_out(standin: StandIn, tmp_path: Path) -> None:
    standin.hang_on = lambda query: "sync" in query
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    result = await run_check_in_container(
        access(standin),
        fast(),
        workspace,
        ["sleep", "100"],
        inside=INSIDE,
        command="sleep 100",
        env={},
        timeout_s=1.0,
        output_path=tmp_path / "check.log",
    )
    assert result.timed_out and result.exit_code is None and not result.passed
    wait_until(lambda: standin.aborted, 10, "the check's call to be closed")


# ------------------------------------------------------------------------------------------
# Preflight
# ------------------------------------------------------------------------------------------


def test_preflight_without_any_engine_says_how_to_provide_one(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as caught:
        engine_preflight({"PATH": str(tmp_path)})
    message = str(caught.value)
    assert "no dagger CLI on PATH" in message
    assert "_EXPERIMENTAL_DAGGER_RUNNER_HOST" in message and "dagger run" in message
    assert CLI_DOWNLOAD in message and ENGINE_IMAGE in message  # what the SDK would fetch
    assert CLI_DOWNLOAD.startswith("https://dl.dagger.io/dagger/releases/0.21.11/")
    assert ENGINE_IMAGE == "registry.dagger.io/engine:v0.21.11"


def test_preflight_with_a_session_port_nobody_answers(tmp_path: Path) -> None:
    port = free_port()
    env = {"DAGGER_SESSION_PORT": str(port), "DAGGER_SESSION_TOKEN": "t", "PATH": str(tmp_path)}
    with pytest.raises(EngineUnavailable) as caught:
        engine_preflight(env, probe_timeout_s=1.0)
    assert f"nothing answers on 127.0.0.1:{port}" in str(caught.value)


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"DAGGER_SESSION_PORT": "8080"}, "DAGGER_SESSION_TOKEN is not"),
        ({"DAGGER_SESSION_PORT": "eighty", "DAGGER_SESSION_TOKEN": "t"}, "not a port number"),
        ({"DAGGER_SESSION_PORT": "70000", "DAGGER_SESSION_TOKEN": "t"}, "not a port number"),
    ],
)
def test_preflight_refuses_half_a_session(env: dict[str, str], said: str) -> None:
    with pytest.raises(EngineUnavailable, match=said):
        engine_preflight(env)


def test_preflight_finds_a_live_session(standin: StandIn) -> None:
    env = {"DAGGER_SESSION_PORT": str(standin.port), "DAGGER_SESSION_TOKEN": standin.token}
    assert engine_preflight(env) == EngineAccess(port=standin.port, token=standin.token)


def test_preflight_finds_a_dagger_cli_on_path(tmp_path: Path) -> None:
    cli = tmp_path / "bin" / "dagger"
    cli.parent.mkdir()
    cli.write_text("#!/bin/sh\nexit 0\n")
    cli.chmod(0o755)
    found = engine_preflight({"PATH": f"{tmp_path / 'empty'}{os.pathsep}{cli.parent}"})
    assert found == EngineAccess(cli=cli)
    assert "may pull registry.dagger.io/engine:v0.21.11" in found.describe()


# ------------------------------------------------------------------------------------------
# The forwarder, for real under this machine's node
# ------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on this machine")
async def test_the_forwarder_streams_the_commands_stdout_and_keeps_its_exit(
    tmp_path: Path,
) -> None:
    import asyncio

    forwarder = tmp_path / "stream-stdout.mjs"
    forwarder.write_text(FORWARDER_JS)
    agent = tmp_path / "agent.py"
    # Prints a line, waits for the worker to have it (a file the test writes), then ends.
    agent.write_text(
        "import pathlib, sys, time\n"
        "sys.stdout.write(sys.stdin.read().upper() + '\\n'); sys.stdout.flush()\n"
        f"gate = pathlib.Path({str(tmp_path / 'gate')!r})\n"
        "deadline = time.monotonic() + 20\n"
        "while not gate.exists() and time.monotonic() < deadline: time.sleep(0.05)\n"
        "print('second'); sys.exit(3)\n"
    )
    async with StreamListener() as listener:
        env = {
            "PATH": os.environ["PATH"],
            ADDRESS_VAR: f"127.0.0.1:{listener.port}",
            STREAM_TOKEN_VAR: listener.token,
        }
        process = await asyncio.create_subprocess_exec(
            "node", str(forwarder), "python3", str(agent),
            env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stdin is not None
        process.stdin.write(b"hello")
        process.stdin.close()
        first = await asyncio.wait_for(listener.lines.get(), 20)
        assert first == b"HELLO\n"  # streamed while the command still runs
        (tmp_path / "gate").touch()
        stdout, _ = await asyncio.wait_for(process.communicate(), 20)
        assert await asyncio.wait_for(listener.lines.get(), 20) == b"second\n"
        assert await asyncio.wait_for(listener.lines.get(), 20) is None
    assert process.returncode == 3
    assert stdout == b"HELLO\nsecond\n"  # the exec's buffered stdout has it all too


async def test_the_listener_takes_only_the_runs_token() -> None:
    import asyncio

    async with StreamListener() as listener:
        _, intruder = await asyncio.open_connection("127.0.0.1", listener.port)
        intruder.write(b"guess\n" + events()[0])
        await intruder.drain()
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(listener.token.encode() + b"\n" + events()[0])
        writer.close()
        assert await asyncio.wait_for(listener.lines.get(), 10) == events()[0]
        assert await asyncio.wait_for(listener.lines.get(), 10) is None
        intruder.close()
        assert await reader.read() == b""


async def test_a_dagger_cli_on_path_opens_the_session_and_nothing_is_downloaded(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI preflight found is the one the SDK runs (`dagger session`), not one it fetches:
    a stand-in CLI answers with the stand-in engine's port and token, as the real one does on
    its stdout, and ends when the run closes its stdin."""
    import dagger.provisioning._download as download

    def no_download(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the SDK tried to download a dagger CLI")

    monkeypatch.setattr(download.Downloader, "get", no_download)
    monkeypatch.setattr(download.Downloader, "get_sync", no_download)
    cli = tmp_path / "bin" / "dagger"
    cli.parent.mkdir()
    closed = tmp_path / "session-closed"
    cli.write_text(
        f"#!{shutil.which('python3')}\n"
        "import json, pathlib, sys\n"
        "assert sys.argv[1] == 'session', sys.argv\n"
        f"print(json.dumps({{'port': {standin.port}, 'session_token': {standin.token!r}}}),"
        " flush=True)\n"
        "sys.stdin.read()\n"
        f"pathlib.Path({str(closed)!r}).touch()\n"
    )
    cli.chmod(0o755)
    found = engine_preflight({"PATH": str(cli.parent)})
    assert found.cli == cli
    standin.on_exec = lambda _c: ExecResult(0, b"".join(events()).decode(), "")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    state, _ = await run_claude_in_container(
        found,
        fast(),
        ContainerJob(workspace=workspace, inside=INSIDE),
        claude_argv(CONTAINER_CLAUDE, AgentSettings(), SESSION),
        env={"ANTHROPIC_API_KEY": KEY},
        prompt=PROMPT,
        session_id=SESSION,
        transcript=tmp_path / "run.jsonl",
        idle_timeout_s=30,
        run_timeout_s=60,
        on_progress=lambda _p: None,
    )
    assert state.result is not None
    assert standin.executed() and all(r.authorized for r in standin.queries)
    assert closed.exists()  # the session ended with the run
