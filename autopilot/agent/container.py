"""One agent run, or one check, in a Dagger container (container mode, issue 18).

The container: the configured base image, git from apt-get, the Claude Code CLI pinned by
tools/claude-code's package.json and package-lock.json (`npm ci`), the task's workspace as a
directory at the sandbox's fixed path, `/workspace/<repository name>` (with the user's object
store, which the workspace reads through `alternates`, at its own path), then the non-root
user, the agent's environment as plain variables and its credentials as Dagger secrets only.
The agent's argv is the local mode's (`claude_argv`), its prompt on stdin, its stdout streamed
back as it comes (autopilot/agent/container_stream.py) and read by the same stream-json rules
as a local run (autopilot/agent/runner.py). After the run the workspace is exported back over
the host's (exactly: files the agent deleted are deleted), and the pipeline checks and
commits it there as it does a local one.

A credential reaches the engine once, in its `setSecret` call; every other query names it by
the secret's id, and nothing here logs a value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Unpack

import dagger
import structlog

from autopilot.agent import container_stream as stream
from autopilot.agent.cli import PROJECT_ROOT, agent_environment, model_route
from autopilot.agent.container_access import ContainerFailed, EngineAccess, EngineTimedOut
from autopilot.agent.container_engine import engine_call, engine_session
from autopilot.agent.runner import AgentFailure, ClaudeRun, StreamState, classify
from autopilot.infra import NO_SECRETS, Redactor, looks_secret, make_private_dir, open_private
from autopilot.models import AgentProgress, CheckResult, ContainerSettings

log = structlog.get_logger("container")

CLI_DIR = "/opt/autopilot/claude-code"
CONTAINER_CLAUDE = Path(CLI_DIR) / "node_modules" / ".bin" / "claude"
CLI_PACKAGE_FILES = ("package.json", "package-lock.json")
CONTAINER_PATH = (str(CONTAINER_CLAUDE.parent), "/usr/local/bin", "/usr/bin", "/bin")
# The worker's values of these mean nothing inside: the container's own are set instead.
HOST_ONLY = ("PATH", "HOME", "TMPDIR", "SHELL", "USER", "LOGNAME")
# How long the forwarded stream may go on arriving once the exec has ended.
STREAM_DRAIN_S = 5.0
OUTPUT_TAIL = 600
# A model endpoint on the worker's loopback (a local proxy, the tests' scripted model) is
# reached from inside through a host service under this name.
MODEL_ALIAS = "autopilot-model"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ContainerJob:
    """What goes in from the host: the workspace, and what it needs to work inside."""

    workspace: Path  # copied in at `inside`, exported back after the run
    # The sandbox's fixed path (TaskSite.inside, steps/site.py): what the setup on the worker
    # recorded there (a venv, an editable install) holds in the container too.
    inside: str
    objects: Path | None = None  # the object store the workspace's `alternates` names
    home: Path | None = None  # the agent's own folder: its home inside, brought back too


def split_environment(
    base: Mapping[str, str], settings: ContainerSettings, extra: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The agent's environment inside: (plain variables, credentials). Everything
    `agent_environment` gives a local run, with the container's own PATH, HOME and user,
    and the worker's way to the model API (`model_route`: no gateway in there); every
    variable whose name looks secret (autopilot/infra/redact.py) is a credential."""
    env = agent_environment(CONTAINER_CLAUDE, base, model_route(base) | dict(extra or {}))
    for name in HOST_ONLY:
        env.pop(name, None)
    env |= {
        "PATH": ":".join(CONTAINER_PATH),
        "HOME": settings.home,
        "USER": settings.user,
        "LOGNAME": settings.user,
    }
    secret = {name: value for name, value in env.items() if looks_secret(name)}
    plain = {name: value for name, value in env.items() if name not in secret}
    return plain, secret


def base_container(client: dagger.Client, settings: ContainerSettings) -> dagger.Container:
    """The image with git and the pinned CLI; the engine caches it between runs."""
    container = client.container().from_(settings.image)
    if settings.packages:
        container = container.with_exec(["apt-get", "update"]).with_exec(
            ["apt-get", "install", "-y", "--no-install-recommends", *settings.packages]
        )
    cli_files = PROJECT_ROOT / "tools" / "claude-code"
    for name in CLI_PACKAGE_FILES:
        text = (cli_files / name).read_text(encoding="utf-8")
        container = container.with_new_file(f"{CLI_DIR}/{name}", text)
    return (
        container.with_workdir(CLI_DIR)
        .with_exec(["npm", "ci", "--no-audit", "--no-fund"])
        .with_new_file(stream.FORWARDER_PATH, stream.FORWARDER_JS)
    )


def task_container(
    client: dagger.Client,
    settings: ContainerSettings,
    job: ContainerJob,
    plain: Mapping[str, str],
    credentials: Mapping[str, str],
) -> dagger.Container:
    """The base image with the task's workspace in, as the non-root user, with its variables."""
    host = client.host()
    container = base_container(client, settings)
    if job.objects is not None:
        # At the host's path: `alternates` in the workspace names it. Read, never written.
        container = container.with_mounted_directory(
            str(job.objects), host.directory(str(job.objects)), read_only=True
        )
    container = container.with_directory(
        job.inside, host.directory(str(job.workspace)), owner=settings.user
    )
    if job.home is not None:
        container = container.with_directory(
            settings.home, host.directory(str(job.home)), owner=settings.user
        )
    container = container.with_user(settings.user).with_workdir(job.inside)
    for name, value in sorted(plain.items()):
        container = container.with_env_variable(name, value)
    # A name of its own per run: two runs of one session never share a secret by name.
    run_id = uuid.uuid4().hex[:12]
    for name, value in sorted(credentials.items()):
        secret = client.set_secret(f"autopilot-{name.lower()}-{run_id}", value)
        container = container.with_secret_variable(name, secret)
    return container


async def run_claude_in_container(
    access: EngineAccess,
    settings: ContainerSettings,
    job: ContainerJob,
    argv: list[str],
    *,
    run_timeout_s: float,
    **claude: Unpack[ClaudeRun],
) -> tuple[StreamState, float]:
    """`runner.run_claude`, in a container: `argv` is claude_argv(CONTAINER_CLAUDE, ...) and
    `env` the agent's environment (split_environment's input). Returns the stream state and
    the wall time; raises AgentFailure as a local run does, or an EngineError (the engine was
    lost or refused the container: not the agent's failure). Cancelled, it closes its engine
    connection, which stops the container."""
    transcript, redactor = claude["transcript"], claude.get("redactor", NO_SECRETS)
    make_private_dir(transcript.parent)
    started = time.monotonic()
    state = StreamState(session_id=claude["session_id"])
    plain, credentials = split_environment(claude["env"], settings)
    exec_argv = ["node", stream.FORWARDER_PATH, *argv]
    log.info("container run starting", engine=access.describe(), image=settings.image)
    async with (
        stream.StreamListener() as listener,
        engine_session(access, settings.connect_timeout_s) as client,
    ):
        plain, model = _model_through_host(client, plain)
        container = task_container(
            client, settings, job, plain, credentials | {stream.STREAM_TOKEN_VAR: listener.token}
        )
        if model is not None:
            container = container.with_service_binding(MODEL_ALIAS, model)
        container = (
            container.with_service_binding(stream.SERVICE_ALIAS, _host_port(client, listener.port))
            .with_env_variable(stream.ADDRESS_VAR, f"{stream.SERVICE_ALIAS}:{stream.SERVICE_PORT}")
            .with_exec(exec_argv, stdin=claude["prompt"], expect=dagger.ReturnType.ANY)
        )
        run = asyncio.create_task(
            engine_call("the agent's run", _finish(container, exec_argv), run_timeout_s, access)
        )
        try:
            with open_private(transcript, "ab") as out:
                take = _LineTaker(out, state, transcript, claude["on_progress"], redactor)
                try:
                    await _follow(listener, run, take, claude["idle_timeout_s"])
                    ran, exit_code, stdout, stderr = await run
                except EngineTimedOut as err:  # the run's own call: the agent's time limit
                    late = AgentFailure(
                        "timeout",
                        f"the agent ran longer than its {run_timeout_s:.0f}s limit; it was stopped",
                    )
                    late.state, late.duration_s = state, time.monotonic() - started
                    raise late from err
                except AgentFailure as hung:  # the finally below stops the container
                    hung.state, hung.duration_s = state, time.monotonic() - started
                    raise
                # What the stream did not bring (it never connected, or broke off): the
                # forwarder wrote the same bytes to both.
                rest = stdout.encode()[take.streamed :]
                for line in rest.splitlines(keepends=True):
                    take(line, streamed=False)
            _write_stderr(transcript.with_suffix(".stderr"), stderr, redactor)
            if ran is not None:
                await _export(ran, settings, job, access)
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
    failure = classify(state, exit_code, redactor.scrub(stderr)[-OUTPUT_TAIL:].strip())
    if failure:
        failure.state, failure.duration_s = state, time.monotonic() - started
        raise failure
    return state, time.monotonic() - started


def _host_port(
    client: dagger.Client, port: int, frontend: int = stream.SERVICE_PORT
) -> dagger.Service:
    return client.host().service(
        [dagger.PortForward(backend=port, frontend=frontend)], host="127.0.0.1"
    )


def _model_through_host(
    client: dagger.Client, plain: dict[str, str]
) -> tuple[dict[str, str], dagger.Service | None]:
    """ANTHROPIC_BASE_URL on the worker's loopback names the container's own inside: it is
    rewritten to a host service that forwards to it."""
    url = urllib.parse.urlsplit(plain.get("ANTHROPIC_BASE_URL", ""))
    if url.hostname not in LOOPBACK:
        return plain, None
    port = url.port or (443 if url.scheme == "https" else 80)
    inside = url._replace(netloc=f"{MODEL_ALIAS}:{port}").geturl()
    return plain | {"ANTHROPIC_BASE_URL": inside}, _host_port(client, port, port)


async def _finish(
    container: dagger.Container, exec_argv: list[str]
) -> tuple[dagger.Container | None, int, str, str]:
    """Run the exec to its end: (the evaluated container, exit code, stdout, stderr). The
    container is None when the exec ended outside ReturnType.ANY (a signal killed it), whose
    files are not kept."""
    try:
        ran = await container.sync()
    except dagger.ExecError as err:
        if list(err.command) != exec_argv:  # the image's apt-get or npm ci
            raise ContainerFailed(f"building the agent's container failed: {err}") from err
        return None, err.exit_code, err.stdout, err.stderr
    return ran, await ran.exit_code(), await ran.stdout(), await ran.stderr()


async def _export(
    ran: dagger.Container, settings: ContainerSettings, job: ContainerJob, access: EngineAccess
) -> None:
    """The workspace (and the agent's home) back over the host's copies, exactly."""
    timeout = settings.engine_timeout_s
    workspace = ran.directory(job.inside).export(str(job.workspace), wipe=True)
    await engine_call("exporting the workspace", workspace, timeout, access)
    if job.home is not None:
        home = ran.directory(settings.home).export(str(job.home), wipe=True)
        await engine_call("exporting the agent's home", home, timeout, access)


class _LineTaker:
    """One stdout line: scrubbed, kept in the transcript, and read as a stream-json event."""

    def __init__(
        self,
        out: IO[bytes],
        state: StreamState,
        transcript: Path,
        on_progress: Callable[[AgentProgress], None],
        redactor: Redactor,
    ) -> None:
        self._out, self._state, self._transcript = out, state, transcript
        self._on_progress, self._redactor = on_progress, redactor
        self.streamed = 0  # bytes taken from the stream, as the forwarder sent them

    def __call__(self, line: bytes, streamed: bool = True) -> None:
        if streamed:
            self.streamed += len(line)
        line = self._redactor.scrub_bytes(line)
        self._out.write(line)
        self._out.flush()
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return  # not an event (a warning line); kept in the transcript
        if isinstance(event, dict):
            self._state.absorb(event)
            self._on_progress(self._state.progress(self._transcript))


async def _follow(
    listener: stream.StreamListener,
    run: asyncio.Task[tuple[dagger.Container | None, int, str, str]],
    take: _LineTaker,
    idle_timeout_s: float,
) -> None:
    """Take the streamed lines until the stream ends, or the run ends and the stream has had
    STREAM_DRAIN_S to catch up. Nothing for idle_timeout_s: the agent is hung."""
    while True:
        line_wait = asyncio.ensure_future(listener.lines.get())
        try:
            done, _ = await asyncio.wait(
                {line_wait, run}, timeout=idle_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not line_wait.done():
                line_wait.cancel()  # cancelled from outside too: no waiter left behind
        if line_wait in done:
            line = line_wait.result()
            if line is None:
                return
            take(line)
            continue
        if run in done:
            break
        raise AgentFailure(
            "hung", f"claude printed nothing for {idle_timeout_s:.0f}s; it was stopped"
        )
    if run.exception() is not None or not listener.connected:
        return  # a forwarder that never connected never will: its run is over
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STREAM_DRAIN_S):
            while (line := await listener.lines.get()) is not None:
                take(line)


def _write_stderr(path: Path, stderr: str, redactor: Redactor) -> None:
    with open_private(path, "wb") as out:
        out.write(redactor.scrub(stderr).encode())


async def run_check_in_container(
    access: EngineAccess,
    settings: ContainerSettings,
    workspace: Path,
    argv: list[str],
    *,
    inside: str,
    command: str,
    env: Mapping[str, str],
    timeout_s: float,
    output_path: Path,
    objects: Path | None = None,
    redactor: Redactor = NO_SECRETS,
) -> CheckResult:
    """One of the repo's checks in the agent's image, in a copy of the workspace (nothing it
    writes comes back). `env` is the check's environment: its credentials go in as secrets."""
    make_private_dir(output_path.parent)
    credentials = {name: value for name, value in env.items() if looks_secret(name)}
    plain = {name: value for name, value in env.items() if name not in credentials}
    plain |= {"PATH": ":".join(CONTAINER_PATH), "HOME": settings.home}
    started = time.monotonic()
    exit_code: int | None
    timed_out = False
    async with engine_session(access, settings.connect_timeout_s) as client:
        job = ContainerJob(workspace=workspace, inside=inside, objects=objects)
        container = task_container(client, settings, job, plain, credentials).with_exec(
            argv, expect=dagger.ReturnType.ANY
        )
        try:
            exit_code, output = await engine_call(
                f"the check {command!r}", _check_output(container, argv), timeout_s, access
            )
        except EngineTimedOut:  # the call was abandoned: the connection closes, the exec stops
            exit_code, output, timed_out = None, "", True
    text = redactor.scrub(output)
    if timed_out:
        text += f"\n[autopilot] stopped after {timeout_s:g} s: the check timed out.\n"
    with open_private(output_path, "wb") as out:
        out.write(text.encode())
    return CheckResult(
        command=command,
        passed=exit_code == 0,
        exit_code=exit_code,
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        output_tail=text[-4000:],
        output_path=str(output_path),
    )


async def _check_output(container: dagger.Container, argv: list[str]) -> tuple[int, str]:
    try:
        ran = await container.sync()
    except dagger.ExecError as err:
        if list(err.command) != argv:
            raise ContainerFailed(f"building the check's container failed: {err}") from err
        return err.exit_code, err.stdout + err.stderr
    return await ran.exit_code(), await ran.combined_output()
