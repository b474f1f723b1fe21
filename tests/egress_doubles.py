"""Stand-ins for the egress proxy's name lookups and dials (autopilot/agent/egress.py), so tests
see every name it looks up and every address it dials, and no test reaches past loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autopilot.agent import Streams, open_tcp

# Global unicast addresses, handed out by FakeNames for test names: never really dialled (the
# dialler below takes them to loopback, or refuses).
PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
ELSEWHERE = "151.101.1.140"


@dataclass
class FakeNames:
    """A resolver from a table; a name not in it does not resolve."""

    table: Mapping[str, list[str]]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return list(self.table[host])


@dataclass
class Dialler:
    """Records each dial. `routes` takes an address and port to a loopback port (a real server
    of the test's); loopback itself (the scripted model as the API) is dialled as it is; any
    other dial is refused after it was recorded."""

    routes: Mapping[tuple[str, int], int] = field(default_factory=dict)
    dialled: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(
        self, host: str, port: int, tls: ssl.SSLContext | None, server_hostname: str | None
    ) -> Streams:
        self.dialled.append((host, port))
        if (host, port) in self.routes:
            return await asyncio.open_connection("127.0.0.1", self.routes[host, port])
        if host == "127.0.0.1":
            return await open_tcp(host, port, tls, server_hostname)
        raise ConnectionRefusedError(f"the test refuses to dial {host}:{port}")


async def exchange(socket_path: Path, *pieces: bytes, pause_s: float = 0.0) -> bytes:
    """Send `pieces` to the proxy on one connection (`pause_s` between them, as a slow client
    would), end the sending side, and return all it answered."""
    reader, writer = await asyncio.open_unix_connection(str(socket_path))
    try:
        with contextlib.suppress(ConnectionError, OSError):  # the proxy refused early, closed
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                if pause_s:
                    await asyncio.sleep(pause_s)
            if writer.can_write_eof():
                writer.write_eof()
        async with asyncio.timeout(20):
            try:
                return await reader.read()
            except (ConnectionError, OSError):
                return b""
    finally:
        writer.close()
