"""The egress proxy's request handling, fuzzed (tests/hostile_requests.py): malformed request
lines, CR/LF/NUL in values, pipelined requests, oversize heads, clients that send in pieces. Its
one property: nothing is ever dialled but a public address of a granted name on a granted port,
or the model API for an agent's token and one of the CLI's calls. Bounded here; a long run is
bench/egress_fuzz.py."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, example, given, settings

from tests.hostile_requests import Attempt, Case, attempts, rig_on


def _one(method: str, target: str, credential: tuple[str, str]) -> Attempt:
    case = Case(method, " ", target, " ", "HTTP/1.1", (credential,), (), b"{}", "length", "\r\n")
    return Attempt((case,), b"", (), 0.0)


# The attacks that got out, always tried besides what Hypothesis draws.
KNOWN = [
    _one("CONNECT", "127.0.0.1\0%.example.org:443", ("proxy", "agent")),
    _one("CONNECT", "inside.example.org:443", ("proxy", "agent")),
    _one("GET", "http://mapped.example.org/", ("proxy", "check")),
    _one("POST", "/v1/messages", ("key", "check")),
    _one("POST", "/v1/files", ("key", "agent")),
]


def test_nothing_but_an_allowed_public_address_is_ever_dialled() -> None:
    loop = asyncio.new_event_loop()
    try:
        with rig_on(loop) as rig:

            @settings(
                max_examples=200,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(attempts)
            @example(KNOWN[0])
            @example(KNOWN[1])
            @example(KNOWN[2])
            @example(KNOWN[3])
            @example(KNOWN[4])
            def property_holds(attempt: Attempt) -> None:
                loop.run_until_complete(rig.run(attempt))

            property_holds()
        # The run reached the places that matter, not only refusals of garbage.
        assert rig.seen["dialled a granted name"] > 0, rig.seen
        assert rig.seen["looked a name up"] > 0, rig.seen
    finally:
        loop.close()
