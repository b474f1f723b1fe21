"""The GitHub stand-in, driven as a client would: plain HTTP (urllib) and real git over its
transport. Every exchange is validated against GitHub's REST description; tests assert no
violations except the one that sends a bad body on purpose."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from autopilot_testing.github_standin import GitHubStandIn
from tests.gitutil import commit_file, git, isolate_git, make_repo
from tests.harness import free_port

OWNER, NAME = "acme", "widgets"


class Client:
    def __init__(self, standin: GitHubStandIn, token: str) -> None:
        self.standin = standin
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.standin.api_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"token {self.token}",
                "Accept": "application/vnd.github+json",
                **({"Content-Type": "application/json"} if data else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                raw = answer.read()
                return answer.status, json.loads(raw) if raw else None, dict(answer.headers)
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None, dict(error.headers)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, payload, _ = self.call(method, path, body)
        assert status < 300, (status, payload)
        return payload


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubStandIn]:
    isolate_git(monkeypatch, tmp_path / "home")
    with GitHubStandIn(tmp_path / "github", free_port()) as server:
        yield server


@pytest.fixture
def work(tmp_path: Path, standin: GitHubStandIn) -> Path:
    """A clone of acme/widgets (main: README.md), pushing over the stand-in with the bot's token."""
    source = make_repo(tmp_path / "source")
    standin.create_repo(OWNER, NAME, source=source)
    token = standin.add_user("pipeline-bot")
    clone = tmp_path / "work"
    url = standin.git_url(OWNER, NAME).replace("http://", f"http://x-access-token:{token}@")
    git(tmp_path, "clone", "-q", url, str(clone))
    git(clone, "config", "user.name", "Bot")
    git(clone, "config", "user.email", "bot@example.com")
    return clone


def bot(standin: GitHubStandIn) -> Client:
    token = next(t for t, who in standin.world.tokens.items() if who == "pipeline-bot")
    return Client(standin, token)


def push_branch(work: Path, branch: str, name: str, content: str) -> str:
    git(work, "checkout", "-q", "-B", branch, "origin/main")
    sha = commit_file(work, name, content)
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    return sha


def open_pr(client: Client, branch: str, title: str = "Task") -> dict[str, Any]:
    body = {"title": title, "head": branch, "base": "main", "body": "the task"}
    result: dict[str, Any] = client.ok("POST", f"/repos/{OWNER}/{NAME}/pulls", body)
    return result


def wait_mergeable_state(client: Client, number: int, want: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        pull: dict[str, Any] = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/{number}")
        if pull["mergeable_state"] == want or time.monotonic() > deadline:
            assert pull["mergeable_state"] == want
            return pull


def test_push_needs_a_token_and_moves_the_branch(
    tmp_path: Path, standin: GitHubStandIn, work: Path
) -> None:
    sha = push_branch(work, "task/1", "a.txt", "a\n")
    assert standin.branches(OWNER, NAME)["task/1"] == sha
    anonymous = tmp_path / "anon"
    done = git(tmp_path, "-c", "credential.helper=", "clone", "-q",
               standin.git_url(OWNER, NAME), str(anonymous), check=False)  # fmt: skip
    assert not (anonymous / "README.md").exists(), done
    reader = standin.add_user("reader", permission="read")
    url = standin.git_url(OWNER, NAME).replace("http://", f"http://r:{reader}@")
    git(work, "remote", "add", "reader", url)
    assert git(work, "push", "-q", "reader", "HEAD:refs/heads/other", check=False) == ""
    assert "other" not in standin.branches(OWNER, NAME)
    assert standin.violations == []


def test_pull_request_create_list_get_update(standin: GitHubStandIn, work: Path) -> None:
    client = bot(standin)
    sha = push_branch(work, "task/1", "a.txt", "a\n")
    pull = open_pr(client, "task/1")
    assert pull["number"] == 1 and pull["head"]["sha"] == sha
    assert pull["html_url"] == f"{standin.web_url}/{OWNER}/{NAME}/pull/1"
    listed = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls?head={OWNER}:task/1&state=open")
    assert [p["number"] for p in listed] == [1]
    assert client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls?head={OWNER}:task/2") == []
    again = client.call("POST", f"/repos/{OWNER}/{NAME}/pulls",
                        {"title": "t", "head": "task/1", "base": "main"})  # fmt: skip
    assert again[0] == 422
    client.ok("PATCH", f"/repos/{OWNER}/{NAME}/pulls/1", {"title": "New", "body": "b"})
    client.ok("POST", f"/repos/{OWNER}/{NAME}/issues/1/labels", {"labels": ["autopilot"]})
    client.ok("POST", f"/repos/{OWNER}/{NAME}/issues/1/comments", {"body": "hello"})
    got = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/1")
    assert (got["title"], got["body"]) == ("New", "b")
    assert [label["name"] for label in got["labels"]] == ["autopilot"]
    assert got["mergeable_state"] == "clean" and got["mergeable"] is True
    files = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/1/files")
    assert [(f["filename"], f["status"]) for f in files] == [("a.txt", "added")]
    sha2 = commit_file(work, "b.txt", "b\n")
    git(work, "push", "-q", "origin", "HEAD:refs/heads/task/1")
    assert client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/1")["head"]["sha"] == sha2
    client.ok("GET", "/user")
    client.ok("GET", f"/repos/{OWNER}/{NAME}")
    client.ok("GET", f"/repos/{OWNER}/{NAME}/branches/main")
    client.ok("GET", f"/repos/{OWNER}/{NAME}/collaborators/pipeline-bot/permission")
    client.ok("GET", "/rate_limit")
    assert standin.violations == []
