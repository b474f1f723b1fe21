"""What the egress proxy (autopilot/agent/egress.py) accepts as a place to dial.

A target comes from the sandbox, so it is data: the proxy takes it only as a strict DNS host
name (never an address in any notation, never anything a C resolver would read differently
from this code), resolves that name once itself, and dials an address only when every answer
is a public one, the address it checked and no other.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from autopilot.infra import IPAddress, is_dns_label, is_ip_literal, is_public
from autopilot.models import EGRESS_PORTS

DEFAULT_PORTS = EGRESS_PORTS  # a grant's ports unless `.autopilot.toml` sets [sandbox] ports
MAX_NAME = 253
_PORT = re.compile(r"[1-9][0-9]{0,4}")


class TargetRefused(ValueError):
    """The target is not a host name the proxy dials; the message says why, for the client."""


def checked_host(text: str) -> str:
    """`text` as a lower-case DNS host name, or TargetRefused."""
    if not text.isascii() or not text.isprintable():
        raise TargetRefused("a host name is plain letters, digits, hyphens and dots")
    name = text.lower()
    if len(name) > MAX_NAME:
        raise TargetRefused(f"a host name is at most {MAX_NAME} characters")
    labels = name.split(".")
    if not all(is_dns_label(label) for label in labels):
        raise TargetRefused("a host name is plain letters, digits, hyphens and dots")
    if is_ip_literal(name) or _is_address(name):
        raise TargetRefused("an address is not a host name; name the host")
    return name


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return True
    try:
        socket.inet_aton(name)  # the C library's reading: `127.1`, `0x7f.1`, `0177.0.0.1`
    except OSError:
        return False
    return True


def checked_port(text: str, allowed: Iterable[int]) -> int:
    """`text` as a port among `allowed`, or TargetRefused."""
    if not _PORT.fullmatch(text) or int(text) > 65535:
        raise TargetRefused("the port is a number from 1 to 65535")
    port = int(text)
    ports = tuple(allowed)
    if port not in ports:
        listed = ", ".join(str(p) for p in ports)
        raise TargetRefused(
            f"port {port} is not among the ports this run may reach ({listed}); list it under "
            "[sandbox] ports in .autopilot.toml"
        )
    return port


def public_addresses(answers: Iterable[str]) -> list[IPAddress]:
    """The resolver's answers, when every one is public; TargetRefused otherwise (one private
    answer among public ones is how a name points the proxy at this machine)."""
    try:
        addresses = list(dict.fromkeys(ipaddress.ip_address(answer) for answer in answers))
    except ValueError as err:
        raise TargetRefused(f"the resolver gave no address: {err}") from None
    if not addresses:
        raise TargetRefused("the name has no address")
    private = [str(address) for address in addresses if not is_public(address)]
    if private:
        raise TargetRefused(
            f"the name resolves to {', '.join(private)}, not a public address; the proxy dials "
            "only public ones"
        )
    return addresses
