"""What `.autopilot.toml` may grant: no model credential in a check's environment, no network
grant to this machine or a private network, no command run outside the sandbox, and no
notification to a private address unless the installation says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from autopilot.error_types import NOTIFY_REFUSED
from autopilot.infra import (
    ALLOW_PRIVATE_SETTING,
    CONFIG_FILE,
    CREDENTIALS,
    NOTIFY_COMMAND_SETTING,
    ConfigError,
    HostNameRefused,
    NotifyUrlError,
    RepoConfigError,
    check_grant,
    check_public,
    is_ip_literal,
    load_repo_config,
    load_settings,
    merge_notify_settings,
)
from autopilot.models import NotifyInput, NotifyTarget
from autopilot.notifications import delivery as notify
from autopilot.operate.committed_config import load_committed_config
from tests.gitutil import commit_file, git
from tests.notify_receiver import Receiver
from tests.test_notify import notification
from tests.test_starter import assert_user_error, run_starter, write_plan


def config_error(repo: Path, text: str) -> str:
    (repo / CONFIG_FILE).write_text(text)
    with pytest.raises(RepoConfigError) as caught:
        load_repo_config(repo)
    return str(caught.value)


# -- [sandbox] network -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("127.0.0.1", "is an IP address"),
        ("127.1", "is an IP address"),
        ("0x7f000001", "is an IP address"),
        ("2130706433", "is an IP address"),
        ("017700000001", "is an IP address"),
        ("169.254.169.254", "is an IP address"),
        ("::1", "is an IP address"),
        ("[::1]", "is an IP address"),
        ("*.0.0.1", "is an IP address"),
        ("localhost", "special-use name (.localhost)"),
        ("LocalHost.", "special-use name (.localhost)"),
        ("db.localhost", "special-use name (.localhost)"),
        ("*.localhost", "special-use name (.localhost)"),
        ("metadata.google.internal", "special-use name (.internal)"),
        ("printer.local", "special-use name (.local)"),
        ("nas.home.arpa", "special-use name (.home.arpa)"),
        ("*", "grants every host"),
        ("*.com", "top-level domain alone, every host under it"),
        ("com", "top-level domain alone, not a host"),
        ("https://pypi.org/simple", "is not a domain"),
        ("*.*.org", "is not a domain"),
    ],
)
def test_a_network_grant_to_no_public_host_is_refused_with_its_reason(
    tmp_path: Path, name: str, reason: str
) -> None:
    with pytest.raises(HostNameRefused) as refused:
        check_grant(name)
    assert reason in str(refused.value)
    message = config_error(tmp_path, f'[sandbox]\nnetwork = ["pypi.org", "{name}"]\n')
    assert message.startswith(str(tmp_path / CONFIG_FILE))
    assert f"[sandbox] network entry {name!r} {refused.value}" in message


@pytest.mark.parametrize("name", ["pypi.org", "*.npmjs.org", "files.pythonhosted.org", "x.io"])
def test_public_domains_are_granted(name: str) -> None:
    assert check_grant(name.upper()) == name
    assert not is_ip_literal(name)


# -- [review] check_env ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*CREDENTIALS, "ANTHROPIC_API_KEY"])
def test_check_env_cannot_name_the_model_credentials(tmp_path: Path, name: str) -> None:
    message = config_error(tmp_path, f'[review]\ncheck_env = ["DATABASE_URL", "{name}"]\n')
    assert f"[review] check_env entry {name!r} is the model's credential" in message
    assert "the model's credentials stay with the worker" in message


# -- [notify] --------------------------------------------------------------------------------------


def test_a_notify_command_in_the_repository_is_refused(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[notify]\nnotify_command = ["notify-send", "Autopilot"]\n')
    assert "notify_command is not read from the repository" in message
    assert f"{NOTIFY_COMMAND_SETTING}='notify-send Autopilot'" in message


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/x", "is loopback"),
        ("http://169.254.169.254/latest/meta-data", "is link-local"),
        ("http://10.1.2.3/hook", "is in a private network"),
        ("http://100.64.0.1/hook", "is not a public address"),
        ("http://[::1]/hook", "is loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "is loopback"),
        ("http://localhost:9/x", "special-use name (.localhost)"),
        ("https://hooks.corp.internal/x", "special-use name (.internal)"),
        ("http://0x7f000001/x", "notation other than the usual one"),
    ],
)
def test_a_notification_to_a_private_address_needs_the_installation_setting(
    tmp_path: Path, url: str, reason: str
) -> None:
    with pytest.raises(NotifyUrlError) as refused:
        check_public(url, resolver=lambda _host, _port: [])
    assert reason in str(refused.value) and ALLOW_PRIVATE_SETTING in str(refused.value)
    (tmp_path / CONFIG_FILE).write_text(f'[notify]\nnotify = ["{url}"]\n')
    file_cfg = load_repo_config(tmp_path)
    with pytest.raises(RepoConfigError) as from_file:
        merge_notify_settings(file_cfg, [])
    assert str(from_file.value).startswith(f"{tmp_path / CONFIG_FILE}: [notify] notify: ")
    with pytest.raises(RepoConfigError) as from_flag:
        merge_notify_settings(load_repo_config(tmp_path / "none"), [url])
    assert str(from_flag.value).startswith("--notify: ")
    assert merge_notify_settings(file_cfg, [], allow_private=True).urls == [url]


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    def rebinding(host: str, port: int) -> list[str]:
        assert (host, port) == ("hooks.example.com", 443)
        return ["93.184.216.34", "127.0.0.1"]

    with pytest.raises(NotifyUrlError) as refused:
        check_public("https://hooks.example.com/T000", resolver=rebinding)
    assert "resolves to an address that is loopback (this machine): 127.0.0.1" in str(refused.value)
    check_public("https://hooks.example.com/T000", resolver=lambda _h, _p: ["93.184.216.34"])


def test_the_installation_targets_are_checked_too(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AUTOPILOT_STATE_DIR": str(tmp_path / "state")}
    with pytest.raises(ConfigError) as refused:
        load_settings({**env, "AUTOPILOT_NOTIFY": "http://169.254.169.254/x"})
    assert "AUTOPILOT_NOTIFY: " in str(refused.value) and ALLOW_PRIVATE_SETTING in str(
        refused.value
    )
    allowed = load_settings(
        {**env, "AUTOPILOT_NOTIFY": "http://127.0.0.1:9/x", ALLOW_PRIVATE_SETTING: "1"}
    )
    assert allowed.notify == ("http://127.0.0.1:9/x",)
    command = load_settings({**env, NOTIFY_COMMAND_SETTING: "notify-send 'Auto pilot'"})
    assert command.notify_command == ("notify-send", "Auto pilot")
    with pytest.raises(ConfigError) as unsplit:
        load_settings({**env, NOTIFY_COMMAND_SETTING: "notify-send 'open"})
    assert NOTIFY_COMMAND_SETTING in str(unsplit.value)


def test_a_loopback_receiver_is_not_dialled_at_send_time_without_the_setting() -> None:
    with Receiver().running() as receiver:
        with pytest.raises(notify.NotifyError) as refused:
            notify.post(receiver.url(), b"{}")
        assert receiver.received == []
    assert not refused.value.retryable
    assert "is loopback (this machine)" in str(refused.value)
    assert ALLOW_PRIVATE_SETTING in str(refused.value)


async def test_only_the_workers_own_command_is_run(tmp_path: Path) -> None:
    record = tmp_path / "ran"
    argv = ["/bin/sh", "-c", f'cat > "{record}"', "sh"]
    env = {"PATH": "/usr/bin:/bin"}
    environment = ActivityEnvironment()
    # A command in the session's input (an older starter read it from the repository).
    session_command = NotifyTarget(label="command sh", command=argv)
    with pytest.raises(ApplicationError) as refused:
        await environment.run(
            NotifyActivities([], env).notify,
            NotifyInput(notification=notification(), target=session_command),
        )
    assert refused.value.type == NOTIFY_REFUSED and refused.value.non_retryable
    assert NOTIFY_COMMAND_SETTING in refused.value.message and not record.exists()

    own = NotifyActivities([], env, argv)
    assert await environment.run(own.notify_installation) == ["command /bin/sh"]
    await environment.run(
        own.notify,
        NotifyInput(notification=notification(), target=NotifyTarget(label="x", installation=0)),
    )
    assert '"event":"task_failed"' in record.read_text()


# -- through the starter ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "flags", "fragments"),
    [
        (
            '[notify]\nnotify_command = ["notify-send", "Autopilot"]\n',
            [],
            ["notify_command is not read from the repository", NOTIFY_COMMAND_SETTING],
        ),
        (
            '[review]\ncheck_env = ["ANTHROPIC_API_KEY"]\n',
            [],
            ["check_env entry 'ANTHROPIC_API_KEY' is the model's credential"],
        ),
        (
            '[sandbox]\nnetwork = ["localhost"]\n',
            [],
            ["network entry 'localhost' is a special-use name (.localhost)"],
        ),
        (
            '[sandbox]\nnetwork = ["127.0.0.1"]\n',
            [],
            ["network entry '127.0.0.1' is an IP address"],
        ),
        (
            '[notify]\nnotify = ["http://127.0.0.1:9/hook"]\n',
            [],
            ["[notify] notify: http://127.0.0.1:9 is loopback", ALLOW_PRIVATE_SETTING],
        ),
        (
            "",
            ["--notify", "http://169.254.169.254/latest"],
            ["--notify: http://169.254.169.254 is link-local", ALLOW_PRIVATE_SETTING],
        ),
    ],
)
def test_the_starter_refuses_what_the_repository_may_not_grant(
    tmp_path: Path, repo: Path, config: str, flags: list[str], fragments: list[str]
) -> None:
    if config:
        commit_file(repo, CONFIG_FILE, config)
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), *flags)
    assert_user_error(done, *fragments)
    assert not (tmp_path / "state" / "temporal").exists()


# -- the committed .autopilot.toml ---------------------------------------------------------------


def test_the_settings_come_from_the_commit_not_the_work_tree(repo: Path) -> None:
    commit_file(repo, "review.md", "Committed instructions.\n")
    sha = commit_file(
        repo, CONFIG_FILE, '[review]\nmode = "checks"\nreviewer_prompt_file = "review.md"\n'
    )
    (repo / CONFIG_FILE).write_text('[review]\nmode = "none"\n')  # edited, not committed
    (repo / "review.md").write_text("Edited instructions.\n")
    config = load_committed_config(repo, sha)
    assert config.mode == "checks" and config.reviewer_prompt == "Committed instructions.\n"
    assert config.source == str(repo / CONFIG_FILE)
    assert load_committed_config(repo, git(repo, "rev-parse", "HEAD~2")).source is None


def test_a_linked_prompt_file_in_the_commit_is_not_read(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the worker's secret\n")
    (repo / "review.md").symlink_to(secret)
    git(repo, "add", "review.md")
    sha = commit_file(repo, CONFIG_FILE, '[review]\nreviewer_prompt_file = "review.md"\n')
    with pytest.raises(RepoConfigError) as refused:
        load_committed_config(repo, sha)
    assert f"{repo / CONFIG_FILE}: [review] reviewer_prompt_file = 'review.md' is not a file" in (
        str(refused.value)
    )


@pytest.mark.parametrize(
    ("committed", "fragment"),
    [(None, "is not committed"), ('[review]\nmode = "checks"\n', "differs from the one")],
)
def test_an_uncommitted_config_in_the_checkout_is_refused_at_start(
    tmp_path: Path, repo: Path, committed: str | None, fragment: str
) -> None:
    if committed is not None:
        commit_file(repo, CONFIG_FILE, committed)
        git(repo, "update-index", "--assume-unchanged", CONFIG_FILE)  # git status won't see it
    (repo / CONFIG_FILE).write_text('[review]\nmode = "none"\n')
    done = run_starter(tmp_path, str(write_plan(tmp_path)), "--repo", str(repo))
    assert_user_error(
        done,
        f"{repo / CONFIG_FILE} {fragment}",
        "a session uses the .autopilot.toml of its target branch's commit",
        "Commit the file on 'main' to use it, or move it away",
    )
