"""The sandbox's only way out: a proxy in the worker that holds the API credentials.

An agent, reviewer or check runs without a network of its own (autopilot/agent/sandbox.py); inside,
its loopback port leads to this proxy's Unix socket. Each run gets a grant: a random token,
the domains and ports it may reach, and whether it may use the model API. The proxy then
serves:

- the model API, to the agent's and the reviewer's grants only: a request in origin form (the
  CLI's ANTHROPIC_BASE_URL points here), one of MODEL_API_CALLS, whose `x-api-key` or
  `Authorization` carries the run's token, is sent on to the real API with the worker's
  credentials in its place. The agent never holds them: nothing it reads
  (`/proc/self/environ` included) shows them;
- the domains of the grant (`.autopilot.toml`'s `[sandbox] network`, on `[sandbox] ports`):
  `CONNECT host:port` and plain-HTTP requests in absolute form, the token in
  `Proxy-Authorization`, as HTTPS_PROXY makes npm, pip, curl and git send them. The target
  must be a strict host name (autopilot/agent/egress_names.py); the proxy resolves it once
  and dials the very address it checked, only when every answer is public. Everything else is
  refused, the Temporal server and the rest of this machine included.

One request per connection: whatever follows it on the connection is never read, and the
connections a grant opened are ended with the grant.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import re
import secrets
import socket
import ssl
from asyncio import StreamReader, StreamWriter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from autopilot.agent.egress_http import BadRequest, Request, copy_body, parse_head
from autopilot.agent.egress_names import (
    DEFAULT_PORTS,
    TargetRefused,
    checked_host,
    checked_port,
    public_addresses,
)
from autopilot.infra import CREDENTIALS, IPAddress

log = structlog.get_logger("egress")

DEFAULT_API = "https://api.anthropic.com"
MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT_S = 30.0
# A client that has not sent its whole request head by then is let go (a slow one would hold
# a connection and its task for ever).
HEAD_TIMEOUT_S = 30.0
CHUNK = 64 * 1024
# What the pinned CLI sends to the model API, by method and path (a query is kept): seen in
# the scripted model's log of real runs (`HEAD /` as a connection check, then
# `POST /v1/messages?beta=true`), and count_tokens, which the CLI may call. The rest of the
# API (files, batches, models, the admin API) is not the agent's to use.
MODEL_API_CALLS = frozenset(
    {("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"), ("HEAD", "/")}
)
# Per-connection headers that must not cross a proxy (RFC 9110, 7.6.1), and the credentials
# this proxy replaces.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
)
LOGIN = "CLAUDE_CODE_OAUTH_TOKEN"  # what the agent is given for a Claude login of the worker's
_ABSOLUTE = re.compile(r"http://([^/?#]+)(/[^#]*)?")

Streams = tuple[StreamReader, StreamWriter]
# A name's addresses (as text), looked up once per request; tests substitute it.
Resolver = Callable[[str, int], Awaitable[list[str]]]
# Opens a connection: host, port, TLS context (None: plain), the name TLS checks.
Dialler = Callable[[str, int, ssl.SSLContext | None, str | None], Awaitable[Streams]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


async def open_tcp(
    host: str, port: int, tls: ssl.SSLContext | None, server_hostname: str | None
) -> Streams:
    return await asyncio.open_connection(
        host, port, ssl=tls, server_hostname=server_hostname if tls else None, limit=MAX_HEAD
    )


def login_file(env: Mapping[str, str]) -> Path:
    """Where `claude login` keeps the worker user's OAuth tokens."""
    config = env.get("CLAUDE_CONFIG_DIR") or os.path.join(env.get("HOME", "~"), ".claude")
    return Path(config).expanduser() / ".credentials.json"


def _login_token(path: Path) -> str | None:
    """The access token of a Claude login, read at each request: the user's own CLI refreshes
    it there."""
    try:
        data = json.loads(path.read_text())
        token = data["claudeAiOauth"]["accessToken"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return token if isinstance(token, str) and token else None


@dataclass(frozen=True)
class Grant:
    """What one run may do through the proxy."""

    token: str
    domains: tuple[str, ...]
    ports: tuple[int, ...] = DEFAULT_PORTS
    model_api: bool = False  # the agent's and the reviewer's runs; never a check or setup

    def allows(self, host: str) -> bool:
        """`host` is a domain of the grant, or below one (`pypi.org` allows
        `files.pypi.org`); `*.example.com` allows only what is below."""
        host = host.lower().rstrip(".")
        for domain in self.domains:
            domain = domain.lower().rstrip(".")
            if domain.startswith("*."):
                if host.endswith(domain[1:]):
                    return True
            elif host == domain or host.endswith(f".{domain}"):
                return True
        return False


def _forwarded(headers: Sequence[tuple[str, str]], host: str) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() != "host"]
    return [("Host", host), *kept, ("Connection", "close")]


class Egress:
    """The proxy. `start()` listens on `socket_path`; `grant()` gives a run its token."""

    def __init__(
        self,
        socket_path: Path,
        env: Mapping[str, str],
        *,
        resolver: Resolver = system_resolver,
        dialler: Dialler = open_tcp,
    ) -> None:
        self.socket_path = socket_path
        self._api = urlsplit(env.get("ANTHROPIC_BASE_URL") or DEFAULT_API)
        self._secrets = {
            header: env[name] for name, header in reversed(CREDENTIALS.items()) if env.get(name)
        }
        self.credential_names = [name for name in CREDENTIALS if env.get(name)]
        # No credential variable: a Claude login of the worker's user, if there is one.
        self._login = login_file(env) if not self._secrets else None
        if self._login is not None and self._login.is_file():
            self.credential_names = [LOGIN]
        self._resolve = resolver
        self._dial = dialler
        self._grants: dict[str, Grant] = {}
        # The connections serving each grant's requests: ended when the grant ends.
        self._holding: dict[str, set[asyncio.Task[Any]]] = {}
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    async def start(self) -> Egress:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.socket_path), limit=MAX_HEAD
        )
        self.socket_path.chmod(0o600)
        return self

    async def close(self) -> None:
        """Stop listening and end the connections still open (a request whose run was cut
        short by the worker's shutdown may still wait on the model)."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self.socket_path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def grant(
        self,
        domains: Sequence[str] = (),
        *,
        model_api: bool,
        ports: Sequence[int] = DEFAULT_PORTS,
    ) -> Iterator[Grant]:
        """A token for one run, valid until the block ends; then the connections it opened
        are ended too."""
        grant = Grant(secrets.token_urlsafe(32), tuple(domains), tuple(ports), model_api)
        self._grants[grant.token] = grant
        self._holding[grant.token] = set()
        try:
            yield grant
        finally:
            del self._grants[grant.token]
            for connection in self._holding.pop(grant.token):
                connection.cancel()

    # -- serving -----------------------------------------------------------------------------

    def _grant_of(self, value: str) -> Grant | None:
        for token, grant in list(self._grants.items()):
            if token and hmac.compare_digest(token.encode(), value.encode()):
                return grant
        return None

    def _hold(self, grant: Grant) -> None:
        """The current connection serves `grant` from now on: it ends when the grant does."""
        connection = asyncio.current_task()
        held = self._holding.get(grant.token)
        if connection is not None and held is not None:
            held.add(connection)
            connection.add_done_callback(held.discard)

    def _secret(self, header: str) -> str | None:
        if header in self._secrets:
            return self._secrets[header]
        if header == "authorization" and self._login is not None:
            return _login_token(self._login)
        return None

    def _proxy_grant(self, request: Request) -> Grant | None:
        scheme, _, encoded = request.header("proxy-authorization").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _, _, token = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return self._grant_of(token)

    async def _serve(self, reader: StreamReader, writer: StreamWriter) -> None:
        connection = asyncio.current_task()
        if connection is not None:
            self._connections.add(connection)
            connection.add_done_callback(self._connections.discard)
        try:
            try:
                async with asyncio.timeout(HEAD_TIMEOUT_S):
                    raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # a readiness probe, or no HTTP at all
            except asyncio.LimitOverrunError:
                await _refuse(writer, 431, f"a request head is at most {MAX_HEAD} bytes")
                return
            except TimeoutError:
                await _refuse(writer, 408, f"no whole request head in {HEAD_TIMEOUT_S:.0f}s")
                return
            try:
                request = parse_head(raw[:-4])
            except BadRequest as err:
                await _refuse(writer, 400, str(err))
                return
            tunnel = request.method == "CONNECT"
            if not tunnel and request.target.startswith("/"):
                await self._api_call(request, reader, writer)
                return
            grant = self._proxy_grant(request)
            if grant is None:
                proxy = "HTTPS_PROXY" if tunnel else "HTTP_PROXY"
                await _refuse(writer, 407, f"give the run's proxy credentials ({proxy})")
            elif tunnel:
                await self._tunnel(grant, request, reader, writer)
            else:
                await self._plain_http(grant, request, reader, writer)
        except BadRequest as err:  # a body that does not keep to its framing
            log.info("egress request refused", error=str(err))
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError) as err:
            log.info("egress connection ended", error=str(err) or type(err).__name__)
        except asyncio.LimitOverrunError:
            log.info("egress connection ended", error="a chunk line over the limit")
        except asyncio.CancelledError:
            # Ended by `close` (the worker stops) or by the end of its grant: the connection's
            # end is all there is to it; a handler that stayed cancelled would make asyncio
            # log a traceback.
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _api_call(self, request: Request, reader: StreamReader, writer: StreamWriter) -> None:
        headers: list[tuple[str, str]] = []
        granted: list[Grant] = []
        for name, value in request.headers:
            lowered = name.lower()
            if lowered in ("x-api-key", "authorization"):
                grant = self._grant_of(value.removeprefix("Bearer ").strip())
                real = self._secret(lowered)
                if grant is None or real is None:
                    continue
                granted.append(grant)
                value = f"Bearer {real}" if lowered == "authorization" else real
            headers.append((name, value))
        if not granted:
            await _refuse(writer, 401, "no valid run token for the model API")
            return
        if not all(grant.model_api for grant in granted):
            log.warning("egress refused the model API", reason="not an agent's run")
            await _refuse(
                writer, 403, "only the agent's and the reviewer's runs may use the model API"
            )
            return
        path = request.target.partition("?")[0]
        if (request.method, path) not in MODEL_API_CALLS:
            log.warning("egress refused the model API", method=request.method, path=path)
            calls = ", ".join(f"{method} {path}" for method, path in sorted(MODEL_API_CALLS))
            await _refuse(writer, 403, f"the model API takes only what the CLI sends: {calls}")
            return
        for grant in granted:
            self._hold(grant)
        api = self._api
        tls = api.scheme == "https"
        await self._forward(
            request,
            api.path.rstrip("/") + request.target,
            _forwarded(headers, api.netloc),
            self._dial(
                api.hostname or "",
                api.port or (443 if tls else 80),
                ssl.create_default_context() if tls else None,
                api.hostname,
            ),
            reader,
            writer,
        )

    async def _plain_http(
        self, grant: Grant, request: Request, reader: StreamReader, writer: StreamWriter
    ) -> None:
        url = _ABSOLUTE.fullmatch(request.target)
        if url is None:
            await _refuse(writer, 400, "an absolute target is http://host[:port]/path")
            return
        authority, path = url[1], url[2] or "/"
        host, colon, port = authority.partition(":")
        admitted = await self._admitted(grant, writer, authority, host, port if colon else "80")
        if admitted is None:
            return
        address, number = admitted
        headers = _forwarded(request.headers, authority)
        dialled = self._dial(str(address), number, None, None)
        await self._forward(request, path, headers, dialled, reader, writer)

    async def _tunnel(
        self, grant: Grant, request: Request, reader: StreamReader, writer: StreamWriter
    ) -> None:
        host, colon, port = request.target.rpartition(":")
        if not colon:
            await self._denied(writer, request.target, "a CONNECT target is host:port")
            return
        admitted = await self._admitted(grant, writer, request.target, host, port)
        if admitted is None:
            return
        address, number = admitted
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                up_reader, up_writer = await self._dial(str(address), number, None, None)
        except (OSError, TimeoutError) as err:
            await _refuse(writer, 502, f"{host} did not answer at {address} ({err})")
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def _admitted(
        self, grant: Grant, writer: StreamWriter, target: str, host: str, port: str
    ) -> tuple[IPAddress, int] | None:
        """The approved address for a proxy client's `target`, its connection held by the grant
        from now on; None when refused (the client has been told why)."""
        try:
            address, number = await self._approved(grant, host, port)
        except TargetRefused as err:
            await self._denied(writer, target, str(err))
            return None
        self._hold(grant)
        return address, number

    async def _approved(self, grant: Grant, host: str, port: str) -> tuple[IPAddress, int]:
        """The address to dial for `host:port`, checked against the grant; the name is looked
        up here, once, and the address returned is the one that was checked (a second lookup
        could answer differently)."""
        name = checked_host(host)
        if not grant.allows(name):
            raise TargetRefused(
                f"{name} is not among the domains this run may reach; list it under [sandbox] "
                "network in .autopilot.toml"
            )
        number = checked_port(port, grant.ports)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                answers = await self._resolve(name, number)
        except (OSError, TimeoutError) as err:
            raise TargetRefused(f"{name} cannot be resolved ({err or 'timed out'})") from None
        return public_addresses(answers)[0], number

    async def _forward(
        self,
        request: Request,
        target: str,
        headers: list[tuple[str, str]],
        dialled: Awaitable[Streams],
        reader: StreamReader,
        writer: StreamWriter,
    ) -> None:
        """Send the request on (its body as framed, and nothing after it) and its answer back,
        both connections closed after it."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                up_reader, up_writer = await dialled
        except (OSError, TimeoutError) as err:
            await _refuse(writer, 502, f"the server did not answer ({err or 'timed out'})")
            return
        try:
            up_writer.write(request.encode(target, headers))
            body = asyncio.create_task(copy_body(request, reader, up_writer))
            try:
                head = await up_reader.readuntil(b"\r\n\r\n")
                status, *answer = head[:-4].decode("latin-1").split("\r\n")
                fields = [line.partition(":") for line in answer]
                kept = [f"{k}:{v}" for k, _, v in fields if k.strip().lower() not in _HOP_BY_HOP]
                lines = [status, *kept, "Connection: close"]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                await _pipe(up_reader, writer)
            finally:
                body.cancel()
                with contextlib.suppress(
                    asyncio.CancelledError,
                    BadRequest,
                    ConnectionError,
                    OSError,
                    asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError,
                ):
                    await body
        finally:
            up_writer.close()

    async def _denied(self, writer: StreamWriter, target: str, reason: str) -> None:
        shown = ascii(target)[1:-1][:300]  # the client's bytes, made printable for log and answer
        log.warning("egress refused", target=shown, reason=reason)
        await _refuse(writer, 403, f"{shown}: {reason}")


async def _pipe(reader: StreamReader, writer: StreamWriter, *, close: bool = True) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if close and writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _refuse(writer: StreamWriter, status: int, reason: str) -> None:
    body = f"autopilot: {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} Refused\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
