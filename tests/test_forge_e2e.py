"""Forge mode end to end: the real starter, workers, Temporal dev server and claude CLI (the
scripted model answering it) against the GitHub stand-in, which serves GitHub's REST API
(every request and answer validated against GitHub's own description) and git's smart HTTP
over a real bare repository.

A plan of 6 tasks at concurrency 3: every task becomes a pull request; the stand-in's CI
fails the first head of task 2, which is fixed in a feedback round; a person requests changes
on task 4 with an inline comment, which is fixed too; all merge (squash) and their branches
are deleted. Then the same with a worker SIGKILLed mid-session: no duplicate pull request,
no lost task. Judged by the bare repository: main has each task's squash once.
"""

from __future__ import annotations

import shlex
import signal
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autopilot import git as gitops
from autopilot.models import SessionState, TaskState
from autopilot_testing import (
    Conversation,
    PlanFollower,
    Reply,
    ScriptedModel,
    Text,
    ToolCall,
    ToolUses,
)
from tests.gitutil import commit_file, git
from tests.harness import autopilot, free_port, wait_until
from tests.test_worker_capacity_e2e import plan_of

standin = pytest.importorskip("autopilot_testing.github_standin")
pytest.importorskip("autopilot.forge.github")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

OWNER, NAME = "octo", "project"
TASKS = 6
FAILING = "2"  # the stand-in's CI fails its pull request's first head
REVIEWED = "4"  # a person requests changes on it, inline


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


class FixesToo:
    """The plan follower; and in a round after the forge's feedback (findings from `[ci]` or
    `[person]`), a new file that says so, committed: the pull request gets a new head."""

    def __init__(self) -> None:
        self._follower = PlanFollower()

    def __call__(self, conversation: Conversation) -> Reply:
        start = self._forge_round_start(conversation)
        if start is None:
            return self._follower(conversation)
        task = conversation.task()
        name = f"fix{task[0] if task else 'x'}-{start}.txt"
        done = [m for m in conversation.messages[start:] if m.get("role") == "assistant"]
        if not done:
            path = str(Path(conversation.cwd or ".") / name)
            return ToolUses([ToolCall("Write", {"file_path": path, "content": "fixed\n"})])
        if len(done) == 1:
            command = f"git add -A && git commit -q -m {shlex.quote('Fix what the forge said')}"
            return ToolUses([ToolCall("Bash", {"command": command, "description": "Commit"})])
        return Text(f"Fixed what the pull request's checks and reviewers said ({name}).")

    @staticmethod
    def _forge_round_start(conversation: Conversation) -> int | None:
        for index in range(len(conversation.messages) - 1, -1, -1):
            message = conversation.messages[index]
            if message.get("role") != "user":
                continue
            text = _text_of(message.get("content"))
            if "<findings>" in text:
                return index if ("[ci]" in text or "[person]" in text) else None
        return None


def _head_ref(pull: dict[str, Any]) -> str:
    """A stand-in pull request's head branch (flat, or nested as GitHub has it)."""
    head = pull.get("head")
    if isinstance(head, dict):
        head = head.get("ref")
    return str(head or "").removeprefix("refs/heads/")


def _ci_rule(failed: set[str]) -> Callable[[str, list[str]], dict[str, str]]:
    """CI: fails the first head holding task 2's file, holds task 4's first head pending (a
    person reviews it meanwhile), passes everything else."""
    lock = threading.Lock()

    def rule(sha: str, files: list[str]) -> dict[str, str]:
        with lock:
            if f"file{FAILING}.txt" in files and FAILING not in failed:
                failed.add(FAILING)
                return {"ci": "failure"}
            if f"file{REVIEWED}.txt" in files and not any(f.startswith("fix") for f in files):
                return {"ci": "pending"}
        return {"ci": "success"}

    return rule


def _setup(tmp_path: Path, repo: Path, server: Any) -> tuple[Path, Path]:
    """The repository on the stand-in with its settings, and the plan: (plan, bare repo)."""
    config = (
        f'[forge]\nkind = "github"\nrepo = "{OWNER}/{NAME}"\napi_url = "{server.api_url}"\n'
        'poll_s = 0.3\npoll_max_s = 1.0\nrounds = 2\n\n[merge]\nstyle = "squash"\n'
    )
    commit_file(repo, ".autopilot.toml", config)
    bare = server.create_repo(OWNER, NAME, source=repo)
    server.protect(OWNER, NAME, "main", required_checks=["ci"])
    plan = tmp_path / "plan.md"
    plan.write_text(plan_of(TASKS))
    return plan, Path(bare)


def _credentials(home: Path, server: Any, token: str) -> None:
    """What `gh auth setup-git` gives a machine: git's credential store for the forge."""
    home.mkdir(parents=True, exist_ok=True)
    store = home / ".git-credentials"
    host = server.git_url(OWNER, NAME).split("/")[2]
    store.write_text(f"http://x-access-token:{token}@{host}\n")
    store.chmod(0o600)
    (home / ".gitconfig").write_text(f"[credential]\n\thelper = store --file={store}\n")


def _run(tmp_path: Path, repo: Path, *, kill: bool) -> None:
    failed: set[str] = set()
    with (
        standin.GitHubStandIn(tmp_path / "github", free_port()) as server,
        ScriptedModel(FixesToo()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        token = server.add_user("autopilot-bot", permission="write")
        server.add_user("ana", permission="write")
        plan, bare = _setup(tmp_path, repo, server)
        server.auto_checks(OWNER, NAME, _ci_rule(failed))
        installation.extra_env["GITHUB_TOKEN"] = token
        _credentials(installation.root / "home", server, token)
        marker = tmp_path / "pull-request-opened"
        # With `kill`, the first worker stops for good right after it opened a pull request
        # and before the session recorded it; the second finds that pull request again.
        armed = f"after-pr-opened={marker}" if kill else ""
        workers = [installation.start_worker("--max-agents", "3", AUTOPILOT_FAILPOINTS=armed)]
        if kill:
            workers.append(installation.start_worker("--max-agents", "3"))
        url = server.git_url(OWNER, NAME)
        started = installation.starter(
            str(plan),
            "--remote",
            url,
            "--detach",
            "--no-worker",
            "--concurrency",
            "3",
            "--review",
            "none",
            "--heartbeat-timeout",
            "10",
        )
        assert started.returncode == 0, started.stdout + started.stderr
        session = started.stdout.split("session ", 1)[1].split()[0]

        def pull_of(task: str) -> dict[str, Any] | None:
            head = f"autopilot-pr/{session}/{task}"
            return next((p for p in server.pulls(OWNER, NAME) if _head_ref(p) == head), None)

        reviewed = wait_until(lambda: pull_of(REVIEWED), 180, f"task {REVIEWED}'s pull request")
        server.review(
            OWNER,
            NAME,
            reviewed["number"],
            "ana",
            "REQUEST_CHANGES",
            body="Please say more.",
            comments=[{"path": f"file{REVIEWED}.txt", "line": 1, "body": "say four"}],
        )
        if kill:
            wait_until(marker.exists, 180, "a pull request opened on the armed worker")
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=30)
        done = installation.starter("watch", session, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
        status = installation.status(session)
        shown = installation.starter("status", session)
        pulls = server.pulls(OWNER, NAME)
        branches = server.branches(OWNER, NAME)
        violations = list(server.violations)

    assert status.status == SessionState.COMPLETED, shown.stdout
    assert {task.state for task in status.tasks} == {TaskState.MERGED}
    ours = [p for p in pulls if _head_ref(p).startswith(f"autopilot-pr/{session}/")]
    # Every task one pull request, merged, its branch gone: none opened twice.
    assert Counter(_head_ref(p).rsplit("/", 1)[1] for p in ours) == Counter(
        {str(n): 1 for n in range(1, TASKS + 1)}
    )
    assert all(p["merged"] for p in ours)
    assert not [ref for ref in branches if ref.startswith("autopilot-pr/")]
    for task in status.tasks:
        assert task.pull_request is not None and task.pull_request.url in shown.stdout
    assert status.task(FAILING).forge_rounds == 1 and status.task(REVIEWED).forge_rounds == 1
    # Judged by git: main has each task's squash once, and every task's file.
    merges = Counter(task for task, _ in gitops.list_merges(str(bare), "main", session))
    assert merges == Counter({str(n): 1 for n in range(1, TASKS + 1)})
    tree = git(bare, "ls-tree", "--name-only", "main").splitlines()
    assert {f"file{n}.txt" for n in range(1, TASKS + 1)} <= set(tree)
    # Every request the pipeline sent, and every answer, as GitHub's description says.
    assert violations == []


def test_every_task_a_pull_request_fixed_by_the_forge_s_feedback_and_merged(
    tmp_path: Path, repo: Path
) -> None:
    _run(tmp_path, repo, kill=False)


@pytest.mark.chaos
def test_a_worker_killed_mid_session_opens_no_second_pull_request(
    tmp_path: Path, repo: Path
) -> None:
    _run(tmp_path, repo, kill=True)
