"""GitHub's JSON for the stand-in's objects, with the fields the description requires."""

from __future__ import annotations

import base64
import time
from typing import Any

REPO_URL_NAMES = (
    "archive", "assignees", "blobs", "branches", "collaborators", "comments", "commits",
    "compare", "contents", "contributors", "deployments", "downloads", "events", "forks",
    "git_commits", "git_refs", "git_tags", "hooks", "issue_comment", "issue_events", "issues",
    "keys", "labels", "languages", "merges", "milestones", "notifications", "pulls", "releases",
    "stargazers", "statuses", "subscribers", "subscription", "tags", "teams", "trees",
)  # fmt: skip


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0:{kind}{number}".encode()).decode().rstrip("=")


def user(api: str, web: str, login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    url = f"{api}/users/{login}"
    return {
        "login": login,
        "id": user_id,
        "node_id": node_id("User", user_id),
        "avatar_url": f"{web}/avatars/{login}",
        "gravatar_id": "",
        "url": url,
        "html_url": f"{web}/{login}",
        "followers_url": f"{url}/followers",
        "following_url": f"{url}/following{{/other_user}}",
        "gists_url": f"{url}/gists{{/gist_id}}",
        "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{url}/subscriptions",
        "organizations_url": f"{url}/orgs",
        "repos_url": f"{url}/repos",
        "events_url": f"{url}/events{{/privacy}}",
        "received_events_url": f"{url}/received_events",
        "type": kind,
        "site_admin": False,
    }


def public_user(api: str, web: str, login: str, user_id: int) -> dict[str, Any]:
    stamp = "2020-01-01T00:00:00Z"
    return {
        **user(api, web, login, user_id),
        "user_view_type": "public",
        "name": login,
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "public_repos": 1,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": stamp,
        "updated_at": stamp,
    }


def repository(
    api: str, web: str, git_url: str, owner: dict[str, Any], name: str, repo_id: int,
    default_branch: str, created: str, full: bool,
) -> dict[str, Any]:  # fmt: skip
    full_name = f"{owner['login']}/{name}"
    url = f"{api}/repos/{full_name}"
    body: dict[str, Any] = {f"{n}_url": f"{url}/{n}" for n in REPO_URL_NAMES}
    body.update(
        {
            "id": repo_id,
            "node_id": node_id("Repository", repo_id),
            "name": name,
            "full_name": full_name,
            "owner": owner,
            "private": True,
            "html_url": f"{web}/{full_name}",
            "description": None,
            "fork": False,
            "url": url,
            "clone_url": git_url,
            "git_url": git_url,
            "ssh_url": f"git@127.0.0.1:{full_name}.git",
            "svn_url": f"{web}/{full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": None,
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "size": 0,
            "default_branch": default_branch,
            "open_issues": 0,
            "open_issues_count": 0,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_downloads": False,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "license": None,
            "pushed_at": created,
            "created_at": created,
            "updated_at": created,
            "allow_squash_merge": True,
            "allow_merge_commit": True,
            "allow_rebase_merge": True,
            "delete_branch_on_merge": False,
        }
    )
    if full:
        body.update({"network_count": 0, "subscribers_count": 0})
    return body
