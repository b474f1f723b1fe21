"""The GitHub client against real GitHub, only when a token and a throwaway repository are
given: a pull request on a fresh branch, read, closed, its branch deleted."""

from __future__ import annotations

import os
import uuid

import pytest
from github import Auth, Github

from autopilot.forge import connect
from autopilot.models.forge import ForgeSettings

TOKEN = os.environ.get("GITHUB_TOKEN", "")
REPO = os.environ.get("AUTOPILOT_GITHUB_TEST_REPO", "")

pytestmark = pytest.mark.skipif(
    not (TOKEN and REPO),
    reason="needs GITHUB_TOKEN and AUTOPILOT_GITHUB_TEST_REPO (OWNER/NAME of a throwaway repo)",
)


def test_a_pull_request_on_real_github() -> None:
    github = Github(auth=Auth.Token(TOKEN))
    repo = github.get_repo(REPO)
    base = repo.default_branch
    branch = f"autopilot-test-{uuid.uuid4().hex[:10]}"
    repo.create_git_ref(f"refs/heads/{branch}", repo.get_branch(base).commit.sha)
    repo.create_file(f"autopilot-test/{branch}.txt", "autopilot test", "probe\n", branch=branch)
    forge = connect(ForgeSettings(kind="github", repo=REPO), {"GITHUB_TOKEN": TOKEN})
    try:
        forge.check_access(base)
        opened = forge.open_pull_request(branch, base, "autopilot test", "throwaway", [])
        again = forge.open_pull_request(branch, base, "autopilot test (2)", "throwaway", [])
        assert again.number == opened.number
        found = forge.find_pull_request(branch, base)
        assert found is not None and found.number == opened.number
        gate = forge.gate(opened.number, require_approval=0)
        assert gate.state == "open" and gate.head_sha == opened.head_sha
        forge.close(opened.number, "autopilot's client test: closing")
        assert forge.gate(opened.number, require_approval=0).state == "closed"
    finally:
        forge.delete_branch(branch)
        forge.delete_branch(branch)  # gone already is fine
        github.close()
