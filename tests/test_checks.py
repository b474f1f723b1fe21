"""The repo's check commands: parsing, and running them for real in a workspace."""

from __future__ import annotations

import os
import secrets
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autopilot.agent import allowed_env
from autopilot.infra import CheckSyntaxError, parse_check
from autopilot.models import CheckCommand, CheckResult
from autopilot.review import TAIL_CHARS, CheckEnv, check_log_name, run_check, run_checks

PY = shlex.quote(sys.executable)


def py(code: str) -> CheckCommand:
    """A check that runs `code` with this interpreter (always installed, unlike most tools)."""
    return parse_check(f"{PY} -c {shlex.quote(code)}")


def wait_until(condition: Callable[[], bool], deadline_s: float = 5.0) -> bool:
    """Poll until condition holds or the deadline passes; whether it held."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def sleepers(duration: str) -> list[int]:
    """Live (non-zombie) processes running exactly `sleep <duration>`."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")  # empty for zombies
        except OSError:
            continue
        if argv[:2] == [b"sleep", duration.encode()]:
            found.append(int(entry.name))
    return found


def unique_sleep() -> str:
    """A sleep duration no other process uses: our marker in /proc."""
    return f"300.{secrets.randbelow(10**6):06d}"


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "worktree"
    path.mkdir()
    return path


# --------------------------------------------------------------------------------------------
# parse_check
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("pytest -q", ["pytest", "-q"]),
        ("  ruff check .  ", ["ruff", "check", "."]),
        ("pytest -k 'not slow and fast'", ["pytest", "-k", "not slow and fast"]),
        ('echo "a b" c\\ d', ["echo", "a b", "c d"]),
        (
            "sh -c 'make lint && make test | tee out'",
            ["sh", "-c", "make lint && make test | tee out"],
        ),
        ("pytest >out.txt", ["pytest", ">out.txt"]),  # no shell: a redirect is just an argument
    ],
)
def test_parse_check_splits_like_a_shell(command: str, argv: list[str]) -> None:
    parsed = parse_check(command)
    assert parsed.argv == argv
    assert parsed.command == command.strip()


@pytest.mark.parametrize("command", ["", "   ", "\t\n"])
def test_parse_check_rejects_empty(command: str) -> None:
    with pytest.raises(CheckSyntaxError, match=r"is empty; write a command such as 'pytest -q'"):
        parse_check(command)


def test_parse_check_rejects_unbalanced_quotes() -> None:
    with pytest.raises(CheckSyntaxError) as caught:
        parse_check("pytest -k 'slow")
    message = str(caught.value)
    assert '"pytest -k \'slow"' in message
    assert "No closing quotation" in message
    assert "close the quote" in message


def test_parse_check_rejects_trailing_backslash() -> None:
    with pytest.raises(CheckSyntaxError, match="remove the trailing backslash"):
        parse_check("pytest \\")


def test_parse_check_rejects_nul() -> None:
    with pytest.raises(CheckSyntaxError, match="NUL"):
        parse_check("pytest\0-q")


# --------------------------------------------------------------------------------------------
# run_check
# --------------------------------------------------------------------------------------------


def test_passing_check(worktree: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "deep" / "check.log"
    check = py(
        "import os; print('cwd', os.getcwd()); print('stdin', os.path.realpath('/dev/stdin'))"
    )
    result = run_check(worktree, check, 30, log)
    assert result.passed is True
    assert result.exit_code == 0
    assert result.timed_out is False
    assert result.command == check.command
    assert result.output_path == str(log)
    assert f"cwd {worktree}" in result.output_tail
    assert "stdin /dev/null" in result.output_tail
    assert log.read_text() == result.output_tail
    assert 0 < result.duration_s < 30


def test_failing_check_keeps_exit_code_and_both_streams(worktree: Path, tmp_path: Path) -> None:
    check = py("import sys; print('to out', flush=True); print('to err', file=sys.stderr); exit(3)")
    result = run_check(worktree, check, 30, tmp_path / "check.log")
    assert result.passed is False
    assert result.exit_code == 3
    assert result.timed_out is False
    assert result.output_tail == "to out\nto err\n"  # interleaved in order, in one file


def test_output_tail_is_the_end_of_a_long_output(worktree: Path, tmp_path: Path) -> None:
    log = tmp_path / "check.log"
    check = py("for i in range(2000): print(f'line {i:05d}')")
    result = run_check(worktree, check, 30, log)
    full = log.read_text()
    assert len(full) == 2000 * len("line 00000\n")
    assert len(result.output_tail) == TAIL_CHARS
    assert full.endswith(result.output_tail)
    assert result.output_tail.endswith("line 01999\n")


def test_relative_script_runs_from_the_workspace(worktree: Path, tmp_path: Path) -> None:
    script = worktree / "check.sh"
    script.write_text("#!/bin/sh\necho from script\n")
    script.chmod(0o755)
    result = run_check(worktree, parse_check("./check.sh"), 30, tmp_path / "check.log")
    assert result.passed is True
    assert result.output_tail == "from script\n"


WORKER_SECRETS = {
    "ANTHROPIC_API_KEY": "sk-ant-test-0123456789abcdef",
    "DEPLOY_TOKEN": "deploy-token-fedcba9876543210",
}
# Variables a shell sets for itself, whatever environment it was given.
SHELL_OWN = {"PWD", "OLDPWD", "SHLVL", "_"}


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The worker's environment as a check would have inherited it before: secrets, git
    locations and the rest of the worker's variables."""
    extra = {
        **WORKER_SECRETS,
        "GIT_DIR": "/somewhere/else/.git",
        "GIT_AUTHOR_NAME": "Worker Name",
        "AUTOPILOT_TEST_TOOLCHAIN": "worker-only",
        "DATABASE_URL": "postgres://localhost/test",
        "LANG": "C.UTF-8",
    }
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    for name in os.environ:  # the machine's own package-tool settings: each test sets its own
        if allowed_env.PACKAGE_TOOLS.admits(name):
            monkeypatch.delenv(name)
    return extra


def env_names(output: str) -> set[str]:
    return {line.split("=", 1)[0] for line in output.splitlines() if "=" in line}


def test_a_check_sees_only_path_home_lang_and_its_tmpdir(
    worktree: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    check = parse_check("sh -c 'echo \"key:$ANTHROPIC_API_KEY\"; env'")
    result = run_check(worktree, check, 30, tmp_path / "check.log")
    assert result.passed, result.output_tail
    lines = result.output_tail.splitlines()
    assert lines[0] == "key:"
    assert env_names("\n".join(lines[1:])) - SHELL_OWN == {"PATH", "HOME", "LANG", "TMPDIR"}
    for value in worker_env.values():
        if value not in (os.environ["PATH"], os.environ["HOME"], "C.UTF-8"):
            assert value not in result.output_tail


def test_check_env_passes_the_named_variables_and_skips_unset_ones(
    worktree: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    env = CheckEnv(passed=("DATABASE_URL", "AUTOPILOT_TEST_UNSET_VARIABLE"))
    result = run_check(worktree, parse_check("env"), 30, tmp_path / "check.log", env)
    assert "DATABASE_URL=postgres://localhost/test\n" in result.output_tail
    assert env_names(result.output_tail) == {"PATH", "HOME", "LANG", "TMPDIR", "DATABASE_URL"}


def test_a_check_gets_the_package_tools_settings_but_no_credential(
    worktree: Path, tmp_path: Path, worker_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    given = {
        "PIP_INDEX_URL": "https://pypi.internal.example/simple",
        "UV_INDEX_URL": "https://pypi.internal.example/simple",
        "npm_config_registry": "https://npm.internal.example/",
        "GOPROXY": "https://goproxy.internal.example",
    }
    withheld = {
        "PIP_PASSWORD": "pip-secret",
        "UV_INDEX_TOKEN": "uv-secret",
        "npm_config__auth": "npm-secret",
        "CARGO_REGISTRIES_MINE_TOKEN": "cargo-secret",
        "PYTHONPATH": "/somewhere/else",
    }
    for name, value in {**given, **withheld}.items():
        monkeypatch.setenv(name, value)
    result = run_check(worktree, parse_check("env"), 30, tmp_path / "check.log")
    for name, value in given.items():
        assert f"{name}={value}\n" in result.output_tail
    for name in withheld:
        assert f"{name}=" not in result.output_tail


def test_each_check_has_its_own_tmpdir_removed_when_it_ends(worktree: Path, tmp_path: Path) -> None:
    root = tmp_path / "state" / "tmp"
    code = (
        "import os, tempfile; d = tempfile.gettempdir(); "
        "open(os.path.join(d, 'left.txt'), 'w').write('x'); print(d)"
    )
    results = run_checks(
        worktree, [py(code), py(code)], 30, tmp_path / "logs", env=CheckEnv(tmp_root=root)
    )
    first, second = (Path(r.output_tail.strip()) for r in results)
    assert first != second
    assert first.parent == second.parent == root
    assert not first.exists() and not second.exists()
    assert list(root.iterdir()) == []


def test_a_secret_a_check_prints_is_scrubbed_in_its_log_and_result(
    worktree: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    key, token = WORKER_SECRETS["ANTHROPIC_API_KEY"], WORKER_SECRETS["DEPLOY_TOKEN"]
    # The agent's code may hold a secret it read somewhere, and print it in halves.
    code = (
        f"import sys; k = {key!r}; print('key', k); "
        "sys.stdout.write(k[:9]); sys.stdout.flush(); sys.stdout.write(k[9:] + '\\n')"
    )
    log = tmp_path / "check.log"
    result = run_check(worktree, py(code), 30, log)
    expected = "key [redacted ANTHROPIC_API_KEY]\n[redacted ANTHROPIC_API_KEY]\n"
    assert result.output_tail == expected
    assert log.read_text() == expected

    # A secret passed on purpose through check_env is scrubbed just the same.
    env = CheckEnv(passed=("DEPLOY_TOKEN",))
    [passed] = run_checks(worktree, [parse_check("printenv DEPLOY_TOKEN")], 30, tmp_path, env=env)
    assert passed.output_tail == "[redacted DEPLOY_TOKEN]\n"
    assert token not in Path(passed.output_path).read_text()


def test_missing_command_could_not_start(worktree: Path, tmp_path: Path) -> None:
    log = tmp_path / "check.log"
    check = parse_check("autopilot-no-such-command-xyz --flag")
    result = run_check(worktree, check, 30, log)
    assert result.passed is False
    assert result.exit_code is None
    assert result.timed_out is False
    assert "could not start: No such file or directory: autopilot-no-such-command-xyz" in (
        result.output_tail
    )
    assert "could not start" in log.read_text()


def test_non_executable_script_could_not_start(worktree: Path, tmp_path: Path) -> None:
    (worktree / "check.sh").write_text("#!/bin/sh\necho hi\n")
    result = run_check(worktree, parse_check("./check.sh"), 30, tmp_path / "check.log")
    assert result.passed is False
    assert result.exit_code is None
    assert "could not start: Permission denied" in result.output_tail


def test_timeout_kills_the_whole_group(worktree: Path, tmp_path: Path) -> None:
    duration = unique_sleep()
    check = parse_check(f"sh -c 'echo started; sleep {duration} & sleep {duration}'")
    done: list[CheckResult] = []
    runner = threading.Thread(
        target=lambda: done.append(run_check(worktree, check, 1.5, tmp_path / "check.log"))
    )
    runner.start()
    try:
        # Both sleeps (the shell's child and its background grandchild) exist while it runs.
        assert wait_until(lambda: len(sleepers(duration)) == 2)
    finally:
        runner.join(timeout=20)
    assert not runner.is_alive()
    [result] = done
    assert result.timed_out is True
    assert result.passed is False
    assert result.exit_code is None
    assert 1.5 <= result.duration_s < 10
    assert result.output_tail.startswith("started\n")
    assert result.output_tail.endswith("stopped after 1.5 s: the check timed out.\n")
    assert wait_until(lambda: not sleepers(duration)), sleepers(duration)


def test_processes_left_behind_by_a_finished_check_are_killed(
    worktree: Path, tmp_path: Path
) -> None:
    duration = unique_sleep()
    check = parse_check(f"sh -c 'sleep {duration} & echo left one behind'")
    result = run_check(worktree, check, 30, tmp_path / "check.log")
    assert result.passed is True
    assert result.output_tail == "left one behind\n"
    assert wait_until(lambda: not sleepers(duration)), sleepers(duration)


# --------------------------------------------------------------------------------------------
# run_checks
# --------------------------------------------------------------------------------------------


def test_run_checks_runs_all_in_order(worktree: Path, tmp_path: Path) -> None:
    checks = [
        py("open('order.txt', 'a').write('first\\n')"),
        py("open('order.txt', 'a').write('second\\n'); exit(1)"),
        parse_check("autopilot-no-such-command-xyz"),
        py("open('order.txt', 'a').write('fourth\\n')"),
    ]
    announced: list[str] = []
    results = run_checks(worktree, checks, 30, tmp_path / "logs", on_progress=announced.append)
    assert [r.passed for r in results] == [True, False, False, True]
    assert [r.command for r in results] == [c.command for c in checks]
    assert announced == [c.command for c in checks]
    assert (worktree / "order.txt").read_text() == "first\nsecond\nfourth\n"
    names = [Path(r.output_path).name for r in results]
    assert names == [check_log_name(i, c.command) for i, c in enumerate(checks, start=1)]
    assert len(set(names)) == 4
    assert all(Path(r.output_path).parent == tmp_path / "logs" for r in results)


def test_run_checks_without_checks(worktree: Path, tmp_path: Path) -> None:
    assert run_checks(worktree, [], 30, tmp_path / "logs") == []


@pytest.mark.parametrize(
    ("index", "command", "name"),
    [
        (1, "pytest -q", "check-1-pytest-q.log"),
        (2, "ruff check .", "check-2-ruff-check.log"),
        (3, "sh -c 'make lint && make test'", "check-3-sh-c-make-lint-make-test.log"),
        (4, "./.../!!!", "check-4-check.log"),
        (5, "x" * 100, f"check-5-{'x' * 40}.log"),
    ],
)
def test_check_log_name(index: int, command: str, name: str) -> None:
    assert check_log_name(index, command) == name
