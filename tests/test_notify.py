"""Notifications without Temporal: each event's body and text, where targets come from and how
they are checked, delivery to a webhook and to a command (what a retry can fix, what not), and
no secret in anything sent."""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from autopilot import notifications as messages
from autopilot.error_types import NOTIFY_FAILED, NOTIFY_REFUSED
from autopilot.infra import (
    ALLOW_PRIVATE_SETTING,
    ConfigError,
    Redactor,
    RepoConfigError,
    load_repo_config,
    load_settings,
    merge_notify_settings,
    url_label,
)
from autopilot.models import (
    Notification,
    NotifyFailure,
    NotifyInput,
    NotifySettings,
    NotifyTarget,
    SessionRequest,
    SessionState,
    SessionStatus,
    TaskState,
    TaskStatus,
)
from autopilot.notifications import delivery as notify
from autopilot.operate.commands import print_status
from autopilot.operate.session_settings import differences
from tests.gitutil import head
from tests.harness import wait_until
from tests.notify_receiver import Receiver
from tests.test_starter import assert_user_error, run_starter, write_plan

SESSION = "repo-plan-all-a498a63c"
SECRET = "sk-deploy-0123456789abcdef"  # the value of DEPLOY_TOKEN in these tests' worker env
# The receivers listen on loopback: the installation's consent to that.
ALLOW_PRIVATE = {ALLOW_PRIVATE_SETTING: "1"}


def status(*states: TaskState, **extra: object) -> SessionStatus:
    tasks = [
        TaskStatus(id=f"1.{n}", title=f"Write t{n}", batch=1, state=state)
        for n, state in enumerate(states, start=1)
    ]
    values: dict[str, object] = {
        "id": SESSION,
        "status": SessionState.RUNNING,
        "repo": "/home/someone/repo",
        "plan_path": "/home/someone/repo/docs/plan.md",
        "target_branch": "main",
        "concurrency": 1,
        "tasks": tasks,
        "tasks_total": len(tasks),
        "tasks_completed": sum(state == TaskState.MERGED for state in states),
        "cost_usd": 0.4212,
    }
    values.update(extra)
    return SessionStatus.model_validate(values)


# -- what each event says ------------------------------------------------------------------------


def test_a_paused_session_says_why_and_the_command_that_resumes_it() -> None:
    paused = status(TaskState.MERGED, TaskState.PENDING, paused=True, pause_reason="lunch")
    body = notify.with_text(messages.paused(paused))
    assert body.event == "session_paused"
    assert body.reason == "lunch"
    assert body.resume_command == f"python starter.py resume {SESSION}"
    assert body.counts == {"pending": 1, "merged": 1}
    assert (body.tasks_merged, body.tasks_total, body.cost_usd) == (1, 2, 0.4212)
    assert body.text == body.content
    assert body.text.splitlines() == [
        f"Autopilot session `{SESSION}` paused: lunch",
        f"Resume it with `python starter.py resume {SESSION}`",
        "1 of 2 tasks merged, $0.42 so far. Plan plan.md on /home/someone/repo, target branch "
        "`main`.",
    ]


def test_the_budget_reached_asks_for_a_budget_resume_accepts() -> None:
    spent = status(
        TaskState.MERGED,
        TaskState.PENDING,
        paused=True,
        pause_reason="budget reached: $0.42 of $0.01 spent",
        max_cost_usd=0.01,
    )
    body = notify.with_text(messages.paused(spent, budget_reached=True))
    assert body.event == "budget_reached"
    # Twice what was spent: the resume validator refuses a budget already spent.
    assert body.resume_command == f"python starter.py resume {SESSION} --max-cost-usd 0.85"
    assert body.max_cost_usd == 0.01
    assert body.text.startswith(
        f"Autopilot session `{SESSION}` reached its budget: $0.42 of $0.01 spent"
    )
    assert f"`python starter.py resume {SESSION} --max-cost-usd 0.85`" in body.text


@pytest.mark.parametrize(
    ("state", "event", "wording"),
    [
        (TaskState.FAILED, "task_failed", "failed"),
        (TaskState.REJECTED, "task_rejected", "was rejected by its review"),
        (TaskState.CONFLICT, "task_conflict", "conflicts with the target branch"),
    ],
)
def test_a_task_that_did_not_merge_says_why_and_how_to_retry(
    state: TaskState, event: str, wording: str
) -> None:
    session = status(TaskState.MERGED, state)
    task = session.task("1.2")
    task.last_error, task.branch = "the tests fail", f"autopilot/{SESSION}/1.2"
    body = messages.task_ended(session, task)
    assert body is not None
    body = notify.with_text(body)
    assert (body.event, body.task_id, body.task_title, body.task_state) == (
        event,
        "1.2",
        "Write t2",
        state.value,
    )
    assert body.retry_command == f"python starter.py retry {SESSION} 1.2"
    assert body.text.splitlines()[:2] == [
        f"Autopilot: Task 1.2 (Write t2) {wording} in session `{SESSION}`: the tests fail",
        f"Run it again with `python starter.py retry {SESSION} 1.2`. "
        f"Its branch `autopilot/{SESSION}/1.2` is kept.",
    ]


def test_a_remote_task_s_kept_work_is_a_ref_to_fetch() -> None:
    url = "ssh://git@example.com/team/project.git"
    session = status(TaskState.MERGED, TaskState.REJECTED).model_copy(update={"repo": url})
    task = session.task("1.2")
    task.branch = f"autopilot/{SESSION}/1.2"
    body = messages.task_ended(session, task)
    assert body is not None
    kept = f"Its work is kept on the remote: `git fetch {url} refs/autopilot/{SESSION}/1.2`."
    assert kept in notify.with_text(body).text


@pytest.mark.parametrize(
    "state", [TaskState.MERGED, TaskState.BLOCKED, TaskState.SKIPPED, TaskState.CANCELLED]
)
def test_other_task_ends_send_nothing(state: TaskState) -> None:
    session = status(state)
    assert messages.task_ended(session, session.task("1.1")) is None


def test_the_end_gives_counts_cost_duration_and_the_target_head(repo: Path) -> None:
    ended = status(
        TaskState.MERGED,
        TaskState.MERGED,
        TaskState.FAILED,
        status=SessionState.INCOMPLETE,
        repo=str(repo),
    )
    body = notify.with_text(notify.with_head(messages.session_ended(ended, 192.44)))
    assert body.event == "session_ended" and body.status == "incomplete"
    assert body.counts == {"merged": 2, "failed": 1}
    assert body.duration_s == 192.4
    assert body.head_sha == head(repo)
    assert body.text.splitlines() == [
        f"Autopilot session `{SESSION}` ended incomplete: 2 of 3 tasks merged (1 failed) in "
        "3m 12s, $0.42.",
        f"Plan plan.md on {repo}, target branch `main`. `main` is at {head(repo)[:12]}.",
    ]


def test_a_failed_session_says_why_and_a_lost_repo_still_notifies(tmp_path: Path) -> None:
    failed = status(status=SessionState.FAILED, error="plan: no such file", repo=str(tmp_path))
    body = notify.with_text(notify.with_head(messages.session_ended(failed, None)))
    assert body.head_sha is None
    assert body.text.startswith(
        f"Autopilot session `{SESSION}` failed (plan: no such file): 0 of 0 tasks merged, $0.42."
    )


def test_a_long_reason_is_clipped_in_the_text_and_kept_in_the_field() -> None:
    session = status(TaskState.FAILED)
    task = session.task("1.1")
    task.last_error = "x" * 10_000
    body = messages.task_ended(session, task)
    assert body is not None
    body = notify.with_text(body)
    assert len(body.text) <= notify.TEXT_LIMIT
    assert body.reason is not None and len(body.reason) == messages.REASON_LIMIT


def test_status_shows_the_notifications_that_failed() -> None:
    failed = status(TaskState.FAILED)
    failed.notify_failures = [
        NotifyFailure(
            event="task_failed",
            target="https://hooks.example.com",
            error="https://hooks.example.com answered HTTP 404 Not Found\x1b[2J",
            task_id="1.1",
        )
    ]
    out = io.StringIO()
    print_status(failed, as_json=False, out=out)
    assert out.getvalue().splitlines()[-1] == (
        "  notification task_failed (Task 1.1) to https://hooks.example.com failed: "
        "https://hooks.example.com answered HTTP 404 Not Found\\x1b[2J"
    )


# -- where notifications go ----------------------------------------------------------------------


def write_config(repo: Path, text: str) -> None:
    (repo / ".autopilot.toml").write_text(text)


def test_targets_come_from_the_file_and_the_flags(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[notify]\nnotify = ["https://hooks.example.com/a", "https://hooks.example.com/a"]\n',
    )
    file_cfg = load_repo_config(tmp_path)
    merged = merge_notify_settings(
        file_cfg, [" http://127.0.0.1:8080/x ", "https://hooks.example.com/a"], allow_private=True
    )
    assert merged == NotifySettings(urls=["https://hooks.example.com/a", "http://127.0.0.1:8080/x"])
    assert merge_notify_settings(load_repo_config(tmp_path / "none"), []) == NotifySettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[notify]\nnotify = ["ftp://example.com/x"]\n',
            "[notify] notify = ['ftp://example.com/x']",
        ),
        ('[notify]\nnotify = "https://x.example"\n', "a list of http or https URLs"),
        ("[notify]\nnotify_command = []\n", "notify_command is not read from the repository"),
        ('[notify]\nnotify_command = ["notify-send"]\n', "AUTOPILOT_NOTIFY_COMMAND="),
        ('[notify]\nnotfy = ["https://x.example"]\n', "did you mean 'notify'?"),
    ],
)
def test_a_bad_notify_table_names_the_key_and_what_to_write(
    tmp_path: Path, text: str, message: str
) -> None:
    write_config(tmp_path, text)
    with pytest.raises(RepoConfigError) as err:
        load_repo_config(tmp_path)
    assert message in str(err.value) and ".autopilot.toml" in str(err.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mailto:ops@example.com", "is not an http or https URL"),
        ("https://", "has no host"),
        ("http://example.com:99999/x", "is not a URL"),
        ("hooks.example.com/x", "is not an http or https URL"),
    ],
)
def test_a_bad_notify_flag_is_refused(url: str, message: str) -> None:
    with pytest.raises(RepoConfigError) as err:
        merge_notify_settings(load_repo_config(Path("/nonexistent")), [url])
    assert str(err.value).startswith("--notify: ") and message in str(err.value)


@pytest.mark.reliability(
    "--notify with a URL that is not http(s)",
    "starter.py as a user runs it: exit 2 naming the flag and the value, nothing started",
)
def test_the_starter_refuses_a_bad_notify_url(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--notify", "file:///etc/passwd")
    assert_user_error(done, "--notify: 'file:///etc/passwd' is not an http or https URL")


def test_the_installation_setting_is_read_and_checked(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AUTOPILOT_STATE_DIR": str(tmp_path / "state")}
    assert load_settings(env).notify == ()
    urls = "https://hooks.example.com/a\n http://127.0.0.1:9/b https://hooks.example.com/a"
    settings = load_settings({**env, "AUTOPILOT_NOTIFY": urls, **ALLOW_PRIVATE})
    assert settings.notify == ("https://hooks.example.com/a", "http://127.0.0.1:9/b")
    with pytest.raises(ConfigError) as err:
        load_settings({**env, "AUTOPILOT_NOTIFY": "https://ok.example/a ssh://host"})
    assert "AUTOPILOT_NOTIFY" in str(err.value) and "'ssh://host'" in str(err.value)


def test_other_targets_on_the_same_command_are_named_as_a_difference() -> None:
    def request(urls: list[str]) -> SessionRequest:
        return SessionRequest(
            session_id=SESSION,
            repo="/r",
            plan_path="/p",
            target_branch="main",
            state_dir="/s",
            notify=NotifySettings(urls=urls),
        )

    found = differences(request(["https://a.example/x"]), request(["https://b.example/x"]))
    assert len(found.fixed) == 1 and "--notify" in found.fixed[0]


def test_a_target_is_shown_without_its_path() -> None:
    assert url_label("https://hooks.slack.com/services/T0/B0/XXXX?x=1") == "https://hooks.slack.com"
    assert url_label("http://127.0.0.1:8080/secret") == "http://127.0.0.1:8080"
    assert url_label("http://[::1]:9/s") == "http://[::1]:9"


# -- delivery --------------------------------------------------------------------------------------


def notification(reason: str = "the tests fail") -> Notification:
    session = status(TaskState.FAILED)
    task = session.task("1.1")
    task.last_error = reason
    body = messages.task_ended(session, task)
    assert body is not None
    return body


def test_a_webhook_gets_the_json_body() -> None:
    with Receiver().running() as receiver:
        sent = notify.deliver(
            notification(),
            url=receiver.url(),
            redactor=Redactor({}),
            env={"PATH": "/usr/bin"},
            allow_private=True,
        )
        [got] = receiver.received
    assert got.content_type == "application/json" and got.path == "/hooks/T000/secret-path"
    assert got.json() == json.loads(sent.model_dump_json())
    assert got.json()["text"].startswith("Autopilot: Task 1.1 (Write t1) failed")


@pytest.mark.parametrize(
    ("status_code", "retryable"),
    [(500, True), (503, True), (429, True), (408, True), (404, False), (401, False), (302, False)],
)
def test_what_another_attempt_can_fix(status_code: int, retryable: bool) -> None:
    with Receiver(always=status_code).running() as receiver:
        with pytest.raises(notify.NotifyError) as err:
            notify.post(receiver.url(), b"{}", allow_private=True)
    assert err.value.retryable is retryable
    assert f"answered HTTP {status_code}" in str(err.value)
    assert "secret-path" not in str(err.value)  # a webhook's path may be its credential


def test_a_receiver_that_is_not_there_is_worth_another_attempt() -> None:
    with Receiver().running() as receiver:
        url = receiver.url()
    with pytest.raises(notify.NotifyError) as err:
        notify.post(url, b"{}", timeout_s=5, allow_private=True)
    assert err.value.retryable and "failed" in str(err.value)


def test_a_receiver_that_hangs_times_out_and_is_tried_again() -> None:
    with Receiver(hold=threading.Event()).running() as receiver:
        started = time.monotonic()
        with pytest.raises(notify.NotifyError) as err:
            notify.post(receiver.url(), b"{}", timeout_s=1, allow_private=True)
    assert err.value.retryable and "timed out" in str(err.value)
    assert time.monotonic() - started < 5


def command_script(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "hook.py"
    script.write_text(body)
    return [sys.executable, str(script)]


RECORDER = """\
import json, os, sys
out = {"stdin": sys.stdin.read(), "argv": sys.argv[1:], "env": sorted(os.environ)}
open(sys.argv[1], "w").write(json.dumps(out))
"""


def test_a_command_gets_the_json_on_stdin_and_the_text_last_with_a_minimal_env(
    tmp_path: Path,
) -> None:
    record = tmp_path / "record.json"
    argv = [*command_script(tmp_path, RECORDER), str(record)]
    worker_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DEPLOY_TOKEN": SECRET}
    sent = notify.deliver(
        notification(), command=argv, redactor=Redactor.from_env(worker_env), env=worker_env
    )
    seen = json.loads(record.read_text())
    assert json.loads(seen["stdin"]) == json.loads(sent.model_dump_json())
    assert seen["argv"] == [str(record), sent.text]
    # Only the basics (Python may add LC_CTYPE when it starts).
    assert set(seen["env"]) - {"LC_CTYPE"} == {"HOME", "PATH"}


def test_a_command_that_fails_is_retried_and_one_that_cannot_start_is_not(tmp_path: Path) -> None:
    failing = command_script(tmp_path, "import sys; print('no display'); sys.exit(3)")
    with pytest.raises(notify.NotifyError) as err:
        notify.run_command(failing, b"{}", "hi", {"PATH": "/usr/bin"})
    assert err.value.retryable and "exited with 3: no display" in str(err.value)

    with pytest.raises(notify.NotifyError) as err:
        notify.run_command([str(tmp_path / "missing")], b"{}", "hi", {})
    assert not err.value.retryable and "cannot start" in str(err.value)


def test_a_command_that_hangs_is_killed_at_its_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hanging = command_script(
        tmp_path,
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n",
    )
    started = time.monotonic()
    with pytest.raises(notify.NotifyError) as err:
        notify.run_command(hanging, b"{}", "hi", {"PATH": "/usr/bin"}, timeout_s=2)
    assert err.value.retryable and "did not finish in 2s" in str(err.value)
    assert time.monotonic() - started < 10
    # The command and what it started are gone (its process group was killed).
    started_pids = [int(pid) for pid in pids.read_text().split()]
    wait_until(lambda: not any(map(alive, started_pids)), 5, f"{started_pids} to die")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# -- the activity: secrets, the worker's own targets -----------------------------------------------


@pytest.mark.reliability(
    "a secret of the worker in a task's failure message",
    "the notify activity delivers to a loopback receiver and a command: the body, the text and "
    "the command's stdin and argument carry [redacted NAME], never the value",
)
async def test_no_secret_reaches_a_receiver_or_a_command(tmp_path: Path) -> None:
    worker_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DEPLOY_TOKEN": SECRET,
        **ALLOW_PRIVATE,
    }
    leaky = notification(reason=f'push failed: "https://x:{SECRET}@git.example.com" refused')
    record = tmp_path / "record.json"
    argv = [*command_script(tmp_path, RECORDER), str(record)]
    activities = NotifyActivities([], worker_env, argv)
    with Receiver().running() as receiver:
        for target in (
            NotifyTarget(label="hook", url=receiver.url()),
            NotifyTarget(label="command", installation=0),
        ):
            await ActivityEnvironment().run(
                activities.notify, NotifyInput(notification=leaky, target=target)
            )
        [got] = receiver.received
    for sent in (got.body.decode(), record.read_text()):
        assert SECRET not in sent and "[redacted DEPLOY_TOKEN]" in sent
    assert "[redacted DEPLOY_TOKEN]@git.example.com" in got.json()["reason"]
    assert "[redacted DEPLOY_TOKEN]" in got.json()["text"]


async def test_the_worker_delivers_to_its_own_targets_by_number(tmp_path: Path) -> None:
    with Receiver(always=404).running() as receiver:
        activities = NotifyActivities([receiver.url()], {"PATH": "/usr/bin", **ALLOW_PRIVATE})
        environment = ActivityEnvironment()
        assert await environment.run(activities.notify_installation) == [
            f"http://127.0.0.1:{receiver.port}"
        ]
        own = NotifyTarget(label="own", installation=0)
        with pytest.raises(ApplicationError) as refused:
            await environment.run(
                activities.notify, NotifyInput(notification=notification(), target=own)
            )
        assert refused.value.type == NOTIFY_REFUSED and refused.value.non_retryable
        assert "HTTP 404" in refused.value.message and len(receiver.received) == 1

        missing = NotifyTarget(label="other", installation=1)
        with pytest.raises(ApplicationError) as unknown:
            await environment.run(
                activities.notify, NotifyInput(notification=notification(), target=missing)
            )
        assert unknown.value.type == NOTIFY_REFUSED
        assert "same AUTOPILOT_NOTIFY" in unknown.value.message


async def test_a_server_error_is_a_retryable_activity_failure() -> None:
    with Receiver(always=502).running() as receiver:
        activities = NotifyActivities([], ALLOW_PRIVATE)
        target = NotifyTarget(label="hook", url=receiver.url())
        with pytest.raises(ApplicationError) as failed:
            await ActivityEnvironment().run(
                activities.notify, NotifyInput(notification=notification(), target=target)
            )
    assert failed.value.type == NOTIFY_FAILED and not failed.value.non_retryable
