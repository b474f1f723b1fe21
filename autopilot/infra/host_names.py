"""Which host names may be granted or dialled: the one rule for `[sandbox] network` and the
notification URLs, so that a repository cannot point the pipeline at the worker's own machine
or its private network by a name.

A grant (`network`) must be a public DNS name, or `*.` and one: never an IP literal (in any
notation `inet_aton` or a URL parser accepts: `127.1`, `0x7f000001`, `2130706433`, `[::1]`),
never `localhost` or a name under a special-use suffix that only resolves inside a network
(`.localhost`, `.internal`, `.local`, `.home.arpa`), and never a whole top-level domain
(`com`, `*.com`, `*`). A notification target (`private_host_reason`, `private_address_reason`)
may be an IP literal, but not one of loopback, a private or link-local network, or the like.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "HostNameRefused",
    "IPAddress",
    "check_grant",
    "is_dns_label",
    "is_ip_literal",
    "is_public",
    "private_address_reason",
    "private_host_reason",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

WILDCARD = "*."
# Special-use names (RFC 6761, 6762, 8375 and ICANN's .internal): they resolve to this machine
# or only inside a private network, never to a public host.
PRIVATE_SUFFIXES = ("localhost", "internal", "local", "home.arpa")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# What a URL parser takes for an IPv4 address's last part (WHATWG "ends in a number"): decimal,
# octal or hex digits. No top-level domain is one.
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


# Ranges `is_global` lets through in some Python versions, or that carry an IPv4 address
# inside an IPv6 one; each is judged by what it would reach.
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class HostNameRefused(ValueError):
    """The name may not be granted or dialled; the message says why."""


def is_ip_literal(host: str) -> bool:
    """An address written as a name: IPv6 (bracketed or not) or IPv4 in any notation."""
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        return True
    if ":" in name:
        try:
            ipaddress.IPv6Address(name.split("%", 1)[0])
        except ValueError:
            return False
        return True
    last = name.rsplit(".", 1)[-1]
    return bool(last) and _NUMERIC_LABEL.fullmatch(last) is not None


def is_dns_label(label: str) -> bool:
    """Letters, digits and inner hyphens, 1 to 63 characters (RFC 1035, 2.3.1), lower case."""
    return _LABEL.fullmatch(label) is not None


def is_public(address: IPAddress) -> bool:
    """A global unicast address, and so is any IPv4 address it carries inside."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return all(is_public(inner) for inner in embedded)
        if address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL or address.is_site_local:
            return False
    elif address in _SHARED:
        return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...] | None:
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    if address in _NAT64:
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    return None


def _special_suffix(name: str) -> str | None:
    for suffix in PRIVATE_SUFFIXES:
        if name == suffix or name.endswith("." + suffix):
            return suffix
    return None


def private_host_reason(host: str) -> str | None:
    """Why a URL's host name is not a public host (None: it is, by its name): localhost or a
    special-use name, or an IP literal of a non-public address. Resolving is the caller's."""
    name = host.strip().lower().rstrip(".").strip("[]")
    if is_ip_literal(name):
        try:
            return private_address_reason(str(ipaddress.ip_address(name)))
        except ValueError:
            return "is an IP address in a notation other than the usual one"
    suffix = _special_suffix(name)
    if suffix is not None:
        return f"is a special-use name (.{suffix}) that only resolves on this machine or network"
    return None


def private_address_reason(address: str) -> str | None:
    """Why an address is not a public host's (None: it is one)."""
    given = ipaddress.ip_address(address.split("%", 1)[0])  # a zone index is not the address
    embedded = _embedded_ipv4(given) if isinstance(given, ipaddress.IPv6Address) else None
    ip: IPAddress = embedded[0] if embedded and len(embedded) == 1 else given
    kinds = (
        (ip.is_loopback, "loopback (this machine)"),
        (ip.is_link_local, "link-local (cloud metadata services live there)"),
        (ip.is_private, "in a private network"),
        (ip.is_unspecified, "unspecified (this machine)"),
        (ip.is_multicast, "multicast"),
        (ip.is_reserved, "reserved"),
        (not is_public(given), "not a public address"),  # shared (100.64/10), NAT64, ...
    )
    for found, kind in kinds:
        if found:
            return f"is {kind}: {ip}"
    return None


def check_grant(value: str) -> str:
    """`value` as a `network` grant, lowercased: a public DNS name or `*.` and one.
    HostNameRefused says why not otherwise."""
    text = value.strip().lower()
    text = text[:-1] if text.endswith(".") else text  # the root's dot: the same name
    name = text.removeprefix(WILDCARD)
    if text in ("*", ""):
        raise HostNameRefused("grants every host; name the domains the work needs")
    if is_ip_literal(name):
        raise HostNameRefused(
            "is an IP address, not a domain: an address could be this machine or its network;"
            " grant the service's public domain name"
        )
    labels = name.split(".")
    if not all(is_dns_label(label) for label in labels):
        raise HostNameRefused(
            "is not a domain (letters, digits and - in dot-separated labels, optionally after *.)"
        )
    suffix = _special_suffix(name)
    if suffix is not None:
        raise HostNameRefused(
            f"is a special-use name (.{suffix}): it resolves to this machine or a private"
            " network, never to a public host"
        )
    if len(labels) == 1:
        raise HostNameRefused(
            "is a top-level domain alone"
            + (", every host under it" if text.startswith(WILDCARD) else ", not a host")
            + "; name the domain the work needs"
        )
    return text
