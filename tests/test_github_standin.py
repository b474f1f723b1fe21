"""The GitHub stand-in, driven as a client would: plain HTTP (urllib) and real git over its
transport. Every exchange is validated against GitHub's REST description; tests assert no
violations except the one that sends a bad body on purpose."""

from __future__ import annotations

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
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")  # a refused clone fails, never asks
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


def test_statuses_and_check_runs_on_a_head(standin: GitHubStandIn, work: Path) -> None:
    client = bot(standin)
    sha = push_branch(work, "task/1", "a.txt", "a\n")
    open_pr(client, "task/1")
    standin.protect(OWNER, NAME, "main", required_checks=["ci"])
    assert wait_mergeable_state(client, 1, "blocked")["mergeable"] is True
    client.ok(
        "POST", f"/repos/{OWNER}/{NAME}/statuses/{sha}", {"state": "pending", "context": "ci"}
    )
    combined = client.ok("GET", f"/repos/{OWNER}/{NAME}/commits/{sha}/status")
    assert combined["state"] == "pending"
    standin.set_status(OWNER, NAME, sha, "ci", "failure", "tests failed")
    combined = client.ok("GET", f"/repos/{OWNER}/{NAME}/commits/{sha}/status")
    assert (combined["state"], combined["statuses"][0]["description"]) == (
        "failure",
        "tests failed",
    )
    standin.set_status(OWNER, NAME, sha, "ci", "success")
    wait_mergeable_state(client, 1, "clean")
    standin.set_check_run(OWNER, NAME, sha, "lint", conclusion="failure",
                          output_title="lint", output_text="E501 line too long")  # fmt: skip
    runs = client.ok("GET", f"/repos/{OWNER}/{NAME}/commits/{sha}/check-runs")
    assert runs["check_runs"][0]["output"]["text"] == "E501 line too long"
    wait_mergeable_state(client, 1, "unstable")
    run = {"name": "lint", "head_sha": sha, "status": "completed", "conclusion": "success"}
    client.ok("POST", f"/repos/{OWNER}/{NAME}/check-runs", run)
    wait_mergeable_state(client, 1, "clean")
    protection = client.ok("GET", f"/repos/{OWNER}/{NAME}/branches/main/protection")
    assert protection["required_status_checks"]["contexts"] == ["ci"]
    rules = client.ok("GET", f"/repos/{OWNER}/{NAME}/rules/branches/main")
    assert rules[0]["type"] == "required_status_checks"
    assert standin.violations == []


def test_auto_checks_run_on_every_push_to_a_head(standin: GitHubStandIn, work: Path) -> None:
    client = bot(standin)
    seen: list[tuple[str, list[str]]] = []

    def rule(sha: str, files: list[str]) -> dict[str, str]:
        seen.append((sha, files))
        return {"ci": "failure" if len(seen) == 1 else "success"}

    standin.auto_checks(OWNER, NAME, rule)
    sha = push_branch(work, "task/1", "a.txt", "a\n")
    open_pr(client, "task/1")
    assert client.ok("GET", f"/repos/{OWNER}/{NAME}/commits/{sha}/status")["state"] == "failure"
    sha2 = commit_file(work, "b.txt", "b\n")
    git(work, "push", "-q", "origin", "HEAD:refs/heads/task/1")
    assert client.ok("GET", f"/repos/{OWNER}/{NAME}/commits/{sha2}/status")["state"] == "success"
    assert seen == [(sha, ["a.txt"]), (sha2, ["a.txt", "b.txt"])]
    assert standin.violations == []


def test_a_review_with_inline_comments_and_a_required_approval(
    standin: GitHubStandIn, work: Path
) -> None:
    client = bot(standin)
    sha = push_branch(work, "task/1", "a.txt", "a\n")
    open_pr(client, "task/1")
    standin.protect(OWNER, NAME, "main", required_approvals=1)
    standin.add_user("alice")
    wait_mergeable_state(client, 1, "blocked")
    comments = [{"path": "a.txt", "line": 1, "body": "say b"}]
    standin.review(OWNER, NAME, 1, "alice", "REQUEST_CHANGES", "please fix", comments)
    reviews = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/1/reviews")
    assert [(r["user"]["login"], r["state"], r["commit_id"]) for r in reviews] == [
        ("alice", "CHANGES_REQUESTED", sha)
    ]
    inline = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/1/reviews/{reviews[0]['id']}/comments")
    assert [(c["path"], c["body"]) for c in inline] == [("a.txt", "say b")]
    listed = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/1/comments")
    assert [(c["path"], c["line"]) for c in listed] == [("a.txt", 1)]
    own = client.call("POST", f"/repos/{OWNER}/{NAME}/pulls/1/reviews", {"event": "APPROVE"})
    assert own[0] == 422
    standin.review(OWNER, NAME, 1, "alice", "APPROVE")
    wait_mergeable_state(client, 1, "clean")
    assert standin.violations == []


def test_mergeability_is_computed_by_git(standin: GitHubStandIn, work: Path) -> None:
    client = bot(standin)
    push_branch(work, "task/1", "README.md", "one\n")
    push_branch(work, "task/2", "README.md", "two\n")
    push_branch(work, "task/3", "c.txt", "c\n")
    for branch in ("task/1", "task/2", "task/3"):
        open_pr(client, branch)
    client.ok("PUT", f"/repos/{OWNER}/{NAME}/pulls/1/merge", {"merge_method": "squash"})
    pull = wait_mergeable_state(client, 2, "dirty")
    assert pull["mergeable"] is False
    status, body, _ = client.call("PUT", f"/repos/{OWNER}/{NAME}/pulls/2/merge", {})
    assert (status, body["message"]) == (405, "Pull Request is not mergeable")
    standin.protect(OWNER, NAME, "main", up_to_date=True)
    wait_mergeable_state(client, 3, "behind")
    assert standin.violations == []


@pytest.mark.parametrize("style", ["merge", "squash", "rebase"])
def test_merge_styles_honour_the_expected_head(
    standin: GitHubStandIn, work: Path, style: str
) -> None:
    client = bot(standin)
    git(work, "checkout", "-q", "-B", "task/1", "origin/main")
    commit_file(work, "a.txt", "a\n")
    sha = commit_file(work, "b.txt", "b\n")
    git(work, "push", "-q", "origin", "HEAD:refs/heads/task/1")
    push_branch(work, "other", "c.txt", "c\n")
    open_pr(client, "other")
    client.ok("PUT", f"/repos/{OWNER}/{NAME}/pulls/1/merge", {"merge_method": "merge"})
    open_pr(client, "task/1", "Two files")
    path = f"/repos/{OWNER}/{NAME}/pulls/2/merge"
    status, body, _ = client.call("PUT", path, {"merge_method": style, "sha": "0" * 40})
    assert (status, body["message"]) == (
        409,
        "Head branch was modified. Review and try the merge again.",
    )
    result = client.ok(
        "PUT", path, {"merge_method": style, "sha": sha, "commit_title": "Two files (#2)"}
    )
    assert result["merged"] is True
    main = standin.branches(OWNER, NAME)["main"]
    assert result["sha"] == main
    bare = standin.world.repo(OWNER, NAME).path
    parents = git(bare, "rev-list", "--parents", "-n1", main).split()[1:]
    subjects = git(bare, "log", "--format=%s", f"{parents[0]}..{main}").splitlines()
    files = git(bare, "ls-tree", "--name-only", main).split()
    assert files == ["README.md", "a.txt", "b.txt", "c.txt"]
    if style == "merge":
        assert parents[1] == sha
    elif style == "squash":
        assert len(parents) == 1 and subjects == ["Two files (#2)"]
    else:
        assert len(parents) == 1 and subjects == ["change b.txt"]
        assert git(bare, "rev-list", "--count", "main") == "5"
    pull = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/2")
    assert (pull["state"], pull["merged"], pull["merge_commit_sha"]) == ("closed", True, main)
    assert pull["merged_by"]["login"] == "pipeline-bot"
    assert standin.violations == []


def test_branch_delete_and_a_closed_pull_request(standin: GitHubStandIn, work: Path) -> None:
    client = bot(standin)
    push_branch(work, "task/1", "a.txt", "a\n")
    open_pr(client, "task/1")
    standin.add_user("alice")
    standin.close_pull(OWNER, NAME, 1, "alice")
    pull = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/1")
    assert (pull["state"], pull["merged"]) == ("closed", False)
    assert standin.pulls(OWNER, NAME)[0]["closed_by"] == "alice"
    status, _, _ = client.call("PUT", f"/repos/{OWNER}/{NAME}/pulls/1/merge", {})
    assert status == 405
    assert client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls?state=open") == []
    client.ok("DELETE", f"/repos/{OWNER}/{NAME}/git/refs/heads/task/1")
    assert "task/1" not in standin.branches(OWNER, NAME)
    status, _, _ = client.call("DELETE", f"/repos/{OWNER}/{NAME}/git/refs/heads/task/1")
    assert status == 422
    assert standin.violations == []


def graphql(client: Client, query: str, variables: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        client.standin.web_url + "/api/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        method="POST",
        headers={"Authorization": f"bearer {client.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


ENQUEUE = """mutation($id: ID!, $oid: GitObjectID) {
  enqueuePullRequest(input: {pullRequestId: $id, expectedHeadOid: $oid}) {
    mergeQueueEntry { id position }
  }
}"""


def test_merge_queue_through_graphql(standin: GitHubStandIn, work: Path) -> None:
    client = bot(standin)
    standin.protect(OWNER, NAME, "main", required_checks=["ci"], merge_queue=True)
    sha = push_branch(work, "task/1", "a.txt", "a\n")
    pull = open_pr(client, "task/1")
    standin.set_status(OWNER, NAME, sha, "ci", "success")
    status, body, _ = client.call("PUT", f"/repos/{OWNER}/{NAME}/pulls/1/merge", {"sha": sha})
    assert status == 405 and "merge queue" in body["message"]
    stale = graphql(client, ENQUEUE, {"id": pull["node_id"], "oid": "0" * 40})
    assert stale["errors"]
    groups: list[str] = []

    def rule(group_sha: str, files: list[str]) -> dict[str, str]:
        groups.append(group_sha)
        return {"ci": "pending"}

    standin.auto_checks(OWNER, NAME, rule)
    answer = graphql(client, ENQUEUE, {"id": pull["node_id"], "oid": sha})
    assert answer["data"]["enqueuePullRequest"]["mergeQueueEntry"]["position"] == 1
    assert len(groups) == 1 and standin.pulls(OWNER, NAME)[0]["merged"] is False
    standin.set_status(OWNER, NAME, groups[0], "ci", "success")
    merged = client.ok("GET", f"/repos/{OWNER}/{NAME}/pulls/1")
    assert merged["merged"] is True and merged["merge_commit_sha"] == groups[0]
    assert standin.branches(OWNER, NAME)["main"] == groups[0]
    assert standin.violations == []


def test_rate_limits_and_server_errors_are_injected(standin: GitHubStandIn, work: Path) -> None:
    client = bot(standin)
    standin.fail_next(1, status=503)
    assert client.call("GET", "/user")[0] == 503
    standin.rate_limit_next(1, kind="primary", wait_s=2)
    status, body, headers = client.call("GET", "/user")
    assert (status, headers["x-ratelimit-remaining"]) == (403, "0")
    assert int(headers["x-ratelimit-reset"]) >= time.time()
    standin.rate_limit_next(1, kind="secondary", wait_s=3)
    status, body, headers = client.call("GET", "/user")
    assert (status, headers["retry-after"]) == (403, "3")
    assert "secondary rate limit" in body["message"]
    assert client.call("GET", "/user")[0] == 200
    assert standin.violations == []


def test_app_token_exchange(standin: GitHubStandIn, work: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    installation_id = standin.add_app("4242", public.decode())
    now = int(time.time())
    signed = jwt.encode({"iat": now - 30, "exp": now + 300, "iss": "4242"}, key, algorithm="RS256")
    app = Client(standin, "")
    app.token = signed
    found = app.ok("GET", f"/repos/{OWNER}/{NAME}/installation")
    assert found["id"] == installation_id
    exchanged = app.ok("POST", f"/app/installations/{installation_id}/access_tokens", {})
    installation = Client(standin, exchanged["token"])
    assert installation.ok("GET", f"/repos/{OWNER}/{NAME}")["full_name"] == f"{OWNER}/{NAME}"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"iat": now - 30, "exp": now + 300, "iss": "4242"}, other, algorithm="RS256"
    )
    app.token = forged
    assert app.call("POST", f"/app/installations/{installation_id}/access_tokens", {})[0] == 401
    assert standin.violations == []


def test_a_bad_body_is_recorded_as_a_violation(standin: GitHubStandIn, work: Path) -> None:
    client = bot(standin)
    push_branch(work, "task/1", "a.txt", "a\n")
    status, _, _ = client.call("POST", f"/repos/{OWNER}/{NAME}/pulls", {"title": 7, "base": "main"})
    assert status == 400
    assert standin.pulls(OWNER, NAME) == []
    assert [r.operation_id for r in standin.requests if r.status == 400] == ["pulls/create"]
    assert len(standin.violations) == 1 and "pulls" in standin.violations[0]
    log = (standin.root / "requests.jsonl").read_text().splitlines()
    assert any(json.loads(line)["violation"] for line in log)
