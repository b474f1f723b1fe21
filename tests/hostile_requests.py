"""Hostile requests for the egress proxy (autopilot/agent/egress.py), as Hypothesis strategies, and
the rig that sends them and checks its one property: nothing is dialled but a public address
of a granted name on a granted port, or the model API for an agent's token and one of the
CLI's calls. Used by tests/test_egress_fuzz.py (bounded, in the default suite) and
bench/egress_fuzz.py (long runs).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from autopilot.agent import DEFAULT_PORTS, Egress, Grant, checked_host
from autopilot.infra import is_public
from tests.egress_doubles import ELSEWHERE, PUBLIC, PUBLIC_V6, Dialler, FakeNames, exchange

API_HOST = "api.fuzz.invalid"  # the model API upstream: refused by the dialler like any other
GRANTED = ("example.org",)
NAMES = {
    "example.org": [PUBLIC],
    "www.example.org": [PUBLIC_V6, PUBLIC],
    "inside.example.org": ["127.0.0.1"],
    "mixed.example.org": [PUBLIC, "10.0.0.7"],
    "mapped.example.org": ["::ffff:127.0.0.1"],
    "meta.example.org": ["169.254.169.254"],
    "elsewhere.test": [ELSEWHERE],
}
ALLOWED_DIALS = frozenset(
    (address, port)
    for name, addresses in NAMES.items()
    if Grant("", GRANTED).allows(name)
    and all(is_public(ipaddress.ip_address(a)) for a in addresses)
    for address in addresses
    for port in DEFAULT_PORTS
)
# A request line the proxy may send on to the model API (with the agent's token).
_API_CALL = re.compile(rb"(POST /v1/messages(/count_tokens)?|HEAD /)[ ?]")
TOKENS = ("agent", "check", "stale", "none", "garbage")

_latin1 = st.characters(codec="latin-1")
_HOSTS = [
    "example.org",
    "www.example.org",
    "inside.example.org",
    "mixed.example.org",
    "mapped.example.org",
    "meta.example.org",
    "elsewhere.test",
    "127.0.0.1",
    "localhost",
    "2130706433",
    "0x7f.1",
    "0177.0.0.1",
    "127.1",
    "[::1]",
    "::1",
    "[::ffff:127.0.0.1]",
    "EXAMPLE.ORG",
    "example.org.",
]
_SUFFIXES = ["", "\0%.example.org", "%.example.org", "\0.example.org", ".example.org", "@127.0.0.1"]
_SUFFIXES += ["#.example.org", " .example.org", "\r\n.example.org", ":443", "."]
hosts = st.one_of(
    st.sampled_from(_HOSTS),
    st.builds(str.__add__, st.sampled_from(_HOSTS), st.sampled_from(_SUFFIXES)),
    st.text(_latin1, max_size=24),
)
ports = st.one_of(
    st.sampled_from(["443", "80", "22", "8443", "7233", "0", "65536", "", " 443", "443\0", "0443"]),
    st.integers(0, 70000).map(str),
)
_PATHS = ["/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens", "/", "/v1/files"]
_PATHS += ["/v1/messages/batches", "/v1/models", "/v1/organizations/me", "/v1/messages/../files"]
_PATHS += ["//v1/messages", "/v1/messages%2f..%2ffiles", "/v1/messages/"]
paths = st.one_of(st.sampled_from(_PATHS), st.text(_latin1, max_size=20).map(lambda t: "/" + t))
targets = st.one_of(
    st.builds(lambda h, p: f"{h}:{p}", hosts, ports),
    st.builds(
        lambda h, p, q: f"http://{h}{p}{q}", hosts, st.just("") | ports.map(":".__add__), paths
    ),
    paths,
    st.text(_latin1, max_size=30),
)
methods = st.one_of(
    st.sampled_from(["CONNECT", "GET", "POST", "HEAD", "DELETE", "PUT", "get"]),
    st.text(_latin1, max_size=8),
)
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1\0", "http/1.1", ""])
_BIG = "a" * (70 * 1024)  # over the proxy's head limit
values = st.one_of(
    st.text(_latin1, max_size=30), st.sampled_from(["a\rb", "a\nInjected: 1", "a\0b", _BIG])
)
_NAMES = ["Host", "Content-Length", "Transfer-Encoding", "Connection", "X-Api-Key", "Upgrade"]
header_names = st.one_of(st.sampled_from(_NAMES), st.text(_latin1, min_size=1, max_size=12))


@dataclass(frozen=True)
class Case:
    """One request, its tokens named (they are random, known only once the rig runs)."""

    method: str
    sp1: str
    target: str
    sp2: str
    version: str
    credentials: tuple[tuple[str, str], ...]  # (how, token name)
    headers: tuple[tuple[str, str], ...]
    body: bytes
    framing: str  # length | chunked | none | wrong
    eol: str

    def encode(self, tokens: dict[str, str]) -> bytes:
        lines = [f"{self.method}{self.sp1}{self.target}{self.sp2}{self.version}"]
        for how, name in self.credentials:
            token = tokens.get(name, name)
            if how == "proxy":
                basic = base64.b64encode(f"autopilot:{token}".encode("latin-1")).decode()
                lines.append(f"Proxy-Authorization: Basic {basic}")
            elif how == "bearer":
                lines.append(f"Authorization: Bearer {token}")
            else:
                lines.append(f"x-api-key: {token}")
        lines += [f"{k}: {v}" for k, v in self.headers]
        body = self.body
        if self.framing == "length":
            lines.append(f"Content-Length: {len(body)}")
        elif self.framing == "chunked":
            lines.append("Transfer-Encoding: chunked")
            body = (
                (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
            )
        elif self.framing == "wrong":
            lines.append(f"Content-Length: {len(body) + 7}")
        head = self.eol.join(lines) + self.eol + self.eol
        return head.encode("latin-1") + body


_credentials = st.lists(
    st.tuples(st.sampled_from(["proxy", "key", "bearer"]), st.sampled_from(TOKENS)), max_size=2
).map(tuple)
_attack_hosts = st.one_of(
    st.sampled_from(_HOSTS),
    st.builds(str.__add__, st.sampled_from(_HOSTS), st.sampled_from(_SUFFIXES)),
)


def _client(method: str, target: str, credential: tuple[str, str], framing: str) -> Case:
    return Case(method, " ", target, " ", "HTTP/1.1", (credential,), (), b"{}", framing, "\r\n")


_live = st.sampled_from(["agent", "check", "agent", "check", "stale"])
_framings = st.sampled_from(["length", "chunked", "none"])
# Requests as clients write them, each form with its credentials: to granted names and not,
# hostile names among them, with each grant's token.
well_formed = st.one_of(
    st.builds(
        _client,
        st.just("CONNECT"),
        st.builds(lambda h, p: f"{h}:{p}", _attack_hosts, st.sampled_from(["443", "80", "22"])),
        st.tuples(st.just("proxy"), _live),
        _framings,
    ),
    st.builds(
        _client,
        st.sampled_from(["GET", "POST"]),
        st.builds(lambda h, p: f"http://{h}{p}", _attack_hosts, st.sampled_from(["/", ":80/x"])),
        st.tuples(st.just("proxy"), _live),
        _framings,
    ),
    st.builds(
        _client,
        st.sampled_from(["POST", "POST", "HEAD", "GET"]),
        st.sampled_from(_PATHS),
        st.tuples(st.sampled_from(["key", "bearer"]), _live),
        _framings,
    ),
)
# Anything at all in each part.
mangled = st.builds(
    Case,
    method=methods,
    sp1=st.sampled_from([" ", " ", " ", "  ", "\t", "\0 "]),
    target=targets,
    sp2=st.sampled_from([" ", " ", " ", "  ", "\t"]),
    version=versions,
    credentials=_credentials,
    headers=st.lists(st.tuples(header_names, values), max_size=3).map(tuple),
    body=st.binary(max_size=40),
    framing=st.sampled_from(["length", "chunked", "none", "wrong"]),
    eol=st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"]),
)
cases = st.one_of(well_formed, mangled)


@dataclass(frozen=True)
class Attempt:
    """What one connection sends: requests back to back (pipelined), or raw bytes, cut into
    pieces sent apart (a slow client, bounded)."""

    requests: tuple[Case, ...]
    raw: bytes
    cuts: tuple[int, ...]
    pause_s: float


attempts = st.builds(
    Attempt,
    requests=st.lists(cases, min_size=1, max_size=3).map(tuple),
    raw=st.one_of(st.just(b""), st.binary(max_size=200)),
    cuts=st.lists(st.integers(0, 400), max_size=4).map(lambda c: tuple(sorted(c))),
    pause_s=st.sampled_from([0.0, 0.0, 0.0, 0.001, 0.003]),
)


@dataclass
class Rig:
    """The proxy on its own socket and loop, with an agent's and a check's grant open, its
    lookups and dials recorded; `run` sends one Attempt and checks the property."""

    folder: Path
    names: FakeNames = field(default_factory=lambda: FakeNames(NAMES))
    dialler: Dialler = field(default_factory=Dialler)
    seen: Counter[str] = field(default_factory=Counter)
    egress: Egress | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    _grants: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    async def start(self) -> None:
        env = {"ANTHROPIC_BASE_URL": f"https://{API_HOST}", "ANTHROPIC_API_KEY": "sk-worker-key"}
        socket_path = self.folder / "egress.sock"
        self.egress = Egress(socket_path, env, resolver=self.names, dialler=self.dialler)
        await self.egress.start()
        agent = self._grants.enter_context(self.egress.grant(GRANTED, model_api=True))
        check = self._grants.enter_context(self.egress.grant(GRANTED, model_api=False))
        with self.egress.grant(GRANTED, model_api=True) as ended:
            stale = ended.token
        self.tokens = {"agent": agent.token, "check": check.token, "stale": stale, "none": ""}

    async def close(self) -> None:
        self._grants.close()
        if self.egress is not None:
            await self.egress.close()

    async def run(self, attempt: Attempt) -> None:
        assert self.egress is not None
        data = b"".join(case.encode(self.tokens) for case in attempt.requests) + attempt.raw
        edges = [0, *(c for c in attempt.cuts if c < len(data)), len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(edges) if b > a]
        self.dialler.dialled.clear()
        self.names.asked.clear()
        answer = await exchange(self.egress.socket_path, *pieces, pause_s=attempt.pause_s)
        self._check(data)
        self._count(attempt, answer)

    def _check(self, data: bytes) -> None:
        dialled = list(self.dialler.dialled)
        assert len(dialled) <= 1, f"one request per connection, yet dialled {dialled}"
        for host, port in dialled:
            if host == API_HOST:
                assert self.tokens["agent"].encode() in data and _API_CALL.match(data), data[:200]
            else:
                assert (host, port) in ALLOWED_DIALS, f"dialled {host}:{port} for {data[:200]!r}"
        for name in self.names.asked:
            assert checked_host(name) == name and Grant("", GRANTED).allows(name), name

    def _count(self, attempt: Attempt, answer: bytes) -> None:
        status = answer.split(b"\r\n", 1)[0][9:12].decode("latin-1") or "closed"
        self.seen[f"answer {status}"] += 1
        self.seen[f"requests on one connection: {len(attempt.requests)}"] += 1
        self.seen["sent in pieces" if attempt.cuts else "sent whole"] += 1
        for host, _ in self.dialler.dialled:
            self.seen[
                "dialled the model API" if host == API_HOST else "dialled a granted name"
            ] += 1
        if self.names.asked:
            self.seen["looked a name up"] += 1
        first = attempt.requests[0]
        if first.method == "CONNECT":
            kind = "CONNECT host:port"
        elif first.target.startswith("http://"):
            kind = "absolute http:// target"
        elif first.target.startswith("/"):
            kind = "origin-form (model API) target"
        else:
            kind = "other target"
        self.seen[f"first request: {kind}"] += 1


@contextlib.contextmanager
def rig_on(loop: asyncio.AbstractEventLoop) -> Iterator[Rig]:
    """A started Rig on `loop` (run by the caller, one example at a time)."""
    with tempfile.TemporaryDirectory(prefix="egress-fuzz-") as folder:
        rig = Rig(Path(folder))
        loop.run_until_complete(rig.start())
        try:
            yield rig
        finally:
            loop.run_until_complete(rig.close())
