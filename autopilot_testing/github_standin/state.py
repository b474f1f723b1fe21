"""The stand-in's world: people, tokens, repositories, pull requests, checks, reviews, the merge
queue. One lock guards it; git does the merging (gitrepo)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autopilot_testing.github_standin import gitrepo
from autopilot_testing.github_standin.payloads import now

ChecksRule = Callable[[str, list[str]], dict[str, str]]
PERMISSIONS = ("read", "write", "admin")


class Refused(Exception):
    """GitHub says no: the status and message it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Person:
    login: str
    id: int
    permission: str
    kind: str = "User"  # "Bot" for an App installation


@dataclass
class Protection:
    required_checks: list[str]
    required_approvals: int
    merge_queue: bool
    up_to_date: bool


@dataclass
class Status:
    id: int
    context: str
    state: str
    description: str
    target_url: str
    creator: str
    created_at: str


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    title: str
    summary: str
    text: str
    started_at: str
    completed_at: str | None


@dataclass
class Comment:
    id: int
    review_id: int
    login: str
    body: str
    path: str
    line: int
    commit_id: str
    created_at: str


@dataclass
class Review:
    id: int
    login: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    body: str
    commit_id: str
    submitted_at: str
    comments: list[Comment] = field(default_factory=list)


@dataclass
class Pull:
    number: int
    id: int
    title: str
    body: str
    head: str
    base: str
    head_sha: str
    user: str
    created_at: str
    updated_at: str
    state: str = "open"
    merged: bool = False
    merged_by: str = ""
    merged_at: str | None = None
    closed_by: str = ""
    closed_at: str | None = None
    merge_commit_sha: str | None = None
    labels: list[str] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    issue_comments: list[tuple[int, str, str, str]] = field(default_factory=list)
    queued_style: str = ""  # in the merge queue, to be merged in this style
    group_sha: str = ""


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    path: Path
    default_branch: str
    created_at: str
    protection: dict[str, Protection] = field(default_factory=dict)
    pulls: list[Pull] = field(default_factory=list)
    statuses: dict[str, list[Status]] = field(default_factory=dict)
    check_runs: dict[str, list[CheckRun]] = field(default_factory=dict)
    rule: ChecksRule | None = None


@dataclass
class App:
    app_id: str
    public_key_pem: str
    installation_id: int
    bot: Person


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self.people: dict[str, Person] = {}
        self.tokens: dict[str, str] = {}  # token -> login
        self.repos: dict[tuple[str, str], Repo] = {}
        self.apps: dict[int, App] = {}
        self._ids = 1000

    def next_id(self) -> int:
        with self.lock:
            self._ids += 1
            return self._ids

    # people and tokens

    def add_person(self, login: str, permission: str, kind: str = "User") -> str:
        if permission not in PERMISSIONS:
            raise ValueError(f"permission must be one of {PERMISSIONS}")
        with self.lock:
            if login not in self.people:
                self.people[login] = Person(login, self.next_id(), permission, kind)
            self.people[login].permission = permission
            token = "ghp_" + secrets.token_hex(18)
            self.tokens[token] = login
            return token

    def person_of(self, token: str) -> Person | None:
        with self.lock:
            login = self.tokens.get(token)
            return self.people.get(login) if login else None

    # repositories

    def create_repo(self, owner: str, name: str, default_branch: str) -> Repo:
        path = self.root / "repos" / owner / f"{name}.git"
        gitrepo.init_bare(path, default_branch)
        with self.lock:
            if owner not in self.people:
                self.people[owner] = Person(owner, self.next_id(), "admin", "Organization")
            repo = Repo(owner, name, self.next_id(), path, default_branch, now())
            self.repos[(owner, name)] = repo
            return repo

    def repo(self, owner: str, name: str) -> Repo:
        with self.lock:
            found = self.repos.get((owner, name))
        if found is None:
            raise Refused(404, "Not Found")
        return found

    def pull(self, repo: Repo, number: int) -> Pull:
        with self.lock:
            for pull in repo.pulls:
                if pull.number == number:
                    return pull
        raise Refused(404, "Not Found")

    # pushes: a PR head moved, a merge group was made

    def pushed(self, repo: Repo, before: dict[str, str], after: dict[str, str]) -> None:
        """After a receive-pack: the PRs whose head branch moved follow it, and CI runs."""
        moved = {ref: sha for ref, sha in after.items() if before.get(ref) != sha}
        for ref, sha in moved.items():
            with self.lock:
                pulls = [p for p in repo.pulls if p.state == "open" and p.head == ref]
                for pull in pulls:
                    pull.head_sha = sha
                    pull.updated_at = now()
                    pull.queued_style = ""  # a moved head leaves the merge queue
            for pull in pulls:
                self.run_rule(repo, sha, pull.base)
        self.advance_queue(repo)

    def run_rule(self, repo: Repo, sha: str, base: str) -> None:
        rule = repo.rule
        if rule is None:
            return
        base_sha = gitrepo.rev(repo.path, f"refs/heads/{base}")
        files = [path for _, path in gitrepo.changed_files(repo.path, base_sha, sha)]
        for context, state in rule(sha, files).items():
            self.set_status(repo, sha, context, state, "", "github-actions")

    # statuses and check runs

    def set_status(
        self, repo: Repo, sha: str, context: str, state: str, description: str, creator: str
    ) -> Status:
        status = Status(self.next_id(), context, state, description, "", creator, now())
        with self.lock:
            repo.statuses.setdefault(sha, []).insert(0, status)
        self.advance_queue(repo)
        return status

    def set_check_run(self, repo: Repo, run: CheckRun) -> CheckRun:
        with self.lock:
            runs = repo.check_runs.setdefault(run.head_sha, [])
            runs[:] = [r for r in runs if r.name != run.name]
            runs.insert(0, run)
        self.advance_queue(repo)
        return run

    def latest_statuses(self, repo: Repo, sha: str) -> list[Status]:
        with self.lock:
            seen: dict[str, Status] = {}
            for status in repo.statuses.get(sha, []):
                seen.setdefault(status.context, status)
            return list(seen.values())

    def check_states(self, repo: Repo, sha: str) -> dict[str, str]:
        """name -> success | failure | pending, statuses and check runs together."""
        states = {s.context: _status_word(s.state) for s in self.latest_statuses(repo, sha)}
        with self.lock:
            for run in repo.check_runs.get(sha, []):
                if run.status != "completed":
                    states[run.name] = "pending"
                elif run.conclusion in ("success", "neutral", "skipped"):
                    states[run.name] = "success"
                else:
                    states[run.name] = "failure"
        return states

    # mergeability

    def approvals(self, pull: Pull) -> int:
        latest: dict[str, str] = {}
        for review in pull.reviews:
            if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
                latest[review.login] = review.state
        return sum(1 for state in latest.values() if state == "APPROVED")

    def mergeable_state(self, repo: Repo, pull: Pull) -> tuple[bool | None, str]:
        if pull.state != "open":
            return None, "unknown"
        base_sha = gitrepo.rev(repo.path, f"refs/heads/{pull.base}")
        if not base_sha or not gitrepo.rev(repo.path, pull.head_sha):
            return None, "unknown"
        if gitrepo.merge_tree(repo.path, base_sha, pull.head_sha) is None:
            return False, "dirty"
        rules = repo.protection.get(pull.base)
        states = self.check_states(repo, pull.head_sha)
        if rules is not None:
            if rules.up_to_date and not gitrepo.is_ancestor(repo.path, base_sha, pull.head_sha):
                return True, "behind"
            missing = [c for c in rules.required_checks if states.get(c) != "success"]
            if missing or self.approvals(pull) < rules.required_approvals:
                return True, "blocked"
        if any(state != "success" for state in states.values()):
            return True, "unstable"
        return True, "clean"

    # merging

    def merge(self, repo: Repo, pull: Pull, login: str, style: str, sha: str, message: str) -> str:
        """Merge by real git; the merge commit's sha, or Refused as GitHub answers."""
        with self.lock:
            if pull.state != "open":
                raise Refused(405, "Pull Request is not mergeable")
            rules = repo.protection.get(pull.base)
            if rules is not None and rules.merge_queue:
                raise Refused(
                    405,
                    "Repository rule violations found\n\n"
                    "Changes must be made through the merge queue",
                )
            if sha and sha != pull.head_sha:
                raise Refused(409, "Head branch was modified. Review and try the merge again.")
            _, state = self.mergeable_state(repo, pull)
            if state == "dirty":
                raise Refused(405, "Pull Request is not mergeable")
            if state in ("blocked", "behind"):
                raise Refused(405, "Repository rule violations found\n\n" + _why(state))
            return self._land(repo, pull, login, style, message)

    def _land(self, repo: Repo, pull: Pull, login: str, style: str, message: str) -> str:
        base_ref = f"refs/heads/{pull.base}"
        base_sha = gitrepo.rev(repo.path, base_ref)
        new = gitrepo.merged_commit(repo.path, base_sha, pull.head_sha, style, message)
        if new is None or not gitrepo.move_ref(repo.path, base_ref, new, base_sha):
            raise Refused(405, "Base branch was modified. Review and try the merge again.")
        stamp = now()
        pull.state, pull.merged, pull.merged_by = "closed", True, login
        pull.merged_at = pull.closed_at = pull.updated_at = stamp
        pull.merge_commit_sha = new
        return new

    # the merge queue

    def enqueue(self, repo: Repo, pull: Pull, expected_head: str, style: str) -> None:
        with self.lock:
            if pull.state != "open":
                raise Refused(422, "Pull request is closed")
            if expected_head and expected_head != pull.head_sha:
                raise Refused(422, "Head ref has been modified")
            if (
                gitrepo.merge_tree(repo.path, gitrepo.rev(repo.path, pull.base), pull.head_sha)
                is None
            ):
                raise Refused(422, "Pull request has merge conflicts")
            pull.queued_style = style
            base_sha = gitrepo.rev(repo.path, f"refs/heads/{pull.base}")
            group = gitrepo.merged_commit(
                repo.path, base_sha, pull.head_sha, style, f"{pull.title} (#{pull.number})"
            )
            if group is None:
                pull.queued_style = ""
                raise Refused(422, "Pull request has merge conflicts")
            pull.group_sha = group
            ref = f"refs/heads/gh-readonly-queue/{pull.base}/pr-{pull.number}-{pull.head_sha}"
            gitrepo.move_ref(repo.path, ref, group)
        self.run_rule(repo, group, pull.base)
        self.advance_queue(repo)

    def advance_queue(self, repo: Repo) -> None:
        """Merge each queued PR whose group passed its required checks; drop failed ones."""
        with self.lock:
            for pull in [p for p in repo.pulls if p.state == "open" and p.queued_style]:
                rules = repo.protection.get(pull.base)
                required = rules.required_checks if rules else []
                states = self.check_states(repo, pull.group_sha)
                if repo.rule is None and not states:
                    verdict = "success"
                elif any(states.get(c) == "failure" for c in required):
                    verdict = "failure"
                elif all(states.get(c) == "success" for c in required):
                    verdict = "success"
                else:
                    continue
                ref = f"refs/heads/gh-readonly-queue/{pull.base}/pr-{pull.number}-{pull.head_sha}"
                gitrepo.git(repo.path, "update-ref", "-d", ref, check=False)
                if verdict == "failure":
                    pull.queued_style = ""
                    continue
                base_ref = f"refs/heads/{pull.base}"
                base_sha = gitrepo.rev(repo.path, base_ref)
                if gitrepo.is_ancestor(repo.path, base_sha, pull.group_sha) and gitrepo.move_ref(
                    repo.path, base_ref, pull.group_sha, base_sha
                ):
                    stamp = now()
                    pull.state, pull.merged, pull.merged_by = "closed", True, "github-merge-queue"
                    pull.merged_at = pull.closed_at = pull.updated_at = stamp
                    pull.merge_commit_sha = pull.group_sha
                pull.queued_style = ""


def _status_word(state: str) -> str:
    return {"success": "success", "pending": "pending"}.get(state, "failure")


def _why(state: str) -> str:
    if state == "behind":
        return "Head branch is out of date with the base branch"
    return "Required status checks and reviews must pass before merging"
