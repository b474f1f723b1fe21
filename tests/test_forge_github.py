"""GitHubForge against the GitHub stand-in (autopilot_testing/github_standin): every method
and the faults the activities decide on. Every request and answer is checked against GitHub's
OpenAPI description, so each test ends with no violations."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from autopilot.forge import ForgeDenied, ForgeRefused, connect
from autopilot.forge.github import GitHubForge
from autopilot.forge.interface import ForgeRateLimited, ForgeUnavailable
from autopilot.forge.repo_url import git_auth_env, web_url
from autopilot.models.forge import ForgeSettings
from tests.gitutil import commit_file, git, isolate_git, make_repo
from tests.harness import free_port, wait_until

standin_module = pytest.importorskip(
    "autopilot_testing.github_standin",
    reason="the GitHub stand-in (branch wt-standin) is not merged",
)

OWNER, NAME = "octo", "widgets"
REPO = f"{OWNER}/{NAME}"


@dataclass
class Site:
    standin: object
    forge: GitHubForge
    token: str
    work: Path  # a clone that pushes to the stand-in

    def push(self, branch: str, name: str, content: str) -> str:
        git(self.work, "checkout", "-q", "-B", branch, f"origin/{branch}", check=False)
        sha = commit_file(self.work, name, content)
        env = git_auth_env(self.token, web_url(self.standin.api_url))  # type: ignore[attr-defined]
        for command in (["push", "-q", "origin", f"HEAD:refs/heads/{branch}"], ["fetch", "-q"]):
            subprocess.run(
                ["git", "-C", str(self.work), *command],
                env={**os.environ, **env},
                check=True,
                capture_output=True,
            )
        return sha


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    isolate_git(monkeypatch, tmp_path / "home")
    source = make_repo(tmp_path / "source")
    commit_file(source, "app.txt", "one\n")
    git(source, "checkout", "-q", "-b", "task-1")
    commit_file(source, "task1.txt", "task one\n")
    git(source, "checkout", "-q", "main")
    with standin_module.GitHubStandIn(tmp_path / "standin", free_port()) as standin:
        token = standin.add_user("autopilot-bot", permission="write")
        standin.add_user("ann", permission="write")
        standin.create_repo(OWNER, NAME, source=source)
        work = tmp_path / "work"
        git(tmp_path, "clone", "-q", str(source), str(work))
        git(work, "remote", "set-url", "origin", standin.git_url(OWNER, NAME))
        git(work, "config", "user.name", "T")
        git(work, "config", "user.email", "t@example.com")
        settings = ForgeSettings(kind="github", repo=REPO, api_url=standin.api_url)
        forge = connect(settings, {"GITHUB_TOKEN": token})
        assert isinstance(forge, GitHubForge)
        forge._pause = lambda seconds: None  # the stand-in computes mergeability at once
        yield Site(standin, forge, token, work)


def test_open_is_idempotent_and_updates_the_text_and_labels(site: Site) -> None:
    first = site.forge.open_pull_request("task-1", "main", "Task 1", "body", ["autopilot"])
    again = site.forge.open_pull_request("task-1", "main", "Task 1 (2)", "body 2", ["autopilot"])
    assert again.number == first.number and again.head_branch == "task-1"
    found = site.forge.find_pull_request("task-1", "main")
    assert found is not None and found.number == first.number
    (pull,) = site.standin.pulls(OWNER, NAME)  # type: ignore[attr-defined]
    assert pull["title"] == "Task 1 (2)" and pull["body"] == "body 2"
    assert "autopilot" in pull["labels"]
    assert site.forge.find_pull_request("nope", "main") is None
    assert site.standin.violations == []  # type: ignore[attr-defined]


def test_gate_reads_statuses_and_check_runs_with_required_marked(site: Site) -> None:
    standin = site.standin
    standin.protect(OWNER, NAME, "main", required_checks=["ci/test"])  # type: ignore[attr-defined]
    pr = site.forge.open_pull_request("task-1", "main", "Task 1", "", [])
    standin.set_status(OWNER, NAME, pr.head_sha, "ci/test", "pending")  # type: ignore[attr-defined]
    standin.set_check_run(  # type: ignore[attr-defined]
        OWNER,
        NAME,
        pr.head_sha,
        "lint",
        conclusion="failure",
        output_title="2 errors",
        output_summary="E501",
        output_text="x" * 10_000,
    )
    gate = site.forge.gate(pr.number, require_approval=0)
    checks = {check.name: check for check in gate.checks}
    assert gate.state == "open" and gate.head_sha == pr.head_sha
    assert checks["ci/test"].state == "pending" and checks["ci/test"].required
    assert checks["lint"].state == "failure" and not checks["lint"].required
    assert checks["lint"].log_excerpt.startswith("2 errors")
    assert len(checks["lint"].log_excerpt) <= 4000
    assert gate.mergeable_state == "blocked"
    standin.set_status(OWNER, NAME, pr.head_sha, "ci/test", "success")  # type: ignore[attr-defined]
    gate = site.forge.gate(pr.number, require_approval=0)
    assert {c.name: c.state for c in gate.checks}["ci/test"] == "success"
    assert site.forge.required_checks("main") == ["ci/test"]
    assert site.standin.violations == []  # type: ignore[attr-defined]


def test_reviews_by_people_with_inline_comments_and_approvals(site: Site) -> None:
    standin = site.standin
    pr = site.forge.open_pull_request("task-1", "main", "Task 1", "", [])
    standin.review(  # type: ignore[attr-defined]
        OWNER,
        NAME,
        pr.number,
        "ann",
        "REQUEST_CHANGES",
        body="please",
        comments=[{"path": "task1.txt", "line": 1, "body": "rename this"}],
    )
    gate = site.forge.gate(pr.number, require_approval=1)
    (review,) = gate.reviews
    assert review.author == "ann" and review.state == "changes_requested"
    assert [(c.path, c.line, c.body) for c in review.comments] == [("task1.txt", 1, "rename this")]
    assert gate.approvals == 0
    standin.review(OWNER, NAME, pr.number, "ann", "APPROVE")  # type: ignore[attr-defined]
    assert site.forge.gate(pr.number, require_approval=1).approvals == 1
    site.push("task-1", "task1.txt", "moved on\n")
    assert site.forge.gate(pr.number, require_approval=1).approvals == 0  # not on the head
    assert site.standin.violations == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("style", ["merge", "squash", "rebase"])
def test_merge_styles(site: Site, style: str) -> None:
    pr = site.forge.open_pull_request("task-1", "main", "Task 1", "", [])
    result = site.forge.merge(pr.number, pr.head_sha, style, "Task 1", "done")  # type: ignore[arg-type]
    assert result.outcome == "merged"
    assert site.standin.branches(OWNER, NAME)["main"] == result.merge_sha  # type: ignore[attr-defined]
    gate = site.forge.gate(pr.number, require_approval=0)
    assert gate.state == "merged" and gate.merged_sha == result.merge_sha
    assert site.standin.violations == []  # type: ignore[attr-defined]


def test_a_moved_head_and_a_conflict_are_answers_not_errors(site: Site) -> None:
    pr = site.forge.open_pull_request("task-1", "main", "Task 1", "", [])
    site.push("task-1", "task1.txt", "newer\n")
    moved = site.forge.merge(pr.number, pr.head_sha, "merge", "Task 1", "")
    assert moved.outcome == "head_moved"
    head = site.forge.gate(pr.number, require_approval=0).head_sha
    site.push("main", "task1.txt", "clashes\n")
    conflict = site.forge.merge(pr.number, head, "merge", "Task 1", "")
    assert conflict.outcome == "conflict"
    assert site.forge.gate(pr.number, require_approval=0).mergeable_state == "dirty"
    assert site.standin.violations == []  # type: ignore[attr-defined]


def test_closed_by_a_person_and_closed_by_the_pipeline(site: Site) -> None:
    pr = site.forge.open_pull_request("task-1", "main", "Task 1", "", [])
    site.standin.close_pull(OWNER, NAME, pr.number, "ann")  # type: ignore[attr-defined]
    gate = site.forge.gate(pr.number, require_approval=0)
    assert gate.state == "closed" and gate.closed_by == "ann"
    site.push("task-2", "task2.txt", "two\n")
    second = site.forge.open_pull_request("task-2", "main", "Task 2", "", [])
    site.forge.close(second.number, "the task failed")
    assert site.forge.gate(second.number, require_approval=0).state == "closed"
    assert site.forge.merge(second.number, second.head_sha, "merge", "", "").outcome == "closed"
    assert site.standin.violations == []  # type: ignore[attr-defined]


def test_delete_branch_twice(site: Site) -> None:
    site.forge.delete_branch("task-1")
    site.forge.delete_branch("task-1")
    assert "task-1" not in site.standin.branches(OWNER, NAME)  # type: ignore[attr-defined]
    assert site.standin.violations == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["primary", "secondary"])
def test_rate_limits_say_how_long_to_wait(site: Site, kind: str) -> None:
    site.standin.rate_limit_next(1, kind=kind, wait_s=5.0)  # type: ignore[attr-defined]
    with pytest.raises(ForgeRateLimited) as raised:
        site.forge.find_pull_request("task-1", "main")
    assert 3.0 <= raised.value.wait_s <= 7.0
    assert site.forge.find_pull_request("task-1", "main") is None  # the next call goes through
    assert site.standin.violations == []  # type: ignore[attr-defined]


def test_a_502_is_unavailable_and_a_bad_token_denied(site: Site) -> None:
    site.standin.fail_next(1, status=502)  # type: ignore[attr-defined]
    with pytest.raises(ForgeUnavailable):
        site.forge.find_pull_request("task-1", "main")
    settings = ForgeSettings(kind="github", repo=REPO, api_url=site.standin.api_url)  # type: ignore[attr-defined]
    wrong = connect(settings, {"GITHUB_TOKEN": "ghp_not_a_token_at_all"})
    with pytest.raises(ForgeDenied) as raised:
        wrong.find_pull_request("task-1", "main")
    assert "ghp_not_a_token_at_all" not in str(raised.value)
    assert site.standin.violations == []  # type: ignore[attr-defined]


def test_check_access(site: Site) -> None:
    standin = site.standin
    site.forge.check_access("main")
    with pytest.raises(ForgeRefused, match="no branch release on octo/widgets"):
        site.forge.check_access("release")
    api = standin.api_url  # type: ignore[attr-defined]
    token = site.token
    missing = connect(
        ForgeSettings(kind="github", repo="octo/nope", api_url=api), {"GITHUB_TOKEN": token}
    )
    with pytest.raises(ForgeRefused, match="no repository octo/nope"):
        missing.check_access("main")
    reader = standin.add_user("rita", permission="read")  # type: ignore[attr-defined]
    read_only = connect(
        ForgeSettings(kind="github", repo=REPO, api_url=api), {"GITHUB_TOKEN": reader}
    )
    with pytest.raises(ForgeDenied, match="cannot push to octo/widgets"):
        read_only.check_access("main")
    assert standin.violations == []  # type: ignore[attr-defined]


def test_merge_queue(site: Site) -> None:
    site.standin.protect(OWNER, NAME, "main", merge_queue=True)  # type: ignore[attr-defined]
    assert site.forge.uses_merge_queue("main")
    pr = site.forge.open_pull_request("task-1", "main", "Task 1", "", [])
    result = site.forge.merge(pr.number, pr.head_sha, "squash", "Task 1", "")
    assert result.outcome in ("queued", "merged")
    wait_until(
        lambda: site.forge.gate(pr.number, require_approval=0).state == "merged",
        20,
        "the merge queue to merge it",
    )
    assert site.standin.violations == []  # type: ignore[attr-defined]


def test_a_github_app_installation_token(site: Site, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "app.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    site.standin.add_app("4242", public.decode())  # type: ignore[attr-defined]
    settings = ForgeSettings(
        kind="github",
        repo=REPO,
        api_url=site.standin.api_url,  # type: ignore[attr-defined]
        app_id="4242",
        private_key_file=str(key_file),
    )
    forge = connect(settings, {})
    opened = forge.open_pull_request("task-1", "main", "Task 1", "", [])
    assert forge.find_pull_request("task-1", "main") == opened
    assert set(forge.secrets()) == {"GITHUB_TOKEN", "GITHUB_TOKEN_BASIC"}
    assert site.standin.violations == []  # type: ignore[attr-defined]
