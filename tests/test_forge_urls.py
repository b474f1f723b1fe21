"""The forge's pure parts: remote URLs to OWNER/NAME, the web URL, git's auth variables, the
error mapping, GitHub's approval count, and the token kept away from the agent's runs."""

from __future__ import annotations

import base64

import pytest
import requests
from github.GithubException import GithubException

from autopilot.agent import allowed_env
from autopilot.forge import ForgeDenied, ForgeRefused, connect
from autopilot.forge.errors import SECONDARY_WAIT_S, forge_error
from autopilot.forge.github import LOG_EXCERPT_CHARS, _cap, approvals_of
from autopilot.forge.interface import ForgeRateLimited, ForgeUnavailable
from autopilot.forge.repo_url import git_auth_env, github_repo_of, web_url
from autopilot.infra import Redactor
from autopilot.models.forge import ForgeSettings, PersonReview

GHE = "https://git.example.com/api/v3"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/octo/widgets",
        "https://github.com/octo/widgets.git",
        "https://github.com/octo/widgets/",
        "https://user@github.com/octo/widgets.git",
        "http://github.com/octo/widgets.git",
        "ssh://git@github.com/octo/widgets.git",
        "ssh://git@github.com:22/octo/widgets",
        "git@github.com:octo/widgets.git",
        "git@github.com:octo/widgets",
        "github.com:octo/widgets.git",
        "git://github.com/octo/widgets.git",
        "  https://GitHub.com/octo/widgets.git\n",
    ],
)
def test_every_remote_form_names_the_repository(url: str) -> None:
    assert github_repo_of(url) == "octo/widgets"


def test_names_keep_dots_dashes_and_underscores() -> None:
    assert github_repo_of("git@github.com:my-org/my_repo.js.git") == "my-org/my_repo.js"


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/octo/widgets.git",
        "https://github.com/octo",
        "https://github.com/octo/widgets/tree/main",
        "https://github.com/octo/wid gets",
        "https://github.com/octo/$(id)",
        "https://github.com/octo/..",
        "https://github.com/-octo/widgets",
        "git@github.com:octo/wid;gets.git",
        "file:///srv/octo/widgets.git",
        "/srv/octo/widgets.git",
        "ftp://github.com/octo/widgets",
        "",
    ],
)
def test_other_hosts_and_odd_names_are_refused(url: str) -> None:
    assert github_repo_of(url) is None


def test_enterprise_takes_the_api_host() -> None:
    assert github_repo_of("git@git.example.com:team/app.git", GHE) == "team/app"
    assert github_repo_of("https://git.example.com/team/app", GHE) == "team/app"
    assert github_repo_of("https://github.com/team/app", GHE) is None


def test_web_url_of_the_api() -> None:
    assert web_url("https://api.github.com") == "https://github.com"
    assert web_url(GHE) == "https://git.example.com"
    assert web_url("http://127.0.0.1:8123/api/v3") == "http://127.0.0.1:8123"


def test_git_auth_env_scopes_the_header_to_the_host_and_keeps_the_token_out_of_urls() -> None:
    token = "ghs_abcdefghijklmnop"
    env = git_auth_env(token, "https://github.com/")
    assert env["GIT_CONFIG_COUNT"] == "1"
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraheader"
    scheme, _, encoded = env["GIT_CONFIG_VALUE_0"].partition("basic ")
    assert scheme == "AUTHORIZATION: "
    assert base64.b64decode(encoded).decode() == f"x-access-token:{token}"
    assert token not in env["GIT_CONFIG_KEY_0"]


def _exc(status: int, message: str, headers: dict[str, str] | None = None) -> GithubException:
    return GithubException(status, {"message": message}, headers or {})


def test_primary_rate_limit_waits_until_the_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("autopilot.forge.errors.time.time", lambda: 1000.0)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1030"}
    error = forge_error(_exc(403, "API rate limit exceeded", headers), "reading", "o/n")
    assert isinstance(error, ForgeRateLimited)
    assert error.wait_s == 31.0


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_rate_limit_waits_retry_after_or_a_minute(status: int) -> None:
    said = "You have exceeded a secondary rate limit"
    with_header = forge_error(_exc(status, said, {"Retry-After": "7"}), "opening", "o/n")
    assert isinstance(with_header, ForgeRateLimited) and with_header.wait_s == 7.0
    bare = forge_error(_exc(status, said), "opening", "o/n")
    assert isinstance(bare, ForgeRateLimited) and bare.wait_s == SECONDARY_WAIT_S


def test_server_errors_and_lost_connections_are_unavailable() -> None:
    assert isinstance(forge_error(_exc(502, "Bad Gateway"), "x", "o/n"), ForgeUnavailable)
    lost = requests.ConnectionError("refused")
    assert isinstance(forge_error(lost, "x", "o/n"), ForgeUnavailable)
    assert isinstance(forge_error(requests.Timeout("slow"), "x", "o/n"), ForgeUnavailable)


def test_denied_and_refused_say_what_to_fix() -> None:
    bad = forge_error(_exc(401, "Bad credentials"), "reading o/n", "o/n")
    assert isinstance(bad, ForgeDenied) and "GITHUB_TOKEN" in str(bad)
    scopes = forge_error(_exc(403, "Resource not accessible by integration"), "merging", "o/n")
    assert isinstance(scopes, ForgeDenied) and "pull_requests:write" in str(scopes)
    invalid = forge_error(_exc(422, "Validation Failed"), "opening", "o/n")
    assert isinstance(invalid, ForgeRefused) and "422" in str(invalid)


def _review(review_id: int, author: str, state: str, sha: str = "head") -> PersonReview:
    return PersonReview.model_validate(
        {"review_id": review_id, "author": author, "state": state, "commit_sha": sha}
    )


def test_approvals_count_each_persons_latest_deciding_review_on_the_head() -> None:
    reviews = [
        _review(1, "ann", "approved"),
        _review(2, "ann", "commented"),  # a comment leaves her approval standing
        _review(3, "bob", "approved"),
        _review(4, "bob", "changes_requested"),  # bob changed his mind
        _review(5, "cy", "approved", sha="old"),  # on an earlier head
        _review(6, "dee", "approved"),
        _review(7, "dee", "dismissed"),
    ]
    assert approvals_of(reviews, "head") == 1


def test_log_excerpt_is_capped() -> None:
    assert len(_cap("x" * 50_000)) <= LOG_EXCERPT_CHARS
    assert _cap("short") == "short"


def test_a_missing_token_names_the_variable_and_nothing_secret() -> None:
    settings = ForgeSettings(kind="github", repo="o/n")
    with pytest.raises(ForgeDenied, match="GITHUB_TOKEN"):
        connect(settings, {})


def test_a_missing_app_key_names_the_setting() -> None:
    settings = ForgeSettings(
        kind="github", repo="o/n", app_id="12", private_key_file="/nonexistent/key.pem"
    )
    with pytest.raises(ForgeDenied, match="private_key_file"):
        connect(settings, {})


def test_the_token_never_reaches_an_agent_or_a_check_and_is_redacted() -> None:
    token = "ghp_0123456789abcdefghij"
    worker_env = {"PATH": "/usr/bin", "GITHUB_TOKEN": token, "GH_TOKEN": token}
    worker_env |= git_auth_env(token, "https://github.com")
    for groups in (allowed_env.AGENT, allowed_env.CHECK):
        given = allowed_env.pick(worker_env, groups)
        assert given == {"PATH": "/usr/bin"}
    assert token not in Redactor.from_env(worker_env).scrub(f"push with {token} failed")
