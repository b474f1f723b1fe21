"""The JSON GitHub answers with for pull requests, statuses, check runs, reviews."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autopilot_testing.github_standin import gitrepo, payloads
from autopilot_testing.github_standin.state import (
    CheckRun,
    Comment,
    Pull,
    Repo,
    Review,
    Status,
    World,
)


@dataclass(frozen=True)
class Urls:
    api: str
    web: str
    root: str  # http://127.0.0.1:PORT (git's smart HTTP lives under it)


class Views:
    def __init__(self, world: World, urls: Urls) -> None:
        self.world = world
        self.urls = urls

    def user(self, login: str) -> dict[str, Any]:
        person = self.world.people.get(login)
        user_id, kind = (person.id, person.kind) if person else (1, "Bot")
        return payloads.user(self.urls.api, self.urls.web, login, user_id, kind)

    def repo(self, repo: Repo, full: bool = False) -> dict[str, Any]:
        git_url = f"{self.urls.root}/{repo.owner}/{repo.name}.git"
        return payloads.repository(
            self.urls.api, self.urls.web, git_url, self.user(repo.owner), repo.name, repo.id,
            repo.default_branch, repo.created_at, full,
        )  # fmt: skip

    def _ref(self, repo: Repo, branch: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{repo.owner}:{branch}",
            "ref": branch,
            "sha": sha,
            "user": self.user(repo.owner),
            "repo": self.repo(repo),
        }

    def label(self, repo: Repo, name: str) -> dict[str, Any]:
        label_id = sum(map(ord, name)) + repo.id
        return {
            "id": label_id,
            "node_id": payloads.node_id("Label", label_id),
            "url": f"{self.urls.api}/repos/{repo.owner}/{repo.name}/labels/{name}",
            "name": name,
            "description": None,
            "color": "ededed",
            "default": False,
        }

    def pull(self, repo: Repo, pull: Pull, full: bool = True) -> dict[str, Any]:
        api = f"{self.urls.api}/repos/{repo.owner}/{repo.name}"
        html = f"{self.urls.web}/{repo.owner}/{repo.name}/pull/{pull.number}"
        base_sha = gitrepo.rev(repo.path, f"refs/heads/{pull.base}") or pull.head_sha
        body: dict[str, Any] = {
            "url": f"{api}/pulls/{pull.number}",
            "id": pull.id,
            "node_id": payloads.node_id("PullRequest", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{pull.number}",
            "commits_url": f"{api}/pulls/{pull.number}/commits",
            "review_comments_url": f"{api}/pulls/{pull.number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            "statuses_url": f"{api}/statuses/{pull.head_sha}",
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self.user(pull.user),
            "body": pull.body or None,
            "labels": [self.label(repo, name) for name in pull.labels],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pull.created_at,
            "updated_at": pull.updated_at,
            "closed_at": pull.closed_at,
            "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": self._ref(repo, pull.head, pull.head_sha),
            "base": self._ref(repo, pull.base, base_sha),
            "_links": {
                name: {"href": href}
                for name, href in (
                    ("self", f"{api}/pulls/{pull.number}"),
                    ("html", html),
                    ("issue", f"{api}/issues/{pull.number}"),
                    ("comments", f"{api}/issues/{pull.number}/comments"),
                    ("review_comments", f"{api}/pulls/{pull.number}/comments"),
                    ("review_comment", f"{api}/pulls/comments{{/number}}"),
                    ("commits", f"{api}/pulls/{pull.number}/commits"),
                    ("statuses", f"{api}/statuses/{pull.head_sha}"),
                )
            },
            "author_association": "MEMBER",
            "auto_merge": None,
            "draft": False,
        }
        if not full:
            return body
        mergeable, state = self.world.mergeable_state(repo, pull)
        files = (
            gitrepo.changed_files(repo.path, base_sha, pull.head_sha)
            if pull.state == "open"
            else []
        )
        commits = gitrepo.git(repo.path, "rev-list", "--count", f"{base_sha}..{pull.head_sha}")
        body.update(
            {
                "merged": pull.merged,
                "mergeable": mergeable,
                "rebaseable": mergeable,
                "mergeable_state": state,
                "merged_by": self.user(pull.merged_by) if pull.merged_by else None,
                "comments": len(pull.issue_comments),
                "review_comments": sum(len(r.comments) for r in pull.reviews),
                "maintainer_can_modify": False,
                "commits": int(commits.stdout.strip() or 0),
                "additions": 0,
                "deletions": 0,
                "changed_files": len(files),
            }
        )
        return body

    def status(self, repo: Repo, sha: str, status: Status) -> dict[str, Any]:
        return {
            "url": f"{self.urls.api}/repos/{repo.owner}/{repo.name}/statuses/{sha}",
            "avatar_url": None,
            "id": status.id,
            "node_id": payloads.node_id("StatusContext", status.id),
            "state": status.state,
            "description": status.description or None,
            "target_url": status.target_url or None,
            "context": status.context,
            "created_at": status.created_at,
            "updated_at": status.created_at,
            "creator": self.user(status.creator),
        }

    def combined(self, repo: Repo, sha: str) -> dict[str, Any]:
        statuses = self.world.latest_statuses(repo, sha)
        states = {s.state for s in statuses}
        if not statuses or "pending" in states:
            overall = "pending"
        elif states <= {"success"}:
            overall = "success"
        else:
            overall = "failure"
        api = f"{self.urls.api}/repos/{repo.owner}/{repo.name}"
        simple = []
        for status in statuses:
            full = self.status(repo, sha, status)
            full.pop("creator")
            simple.append(full)
        return {
            "state": overall,
            "statuses": simple,
            "sha": sha,
            "total_count": len(statuses),
            "repository": self.repo(repo),
            "commit_url": f"{api}/commits/{sha}",
            "url": f"{api}/commits/{sha}/status",
        }

    def check_run(self, repo: Repo, run: CheckRun) -> dict[str, Any]:
        api = f"{self.urls.api}/repos/{repo.owner}/{repo.name}"
        html = f"{self.urls.web}/{repo.owner}/{repo.name}/runs/{run.id}"
        return {
            "id": run.id,
            "node_id": payloads.node_id("CheckRun", run.id),
            "head_sha": run.head_sha,
            "external_id": "",
            "url": f"{api}/check-runs/{run.id}",
            "html_url": html,
            "details_url": html,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "output": {
                "title": run.title or None,
                "summary": run.summary or None,
                "text": run.text or None,
                "annotations_count": 0,
                "annotations_url": f"{api}/check-runs/{run.id}/annotations",
            },
            "name": run.name,
            "check_suite": {"id": run.id + 1},
            "app": None,
            "pull_requests": [],
        }

    def review(self, repo: Repo, pull: Pull, review: Review) -> dict[str, Any]:
        api = f"{self.urls.api}/repos/{repo.owner}/{repo.name}"
        html = f"{self.urls.web}/{repo.owner}/{repo.name}/pull/{pull.number}"
        return {
            "id": review.id,
            "node_id": payloads.node_id("PullRequestReview", review.id),
            "user": self.user(review.login),
            "body": review.body,
            "state": review.state,
            "html_url": f"{html}#pullrequestreview-{review.id}",
            "pull_request_url": f"{api}/pulls/{pull.number}",
            "_links": {
                "html": {"href": f"{html}#pullrequestreview-{review.id}"},
                "pull_request": {"href": f"{api}/pulls/{pull.number}"},
            },
            "submitted_at": review.submitted_at,
            "commit_id": review.commit_id,
            "author_association": "MEMBER",
        }

    def comment(self, repo: Repo, pull: Pull, comment: Comment, full: bool) -> dict[str, Any]:
        api = f"{self.urls.api}/repos/{repo.owner}/{repo.name}"
        html = (
            f"{self.urls.web}/{repo.owner}/{repo.name}/pull/{pull.number}#discussion_r{comment.id}"
        )
        body: dict[str, Any] = {
            "url": f"{api}/pulls/comments/{comment.id}",
            "id": comment.id,
            "node_id": payloads.node_id("PullRequestReviewComment", comment.id),
            "pull_request_review_id": comment.review_id,
            "diff_hunk": f"@@ -{comment.line},1 +{comment.line},1 @@",
            "path": comment.path,
            "position": 1,
            "original_position": 1,
            "commit_id": comment.commit_id,
            "original_commit_id": comment.commit_id,
            "user": self.user(comment.login),
            "body": comment.body,
            "created_at": comment.created_at,
            "updated_at": comment.created_at,
            "html_url": html,
            "pull_request_url": f"{api}/pulls/{pull.number}",
            "author_association": "MEMBER",
            "_links": {
                "self": {"href": f"{api}/pulls/comments/{comment.id}"},
                "html": {"href": html},
                "pull_request": {"href": f"{api}/pulls/{pull.number}"},
            },
            "line": comment.line,
            "original_line": comment.line,
            "side": "RIGHT",
        }
        return body
