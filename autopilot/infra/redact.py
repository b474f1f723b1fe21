"""Known secret values scrubbed out of what the pipeline keeps: check output, the agent's and the
reviewer's transcripts, and the texts that go back to the workflow (and so into its history,
the status and later prompts).

A secret is the value of a variable of the worker's environment whose name looks secret
(`looks_secret`): ANTHROPIC_API_KEY, a GITHUB_TOKEN, a DB_PASSWORD. Each occurrence is replaced
by `[redacted NAME]`. Values shorter than MIN_SECRET_CHARS are left alone: a `1` or a `true`
would otherwise vanish from every log.

Output written as it comes goes through a `StreamScrubber`, which holds back the few bytes at
the end of a chunk that could be the start of a secret, so one split across two chunks is
still caught.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

__all__ = [
    "MIN_SECRET_CHARS",
    "NO_SECRETS",
    "Redactor",
    "StreamScrubber",
    "looks_secret",
    "secret_values",
]

# Always secret, whatever the name rules below say.
ALWAYS_SECRET = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "TEMPORAL_API_KEY")
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN")
MIN_SECRET_CHARS = 8
# What a marker may show of a variable's name: it lands inside JSON strings and log lines.
_UNSHOWN_IN_NAME = re.compile(r"[^A-Za-z0-9_]")


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return (
        upper in ALWAYS_SECRET
        or upper.endswith(_SECRET_SUFFIXES)
        or any(word in upper for word in _SECRET_WORDS)
    )


def secret_values(env: Mapping[str, str]) -> dict[str, str]:
    """The secrets of an environment: name -> value, for the names that look secret."""
    return {
        name: value
        for name, value in env.items()
        if looks_secret(name) and len(value) >= MIN_SECRET_CHARS
    }


def marker(name: str) -> str:
    return f"[redacted {_UNSHOWN_IN_NAME.sub('_', name)}]"


def _spellings(value: str) -> list[str]:
    """The value as written raw and as it appears inside a JSON string (the transcripts are
    JSON lines: a quote or a newline in a secret is escaped there, and non-ASCII may be)."""
    return list(
        dict.fromkeys(
            [
                value,
                json.dumps(value, ensure_ascii=False)[1:-1],
                json.dumps(value)[1:-1],
            ]
        )
    )


class Redactor:
    """Replaces every known secret value in a text or in bytes; pure, and cheap to call."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        labels: dict[str, str] = {}
        for name, value in sorted(secrets.items()):  # one value under two names: the first
            if len(value) >= MIN_SECRET_CHARS:
                for spelling in _spellings(value):
                    labels.setdefault(spelling, marker(name))
        self._labels = labels
        self._byte_labels = {key.encode(): label.encode() for key, label in labels.items()}
        # Longest first: where one secret is a prefix of another, the longer one is replaced.
        ordered = sorted(labels, key=len, reverse=True)
        self._text_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes_re = (
            re.compile(b"|".join(re.escape(key.encode()) for key in ordered)) if ordered else None
        )
        # A secret split across two chunks starts within this many bytes of the first's end.
        self.overlap = max((len(key) for key in self._byte_labels), default=1) - 1

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Redactor:
        return cls(secret_values(env))

    def scrub(self, text: str) -> str:
        if self._text_re is None:
            return text
        return self._text_re.sub(lambda found: self._labels[found[0]], text)

    def scrub_bytes(self, data: bytes) -> bytes:
        if self._bytes_re is None:
            return data
        return self._bytes_re.sub(lambda found: self._byte_labels[found[0]], data)

    def stream(self) -> StreamScrubber:
        return StreamScrubber(self._bytes_re, self._byte_labels, self.overlap)


class StreamScrubber:
    """Scrubs output that arrives in chunks of any size: `feed` returns what is safe to write
    now, `close` the rest. A match is only final once the bytes after it could no longer make
    a longer secret, so the last `overlap` bytes wait for the next chunk."""

    def __init__(
        self, pattern: re.Pattern[bytes] | None, labels: Mapping[bytes, bytes], overlap: int
    ) -> None:
        self._pattern = pattern
        self._labels = labels
        self._overlap = overlap
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        if self._pattern is None:
            return chunk
        data = self._pending + chunk
        final = len(data) - self._overlap  # a match starting before this is complete
        out: list[bytes] = []
        done = 0
        for found in self._pattern.finditer(data):
            if found.start() >= final:
                break
            out += [data[done : found.start()], self._labels[found[0]]]
            done = found.end()
        cut = max(done, final)
        out.append(data[done:cut])
        self._pending = data[cut:]
        return b"".join(out)

    def close(self) -> bytes:
        rest, self._pending = self._pending, b""
        if self._pattern is None:
            return rest
        return self._pattern.sub(lambda found: self._labels[found[0]], rest)


NO_SECRETS = Redactor({})
