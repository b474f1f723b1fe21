"""load_settings: defaults, environment overrides and the errors that say what to set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autopilot.infra import ConfigError, load_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away HOME, in the environment and in the mapping the tests pass."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def test_defaults(home: Path) -> None:
    settings = load_settings({"HOME": str(home)})
    assert settings.state_dir == (home / ".autopilot").resolve()
    assert settings.state_dir.is_dir()
    assert settings.task_queue == "autopilot"
    assert settings.embedded is True
    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.temporal_namespace == "default"
    assert settings.ui_port == 8233
    assert settings.ui_url == "http://127.0.0.1:8233"


def test_default_state_dir_follows_home_of_the_given_env(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-home"
    other.mkdir()
    settings = load_settings({"HOME": str(other)})
    assert settings.state_dir == (other / ".autopilot").resolve()
    assert not (home / ".autopilot").exists()


def test_os_environ_is_the_default_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOPILOT_TASK_QUEUE", "from-os-environ")
    monkeypatch.delenv("AUTOPILOT_STATE_DIR", raising=False)
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    monkeypatch.delenv("AUTOPILOT_TEMPORAL_PORT", raising=False)
    settings = load_settings()
    assert settings.task_queue == "from-os-environ"
    assert settings.state_dir == (home / ".autopilot").resolve()


def test_overrides(home: Path, tmp_path: Path) -> None:
    state = tmp_path / "state" / "nested"
    settings = load_settings(
        {
            "HOME": str(home),
            "AUTOPILOT_STATE_DIR": str(state),
            "AUTOPILOT_TEMPORAL_PORT": " 17233 ",
            "AUTOPILOT_TEMPORAL_UI_PORT": "18233",
            "AUTOPILOT_TASK_QUEUE": "q1",
            "TEMPORAL_NAMESPACE": "ns1",
        }
    )
    assert settings.state_dir == state.resolve()
    assert state.is_dir()  # created, parents included
    assert settings.embedded is True
    assert settings.temporal_address == "127.0.0.1:17233"
    assert settings.ui_port == 18233
    assert settings.ui_url == "http://127.0.0.1:18233"
    assert settings.task_queue == "q1"
    assert settings.temporal_namespace == "ns1"
    assert not (home / ".autopilot").exists()


def test_state_dir_with_tilde_uses_home(home: Path) -> None:
    settings = load_settings({"HOME": str(home), "AUTOPILOT_STATE_DIR": "~/ap-state"})
    assert settings.state_dir == (home / "ap-state").resolve()


def test_blank_values_mean_defaults(home: Path) -> None:
    settings = load_settings(
        {
            "HOME": str(home),
            "AUTOPILOT_STATE_DIR": "",
            "AUTOPILOT_TEMPORAL_PORT": "  ",
            "AUTOPILOT_TASK_QUEUE": " ",
            "TEMPORAL_ADDRESS": " ",
        }
    )
    assert settings.state_dir == (home / ".autopilot").resolve()
    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.task_queue == "autopilot"
    assert settings.embedded is True


def test_temporal_address_means_a_cluster(home: Path) -> None:
    settings = load_settings(
        {
            "HOME": str(home),
            "TEMPORAL_ADDRESS": "temporal.example.com:7233",
            "AUTOPILOT_TEMPORAL_PORT": "9999",  # ignored: no embedded server
        }
    )
    assert settings.embedded is False
    assert settings.temporal_address == "temporal.example.com:7233"
    assert settings.ui_url == ""


@pytest.mark.parametrize("name", ["AUTOPILOT_TEMPORAL_PORT", "AUTOPILOT_TEMPORAL_UI_PORT"])
@pytest.mark.parametrize("value", ["seven", "0", "65536", "-1", "72.33", "²"])
def test_bad_port(home: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"HOME": str(home), name: value})
    message = str(caught.value)
    assert name in message
    assert repr(value) in message
    assert "1 to 65535" in message  # what to set instead


def test_state_dir_that_cannot_be_created(home: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"HOME": str(home), "AUTOPILOT_STATE_DIR": str(blocker / "state")})
    message = str(caught.value)
    assert "AUTOPILOT_STATE_DIR" in message
    assert str(blocker / "state") in message


def test_state_dir_that_is_a_file(home: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    with pytest.raises(ConfigError, match="AUTOPILOT_STATE_DIR"):
        load_settings({"HOME": str(home), "AUTOPILOT_STATE_DIR": str(blocker)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_existing_read_only_state_dir(home: Path, tmp_path: Path) -> None:
    state = tmp_path / "read-only"
    state.mkdir()
    state.chmod(0o555)
    try:
        with pytest.raises(ConfigError) as caught:
            load_settings({"HOME": str(home), "AUTOPILOT_STATE_DIR": str(state)})
    finally:
        state.chmod(0o755)
    message = str(caught.value)
    assert "AUTOPILOT_STATE_DIR" in message
    assert str(state) in message


def test_path_creates_parents(home: Path, tmp_path: Path) -> None:
    settings = load_settings({"HOME": str(home), "AUTOPILOT_STATE_DIR": str(tmp_path / "s")})
    target = settings.path("logs", "deep", "x.log")
    assert target == settings.state_dir / "logs" / "deep" / "x.log"
    assert target.parent.is_dir()
    assert not target.exists()


@pytest.mark.parametrize(
    ("raw", "enabled"), [("", True), ("on", True), (" OFF ", False), ("off", False)]
)
def test_the_web_ui_setting(home: Path, raw: str, enabled: bool) -> None:
    settings = load_settings({"HOME": str(home), "AUTOPILOT_TEMPORAL_UI": raw})
    assert settings.ui_enabled is enabled
    assert settings.ui_url == ("http://127.0.0.1:8233" if enabled else "")


def test_a_web_ui_setting_that_is_neither_on_nor_off(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"AUTOPILOT_TEMPORAL_UI='no' is neither on nor off"):
        load_settings({"HOME": str(home), "AUTOPILOT_TEMPORAL_UI": "no"})
