"""The sandbox's only way out (autopilot/agent/egress.py): the worker's proxy, reached from inside a
real bubblewrap sandbox with no network of its own, through its gateway port; and each of its
rules, on its own Unix socket, its lookups and dials seen by tests/egress_doubles.py."""

from __future__ import annotations

import asyncio
import base64
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import pytest_asyncio

from autopilot.agent import (
    DEFAULT_PORTS,
    GATEWAY_PORT,
    MAX_HEAD,
    MAX_HEADERS,
    BadRequest,
    Egress,
    Gateway,
    Grant,
    Layout,
    TargetRefused,
    checked_host,
    checked_port,
    detect_sandbox,
    parse_head,
    public_addresses,
)
from autopilot.agent import egress as egress_module
from autopilot_testing import ScriptedModel, Text
from tests.egress_doubles import ELSEWHERE, PUBLIC, PUBLIC_V6, Dialler, FakeNames, exchange

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
    """A web site on the host's loopback, where the test's dialler takes a granted name."""
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
    with egress.grant(model_api=True) as grant:
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
    with egress.grant(model_api=True) as grant:
        stale = grant.token
    with egress.grant(model_api=True) as grant:
        out = await inside(
            egress,
            grant,
            f"curl -s -H 'x-api-key: {stale}' -d '{MESSAGE}' $ANTHROPIC_BASE_URL/v1/messages",
            tmp_path,
        )
    assert "no valid run token" in out
    assert model.snapshot() == [] and model.side_calls == []


async def test_only_the_granted_domains_are_reached(
    routed: Routed, site: int, tmp_path: Path
) -> None:
    routed.dialler.routes = {(PUBLIC, site): site}
    script = (
        f"curl -s http://example.org:{site}/; "  # through the proxy (HTTP_PROXY)
        f"curl -s -p http://example.org:{site}/; "  # a CONNECT tunnel
        f"curl -s http://127.0.0.2:{site}/; "  # an address, not a granted name
        f"curl -s http://elsewhere.test:{site}/; "  # not granted
        # this sandbox's own loopback, directly (NO_PROXY), where nothing listens
        f"curl -s -m 5 http://localhost:{site}/ || echo LOCAL-DIRECT; "
        f"curl -s --noproxy '*' -m 5 http://127.0.0.1:{site}/ || echo DIRECT-BLOCKED"
    )
    with routed.egress.grant(["example.org"], model_api=False, ports=[site]) as grant:
        out = await inside(routed.egress, grant, script, tmp_path)
    assert out.count("the allowed site") == 2, out
    assert "127.0.0.2:" in out and "an address is not a host name" in out
    assert "elsewhere.test is not among the domains this run may reach" in out
    assert "LOCAL-DIRECT" in out and "DIRECT-BLOCKED" in out  # only the gateway leads out
    assert routed.dialled() == [(PUBLIC, site), (PUBLIC, site)]


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
            with proxy.grant(model_api=True) as grant:
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


# --------------------------------------------------------------------------------------------
# What the proxy dials: strict names, resolved once, public addresses, granted ports
# --------------------------------------------------------------------------------------------

# The attacks that got out (the NUL one: the allowlist saw `….example.org`, the resolver
# `127.0.0.1`), and every other way to write an address or smuggle one into a name.
NOT_HOST_NAMES = [
    "127.0.0.1\0%.example.org",
    "127.0.0.1%.example.org",
    "127.0.0.1\0.example.org",
    "example.org@127.0.0.1",
    "127.0.0.1#.example.org",
    "127.0.0.1 .example.org",
    "127.0.0.1\t.example.org",
    "127.0.0.1\r\n.example.org",
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "0x7f.1",
    "0x7f.0x0.0x0.0x1",
    "0177.0.0.1",
    "127.1",
    "127.0.1",
    "1.2.3.4.5",
    "::1",
    "[::1]",
    "::ffff:127.0.0.1",
    "[::ffff:7f00:1]",
    "fe80::1%lo",
    "xn--éxample.org",
    "ex_ample.example.org",
    "-lead.example.org",
    "trail-.example.org",
    "a..example.org",
    ".example.org",
    "example.org.",
    "",
    f"{'a' * 64}.example.org",
    ".".join(["a" * 63] * 4) + ".example.org",
]


@pytest.mark.parametrize("target", NOT_HOST_NAMES, ids=ascii)
def test_only_a_strict_host_name_is_taken(target: str) -> None:
    with pytest.raises(TargetRefused):
        checked_host(target)


def test_host_names_pass_lower_cased() -> None:
    for name in ("example.org", "Files.PythonHosted.org", "xn--bcher-kva.example", "0x.a-b.io"):
        assert checked_host(name) == name.lower()


PRIVATE = [
    "127.0.0.1",
    "127.255.0.9",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # a cloud's metadata service
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::127.0.0.1",  # IPv4-compatible
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, its client 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b:1::1",
]


@pytest.mark.parametrize("address", PRIVATE)
def test_no_private_address_passes(address: str) -> None:
    with pytest.raises(TargetRefused, match="not a public address"):
        public_addresses([address])
    with pytest.raises(TargetRefused):  # nor among public ones
        public_addresses([PUBLIC, address])


def test_public_addresses_pass() -> None:
    assert [str(a) for a in public_addresses([PUBLIC, PUBLIC_V6])] == [PUBLIC, PUBLIC_V6]
    with pytest.raises(TargetRefused):
        public_addresses([])


def test_ports_are_numbers_among_the_granted() -> None:
    assert checked_port("443", DEFAULT_PORTS) == 443
    assert checked_port("8443", (8443,)) == 8443
    with pytest.raises(TargetRefused, match=r"\[sandbox\] ports"):
        checked_port("22", DEFAULT_PORTS)
    for text in ("0443", "+443", "443 ", "65536", "0", "", "0x1bb"):
        with pytest.raises(TargetRefused):
            checked_port(text, range(1, 65536))


def connect(target: str, token: str) -> bytes:
    auth = base64.b64encode(f"autopilot:{token}".encode()).decode()
    return f"CONNECT {target} HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode(
        "latin-1"
    )


def absolute(url: str, token: str) -> bytes:
    auth = base64.b64encode(f"autopilot:{token}".encode()).decode()
    return f"GET {url} HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode("latin-1")


NAMES = {
    "example.org": [PUBLIC],
    "www.example.org": [PUBLIC_V6, PUBLIC],
    "inside.example.org": ["127.0.0.1"],
    "mixed.example.org": [PUBLIC, "10.0.0.7"],
    "mapped.example.org": ["::ffff:127.0.0.1"],
    "elsewhere.test": [ELSEWHERE],
}


@dataclass
class Routed:
    """An egress proxy whose lookups and dials the test sees (tests/egress_doubles.py)."""

    egress: Egress
    names: FakeNames
    dialler: Dialler

    def dialled(self) -> list[tuple[str, int]]:
        return list(self.dialler.dialled)


@pytest_asyncio.fixture
async def routed(model: ScriptedModel) -> AsyncIterator[Routed]:
    names, dialler = FakeNames(NAMES), Dialler()
    with tempfile.TemporaryDirectory(prefix="egress-") as folder:
        proxy = Egress(Path(folder) / "egress.sock", model.env(), resolver=names, dialler=dialler)
        await proxy.start()
        yield Routed(proxy, names, dialler)
        await proxy.close()


@pytest.mark.parametrize(
    "host",
    [h for h in NOT_HOST_NAMES if h and "\r" not in h and " " not in h and "\t" not in h],
    ids=ascii,
)
async def test_no_address_is_dialled_for_a_target_that_is_not_a_host_name(
    routed: Routed, host: str
) -> None:
    with routed.egress.grant(["example.org"], model_api=False) as grant:
        tunnel = await exchange(routed.egress.socket_path, connect(f"{host}:443", grant.token))
        plain = await exchange(routed.egress.socket_path, absolute(f"http://{host}/", grant.token))
    for answer in (tunnel, plain):
        assert answer.startswith((b"HTTP/1.1 403 ", b"HTTP/1.1 400 ")), answer
    assert routed.dialled() == [] and routed.names.asked == []


@pytest.mark.parametrize("name", ["inside.example.org", "mixed.example.org", "mapped.example.org"])
async def test_a_name_that_resolves_to_a_private_address_is_refused(
    routed: Routed, name: str
) -> None:
    with routed.egress.grant(["example.org"], model_api=False) as grant:
        answer = await exchange(routed.egress.socket_path, connect(f"{name}:443", grant.token))
    assert answer.startswith(b"HTTP/1.1 403 ") and b"not a public address" in answer, answer
    assert routed.names.asked == [name] and routed.dialled() == []


async def test_localhost_is_refused_by_what_it_resolves_to(model: ScriptedModel) -> None:
    """The system's resolver: `localhost` is a host name, granted, and still loopback."""
    dialler = Dialler()
    with tempfile.TemporaryDirectory(prefix="egress-") as folder:
        proxy = await Egress(Path(folder) / "egress.sock", model.env(), dialler=dialler).start()
        try:
            with proxy.grant(["localhost"], model_api=False) as grant:
                answer = await exchange(proxy.socket_path, connect("localhost:443", grant.token))
        finally:
            await proxy.close()
    assert b"127.0.0.1" in answer and b"not a public address" in answer, answer
    assert dialler.dialled == []


async def test_the_checked_address_is_the_one_dialled(model: ScriptedModel) -> None:
    """DNS rebinding: a name that answers a public address once and loopback after is looked
    up once, and the public address it answered is dialled."""
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    dialler = Dialler()
    with tempfile.TemporaryDirectory(prefix="egress-") as folder:
        proxy = Egress(
            Path(folder) / "egress.sock", model.env(), resolver=rebinding, dialler=dialler
        )
        await proxy.start()
        try:
            with proxy.grant(["example.org"], model_api=False) as grant:
                await exchange(proxy.socket_path, connect("example.org:443", grant.token))
        finally:
            await proxy.close()
    assert asked == ["example.org"] and dialler.dialled == [(PUBLIC, 443)]


async def test_only_the_granted_ports_are_dialled(routed: Routed) -> None:
    with routed.egress.grant(["example.org"], model_api=False) as grant:
        refused = await exchange(routed.egress.socket_path, connect("example.org:22", grant.token))
        await exchange(routed.egress.socket_path, connect("example.org:443", grant.token))
        await exchange(routed.egress.socket_path, absolute("http://www.example.org/", grant.token))
    with routed.egress.grant(["example.org"], model_api=False, ports=[8443]) as grant:
        await exchange(routed.egress.socket_path, connect("example.org:8443", grant.token))
        other = await exchange(routed.egress.socket_path, connect("example.org:443", grant.token))
    assert b"port 22 is not among the ports this run may reach (443, 80)" in refused, refused
    assert b"port 443 is not among" in other
    assert routed.dialled() == [(PUBLIC, 443), (PUBLIC_V6, 80), (PUBLIC, 8443)]


async def test_a_domain_not_granted_is_not_looked_up(routed: Routed) -> None:
    with routed.egress.grant(["example.org"], model_api=False) as grant:
        answer = await exchange(
            routed.egress.socket_path, connect("elsewhere.test:443", grant.token)
        )
    assert b"elsewhere.test is not among the domains this run may reach" in answer
    assert routed.names.asked == [] and routed.dialled() == []


# --------------------------------------------------------------------------------------------
# What a grant may do with the model API
# --------------------------------------------------------------------------------------------


def api_request(method: str, path: str, token: str, body: str = MESSAGE) -> bytes:
    data = body.encode()
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {token}\r\n"
        f"content-type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def test_a_check_grant_may_not_use_the_model_api(
    routed: Routed, model: ScriptedModel
) -> None:
    with routed.egress.grant(model_api=False) as grant:
        answer = await exchange(
            routed.egress.socket_path, api_request("POST", "/v1/messages", grant.token)
        )
    assert answer.startswith(b"HTTP/1.1 403 "), answer
    assert b"only the agent's and the reviewer's runs may use the model API" in answer
    assert model.paths == [] and routed.dialled() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/files"),
        ("GET", "/v1/files"),
        ("POST", "/v1/messages/batches"),
        ("GET", "/v1/models"),
        ("GET", "/v1/organizations/me"),
        ("POST", "/v1/organizations/api_keys"),
        ("POST", "/v1/messages/../files"),
        ("POST", "/v1/messages/"),
        ("POST", "//v1/messages"),
        ("GET", "/v1/messages"),
        ("DELETE", "/v1/messages"),
        ("HEAD", "/v1/files"),
    ],
)
async def test_the_model_api_takes_only_what_the_cli_sends(
    routed: Routed, model: ScriptedModel, method: str, path: str
) -> None:
    with routed.egress.grant(model_api=True) as grant:
        answer = await exchange(routed.egress.socket_path, api_request(method, path, grant.token))
    assert answer.startswith(b"HTTP/1.1 403 "), answer
    assert b"the model API takes only what the CLI sends" in answer
    assert model.paths == [] and routed.dialled() == []


async def test_the_clis_calls_go_through(routed: Routed, model: ScriptedModel) -> None:
    with routed.egress.grant(model_api=True) as grant:
        counted = await exchange(
            routed.egress.socket_path,
            api_request("POST", "/v1/messages/count_tokens", grant.token),
        )
        probed = await exchange(
            routed.egress.socket_path,
            f"HEAD / HTTP/1.1\r\nx-api-key: {grant.token}\r\n\r\n".encode(),
        )
    assert counted.startswith(b"HTTP/1.1 200") and b"input_tokens" in counted, counted
    assert probed.startswith(b"HTTP/1.1 200"), probed
    assert model.paths == [("POST", "/v1/messages/count_tokens")]


async def test_what_follows_a_request_on_its_connection_is_never_sent(
    routed: Routed, model: ScriptedModel
) -> None:
    """Pipelined requests: the first is answered, the rest (a smuggled path among them) is not
    read, so never reaches the API with the worker's key."""
    with routed.egress.grant(model_api=True) as grant:
        first = api_request("POST", "/v1/messages/count_tokens", grant.token)
        second = api_request("POST", "/v1/files", grant.token)
        third = api_request("POST", "/v1/messages/count_tokens", grant.token)
        answer = await exchange(routed.egress.socket_path, first + second + third)
    assert answer.count(b"HTTP/1.") == 1, answer
    assert model.paths == [("POST", "/v1/messages/count_tokens")]


@pytest_asyncio.fixture
async def echo() -> AsyncIterator[int]:
    """A loopback server that echoes and never closes a connection itself."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def until(condition: Callable[[], object], what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_a_grant_that_ended_ends_its_open_tunnels(routed: Routed, echo: int) -> None:
    routed.dialler.routes = {(PUBLIC, 443): echo}
    with routed.egress.grant(["example.org"], model_api=False) as grant:
        reader, writer = await asyncio.open_unix_connection(str(routed.egress.socket_path))
        writer.write(connect("example.org:443", grant.token))
        established = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"ping\n")
        async with asyncio.timeout(10):
            through = await reader.readuntil(b"ping\n")
    try:
        async with asyncio.timeout(10):  # ended with the grant: the tunnel reads its end
            rest = await reader.read()
    finally:
        writer.close()
    assert established.startswith(b"HTTP/1.1 200") and through == b"ping\n"
    assert rest == b""
    later = await exchange(routed.egress.socket_path, connect("example.org:443", grant.token))
    assert later.startswith(b"HTTP/1.1 407 "), later
    assert routed.dialled() == [(PUBLIC, 443)]


async def test_a_request_still_coming_when_its_grant_ends_is_cut(routed: Routed) -> None:
    with routed.egress.grant(model_api=True) as grant:
        reader, writer = await asyncio.open_unix_connection(str(routed.egress.socket_path))
        whole = api_request("POST", "/v1/messages/count_tokens", grant.token)
        writer.write(whole[:-10])  # the body not all sent yet
        await writer.drain()
        await until(routed.dialled, "the proxy to dial the API")
    try:
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    # Cut, not answered: the request never completes (the body's rest is never sent on).
    assert answer == b"", answer


# --------------------------------------------------------------------------------------------
# The request head, strictly
# --------------------------------------------------------------------------------------------

BAD_HEADS = [
    b"GET / HTTP/1.1 extra",
    b"GET  / HTTP/1.1",
    b"get / HTTP/1.1",
    b"GET / HTTP/2",
    b"GET / HTTP/1.1\x00",
    b"GET /\x00 HTTP/1.1",
    b"GET /\xff HTTP/1.1",
    b"GET / HTTP/1.1\r\nX-Key: a\rb",
    b"GET / HTTP/1.1\r\nX-Key: a\nInjected: b",
    b"GET / HTTP/1.1\r\nX-Key: a\x00b",
    b"GET / HTTP/1.1\r\nX-Key: a\r\n folded",
    b"GET / HTTP/1.1\r\nX-Key : a",
    b"GET / HTTP/1.1\r\nno colon",
    b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6",
    b"GET / HTTP/1.1\r\nContent-Length: -5",
    b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
    b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1),
]


@pytest.mark.parametrize("head", BAD_HEADS, ids=ascii)
def test_a_head_other_parsers_could_read_otherwise_is_refused(head: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_head(head)


async def test_a_bad_request_line_is_answered_400(routed: Routed) -> None:
    answer = await exchange(
        routed.egress.socket_path, b"CONNECT example.org:443 HTTP/1.1 x\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400 ") and b"METHOD SP target SP HTTP/1.x" in answer


async def test_an_oversize_head_is_refused(routed: Routed) -> None:
    answer = await exchange(
        routed.egress.socket_path, b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 1) + b"\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert routed.dialled() == []


async def test_a_client_too_slow_to_send_its_head_is_let_go(
    routed: Routed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(egress_module, "HEAD_TIMEOUT_S", 0.5)
    reader, writer = await asyncio.open_unix_connection(str(routed.egress.socket_path))
    try:
        writer.write(b"CONNECT example.org:443 HTTP/1.1\r\n")  # and no more
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert routed.dialled() == []
