"""Finding the `claude` binary, the explicit environment of a run, and its command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autopilot.agent import cli as claude_cli
from autopilot.models import AgentSettings


def executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """USUAL_PLACES pointed into tmp_path; none of them exists until a test creates it."""
    usual = [tmp_path / "usual" / str(i) / "claude" for i in range(3)]
    monkeypatch.setattr(claude_cli, "USUAL_PLACES", tuple(usual))
    return usual


# ---------------------------------------------------------------------------------------------
# find_claude
# ---------------------------------------------------------------------------------------------


def test_explicit_variable_wins_over_path_and_usual_places(
    tmp_path: Path, places: list[Path]
) -> None:
    explicit = executable(tmp_path / "explicit" / "claude")
    on_path = executable(tmp_path / "bin" / "claude")
    executable(places[0])

    found = claude_cli.find_claude(
        {"AUTOPILOT_CLAUDE_BIN": str(explicit), "PATH": str(on_path.parent)}
    )

    assert found == explicit


def test_explicit_variable_that_is_not_executable_is_an_error_naming_it(
    tmp_path: Path, places: list[Path]
) -> None:
    on_path = executable(tmp_path / "bin" / "claude")  # must not be used as a silent fallback
    not_executable = tmp_path / "plain" / "claude"
    not_executable.parent.mkdir()
    not_executable.write_text("#!/bin/sh\n")
    missing = tmp_path / "nowhere" / "claude"

    for bad in (missing, not_executable, tmp_path):  # missing, not +x, a directory
        with pytest.raises(claude_cli.ClaudeNotFound) as caught:
            claude_cli.find_claude({"AUTOPILOT_CLAUDE_BIN": str(bad), "PATH": str(on_path.parent)})
        message = str(caught.value)
        assert f"AUTOPILOT_CLAUDE_BIN={bad}" in message
        assert "unset it" in message


def test_blank_explicit_variable_is_ignored(tmp_path: Path, places: list[Path]) -> None:
    on_path = executable(tmp_path / "bin" / "claude")

    assert (
        claude_cli.find_claude({"AUTOPILOT_CLAUDE_BIN": "  ", "PATH": str(on_path.parent)})
        == on_path
    )


def test_path_comes_before_the_usual_places(tmp_path: Path, places: list[Path]) -> None:
    executable(places[0])
    first = executable(tmp_path / "first" / "claude")
    executable(tmp_path / "second" / "claude")
    (tmp_path / "empty").mkdir()
    path = os.pathsep.join(str(tmp_path / d) for d in ("empty", "first", "second"))

    assert claude_cli.find_claude({"PATH": path}) == first


def test_usual_places_in_order_skipping_what_cannot_run(tmp_path: Path, places: list[Path]) -> None:
    places[0].parent.mkdir(parents=True)
    places[0].write_text("not executable\n")
    executable(places[1])
    executable(places[2])
    (tmp_path / "empty").mkdir()

    assert claude_cli.find_claude({"PATH": str(tmp_path / "empty")}) == places[1]


def test_not_found_says_where_it_looked_and_how_to_fix_it(
    tmp_path: Path, places: list[Path]
) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(claude_cli.ClaudeNotFound) as caught:
        claude_cli.find_claude({"PATH": str(tmp_path / "empty")})

    message = str(caught.value)
    assert "AUTOPILOT_CLAUDE_BIN" in message and "PATH" in message
    for place in places:
        assert str(place) in message
    assert "./dev setup" in message


def test_npm_style_symlink_is_kept_so_its_folder_goes_on_path(tmp_path: Path) -> None:
    # npm installs `bin/claude` as a link into the package; `node` lives in that bin folder.
    package = executable(tmp_path / "lib" / "node_modules" / "claude-code" / "cli.js")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "claude").symlink_to(package)
    executable(bin_dir / "node")

    found = claude_cli.find_claude({"PATH": str(bin_dir)})
    env = claude_cli.agent_environment(found, {"PATH": "/usr/bin"})

    assert found == bin_dir / "claude"
    assert env["PATH"].split(os.pathsep)[0] == str(bin_dir)


# ---------------------------------------------------------------------------------------------
# agent_environment
# ---------------------------------------------------------------------------------------------

CLAUDE = Path("/opt/claude-code/bin/claude")


# The worker's variables a run must not get, whatever their prefix (cloud credentials,
# telemetry exporter headers, the worker's own Claude config, other model routes).
NEVER_PASSED = {
    "AWS_ACCESS_KEY_ID": "AKIA...",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_REGION": "eu-west-1",
    "AWS_SHARED_CREDENTIALS_FILE": "/home/me/creds",
    "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer otel-secret",
    "GOOGLE_APPLICATION_CREDENTIALS": "/home/me/gcp.json",
    "ANTHROPIC_CUSTOM_HEADERS": "x-secret: 1",
    "ANTHROPIC_VERTEX_PROJECT_ID": "p",
    "CLAUDE_CONFIG_DIR": "/home/me/.claude-work",
    "CLAUDE_CODE_USE_BEDROCK": "1",
    "CLAUDE_CODE_CLIENT_KEY_PASSPHRASE": "pass",
    "TEMPORAL_API_KEY": "temporal-secret",
    "TEMPORAL_ADDRESS": "127.0.0.1:7233",
    "GH_TOKEN": "gh-secret",
    "SECRET_TOKEN": "do-not-leak",
    "DATABASE_URL": "postgres://x",
    "PYTHONPATH": "/somewhere",
}
# How the worker reaches the model API: only in `model_route`, never from the worker's env.
ROUTE = {
    "ANTHROPIC_API_KEY": "sk-test",
    "ANTHROPIC_AUTH_TOKEN": "bearer-test",
    "CLAUDE_CODE_OAUTH_TOKEN": "oauth-secret",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://proxy:3128",
    "NODE_EXTRA_CA_CERTS": "/etc/ca.pem",
}
PASSED = {
    "HOME": "/home/me",
    "USER": "me",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "LC_TIME": "en_GB.UTF-8",
    "TZ": "Europe/Paris",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "4096",
    "DISABLE_TELEMETRY": "1",
    "API_TIMEOUT_MS": "60000",
    "MAX_THINKING_TOKENS": "1024",
    "GIT_AUTHOR_NAME": "Autopilot",
}


def test_environment_is_an_allowlist_of_what_the_cli_needs() -> None:
    base = {**NEVER_PASSED, **ROUTE, **PASSED, "PATH": "/usr/bin"}

    env = claude_cli.agent_environment(CLAUDE, base)

    for name, value in PASSED.items():
        assert env[name] == value, name
    for name in (*NEVER_PASSED, *ROUTE):
        assert name not in env, name
    assert env["TERM"] == "dumb"


def test_the_model_route_is_passed_only_when_asked_for() -> None:
    base = {**NEVER_PASSED, **ROUTE, **PASSED}

    assert claude_cli.model_route(base) == ROUTE
    env = claude_cli.agent_environment(CLAUDE, base, claude_cli.model_route(base))
    for name, value in ROUTE.items():
        assert env[name] == value, name
    for name in NEVER_PASSED:
        assert name not in env, name


def test_path_starts_with_the_binary_folder_then_the_workers_then_standard_places() -> None:
    env = claude_cli.agent_environment(CLAUDE, {"PATH": "/my/tools:/usr/bin::/my/tools"})

    entries = env["PATH"].split(os.pathsep)
    assert entries[:3] == [str(CLAUDE.parent), "/my/tools", "/usr/bin"]
    assert "" not in entries
    assert len(entries) == len(set(entries))  # no duplicates
    assert {"/usr/local/bin", "/bin"} <= set(entries)  # the Bash tool needs git, sh, ...


def test_path_without_a_worker_path_still_has_the_standard_places() -> None:
    env = claude_cli.agent_environment(CLAUDE, {})

    assert env["PATH"].split(os.pathsep)[0] == str(CLAUDE.parent)
    assert "/usr/bin" in env["PATH"].split(os.pathsep)
    assert env["HOME"]  # falls back to the worker's home


def test_unattended_defaults_do_not_override_the_users_values() -> None:
    defaults = claude_cli.agent_environment(CLAUDE, {})
    for name, value in claude_cli.UNATTENDED_DEFAULTS.items():
        assert defaults[name] == value
    assert defaults["CLAUDE_CODE_MAX_RETRIES"] == "2"  # the workflow owns retries

    user = claude_cli.agent_environment(
        CLAUDE, {"CLAUDE_CODE_MAX_RETRIES": "0", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "0"}
    )
    assert user["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert user["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "0"
    assert user["DISABLE_AUTOUPDATER"] == "1"


def test_extra_variables_win() -> None:
    env = claude_cli.agent_environment(
        CLAUDE,
        {"GIT_AUTHOR_NAME": "Worker", "HOME": "/home/me"},
        {"GIT_AUTHOR_NAME": "Autopilot", "GIT_COMMITTER_EMAIL": "ap@example.com"},
    )

    assert env["GIT_AUTHOR_NAME"] == "Autopilot"
    assert env["GIT_COMMITTER_EMAIL"] == "ap@example.com"


# ---------------------------------------------------------------------------------------------
# claude_argv
# ---------------------------------------------------------------------------------------------


def test_argv_uses_flag_equals_value_forms_and_a_new_session_id() -> None:
    settings = AgentSettings(max_turns=7, allowed_tools=["Read", "Bash"])

    argv = claude_cli.claude_argv(CLAUDE, settings, "1234-sid")

    assert argv[:2] == [str(CLAUDE), "-p"]
    assert "--output-format=stream-json" in argv
    assert "--verbose" in argv  # stream-json refuses to run without it
    assert "--permission-mode=acceptEdits" in argv
    assert "--allowedTools=Read,Bash" in argv
    assert "--max-turns=7" in argv
    assert "--session-id=1234-sid" in argv
    assert not any(a.startswith("--resume") for a in argv)
    assert not any(a.startswith("--model") for a in argv)
    # Every option carries its value: a variadic flag followed by a separate value could
    # swallow what comes after it.
    assert all(a.startswith("--") and ("=" in a or a == "--verbose") for a in argv[2:])


def test_argv_resume_and_model() -> None:
    settings = AgentSettings(model="claude-test-model", permission_mode="plan")

    argv = claude_cli.claude_argv(CLAUDE, settings, "sid-9", resume=True)

    assert "--resume=sid-9" in argv
    assert not any(a.startswith("--session-id") for a in argv)
    assert "--model=claude-test-model" in argv
    assert "--permission-mode=plan" in argv


def test_no_argv_widens_what_the_agent_may_touch(tmp_path: Path) -> None:
    """The agent's cwd is its workspace and nothing more: no extra directories, no permission
    bypass, for the worker agent and the reviewer alike."""
    from autopilot.models import AgentSettings, ReviewSettings
    from autopilot.review import reviewer_argv

    binary = tmp_path / "claude"
    for argv in (
        claude_cli.claude_argv(binary, AgentSettings(), "sid"),
        claude_cli.claude_argv(binary, AgentSettings(), "sid", resume=True),
        reviewer_argv(binary, ReviewSettings(), "sid"),
    ):
        joined = " ".join(argv)
        assert "--add-dir" not in joined
        assert "--dangerously-skip-permissions" not in joined
        assert "bypassPermissions" not in joined
