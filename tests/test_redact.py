"""Scrubbing known secret values: which variables are secret, and the replacement itself, whole
and streamed in chunks of any size."""

from __future__ import annotations

import json

import pytest

from autopilot.infra import MIN_SECRET_CHARS, NO_SECRETS, Redactor, looks_secret, secret_values

KEY = "sk-ant-api03-abcdefghijklmnop"


@pytest.mark.parametrize(
    "name",
    [
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "TEMPORAL_API_KEY",
        "DEPLOY_KEY",
        "github_token",
        "AWS_SECRET_ACCESS_KEY",
        "CLIENT_SECRET",
        "DB_PASSWORD",
        "MYSECRETTHING",
        "PASSWORD_FILE",
        "TOKENS",
    ],
)
def test_names_that_look_secret(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name", ["PATH", "HOME", "KEYBOARD", "MONKEY", "DATABASE_URL", "GIT_ASKPASS", "TERM"]
)
def test_names_that_do_not(name: str) -> None:
    assert not looks_secret(name)


def test_secret_values_keep_secret_names_with_long_values() -> None:
    env = {
        "ANTHROPIC_API_KEY": KEY,
        "FEATURE_TOKEN": "1",  # a flag, not a secret: would erase every "1" of the output
        "USE_PASSWORD": "true",
        "SHORT_KEY": "x" * (MIN_SECRET_CHARS - 1),
        "EIGHT_KEY": "y" * MIN_SECRET_CHARS,
        "HOME": "/home/someone-long",
    }
    assert secret_values(env) == {"ANTHROPIC_API_KEY": KEY, "EIGHT_KEY": "y" * MIN_SECRET_CHARS}


def test_scrub_replaces_every_occurrence_with_the_names_marker() -> None:
    redactor = Redactor({"ANTHROPIC_API_KEY": KEY, "DB_PASSWORD": "hunter2hunter2"})
    text = f"key={KEY} again {KEY}; db hunter2hunter2."
    expected = (
        "key=[redacted ANTHROPIC_API_KEY] again [redacted ANTHROPIC_API_KEY]; "
        "db [redacted DB_PASSWORD]."
    )
    assert redactor.scrub(text) == expected
    assert redactor.scrub_bytes(text.encode()) == expected.encode()


def test_scrub_leaves_text_without_secrets_alone() -> None:
    assert Redactor({"ANTHROPIC_API_KEY": KEY}).scrub("nothing here") == "nothing here"
    assert NO_SECRETS.scrub(KEY) == KEY
    assert NO_SECRETS.scrub_bytes(KEY.encode()) == KEY.encode()


def test_short_values_are_never_scrubbed() -> None:
    assert Redactor({"X_TOKEN": "true"}).scrub("true") == "true"


def test_a_secret_that_contains_another_is_replaced_whole() -> None:
    redactor = Redactor({"A_KEY": "abcdefgh", "B_KEY": "abcdefgh-and-more"})
    assert redactor.scrub("abcdefgh-and-more abcdefgh") == "[redacted B_KEY] [redacted A_KEY]"


def test_a_secret_is_found_as_json_writes_it() -> None:
    # A transcript is JSON lines: a quote, a backslash or a newline in a secret is escaped.
    odd = 'pa"ss\\word\nwith-é'
    redactor = Redactor({"ODD_PASSWORD": odd})
    for line in (json.dumps({"v": odd}), json.dumps({"v": odd}, ensure_ascii=False)):
        scrubbed = redactor.scrub(line)
        assert json.loads(scrubbed) == {"v": "[redacted ODD_PASSWORD]"}


def test_a_name_is_shown_safely_in_its_marker() -> None:
    assert Redactor({'we"ird\\_TOKEN': KEY}).scrub(KEY) == "[redacted we_ird__TOKEN]"


def stream_through(redactor: Redactor, chunks: list[bytes]) -> bytes:
    scrubber = redactor.stream()
    return b"".join([*(scrubber.feed(chunk) for chunk in chunks), scrubber.close()])


def test_stream_catches_a_secret_split_at_any_point() -> None:
    redactor = Redactor({"ANTHROPIC_API_KEY": KEY})
    data = f"before {KEY} middle {KEY}after".encode()
    for cut in range(len(data) + 1):
        assert stream_through(redactor, [data[:cut], data[cut:]]) == redactor.scrub_bytes(data)


def test_stream_byte_by_byte_and_with_empty_chunks() -> None:
    redactor = Redactor({"A_KEY": "abcdefgh", "B_KEY": "abcdefgh-and-more"})
    data = b"xx abcdefgh-and-more yy abcdefgh zz abcdefg"
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert stream_through(redactor, [b"", *one_by_one, b""]) == redactor.scrub_bytes(data)
    assert redactor.scrub_bytes(data) == b"xx [redacted B_KEY] yy [redacted A_KEY] zz abcdefg"


def test_stream_holds_back_no_more_than_a_secret_could_need() -> None:
    redactor = Redactor({"A_KEY": "abcdefgh"})
    scrubber = redactor.stream()
    assert scrubber.feed(b"0123456789") == b"012"  # the last 7 bytes could start the secret
    assert scrubber.feed(b"abc") == b"345"
    assert scrubber.feed(b"defgh!") == b"6789[redacted A_KEY]"
    assert scrubber.close() == b"!"


def test_stream_without_secrets_passes_chunks_through() -> None:
    scrubber = NO_SECRETS.stream()
    assert scrubber.feed(b"abc") == b"abc"
    assert scrubber.close() == b""
