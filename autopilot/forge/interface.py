"""What the pipeline asks of a forge: one pull request per task, its gate, its merge.

Plain, blocking calls (the activities run them in a thread and heartbeat meanwhile). GitHub is
the first implementation (autopilot/forge/github.py); GitLab can follow behind the same face.
Every failure is one of the errors below, so the activities decide wait / retry / pause once.
"""

from __future__ import annotations

from typing import Protocol

from autopilot.models.forge import (
    ForgeCheck,
    ForgeGate,
    ForgeMergeResult,
    PersonReview,
    PullRequestRef,
)
from autopilot.models.workspace import MergeStyle


class ForgeError(Exception):
    """A forge call failed; the subclasses say what the pipeline does about it."""


class ForgeRateLimited(ForgeError):
    """Primary or secondary rate limit: wait `wait_s` (Retry-After, x-ratelimit-reset), then
    try again. Never fails a task."""

    def __init__(self, message: str, wait_s: float) -> None:
        super().__init__(message)
        self.wait_s = wait_s


class ForgeUnavailable(ForgeError):
    """5xx, a timeout, a refused connection: retried with backoff."""


class ForgeDenied(ForgeError):
    """401 or 403 (not a rate limit): the token or its scopes are wrong. The session pauses
    with what to fix."""


class ForgeRefused(ForgeError):
    """The forge understood and said no (404, 422, 405 other than the cases the methods
    answer themselves): a person has to look."""


class Forge(Protocol):
    def check_access(self, target_branch: str) -> None:
        """The token reaches the repository with push rights and `target_branch` exists;
        else ForgeDenied or ForgeRefused saying what to fix."""

    def find_pull_request(self, head_branch: str, base_branch: str) -> PullRequestRef | None:
        """The open pull request from `head_branch` into `base_branch`, if there is one."""

    def open_pull_request(
        self, head_branch: str, base_branch: str, title: str, body: str, labels: list[str]
    ) -> PullRequestRef:
        """Open it, or find the open one for that head and update its title, body and labels:
        a retried call never opens a second one."""

    def gate(self, number: int, require_approval: int) -> ForgeGate:
        """One reading of the pull request: its state, head, mergeability, the checks on its
        head commit (required ones marked), the people's reviews with their comments."""

    def required_checks(self, base_branch: str) -> list[str]:
        """The status check names the base branch's protection requires ([] if none)."""

    def uses_merge_queue(self, base_branch: str) -> bool:
        """The base branch merges through GitHub's merge queue."""

    def merge(
        self, number: int, expected_head_sha: str, style: MergeStyle, title: str, message: str
    ) -> ForgeMergeResult:
        """Merge (or enqueue, when the base uses a merge queue) only if the head is still
        `expected_head_sha`: a moved head is ForgeMergeResult("head_moved"), a conflict
        ("base branch was modified", mergeable_state dirty) is "conflict"."""

    def delete_branch(self, branch: str) -> None:
        """Delete the head branch (gone already is fine)."""

    def close(self, number: int, comment: str) -> None:
        """Close the pull request with a comment saying why."""

    def git_env(self) -> dict[str, str]:
        """Variables that let git push to and fetch from the forge with the worker's token
        (GIT_CONFIG_*, scoped to the forge's host), never in argv or a URL. Pass them to git
        only, never to an agent's or a check's run."""

    def secrets(self) -> dict[str, str]:
        """The token in every spelling git or a log could show it (name -> value), for the
        worker's Redactor: an App's installation token is in no environment variable."""


__all__ = [
    "Forge",
    "ForgeCheck",
    "ForgeDenied",
    "ForgeError",
    "ForgeGate",
    "ForgeMergeResult",
    "ForgeRateLimited",
    "ForgeRefused",
    "ForgeUnavailable",
    "PersonReview",
    "PullRequestRef",
]
