""".autopilot.toml: reading it, the errors that say what to fix, and layering with the flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from autopilot.infra import (
    BOM,
    CONFIG_FILE,
    CONFIG_SIZE_LIMIT,
    PROMPT_FILE_LIMIT,
    RepoConfigError,
    RepoReviewConfig,
    load_repo_config,
    merge_review_settings,
)
from autopilot.models import (
    DEFAULT_CONTAINER_IMAGE,
    CheckCommand,
    ContainerSettings,
    ReviewSettings,
)

FULL = """\
[review]
mode = "checks"
rounds = 2
checks = ["pytest -q", "sh -c 'ruff check . && ruff format --check .'"]
check_env = ["DATABASE_URL", "_PRIVATE_HOME2", "DATABASE_URL"]
check_timeout_s = 120
reviewer_model = "claude-test-model"
reviewer_prompt = "Also check the docs."
on_failure = "pause"
"""


def write_config(repo: Path, text: str) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    path = repo / CONFIG_FILE
    path.write_text(text)
    return path


def config_error(repo: Path, text: str) -> str:
    path = write_config(repo, text)
    with pytest.raises(RepoConfigError) as caught:
        load_repo_config(repo)
    message = str(caught.value)
    assert message.startswith(str(path)), message  # every file error names the file first
    return message


def no_flags(**flags: Any) -> dict[str, Any]:
    """merge_review_settings' keyword arguments: nothing given on the command line but flags."""
    base: dict[str, Any] = {
        "mode": None,
        "rounds": None,
        "checks": [],
        "check_timeout_s": None,
        "reviewer_model": None,
        "reviewer_prompt": None,
        "on_failure": None,
        "verify_merged": None,
    }
    return {**base, **flags}


# --------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------


def test_full_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, FULL)
    cfg = load_repo_config(tmp_path)
    assert cfg == RepoReviewConfig(
        mode="checks",
        rounds=2,
        checks=[
            CheckCommand(command="pytest -q", argv=["pytest", "-q"]),
            CheckCommand(
                command="sh -c 'ruff check . && ruff format --check .'",
                argv=["sh", "-c", "ruff check . && ruff format --check ."],
            ),
        ],
        check_env=["DATABASE_URL", "_PRIVATE_HOME2", "DATABASE_URL"],
        check_timeout_s=120.0,
        reviewer_model="claude-test-model",
        reviewer_prompt="Also check the docs.",
        on_failure="pause",
        source=str(path),
    )


def test_missing_file_sets_nothing(tmp_path: Path) -> None:
    assert load_repo_config(tmp_path) == RepoReviewConfig()


def test_empty_file_and_empty_table_set_nothing(tmp_path: Path) -> None:
    path = write_config(tmp_path, "")
    assert load_repo_config(tmp_path) == RepoReviewConfig(source=str(path))
    write_config(tmp_path, "[review]\n")
    assert load_repo_config(tmp_path) == RepoReviewConfig(source=str(path))


def test_verify_merged_is_on_unless_the_file_turns_it_off(tmp_path: Path) -> None:
    assert merge_review_settings(load_repo_config(tmp_path), **no_flags()).verify_merged
    write_config(tmp_path, "[review]\nverify_merged = false\n")
    cfg = load_repo_config(tmp_path)
    assert cfg.verify_merged is False
    assert not merge_review_settings(cfg, **no_flags()).verify_merged
    assert merge_review_settings(cfg, **no_flags(verify_merged=True)).verify_merged  # flag wins


def test_reviewer_prompt_file(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir(parents=True)
    (tmp_path / "docs" / "review.md").write_text("Check the changelog.\n")
    write_config(tmp_path, '[review]\nreviewer_prompt_file = "docs/review.md"\n')
    assert load_repo_config(tmp_path).reviewer_prompt == "Check the changelog.\n"


def test_invalid_toml_names_line_and_column(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[review]\nmode "both"\n')
    assert "is not valid TOML" in message
    assert "line 2, column" in message
    assert "fix the syntax there" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[reveiw]\n",
            "unknown table [reveiw] (did you mean 'review'?); the tables are [review], [sandbox]",
        ),
        ("[other]\nx = 1\n", "unknown table [other]; the tables are [review], [sandbox]"),
        (
            'mode = "both"\n',
            "unknown top-level key 'mode'; put it under its table, [review] or [sandbox]",
        ),
        ("review = 3\n", "review must be a table; write [review] on its own line"),
        (
            "[review]\nround = 2\n",
            "unknown key 'round' in [review] (did you mean 'rounds'?); allowed keys: "
            "check_env, check_timeout_s, checks, mode, on_failure, reviewer_model, "
            "reviewer_prompt, reviewer_prompt_file, rounds, verify_merged.",
        ),
    ],
)
def test_unknown_tables_and_keys(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(tmp_path, text)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'mode = "fast"',
            "[review] mode = 'fast' is not allowed; use one of: agent, checks, both, none.",
        ),
        ("mode = 1", "[review] mode = 1 is not allowed; use one of: agent, checks, both, none."),
        (
            'on_failure = "stop"',
            "[review] on_failure = 'stop' is not allowed; use one of: continue, pause.",
        ),
        ("rounds = 0", "[review] rounds = 0 is not allowed; use a whole number of at least 1"),
        ('verify_merged = "no"', "[review] verify_merged = 'no' is not allowed; use true or false"),
        ("verify_merged = 0", "[review] verify_merged = 0 is not allowed; use true or false"),
        ("rounds = 2.5", "[review] rounds = 2.5 is not allowed; use a whole number"),
        ("rounds = true", "[review] rounds = True is not allowed; use a whole number"),
        (
            "check_timeout_s = 0",
            "[review] check_timeout_s = 0 is not allowed; use a number of seconds",
        ),
        ("check_timeout_s = -5.0", "[review] check_timeout_s = -5.0 is not allowed"),
        ("check_timeout_s = inf", "[review] check_timeout_s = inf is not allowed"),
        ('check_timeout_s = "60"', "[review] check_timeout_s = '60' is not allowed"),
        (
            'checks = "pytest -q"',
            "[review] checks = 'pytest -q' is not allowed; use a list of strings",
        ),
        ("checks = [1]", "[review] checks = [1] is not allowed; use a list of strings"),
        (
            'check_env = "DATABASE_URL"',
            "[review] check_env = 'DATABASE_URL' is not allowed; use a list of environment"
            " variable names (letters, digits and _, not starting with a digit), e.g."
            ' ["DATABASE_URL"].',
        ),
        (
            'check_env = ["JAVA_HOME", "1ST"]',
            "[review] check_env = ['JAVA_HOME', '1ST'] is not allowed; use a list of environment"
            " variable names",
        ),
        ('check_env = ["A-B"]', "[review] check_env = ['A-B'] is not allowed"),
        ('check_env = ["A B"]', "[review] check_env = ['A B'] is not allowed"),
        ('check_env = ["A=1"]', "[review] check_env = ['A=1'] is not allowed"),
        ('check_env = [""]', "[review] check_env = [''] is not allowed"),
        ("check_env = [1]", "[review] check_env = [1] is not allowed; use a list of environment"),
        (
            'check_env = ["GIT_DIR"]',
            "[review] check_env = ['GIT_DIR'] is not allowed; use names other than GIT_DIR,"
            " GIT_WORK_TREE,",
        ),
        (
            "reviewer_model = 3",
            "[review] reviewer_model = 3 is not allowed; use a non-empty string.",
        ),
        (
            'reviewer_prompt = ""',
            "[review] reviewer_prompt = '' is not allowed; use a non-empty string.",
        ),
    ],
)
def test_wrong_values(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in config_error(tmp_path, f"[review]\n{line}\n")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('checks = ["pytest -k \'slow"]', "No closing quotation"),
        ('checks = ["pytest -q", "  "]', "is empty; write a command such as 'pytest -q'"),
    ],
)
def test_check_that_does_not_parse(tmp_path: Path, line: str, expected: str) -> None:
    message = config_error(tmp_path, f"[review]\n{line}\n")
    assert "[review] checks: check " in message
    assert expected in message


def test_prompt_and_prompt_file_together(tmp_path: Path) -> None:
    (tmp_path / "review.md").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "review.md").write_text("x")
    text = '[review]\nreviewer_prompt = "a"\nreviewer_prompt_file = "review.md"\n'
    message = config_error(tmp_path, text)
    assert "sets both reviewer_prompt and reviewer_prompt_file; keep one." in message


def test_prompt_file_missing(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[review]\nreviewer_prompt_file = "docs/nope.md"\n')
    assert "[review] reviewer_prompt_file = 'docs/nope.md' is not a file in the repo" in message
    assert "create it or fix the path" in message


@pytest.mark.parametrize("name", ["../outside.md", "docs/../../outside.md", "/etc/hostname"])
def test_prompt_file_outside_the_repo(tmp_path: Path, name: str) -> None:
    repo = tmp_path / "repo"
    (tmp_path / "outside.md").write_text("secret")
    message = config_error(repo, f'[review]\nreviewer_prompt_file = "{name}"\n')
    assert f"[review] reviewer_prompt_file = '{name}' points outside the repo" in message


def test_prompt_file_symlink_out_of_the_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "outside.md").write_text("secret")
    (repo / "review.md").symlink_to(tmp_path / "outside.md")
    message = config_error(repo, '[review]\nreviewer_prompt_file = "review.md"\n')
    assert "points outside the repo" in message


# --------------------------------------------------------------------------------------------
# Layering: flags over file over defaults
# --------------------------------------------------------------------------------------------


def test_nothing_set_gives_the_defaults() -> None:
    assert merge_review_settings(RepoReviewConfig(), **no_flags()) == ReviewSettings()


def test_file_over_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, FULL)
    settings = merge_review_settings(load_repo_config(tmp_path), **no_flags())
    assert settings.mode == "checks"
    assert settings.rounds == 2
    assert [c.command for c in settings.checks] == [
        "pytest -q",
        "sh -c 'ruff check . && ruff format --check .'",
    ]
    assert settings.check_timeout_s == 120.0
    assert settings.reviewer_model == "claude-test-model"
    assert settings.reviewer_prompt == "Also check the docs."
    assert settings.on_failure == "pause"
    assert settings.check_env == ["DATABASE_URL", "_PRIVATE_HOME2"]  # a name twice: once
    assert settings.reviewer_max_turns == ReviewSettings().reviewer_max_turns


def test_flags_over_file(tmp_path: Path) -> None:
    write_config(tmp_path, FULL)
    flags = no_flags(
        mode="agent",
        rounds=1,
        check_timeout_s=5.0,
        reviewer_model="flag-model",
        reviewer_prompt="from the flag",
        on_failure="continue",
    )
    settings = merge_review_settings(load_repo_config(tmp_path), **flags)
    assert (settings.mode, settings.rounds, settings.check_timeout_s) == ("agent", 1, 5.0)
    assert (settings.reviewer_model, settings.reviewer_prompt) == ("flag-model", "from the flag")
    assert settings.on_failure == "continue"


def test_flags_over_defaults_and_partial_file() -> None:
    settings = merge_review_settings(RepoReviewConfig(rounds=5), **no_flags(mode="none"))
    assert (settings.mode, settings.rounds) == ("none", 5)
    assert settings.check_timeout_s == ReviewSettings().check_timeout_s


def test_checks_file_first_then_flags_without_duplicates(tmp_path: Path) -> None:
    write_config(tmp_path, FULL)
    flags = no_flags(checks=["mypy .", "  pytest -q ", "mypy .", "ruff check ."])
    settings = merge_review_settings(load_repo_config(tmp_path), **flags)
    assert [c.command for c in settings.checks] == [
        "pytest -q",
        "sh -c 'ruff check . && ruff format --check .'",
        "mypy .",
        "ruff check .",
    ]
    assert settings.checks[2].argv == ["mypy", "."]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            {"mode": "fast"},
            "--review 'fast' is not allowed; use one of: agent, checks, both, none.",
        ),
        ({"rounds": 0}, "--review-rounds 0 is not allowed; use a whole number of at least 1."),
        ({"check_timeout_s": 0.0}, "--check-timeout 0 is not allowed; use a number of seconds"),
        (
            {"on_failure": "stop"},
            "--on-failure 'stop' is not allowed; use one of: continue, pause.",
        ),
        ({"checks": ["pytest 'x"]}, '--check: check "pytest \'x" cannot be split'),
        ({"checks": [""]}, "--check: check '' is empty"),
    ],
)
def test_invalid_flags(flags: dict[str, Any], expected: str) -> None:
    with pytest.raises(RepoConfigError) as caught:
        merge_review_settings(RepoReviewConfig(), **no_flags(**flags))
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("rounds = 21", "[review] rounds = 21 is not allowed; use a whole number of at most 20"),
        (
            "check_timeout_s = 1e300",
            "[review] check_timeout_s = 1e+300 is not allowed; use a number of seconds of at"
            " most 604800.",
        ),
        ("check_timeout_s = nan", "[review] check_timeout_s = nan is not allowed; use a number"),
    ],
)
@pytest.mark.reliability(
    ".autopilot.toml number out of its range (1e300 s overflowed a timedelta, nan)",
    "RepoConfigError naming the file, the key and the range",
)
def test_numbers_out_of_range(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in config_error(tmp_path, f"[review]\n{line}\n")


@pytest.mark.reliability(
    "reviewer_prompt_file far too big", "RepoConfigError with its size, before it is read"
)
def test_prompt_file_over_the_limit(tmp_path: Path) -> None:
    with (tmp_path / "review.md").open("wb") as file:
        file.truncate(PROMPT_FILE_LIMIT + 1)  # sparse: nothing written
    message = config_error(tmp_path, '[review]\nreviewer_prompt_file = "review.md"\n')
    assert "[review] reviewer_prompt_file = 'review.md' is 8.0 MiB, over the 8 MiB limit" in message


def test_sandbox_network_domains(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text(
        '[sandbox]\nnetwork = ["PyPI.org", "*.npmjs.org", "pypi.org"]\n'
    )
    assert load_repo_config(tmp_path).network == ["pypi.org", "*.npmjs.org"]
    message = config_error(tmp_path, '[sandbox]\nnetwork = ["https://pypi.org/simple"]\n')
    assert "[sandbox] network = ['https://pypi.org/simple']" in message
    assert 'a list of public domains, e.g. ["pypi.org", "*.npmjs.org"]' in message
    assert "unknown key 'netwrok' in [sandbox] (did you mean 'network'?)" in config_error(
        tmp_path, "[sandbox]\nnetwrok = []\n"
    )


def test_sandbox_ports(tmp_path: Path) -> None:
    assert load_repo_config(tmp_path).ports == [443, 80]  # no file: HTTPS and HTTP
    (tmp_path / CONFIG_FILE).write_text("[sandbox]\nports = [8443, 443, 8443]\n")
    assert load_repo_config(tmp_path).ports == [8443, 443]
    rule = "use a non-empty list of port numbers from 1 to 65535, e.g. [443, 80, 8443]."
    for value in ("[]", "[0]", "[65536]", '["443"]', "[true]", "443"):
        message = config_error(tmp_path, f"[sandbox]\nports = {value}\n")
        assert "[sandbox] ports = " in message and message.endswith(rule), message


# --------------------------------------------------------------------------------------------
# [workspace]
# --------------------------------------------------------------------------------------------

WORKSPACE = """\
[workspace]
setup = ["uv sync", "sh -c 'npm ci && npm run build'"]
setup_timeout_s = 300
cache_key = ["uv.lock", "web/package-lock.json", "uv.lock"]
cache_dirs = [".venv/", "web/node_modules"]
copy = [".env.test", "./config/local.toml"]
"""


def test_workspace_table(tmp_path: Path) -> None:
    write_config(tmp_path, WORKSPACE)
    workspace = load_repo_config(tmp_path).workspace
    assert workspace.setup == [
        CheckCommand(command="uv sync", argv=["uv", "sync"]),
        CheckCommand(
            command="sh -c 'npm ci && npm run build'", argv=["sh", "-c", "npm ci && npm run build"]
        ),
    ]
    assert workspace.setup_timeout_s == 300
    assert workspace.cache_key == ["uv.lock", "web/package-lock.json"]  # once each
    assert workspace.cache_dirs == [".venv", "web/node_modules"]  # paths written cleanly
    assert workspace.copy_files == [".env.test", "config/local.toml"]
    assert workspace.keep_out == [".env.test", "config/local.toml", ".venv", "web/node_modules"]
    assert load_repo_config(tmp_path / "none").workspace.active is False


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('copy = ["../secrets.env"]', "[workspace] copy = ['../secrets.env'] is not allowed"),
        ('copy = ["/etc/passwd"]', "[workspace] copy = ['/etc/passwd'] is not allowed"),
        ('copy = [".git/config"]', "[workspace] copy = ['.git/config'] is not allowed"),
        ('copy = ["sub/.GIT/hooks/x"]', "not in .git"),
        ('copy = ["."]', "[workspace] copy = ['.'] is not allowed"),
        ('cache_key = [""]', "[workspace] cache_key = [''] is not allowed"),
        ('setup = "uv sync"', 'a list of strings, e.g. ["uv sync", "npm ci"]'),
        ('after_restore = "npm rebuild"', 'a list of strings, e.g. ["npm rebuild"]'),
        ("setup_timeout_s = 0", "use a number of seconds greater than 0"),
        ("setup_timeout_s = 1e300", "of at most 604800"),
        ("cpoy = []", "unknown key 'cpoy' in [workspace] (did you mean 'copy'?)"),
    ],
)
def test_workspace_values_refused(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in config_error(tmp_path, f"[workspace]\n{line}\n")


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('cache_dirs = [".venv"]', "names cache_dirs but no setup"),
        ('setup = ["uv sync"]\ncache_key = ["uv.lock"]', "names cache_key but no cache_dirs"),
        (
            'setup = ["x"]\ncache_dirs = ["conf"]\ncopy = ["conf"]',
            "names conf in both copy and cache_dirs",
        ),
        ('setup = ["sh -c \'unclosed"]', '[workspace] setup: check "sh -c \'unclosed"'),
        ('setup = ["npm ci"]\nafter_restore = ["npm rebuild"]', "names after_restore but no"),
        (
            'setup = ["x"]\ncache_dirs = ["n"]\nafter_restore = ["sh -c \'unclosed"]',
            '[workspace] after_restore: check "sh -c \'unclosed"',
        ),
    ],
)
def test_workspace_keys_that_do_not_go_together(tmp_path: Path, table: str, expected: str) -> None:
    assert expected in config_error(tmp_path, f"[workspace]\n{table}\n")


# --------------------------------------------------------------------------------------------
# [container]
# --------------------------------------------------------------------------------------------


def test_container_table(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[container]\nimage = "ghcr.io/me/agent:1.2"\npackages = []\nuser = "dev"\n'
        'home = "/home/dev"\nengine_timeout_s = 60\n',
    )
    container = load_repo_config(tmp_path).container
    assert container == ContainerSettings(
        image="ghcr.io/me/agent:1.2", packages=[], user="dev", home="/home/dev",
        engine_timeout_s=60,
    )  # fmt: skip
    write_config(tmp_path, '[container]\nuser = "dev"\n')
    assert load_repo_config(tmp_path).container.image == DEFAULT_CONTAINER_IMAGE  # a default
    assert load_repo_config(tmp_path / "none").container == ContainerSettings()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'image = ""',
            "[container] image = '' is not allowed; use an image reference ([registry/]name",
        ),
        ('home = "home/node"', "[container] home = 'home/node' is not allowed; use an absolute"),
        ('packages = "git"', "use a list of Debian package names"),
        ("user = 1000", "use a user name (letters, digits, ., _ and -, not starting with -)"),
        ('user = "node; rm -rf /"', "[container] user = 'node; rm -rf /' is not allowed"),
        ('user = "-u0"', "[container] user = '-u0' is not allowed"),
        ('user = "root"', "user = 'root' runs the agent as root"),
        ('user = "0"', "user = '0' runs the agent as root"),
        ('user = "root"\nallow_root = "yes"', "[container] allow_root = 'yes' is not allowed"),
        (
            'packages = ["git", "-oDPkg::Pre-Invoke::=id"]',
            "use package names, never options (apt-get would obey a value starting with -)",
        ),
        ('packages = ["Git"]', "use a list of Debian package names"),
        ('packages = ["git curl"]', "use a list of Debian package names"),
        ('image = "node 22 slim"', "[container] image = 'node 22 slim' is not allowed"),
        ('image = "-v/:/host"', "use an image reference ([registry/]name[:tag][@digest]"),
        ('image = "Node:22"', "[container] image = 'Node:22' is not allowed"),
        ("engine_timeout_s = 0", "use a number of seconds greater than 0"),
        ("imgae = 'x'", "unknown key 'imgae' in [container] (did you mean 'image'?)"),
    ],
)
def test_container_values_refused(tmp_path: Path, line: str, expected: str) -> None:
    assert expected in config_error(tmp_path, f"[container]\n{line}\n")


@pytest.mark.parametrize(
    "image",
    [
        "node:22.12.0-bookworm-slim",
        "ghcr.io/me/agent:1.2",
        "localhost:5000/team/agent",
        "registry.example.com/a/b/c@sha256:" + "a" * 64,
        "debian:bookworm@sha256:" + "0" * 64,
        "my_org/agent__v2",
    ],
)
def test_image_references_accepted(tmp_path: Path, image: str) -> None:
    write_config(tmp_path, f'[container]\nimage = "{image}"\n')
    assert load_repo_config(tmp_path).container.image == image


def test_root_only_when_allowed(tmp_path: Path) -> None:
    write_config(tmp_path, '[container]\nuser = "root"\nhome = "/root"\nallow_root = true\n')
    assert load_repo_config(tmp_path).container.user == "root"


# --------------------------------------------------------------------------------------------
# The file itself: its kind, size and encoding
# --------------------------------------------------------------------------------------------


def test_a_bom_is_named(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_FILE
    path.write_bytes(BOM + b"[review]\nrounds = 2\n")
    with pytest.raises(RepoConfigError) as caught:
        load_repo_config(tmp_path)
    assert str(caught.value).startswith(f"{path} starts with a byte order mark (BOM")
    assert "without a BOM" in str(caught.value)


@pytest.mark.parametrize("kind", ["fifo", "directory", "oversized"])
def test_a_config_that_is_not_a_settings_file_is_refused_unread(tmp_path: Path, kind: str) -> None:
    """A FIFO is refused without waiting for a writer (it would hang the starter for ever)."""
    path = tmp_path / CONFIG_FILE
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"#" * (CONFIG_SIZE_LIMIT + 1))
    expected = {
        "fifo": "is not a regular file (it is a FIFO (named pipe))",
        "directory": "is not a regular file (it is a directory)",
        "oversized": "is 1.0 MiB, over the 1 MiB limit",
    }[kind]
    with pytest.raises(RepoConfigError) as caught:
        load_repo_config(tmp_path)
    assert str(caught.value).startswith(f"{path} {expected}"), caught.value
