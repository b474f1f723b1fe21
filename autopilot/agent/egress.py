"""The sandbox's only way out: a proxy in the worker that holds the API credentials.

An agent, reviewer or check runs without a network of its own (autopilot/agent/sandbox.py); inside,
its loopback port leads to this proxy's Unix socket. Each run gets a grant: a random token
and the domains it may reach. The proxy then serves:

- the model API: a request in origin form (`POST /v1/messages`, the CLI's ANTHROPIC_BASE_URL
  points here) whose `x-api-key` or `Authorization` carries the run's token is sent on to the
  real API with the worker's credentials in its place. The agent never holds them: nothing it
  reads (`/proc/self/environ` included) shows them;
- the domains of the grant (`.autopilot.toml`'s `[sandbox] network`): `CONNECT host:port` and
  plain-HTTP requests in absolute form, the token in `Proxy-Authorization`, as HTTPS_PROXY
  makes npm, pip, curl and git send them. Everything else is refused, the Temporal server and
  the rest of this machine included.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import os
import secrets
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

log = structlog.get_logger("egress")

DEFAULT_API = "https://api.anthropic.com"
MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT_S = 30.0
CHUNK = 64 * 1024
# Per-connection headers that must not cross a proxy (RFC 9110, 7.6.1), and the credentials
# this proxy replaces.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}
)
# The worker's credential variables and the header each goes in.
CREDENTIALS = {
    "ANTHROPIC_API_KEY": "x-api-key",
    "ANTHROPIC_AUTH_TOKEN": "authorization",
    "CLAUDE_CODE_OAUTH_TOKEN": "authorization",
}
LOGIN = "CLAUDE_CODE_OAUTH_TOKEN"  # what the agent is given for a Claude login of the worker's


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


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name), "")

    def encode(self, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
        lines = [f"{self.method} {target} {self.version}", *(f"{k}: {v}" for k, v in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _forwarded(headers: Sequence[tuple[str, str]], host: str) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() != "host"]
    return [("Host", host), *kept, ("Connection", "close")]


class Egress:
    """The proxy. `start()` listens on `socket_path`; `grant()` gives a run its token."""

    def __init__(self, socket_path: Path, env: Mapping[str, str]) -> None:
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
        self._grants: dict[str, Grant] = {}
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
    def grant(self, domains: Sequence[str] = ()) -> Iterator[Grant]:
        """A token for one run, valid until the block ends."""
        grant = Grant(secrets.token_urlsafe(32), tuple(domains))
        self._grants[grant.token] = grant
        try:
            yield grant
        finally:
            del self._grants[grant.token]

    # -- serving -----------------------------------------------------------------------------

    def _grant_of(self, value: str) -> Grant | None:
        for token, grant in list(self._grants.items()):
            if token and hmac.compare_digest(token.encode(), value.encode()):
                return grant
        return None

    def _secret(self, header: str) -> str | None:
        if header in self._secrets:
            return self._secrets[header]
        if header == "authorization" and self._login is not None:
            return _login_token(self._login)
        return None

    def _proxy_grant(self, request: _Request) -> Grant | None:
        scheme, _, encoded = request.header("proxy-authorization").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            _, _, token = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return self._grant_of(token)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = asyncio.current_task()
        if connection is not None:
            self._connections.add(connection)
            connection.add_done_callback(self._connections.discard)
        try:
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return  # a readiness probe, or no HTTP at all
            line, headers = _parse_head(raw[:-4])
            parts = line.split(" ")
            if len(parts) != 3:
                await _refuse(writer, 400, "not an HTTP request")
                return
            request = _Request(parts[0], parts[1], parts[2], headers)
            if request.method == "CONNECT":
                await self._tunnel(request, reader, writer)
            elif request.target.startswith("/"):
                await self._api_call(request, reader, writer)
            else:
                await self._plain_http(request, reader, writer)
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError) as err:
            log.info("egress connection ended", error=str(err) or type(err).__name__)
        except asyncio.CancelledError:
            # Ended by `close` (the worker stops): the connection's end is all there is to it;
            # a handler that stayed cancelled would make asyncio log a traceback.
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _api_call(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        headers: list[tuple[str, str]] = []
        granted = False
        for name, value in request.headers:
            lowered = name.lower()
            if lowered in ("x-api-key", "authorization"):
                token = value.removeprefix("Bearer ").strip()
                real = self._secret(lowered)
                if self._grant_of(token) is None or real is None:
                    continue
                granted = True
                value = f"Bearer {real}" if lowered == "authorization" else real
            headers.append((name, value))
        if not granted:
            await _refuse(writer, 401, "no valid run token for the model API")
            return
        api = self._api
        port = api.port or (443 if api.scheme == "https" else 80)
        target = api.path.rstrip("/") + request.target
        await self._forward(
            request,
            target,
            _forwarded(headers, api.netloc),
            api.hostname or "",
            port,
            api.scheme == "https",
            reader,
            writer,
        )

    async def _plain_http(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        url = urlsplit(request.target)
        grant = self._proxy_grant(request)
        if grant is None or url.scheme != "http" or not url.hostname:
            await _refuse(writer, 407, "give the run's proxy credentials (HTTP_PROXY)")
            return
        if not grant.allows(url.hostname):
            await self._denied(writer, url.hostname)
            return
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = _forwarded(request.headers, url.netloc)
        await self._forward(
            request, target, headers, url.hostname, url.port or 80, False, reader, writer
        )

    async def _tunnel(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port = request.target.rpartition(":")
        host = host.strip("[]")
        grant = self._proxy_grant(request)
        if grant is None:
            await _refuse(writer, 407, "give the run's proxy credentials (HTTPS_PROXY)")
            return
        if not host or not port.isdigit() or not grant.allows(host):
            await self._denied(writer, host or request.target)
            return
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()

    async def _forward(
        self,
        request: _Request,
        target: str,
        headers: list[tuple[str, str]],
        host: str,
        port: int,
        tls: bool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Send the request on (its body as it comes: length or chunks, whatever the client
        framed it with) and its answer back, both connections closed after it."""
        context = ssl.create_default_context() if tls else None
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            up_reader, up_writer = await asyncio.open_connection(
                host, port, ssl=context, limit=MAX_HEAD
            )
        try:
            up_writer.write(request.encode(target, headers))
            body = asyncio.create_task(_pipe(reader, up_writer, close=False))
            try:
                head = await up_reader.readuntil(b"\r\n\r\n")
                status, answer = _parse_head(head[:-4])
                kept = [(k, v) for k, v in answer if k.lower() not in _HOP_BY_HOP]
                lines = [status, *(f"{k}: {v}" for k, v in kept), "Connection: close"]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                await _pipe(up_reader, writer)
            finally:
                body.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                    await body
        finally:
            up_writer.close()

    async def _denied(self, writer: asyncio.StreamWriter, host: str) -> None:
        log.warning("egress refused", host=host)
        await _refuse(
            writer,
            403,
            f"{host} is not among the domains this run may reach; list it under [sandbox] "
            "network in .autopilot.toml",
        )


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, close: bool = True
) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if close and writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _refuse(writer: asyncio.StreamWriter, status: int, reason: str) -> None:
    body = f"autopilot: {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} Refused\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    with contextlib.suppress(ConnectionError, OSError):
        await writer.drain()
