"""The sandbox's only way out (autopilot/agent/egress.py): the worker's proxy, reached from inside a
real bubblewrap sandbox with no network of its own, through its gateway port."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import pytest_asyncio

from autopilot.agent.egress import Egress, Grant
from autopilot.agent.sandbox import GATEWAY_PORT, Gateway, Layout, detect_sandbox
from autopilot.agent.scripted_model import ScriptedModel, Text

pytestmark = pytest.mark.timeout(120)


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"the allowed site\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[int]:
    """A web site on the host's loopback, for the grant to allow (as `localhost`) or not."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel(lambda _conversation: Text("hello")) as server:
        yield server


@pytest_asyncio.fixture
async def egress(model: ScriptedModel) -> AsyncIterator[Egress]:
    with tempfile.TemporaryDirectory(prefix="egress-") as folder:
        proxy = await Egress(Path(folder) / "egress.sock", model.env()).start()
        yield proxy
        await proxy.close()


async def inside(egress: Egress, grant: Grant, script: str, tmp_path: Path) -> str:
    """`script` in a sandbox with the gateway, the grant's environment set; its output."""
    gateway = Gateway(egress.socket_path)
    layout = Layout(workdir=tmp_path, writable=[tmp_path], tmp=tmp_path / "tmp")
    argv = detect_sandbox().wrap(["sh", "-c", script], layout, gateway)
    env = {"PATH": "/usr/bin:/bin"} | gateway.environment(grant.token, egress.credential_names)
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return out.decode()


MESSAGE = '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'


async def test_the_model_api_gets_the_workers_key_and_the_run_only_a_token(
    egress: Egress, model: ScriptedModel, tmp_path: Path
) -> None:
    with egress.grant() as grant:
        out = await inside(
            egress,
            grant,
            'env; curl -s -H "x-api-key: $ANTHROPIC_API_KEY" -H "content-type: application/json"'
            f" -d '{MESSAGE}' $ANTHROPIC_BASE_URL/v1/messages",
            tmp_path,
        )
    assert '"type": "message"' in out, out  # the model's answer, through the gateway
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{GATEWAY_PORT}" in out
    assert model.env()["ANTHROPIC_API_KEY"] not in out  # the worker's key never goes in
    # (a bare request is a "side call" to the scripted model: not an agent's conversation)
    assert [c.api_key for c in model.side_calls] == [model.env()["ANTHROPIC_API_KEY"]]


async def test_a_request_without_a_live_token_is_refused(
    egress: Egress, model: ScriptedModel, tmp_path: Path
) -> None:
    with egress.grant() as grant:
        stale = grant.token
    with egress.grant() as grant:
        out = await inside(
            egress,
            grant,
            f"curl -s -H 'x-api-key: {stale}' -d '{MESSAGE}' $ANTHROPIC_BASE_URL/v1/messages",
            tmp_path,
        )
    assert "no valid run token" in out
    assert model.snapshot() == [] and model.side_calls == []


async def test_only_the_granted_domains_are_reached(
    egress: Egress, site: int, tmp_path: Path
) -> None:
    script = (
        f"curl -s http://localhost:{site}/; "  # through the proxy (HTTP_PROXY)
        f"curl -s -p http://localhost:{site}/; "  # a CONNECT tunnel
        f"curl -s http://127.0.0.2:{site}/; "  # not granted
        f"curl -s --noproxy '*' -m 5 http://127.0.0.1:{site}/ || echo DIRECT-BLOCKED"
    )
    with egress.grant(["localhost"]) as grant:
        out = await inside(egress, grant, script, tmp_path)
    assert out.count("the allowed site") == 2, out
    assert "127.0.0.2 is not among the domains this run may reach" in out
    assert "DIRECT-BLOCKED" in out  # no network of its own: only the gateway


def test_grants_match_a_domain_and_what_is_below_it() -> None:
    grant = Grant("t", ("pypi.org", "*.npmjs.org"))
    assert grant.allows("pypi.org") and grant.allows("files.pypi.org")
    assert grant.allows("registry.npmjs.org") and not grant.allows("npmjs.org")
    assert not grant.allows("evilpypi.org") and not grant.allows("pypi.org.evil.com")


async def test_a_claude_login_of_the_worker_is_used_and_never_handed_over(
    model: ScriptedModel, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    (home / ".claude").mkdir(parents=True)
    login = '{"claudeAiOauth": {"accessToken": "sk-ant-oat-login-token"}}'
    (home / ".claude" / ".credentials.json").write_text(login)
    env = {"ANTHROPIC_BASE_URL": model.env()["ANTHROPIC_BASE_URL"], "HOME": str(home)}
    with tempfile.TemporaryDirectory(prefix="egress-") as folder:
        proxy = await Egress(Path(folder) / "egress.sock", env).start()
        try:
            assert proxy.credential_names == ["CLAUDE_CODE_OAUTH_TOKEN"]
            with proxy.grant() as grant:
                out = await inside(
                    proxy,
                    grant,
                    'env; curl -s -H "authorization: Bearer $CLAUDE_CODE_OAUTH_TOKEN"'
                    f" -d '{MESSAGE}' $ANTHROPIC_BASE_URL/v1/messages",
                    tmp_path / "work",
                )
        finally:
            await proxy.close()
    assert '"type": "message"' in out and "sk-ant-oat-login-token" not in out
    assert [c.authorization for c in model.side_calls] == ["Bearer sk-ant-oat-login-token"]
