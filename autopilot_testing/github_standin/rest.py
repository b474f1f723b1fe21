"""The REST handlers: one function per GitHub operation, over the World."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from autopilot_testing.github_standin import gitrepo, payloads
from autopilot_testing.github_standin.state import (
    CheckRun,
    Comment,
    Person,
    Pull,
    Refused,
    Review,
    World,
)
from autopilot_testing.github_standin.views import Views

Json = Any


@dataclass
class Call:
    person: Person
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Json
    world: World
    views: Views
    headers: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[0]

    def need(self, permission: str) -> None:
        order = ("read", "write", "admin")
        if order.index(self.person.permission) < order.index(permission):
            raise Refused(403, "Resource not accessible by integration")


Answer = tuple[int, Json]
Handler = Callable[[Call], Answer]
ROUTES: list[tuple[str, re.Pattern[str], str, Handler, str]] = []


def route(method: str, template: str, operation_id: str) -> Callable[[Handler], Handler]:
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
    pattern = pattern.replace("(?P<ref>[^/]+)", "(?P<ref>.+)")

    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^{pattern}$"), operation_id, handler, template))
        return handler

    return register


def find_route(method: str, path: str) -> tuple[str, Handler, dict[str, str], str] | None:
    """The operation, its handler, its path parameters (decoded) and the path as the
    description's template spells it: a parameter that holds slashes (a ref like heads/a/b,
    which GitHub takes raw) percent-encoded, so the template can match it."""
    for verb, pattern, operation_id, handler, template in ROUTES:
        matched = pattern.match(path)
        if verb == method and matched:
            params = {name: unquote(value) for name, value in matched.groupdict().items()}
            spelled = template.format(**{k: quote(v, safe="") for k, v in params.items()})
            return operation_id, handler, params, spelled
    return None


def _repo(call: Call):  # type: ignore[no-untyped-def]
    return call.world.repo(call.params["owner"], call.params["repo"])


def _pull(call: Call) -> tuple[Any, Pull]:
    repo = _repo(call)
    return repo, call.world.pull(repo, int(call.params["pull_number"]))


@route("GET", "/user", "users/get-authenticated")
def get_user(call: Call) -> Answer:
    views = call.views
    return 200, payloads.public_user(
        views.urls.api, views.urls.web, call.person.login, call.person.id
    )


@route("GET", "/rate_limit", "rate-limit/get")
def rate_limit(call: Call) -> Answer:
    reset = int(time.time()) + 3600
    rate = {"limit": 5000, "remaining": 4999, "reset": reset, "used": 1}
    return 200, {"resources": {"core": rate, "search": rate, "graphql": rate}, "rate": rate}


@route("GET", "/repos/{owner}/{repo}", "repos/get")
def get_repo(call: Call) -> Answer:
    repo = _repo(call)
    body = call.views.repo(repo, full=True)
    admin = call.person.permission == "admin"
    body["permissions"] = {
        "admin": admin,
        "maintain": admin,
        "push": call.person.permission != "read",
        "triage": True,
        "pull": True,
    }
    return 200, body


@route("GET", "/repos/{owner}/{repo}/branches/{branch}", "repos/get-branch")
def get_branch(call: Call) -> Answer:
    repo = _repo(call)
    branch = call.params["branch"]
    sha = gitrepo.rev(repo.path, f"refs/heads/{branch}")
    if not sha:
        raise Refused(404, "Branch not found")
    api = f"{call.views.urls.api}/repos/{repo.owner}/{repo.name}"
    info = gitrepo.commit_info(repo.path, sha)
    parents = gitrepo.git(repo.path, "rev-list", "--parents", "-n1", sha).stdout.split()[1:]
    web = f"{call.views.urls.web}/{repo.owner}/{repo.name}"
    commit = {
        "url": f"{api}/commits/{sha}",
        "sha": sha,
        "node_id": payloads.node_id("Commit", int(sha[:7], 16)),
        "html_url": f"{web}/commit/{sha}",
        "comments_url": f"{api}/commits/{sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{sha}",
            "author": {"name": info["name"], "email": info["email"], "date": info["date"]},
            "committer": {"name": info["name"], "email": info["email"], "date": info["date"]},
            "message": info["message"],
            "comment_count": 0,
            "tree": {"sha": gitrepo.rev(repo.path, f"{sha}^{{tree}}") or sha, "url": api},
        },
        # A commit whose email no account claims: GitHub's empty object (the description's
        # nullable oneOf does not admit null under openapi-core).
        "author": {},
        "committer": {},
        "parents": [{"sha": p, "url": f"{api}/commits/{p}"} for p in parents],
    }
    rules = repo.protection.get(branch)
    protection: dict[str, Any] = {"enabled": rules is not None}
    if rules is not None:
        protection["required_status_checks"] = {
            "enforcement_level": "non_admins",
            "contexts": rules.required_checks,
            "checks": [{"context": name, "app_id": None} for name in rules.required_checks],
        }
    return 200, {
        "name": branch,
        "commit": commit,
        "_links": {"html": f"{web}/tree/{branch}", "self": f"{api}/branches/{branch}"},
        "protected": rules is not None,
        "protection": protection,
        "protection_url": f"{api}/branches/{branch}/protection",
    }


@route("GET", "/repos/{owner}/{repo}/branches/{branch}/protection", "repos/get-branch-protection")
def get_protection(call: Call) -> Answer:
    repo = _repo(call)
    branch = call.params["branch"]
    rules = repo.protection.get(branch)
    if rules is None:
        raise Refused(404, "Branch not protected")
    url = f"{call.views.urls.api}/repos/{repo.owner}/{repo.name}/branches/{branch}/protection"
    body: dict[str, Any] = {
        "url": url,
        "required_status_checks": {
            "url": f"{url}/required_status_checks",
            "strict": rules.up_to_date,
            "contexts": rules.required_checks,
            "checks": [{"context": name, "app_id": None} for name in rules.required_checks],
            "contexts_url": f"{url}/required_status_checks/contexts",
        },
    }
    if rules.required_approvals:
        body["required_pull_request_reviews"] = {
            "url": f"{url}/required_pull_request_reviews",
            "dismiss_stale_reviews": False,
            "require_code_owner_reviews": False,
            "required_approving_review_count": rules.required_approvals,
        }
    return 200, body


@route("GET", "/repos/{owner}/{repo}/rules/branches/{branch}", "repos/get-branch-rules")
def get_rules(call: Call) -> Answer:
    repo = _repo(call)
    rules = repo.protection.get(call.params["branch"])
    if rules is None:
        return 200, []
    source = {"ruleset_source_type": "Repository", "ruleset_source": f"{repo.owner}/{repo.name}"}
    found: list[dict[str, Any]] = []
    if rules.required_checks:
        checks = [{"context": name} for name in rules.required_checks]
        params = {
            "required_status_checks": checks,
            "strict_required_status_checks_policy": rules.up_to_date,
        }
        found.append({"type": "required_status_checks", "parameters": params, **source})
    if rules.required_approvals:
        params = {
            "dismiss_stale_reviews_on_push": False,
            "require_code_owner_review": False,
            "require_last_push_approval": False,
            "required_approving_review_count": rules.required_approvals,
            "required_review_thread_resolution": False,
        }
        found.append({"type": "pull_request", "parameters": params, **source})
    if rules.merge_queue:
        params = {
            "check_response_timeout_minutes": 60,
            "grouping_strategy": "ALLGREEN",
            "max_entries_to_build": 5,
            "max_entries_to_merge": 5,
            "merge_method": "SQUASH",
            "min_entries_to_merge": 1,
            "min_entries_to_merge_wait_minutes": 0,
        }
        found.append({"type": "merge_queue", "parameters": params, **source})
    return 200, found


@route("GET", "/repos/{owner}/{repo}/pulls", "pulls/list")
def list_pulls(call: Call) -> Answer:
    repo = _repo(call)
    state, head, base = call.arg("state", "open"), call.arg("head"), call.arg("base")
    found = []
    for pull in list(repo.pulls):
        if state != "all" and pull.state != state:
            continue
        if head and head not in (f"{repo.owner}:{pull.head}", pull.head):
            continue
        if base and base != pull.base:
            continue
        found.append(call.views.pull(repo, pull, full=False))
    return 200, found


@route("POST", "/repos/{owner}/{repo}/pulls", "pulls/create")
def create_pull(call: Call) -> Answer:
    call.need("write")
    repo = _repo(call)
    head = str(call.body["head"]).split(":")[-1]
    base = str(call.body["base"])
    head_sha = gitrepo.rev(repo.path, f"refs/heads/{head}")
    if not head_sha or not gitrepo.rev(repo.path, f"refs/heads/{base}"):
        raise Refused(422, "Validation Failed")
    with call.world.lock:
        for pull in repo.pulls:
            if pull.state == "open" and pull.head == head and pull.base == base:
                raise Refused(422, f"A pull request already exists for {repo.owner}:{head}.")
        stamp = payloads.now()
        pull = Pull(
            number=len(repo.pulls) + 1,
            id=call.world.next_id(),
            title=str(call.body.get("title", "")),
            body=str(call.body.get("body") or ""),
            head=head,
            base=base,
            head_sha=head_sha,
            user=call.person.login,
            created_at=stamp,
            updated_at=stamp,
        )
        repo.pulls.append(pull)
    call.world.run_rule(repo, head_sha, base)
    return 201, call.views.pull(repo, pull)


@route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", "pulls/get")
def get_pull(call: Call) -> Answer:
    repo, pull = _pull(call)
    return 200, call.views.pull(repo, pull)


@route("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}", "pulls/update")
def update_pull(call: Call) -> Answer:
    call.need("write")
    repo, pull = _pull(call)
    with call.world.lock:
        if "title" in call.body:
            pull.title = str(call.body["title"])
        if "body" in call.body:
            pull.body = str(call.body["body"] or "")
        if "base" in call.body:
            pull.base = str(call.body["base"])
        state = call.body.get("state")
        if state == "closed" and pull.state == "open":
            pull.state, pull.closed_by = "closed", call.person.login
            pull.closed_at = payloads.now()
            pull.queued_style = ""
        elif state == "open" and pull.state == "closed" and not pull.merged:
            pull.state, pull.closed_by, pull.closed_at = "open", "", None
        pull.updated_at = payloads.now()
    return 200, call.views.pull(repo, pull)


@route("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge", "pulls/merge")
def merge_pull(call: Call) -> Answer:
    call.need("write")
    repo, pull = _pull(call)
    body = call.body or {}
    style = str(body.get("merge_method", "merge"))
    title = str(body.get("commit_title") or f"{pull.title} (#{pull.number})")
    message = title + ("\n\n" + str(body["commit_message"]) if body.get("commit_message") else "")
    sha = call.world.merge(repo, pull, call.person.login, style, str(body.get("sha", "")), message)
    return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}


@route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/files", "pulls/list-files")
def list_files(call: Call) -> Answer:
    repo, pull = _pull(call)
    base_sha = gitrepo.rev(repo.path, f"refs/heads/{pull.base}")
    words = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied"}
    web = f"{call.views.urls.web}/{repo.owner}/{repo.name}"
    api = f"{call.views.urls.api}/repos/{repo.owner}/{repo.name}"
    found = []
    for letter, path in gitrepo.changed_files(repo.path, base_sha, pull.head_sha):
        found.append(
            {
                "sha": pull.head_sha,
                "filename": path,
                "status": words.get(letter[:1], "changed"),
                "additions": 0,
                "deletions": 0,
                "changes": 0,
                "blob_url": f"{web}/blob/{pull.head_sha}/{path}",
                "raw_url": f"{web}/raw/{pull.head_sha}/{path}",
                "contents_url": f"{api}/contents/{path}",
            }
        )
    return 200, found


@route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "pulls/list-reviews")
def list_reviews(call: Call) -> Answer:
    repo, pull = _pull(call)
    return 200, [call.views.review(repo, pull, review) for review in list(pull.reviews)]


@route("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews", "pulls/create-review")
def create_review(call: Call) -> Answer:
    repo, pull = _pull(call)
    event = str(call.body.get("event", "COMMENT"))
    if event == "PENDING" or event not in ("APPROVE", "REQUEST_CHANGES", "COMMENT"):
        raise Refused(422, "Unprocessable Entity")
    if call.person.login == pull.user and event != "COMMENT":
        raise Refused(422, "Can not approve or request changes on your own pull request")
    state = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED"}.get(event, "COMMENTED")
    commit = str(call.body.get("commit_id") or pull.head_sha)
    stamp = payloads.now()
    review = Review(
        call.world.next_id(),
        call.person.login,
        state,
        str(call.body.get("body") or ""),
        commit,
        stamp,
    )
    for item in call.body.get("comments", []):
        review.comments.append(
            Comment(
                call.world.next_id(),
                review.id,
                call.person.login,
                str(item["body"]),
                str(item["path"]),
                int(item.get("line") or item.get("position") or 1),
                commit,
                stamp,
            )
        )
    with call.world.lock:
        pull.reviews.append(review)
    return 200, call.views.review(repo, pull, review)


@route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/comments", "pulls/list-review-comments")
def list_review_comments(call: Call) -> Answer:
    repo, pull = _pull(call)
    return 200, [
        call.views.comment(repo, pull, c, full=True) for r in list(pull.reviews) for c in r.comments
    ]


@route(
    "GET",
    "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/comments",
    "pulls/list-comments-for-review",
)
def list_comments_for_review(call: Call) -> Answer:
    repo, pull = _pull(call)
    for review in pull.reviews:
        if review.id == int(call.params["review_id"]):
            return 200, [call.views.comment(repo, pull, c, full=False) for c in review.comments]
    raise Refused(404, "Not Found")


@route("GET", "/repos/{owner}/{repo}/issues/{issue_number}", "issues/get")
def get_issue(call: Call) -> Answer:
    """A pull request read as the issue it also is: where GitHub says who closed it."""
    repo = _repo(call)
    pull = call.world.pull(repo, int(call.params["issue_number"]))
    return 200, call.views.issue(repo, pull)


@route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels", "issues/add-labels")
def add_labels(call: Call) -> Answer:
    call.need("write")
    repo = _repo(call)
    pull = call.world.pull(repo, int(call.params["issue_number"]))
    names = call.body.get("labels", []) if isinstance(call.body, dict) else call.body
    with call.world.lock:
        for name in names:
            name = name["name"] if isinstance(name, dict) else str(name)
            if name not in pull.labels:
                pull.labels.append(name)
    return 200, [call.views.label(repo, name) for name in pull.labels]


@route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "issues/create-comment")
def create_comment(call: Call) -> Answer:
    repo = _repo(call)
    number = int(call.params["issue_number"])
    pull = call.world.pull(repo, number)
    comment_id = call.world.next_id()
    stamp = payloads.now()
    with call.world.lock:
        pull.issue_comments.append((comment_id, call.person.login, str(call.body["body"]), stamp))
    api = f"{call.views.urls.api}/repos/{repo.owner}/{repo.name}"
    web = f"{call.views.urls.web}/{repo.owner}/{repo.name}"
    return 201, {
        "id": comment_id,
        "node_id": payloads.node_id("IssueComment", comment_id),
        "url": f"{api}/issues/comments/{comment_id}",
        "html_url": f"{web}/pull/{number}#issuecomment-{comment_id}",
        "issue_url": f"{api}/issues/{number}",
        "body": str(call.body["body"]),
        "user": call.views.user(call.person.login),
        "created_at": stamp,
        "updated_at": stamp,
        "author_association": "MEMBER",
    }


@route("GET", "/repos/{owner}/{repo}/commits/{ref}/status", "repos/get-combined-status-for-ref")
def combined_status(call: Call) -> Answer:
    repo = _repo(call)
    sha = gitrepo.rev(repo.path, call.params["ref"])
    if not sha:
        raise Refused(404, "No commit found for SHA: " + call.params["ref"])
    return 200, call.views.combined(repo, sha)


@route("POST", "/repos/{owner}/{repo}/statuses/{sha}", "repos/create-commit-status")
def create_status(call: Call) -> Answer:
    call.need("write")
    repo = _repo(call)
    sha = call.params["sha"]
    status = call.world.set_status(
        repo, sha, str(call.body.get("context", "default")), str(call.body["state"]),
        str(call.body.get("description") or ""), call.person.login,
    )  # fmt: skip
    return 201, call.views.status(repo, sha, status)


@route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs", "checks/list-for-ref")
def list_check_runs(call: Call) -> Answer:
    repo = _repo(call)
    sha = gitrepo.rev(repo.path, call.params["ref"]) or call.params["ref"]
    runs = list(repo.check_runs.get(sha, []))
    return 200, {
        "total_count": len(runs),
        "check_runs": [call.views.check_run(repo, r) for r in runs],
    }


@route("POST", "/repos/{owner}/{repo}/check-runs", "checks/create")
def create_check_run(call: Call) -> Answer:
    call.need("write")
    repo = _repo(call)
    output = call.body.get("output") or {}
    conclusion = call.body.get("conclusion")
    status = str(call.body.get("status") or ("completed" if conclusion else "queued"))
    stamp = payloads.now()
    run = CheckRun(
        call.world.next_id(), str(call.body["name"]), str(call.body["head_sha"]), status,
        conclusion, str(output.get("title") or ""), str(output.get("summary") or ""),
        str(output.get("text") or ""), stamp, stamp if status == "completed" else None,
    )  # fmt: skip
    call.world.set_check_run(repo, run)
    return 201, call.views.check_run(repo, run)


@route("DELETE", "/repos/{owner}/{repo}/git/refs/{ref}", "git/delete-ref")
def delete_ref(call: Call) -> Answer:
    call.need("write")
    repo = _repo(call)
    ref = call.params["ref"]
    if not gitrepo.rev(repo.path, f"refs/{ref}"):
        raise Refused(422, "Reference does not exist")
    gitrepo.git(repo.path, "update-ref", "-d", f"refs/{ref}")
    return 204, None


@route(
    "GET",
    "/repos/{owner}/{repo}/collaborators/{username}/permission",
    "repos/get-collaborator-permission-level",
)
def collaborator_permission(call: Call) -> Answer:
    _repo(call)
    login = call.params["username"]
    person = call.world.people.get(login)
    if person is None:
        raise Refused(404, "Not Found")
    return 200, {
        "permission": person.permission,
        "role_name": person.permission,
        "user": {**call.views.user(login), "role_name": person.permission},
    }
