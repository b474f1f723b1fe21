"""The forge (GitHub first): its settings, and what crosses the worker's boundary about a
task's pull request. The token never does: each worker reads its own (autopilot/forge)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ForgeKind = Literal["", "github"]
DEFAULT_GITHUB_API = "https://api.github.com"


class ForgeSettings(BaseModel):
    """`--forge github` and `[forge]` in .autopilot.toml. kind "": no forge (the pipeline
    merges the branches itself)."""

    kind: ForgeKind = ""
    repo: str = ""  # OWNER/NAME; "" until the starter read it off the remote URL
    api_url: str = DEFAULT_GITHUB_API  # GitHub Enterprise: https://HOST/api/v3
    web_url: str = ""  # where people open the pull requests; "" until the starter asked
    labels: list[str] = Field(default_factory=list)
    require_approval: int = 0  # approving reviews by people before the merge
    app_id: str = ""  # a GitHub App: its id, and the private key file on each worker
    private_key_file: str = ""
    installation_id: str = ""  # "" : the App's installation on `repo`, looked up
    # Polling the pull request's gate: the first wait, and the longest (backoff between).
    poll_s: float = 10.0
    poll_max_s: float = 300.0
    # Feedback rounds a task may get from the forge (failing checks, changes requested).
    rounds: int = 3

    @property
    def active(self) -> bool:
        return self.kind != ""


class PullRequestRef(BaseModel):
    """A task's pull request, as status, notifications and search attributes show it."""

    number: int
    url: str  # the page people open (html_url)
    head_branch: str
    head_sha: str = ""
    base_branch: str = ""


PullRequestState = Literal["open", "closed", "merged"]
CheckState = Literal["pending", "success", "failure"]
PersonReviewState = Literal["approved", "changes_requested", "commented", "dismissed"]


class ForgeCheck(BaseModel):
    """A commit status or a check run on the pull request's head commit."""

    name: str
    state: CheckState
    conclusion: str = ""  # GitHub's word: failure, timed_out, cancelled, action_required, error
    required: bool = False
    details_url: str = ""
    log_excerpt: str = ""  # what the API exposes (a check run's output), cut to a few kB


class ReviewComment(BaseModel):
    body: str
    path: str | None = None  # inline comments: the file and line they sit on
    line: int | None = None


class PersonReview(BaseModel):
    review_id: int
    author: str
    state: PersonReviewState
    body: str = ""
    commit_sha: str = ""
    comments: list[ReviewComment] = Field(default_factory=list)


class ForgeGate(BaseModel):
    """The pull request as the forge judges it, read once (one poll)."""

    state: PullRequestState
    head_sha: str
    closed_by: str = ""  # who closed it unmerged (state "closed")
    merged_sha: str = ""  # state "merged": the merge commit on the base
    # GitHub's mergeable_state: clean, dirty (conflicts), blocked, behind, unstable, unknown.
    mergeable_state: str = "unknown"
    checks: list[ForgeCheck] = Field(default_factory=list)
    reviews: list[PersonReview] = Field(default_factory=list)
    approvals: int = 0  # by people, on the current head, not dismissed
    queued: bool = False  # in the base branch's merge queue


# "queued": in the merge queue, which merges it once its merge group passes.
ForgeMergeOutcome = Literal["merged", "queued", "head_moved", "conflict", "closed", "queued_failed"]


class ForgeMergeResult(BaseModel):
    outcome: ForgeMergeOutcome
    merge_sha: str = ""
    message: str = ""
