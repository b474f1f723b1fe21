"""The HTTP/1.x the egress proxy (autopilot/agent/egress.py) reads from the sandbox, strictly.

A request head is `METHOD SP target SP HTTP/1.x`, then `name: value` lines, each byte of them
checked: a head that any other parser could read differently (a CR or LF inside a value, a
folded line, two lengths) is refused, not guessed at. A body is copied by its own framing
(Content-Length or chunked) and nothing past it, so bytes pipelined after a request are never
sent on as part of it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_HEADERS = 100
CHUNK = 64 * 1024
_REQUEST_LINE = re.compile(r"([A-Z]{1,20}) ([\x21-\x7e]+) (HTTP/1\.[01])")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")  # no CR, LF, NUL or other controls
_LENGTH = re.compile(r"[0-9]{1,15}")
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,8})(;[\t\x20-\x7e]*)?\r\n")


class BadRequest(ValueError):
    """Not a request this proxy reads; the message says what is wrong, for the client."""


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]

    def header(self, name: str) -> str:
        return next(iter(self.values(name)), "")

    def encode(self, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
        lines = [f"{self.method} {target} {self.version}", *(f"{k}: {v}" for k, v in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(raw: bytes) -> Request:
    """The request in `raw`, its head without the blank line that ends it."""
    lines = raw.decode("latin-1").split("\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise BadRequest("the request line is not METHOD SP target SP HTTP/1.x")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(f"more than {MAX_HEADERS} header lines")
    headers = tuple(_header(line) for line in lines[1:])
    request = Request(match[1], match[2], match[3], headers)
    body_framing(request)  # a head whose body cannot be framed is refused before anything else
    return request


def _header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if not colon or not _HEADER_NAME.fullmatch(name):
        raise BadRequest("a header line is not name: value")
    value = value.strip(" \t")
    if not _HEADER_VALUE.fullmatch(value):
        raise BadRequest(f"the {name} header holds a control character")
    return name, value


CHUNKED = -1


def body_framing(request: Request) -> int:
    """The body's length, or CHUNKED (RFC 9112, 6.3: one framing, never both)."""
    encodings = request.values("transfer-encoding")
    lengths = request.values("content-length")
    if encodings:
        if lengths or [e.lower() for e in encodings] != ["chunked"]:
            raise BadRequest("the only transfer coding taken is chunked, without Content-Length")
        return CHUNKED
    if len(lengths) > 1 or (lengths and not _LENGTH.fullmatch(lengths[0])):
        raise BadRequest("Content-Length is one decimal number")
    return int(lengths[0]) if lengths else 0


async def copy_body(
    request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Send the request's body on, as framed, and not a byte more."""
    length = body_framing(request)
    if length == CHUNKED:
        await _copy_chunked(reader, writer)
        return
    while length > 0:
        chunk = await reader.readexactly(min(length, CHUNK))
        length -= len(chunk)
        writer.write(chunk)
        await writer.drain()


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        line = await reader.readuntil(b"\r\n")
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise BadRequest("a chunk size line is not hexadecimal")
        size = int(match[1], 16)
        writer.write(line)
        if size == 0:
            break
        data = await reader.readexactly(size + 2)
        if not data.endswith(b"\r\n"):
            raise BadRequest("a chunk does not end with CRLF")
        writer.write(data)
        await writer.drain()
    while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
        _header(trailer[:-2].decode("latin-1"))
        writer.write(trailer)
    writer.write(b"\r\n")
    await writer.drain()
