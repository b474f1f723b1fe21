"""The forge on GitHub (and GitHub Enterprise), through PyGithub, blocking.

PyGithub's own retrying and rate-limit sleeping are off: every failure becomes one of the
forge's errors (autopilot/forge/errors.py) and the activities decide whether to wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from github import Auth, Github
from github.GithubException import GithubException
from github.PullRequest import PullRequest
from github.Repository import Repository

from autopilot.forge.errors import forge_error, github_message
from autopilot.forge.interface import ForgeDenied, ForgeRateLimited, ForgeRefused
from autopilot.models.forge import (
    CheckState,
    ForgeCheck,
    ForgeGate,
    ForgeMergeResult,
    PersonReview,
    PersonReviewState,
    PullRequestRef,
    ReviewComment,
)
from autopilot.models.workspace import MergeStyle

__all__ = ["LOG_EXCERPT_CHARS", "GitHubForge"]

LOG_EXCERPT_CHARS = 4000
# GitHub computes mergeability after a push lazily: a few more reads while it is null.
MERGEABLE_READS = 4
MERGEABLE_PAUSE_S = 1.0
TIMEOUT_S = 30

_REVIEW_STATES: dict[str, PersonReviewState] = {
    "APPROVED": "approved",
    "CHANGES_REQUESTED": "changes_requested",
    "COMMENTED": "commented",
    "DISMISSED": "dismissed",
}
_STATUS_STATES: dict[str, CheckState] = {
    "success": "success",
    "pending": "pending",
    "failure": "failure",
    "error": "failure",
}
_PASSING_CONCLUSIONS = ("success", "neutral", "skipped")
_ENQUEUE = (
    "mutation($id: ID!, $head: GitObjectID!) { enqueuePullRequest(input: "
    "{pullRequestId: $id, expectedHeadOid: $head}) { mergeQueueEntry { state } } }"
)


class GitHubForge:
    """One repository's pull requests. `auth` is PyGithub's (a token, or an App installation)."""

    def __init__(
        self,
        repo: str,
        auth: Auth.Auth,
        api_url: str,
        *,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.repo_name = repo
        self.owner = repo.split("/", 1)[0]
        self._github = Github(
            auth=auth,
            base_url=api_url.rstrip("/"),
            timeout=TIMEOUT_S,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self._pause = pause
        self._own_login: str | None = None

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            raise forge_error(exc, what, self.repo_name) from exc

    def _repo(self) -> Repository:
        return self._github.get_repo(self.repo_name, lazy=True)

    def _raw(self, verb: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"/repos/{self.repo_name}{path}"
        _, data = self._github.requester.requestJsonAndCheck(verb, url, input=body)
        return data

    def check_access(self, target_branch: str) -> None:
        with self._calling(f"reading {self.repo_name}"):
            try:
                repo = self._github.get_repo(self.repo_name)
            except GithubException as exc:
                if exc.status == 404:
                    raise ForgeRefused(
                        f"no repository {self.repo_name}, or the token cannot see it"
                    ) from exc
                raise
            if not repo.permissions.push:
                raise ForgeDenied(
                    f"the token cannot push to {self.repo_name}: give it contents:write and "
                    f"pull_requests:write"
                )
            try:
                repo.get_branch(target_branch)
            except GithubException as exc:
                if exc.status == 404:
                    raise ForgeRefused(f"no branch {target_branch} on {self.repo_name}") from exc
                raise

    def _ref(self, pr: PullRequest) -> PullRequestRef:
        return PullRequestRef(
            number=pr.number,
            url=pr.html_url,
            head_branch=pr.head.ref,
            head_sha=pr.head.sha,
            base_branch=pr.base.ref,
        )

    def _find(self, head_branch: str, base_branch: str) -> PullRequest | None:
        pulls = self._repo().get_pulls(
            state="open", head=f"{self.owner}:{head_branch}", base=base_branch
        )
        for pr in pulls:
            if pr.head.ref == head_branch:
                return pr
        return None

    def find_pull_request(self, head_branch: str, base_branch: str) -> PullRequestRef | None:
        with self._calling(f"finding the pull request of {head_branch}"):
            pr = self._find(head_branch, base_branch)
            return None if pr is None else self._ref(pr)

    def open_pull_request(
        self, head_branch: str, base_branch: str, title: str, body: str, labels: list[str]
    ) -> PullRequestRef:
        with self._calling(f"opening the pull request of {head_branch}"):
            pr = self._find(head_branch, base_branch)
            if pr is None:
                try:
                    pr = self._repo().create_pull(
                        base=base_branch, head=head_branch, title=title, body=body
                    )
                except GithubException as exc:
                    # A retried call whose first try did open it (the answer was lost).
                    found = self._find(head_branch, base_branch) if exc.status == 422 else None
                    if found is None:
                        raise
                    pr = found
            if pr.title != title or (pr.body or "") != body:
                pr.edit(title=title, body=body)
            missing = sorted(set(labels) - {label.name for label in pr.labels})
            if missing:  # added, never removed: a person's own labels stay
                pr.add_to_labels(*missing)
            return self._ref(pr)

    def _read_pull(self, number: int) -> PullRequest:
        pr = self._repo().get_pull(number)
        reads = 1
        while pr.state == "open" and pr.mergeable is None and reads < MERGEABLE_READS:
            self._pause(MERGEABLE_PAUSE_S)
            pr = self._repo().get_pull(number)
            reads += 1
        return pr

    def gate(self, number: int, require_approval: int) -> ForgeGate:
        with self._calling(f"reading pull request #{number}"):
            pr = self._read_pull(number)
            head_sha = pr.head.sha
            if pr.merged:
                return ForgeGate(
                    state="merged",
                    head_sha=head_sha,
                    merged_sha=pr.merge_commit_sha or "",
                    mergeable_state=pr.mergeable_state or "unknown",
                )
            if pr.state == "closed":
                return ForgeGate(state="closed", head_sha=head_sha, closed_by=self._closer(number))
            required = set(self.required_checks(pr.base.ref))
            reviews = self._reviews(pr)
            return ForgeGate(
                state="open",
                head_sha=head_sha,
                mergeable_state=pr.mergeable_state or "unknown",
                checks=self._checks(head_sha, required),
                reviews=reviews,
                approvals=approvals_of(reviews, head_sha),
            )

    def _closer(self, number: int) -> str:
        issue = self._repo().get_issue(number)
        return issue.closed_by.login if issue.closed_by is not None else ""

    def _checks(self, sha: str, required: set[str]) -> list[ForgeCheck]:
        commit = self._repo().get_commit(sha)
        checks: dict[str, ForgeCheck] = {}
        for status in commit.get_combined_status().statuses:
            checks[status.context] = ForgeCheck(
                name=status.context,
                state=_STATUS_STATES.get(status.state, "pending"),
                conclusion=status.state if status.state in ("failure", "error") else "",
                required=status.context in required,
                details_url=status.target_url or "",
                log_excerpt=_cap(status.description or "") if status.state != "success" else "",
            )
        for run in commit.get_check_runs():
            state: CheckState
            if run.status != "completed":
                state = "pending"
            elif run.conclusion in _PASSING_CONCLUSIONS:
                state = "success"
            else:
                state = "failure"
            excerpt = ""
            if state == "failure":
                output = run.output
                parts = [output.title, output.summary, output.text] if output else []
                excerpt = _cap("\n\n".join(part for part in parts if part))
            checks[run.name] = ForgeCheck(
                name=run.name,
                state=state,
                conclusion=run.conclusion or "",
                required=run.name in required,
                details_url=run.details_url or run.html_url or "",
                log_excerpt=excerpt,
            )
        return list(checks.values())

    def _own(self) -> str:
        """The token's own login, whose reviews are not people's ("" for an App)."""
        if self._own_login is None:
            try:
                self._own_login = self._github.get_user().login
            except GithubException:
                self._own_login = ""
        return self._own_login

    def _reviews(self, pr: PullRequest) -> list[PersonReview]:
        own = self._own()
        comments: dict[int, list[ReviewComment]] = {}
        for comment in pr.get_review_comments():
            review_id = comment.pull_request_review_id
            if review_id is not None:
                comments.setdefault(review_id, []).append(
                    ReviewComment(body=comment.body, path=comment.path, line=comment.line)
                )
        reviews = []
        for review in pr.get_reviews():
            user = review.user
            state = _REVIEW_STATES.get(review.state)
            if user is None or state is None or user.type == "Bot" or user.login == own:
                continue
            reviews.append(
                PersonReview(
                    review_id=review.id,
                    author=user.login,
                    state=state,
                    body=review.body or "",
                    commit_sha=review.commit_id or "",
                    comments=comments.get(review.id, []),
                )
            )
        return reviews

    def _rules(self, branch: str) -> list[dict[str, Any]]:
        try:
            data = self._raw("GET", f"/rules/branches/{quote(branch, safe='')}")
        except GithubException as exc:
            if exc.status == 404:
                return []
            raise
        return [rule for rule in data if isinstance(rule, dict)] if isinstance(data, list) else []

    def required_checks(self, base_branch: str) -> list[str]:
        with self._calling(f"reading the protection of {base_branch}"):
            names: list[str] = []
            try:
                protection = self._raw("GET", f"/branches/{quote(base_branch, safe='')}/protection")
                status_checks = protection.get("required_status_checks") or {}
                names.extend(status_checks.get("contexts") or [])
                names.extend(
                    str(check.get("context", "")) for check in status_checks.get("checks") or []
                )
            except GithubException as exc:
                # Not protected (404), or not the token's to read (403, a rate limit aside).
                limited = isinstance(forge_error(exc, "", self.repo_name), ForgeRateLimited)
                if exc.status not in (403, 404) or limited:
                    raise
            for rule in self._rules(base_branch):
                if rule.get("type") == "required_status_checks":
                    for check in (rule.get("parameters") or {}).get("required_status_checks", []):
                        names.append(str(check.get("context", "")))
            return sorted({name for name in names if name})

    def uses_merge_queue(self, base_branch: str) -> bool:
        with self._calling(f"reading the rules of {base_branch}"):
            return any(rule.get("type") == "merge_queue" for rule in self._rules(base_branch))

    def merge(
        self, number: int, expected_head_sha: str, style: MergeStyle, title: str, message: str
    ) -> ForgeMergeResult:
        with self._calling(f"merging pull request #{number}"):
            pr = self._repo().get_pull(number)
            if pr.merged:
                return ForgeMergeResult(outcome="merged", merge_sha=pr.merge_commit_sha or "")
            if pr.state == "closed":
                return ForgeMergeResult(outcome="closed", message="closed without a merge")
            if pr.head.sha != expected_head_sha:
                return ForgeMergeResult(outcome="head_moved", message=f"head is {pr.head.sha}")
            if self.uses_merge_queue(pr.base.ref):
                return self._enqueue(pr, expected_head_sha)
            try:
                status = pr.merge(
                    commit_message=message,
                    commit_title=title,
                    merge_method=style,
                    sha=expected_head_sha,
                )
            except GithubException as exc:
                said = github_message(exc)
                if exc.status == 409:
                    return ForgeMergeResult(outcome="head_moved", message=said)
                if exc.status == 405 and (
                    "base branch was modified" in said.lower() or pr.mergeable_state == "dirty"
                ):
                    return ForgeMergeResult(outcome="conflict", message=said)
                raise
            if not status.merged:
                return ForgeMergeResult(outcome="conflict", message=status.message)
            return ForgeMergeResult(outcome="merged", merge_sha=status.sha)

    def _enqueue(self, pr: PullRequest, head_sha: str) -> ForgeMergeResult:
        _, data = self._github.requester.graphql_query(
            _ENQUEUE, {"id": pr.node_id, "head": head_sha}
        )
        errors = data.get("errors")
        if errors:
            said = "; ".join(str(error.get("message", error)) for error in errors)
            if "head" in said.lower() and "oid" in said.lower():
                return ForgeMergeResult(outcome="head_moved", message=said)
            return ForgeMergeResult(outcome="queued_failed", message=said)
        entry = ((data.get("data") or {}).get("enqueuePullRequest") or {}).get("mergeQueueEntry")
        state = str((entry or {}).get("state", ""))
        if state == "MERGED":
            merged = self._repo().get_pull(pr.number)
            return ForgeMergeResult(outcome="merged", merge_sha=merged.merge_commit_sha or "")
        return ForgeMergeResult(outcome="queued", message=f"in the merge queue ({state})")

    def delete_branch(self, branch: str) -> None:
        with self._calling(f"deleting branch {branch}"):
            try:
                self._raw("DELETE", f"/git/refs/heads/{quote(branch, safe='/')}")
            except GithubException as exc:
                gone = "reference does not exist" in github_message(exc).lower()
                if not (exc.status == 404 or (exc.status == 422 and gone)):
                    raise

    def close(self, number: int, comment: str) -> None:
        with self._calling(f"closing pull request #{number}"):
            pr = self._repo().get_pull(number)
            if comment:
                pr.create_issue_comment(comment)
            if pr.state != "closed":
                pr.edit(state="closed")


def approvals_of(reviews: list[PersonReview], head_sha: str) -> int:
    """People approving as GitHub counts them: each person's latest deciding review (a plain
    comment decides nothing), on the current head, not dismissed."""
    latest: dict[str, PersonReview] = {}
    for review in sorted(reviews, key=lambda r: r.review_id):
        if review.state != "commented":
            latest[review.author] = review
    return sum(1 for r in latest.values() if r.state == "approved" and r.commit_sha == head_sha)


def _cap(text: str) -> str:
    if len(text) <= LOG_EXCERPT_CHARS:
        return text
    return text[: LOG_EXCERPT_CHARS - 20] + "\n[... cut]"
