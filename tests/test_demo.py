"""The README's first command: the demo runs the shipped plan end to end and says which model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gitutil import git
from tests.harness import ROOT, autopilot


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_demo_without_credentials_uses_the_scripted_model(tmp_path: Path) -> None:
    # No model env: the demo must find no credentials and start the stand-in by itself.
    with autopilot(tmp_path / "autopilot", model_env={}) as installation:
        done = subprocess.run(
            [sys.executable, "-m", "autopilot.operate.demo"],
            cwd=ROOT,
            env=installation.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=280,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "SCRIPTED STAND-IN" in out
        assert "5/5 tasks merged" in out
        assert "Run your own plan:" in out
        repo = Path(re.search(r"repository: (\S+)", out).group(1))  # type: ignore[union-attr]
        assert repo.is_relative_to(installation.state_dir)
        merges = git(repo, "log", "--merges", "--first-parent", "--format=%s", "main")
        assert len(merges.splitlines()) == 5, merges
        assert "Hello" in (repo / "greeter" / "__init__.py").read_text()
        # Its check needs the virtualenv the setup makes: it ran, and passed, in every task;
        # the setup ran at most for the two tasks that started together, then came from cache.
        checks = installation.state_dir / "checks"
        assert len(list(checks.glob("*/*/round-1/check-1-*.log"))) == 5
        assert 1 <= len(list(checks.glob("*/*/setup/setup-1-*.log"))) <= 2
        (entry,) = (installation.state_dir / "setup-cache").iterdir()
        assert (entry / "tree" / ".venv" / "pyvenv.cfg").is_file()
        assert ".venv" not in git(repo, "ls-tree", "-r", "--name-only", "main")
        # The demo stopped the worker it started; the Temporal server stays for the Web UI.
        assert f"Web UI (the server keeps running): http://127.0.0.1:{installation.ui_port}" in out


@pytest.mark.parametrize("name", ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"])
def test_an_api_key_means_the_real_model(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autopilot.operate.demo import has_real_credentials

    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    assert not has_real_credentials()
    monkeypatch.setenv(name, "sk-test")
    assert has_real_credentials()


def test_a_claude_login_means_the_real_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autopilot.operate.demo import has_real_credentials

    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "config"))
    assert not has_real_credentials()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / ".credentials.json").write_text("{}")
    assert has_real_credentials()
