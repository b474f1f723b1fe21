"""The forge (GitHub first): its settings, and what crosses the worker's boundary about a
task's pull request. The token never does: each worker reads its own (autopilot/forge)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from autopilot.models.review import ReviewResult
from autopilot.models.site import TaskSite
from autopilot.models.workspace import MergeStyle

ForgeKind = Literal["", "github"]
DEFAULT_GITHUB_API = "https://api.github.com"


class ForgeSettings(BaseModel):
    """`--forge github` and `[forge]` in .autopilot.toml. kind "": no forge (the pipeline
    merges the branches itself)."""

    kind: ForgeKind = ""
    repo: str = ""  # OWNER/NAME; "" until the starter read it off the remote URL
    api_url: str = DEFAULT_GITHUB_API  # GitHub Enterprise: https://HOST/api/v3
    web_url: str = ""  # where people open the pull requests; "" until the starter asked
    # The Temporal Web UI the starter knows of, for the pull request's link to its session.
    ui_url: str = ""
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


# What one watch of a pull request's gate ends with (autopilot/forge/steps.py decides):
# merge it; a feedback round (failing required check, changes requested); people must approve
# (said once, then watched on); closed by a person; merged elsewhere (the merge queue, a person).
# "conflict": the base moved under it (mergeable_state dirty, or behind where protection wants
# it up to date): the conflict round merges the base in.
GateDecision = Literal["merge", "conflict", "feedback", "waiting_review", "closed", "merged"]


class PullRequestRecord(BaseModel):
    """A task's pull request as its session carries it (across continue-as-new too)."""

    ref: PullRequestRef
    rounds: int = 0  # feedback rounds the forge gave the task so far
    seen_reviews: list[int] = Field(default_factory=list)  # people's reviews acted on already
    said_waiting: bool = False  # "waiting for review" was notified (once per pull request)


class PublishInput(BaseModel):
    """Push a task's branch to the forge and find or open its pull request."""

    forge: ForgeSettings
    repo: str  # the remote's URL: the forge's repository
    session_id: str
    task_id: str
    branch: str  # the task branch as the worker's cache has it (autopilot/<session>/<task>)
    head_branch: str  # the branch the pull request is from, on the forge
    target_branch: str
    title: str
    body: str
    site: TaskSite | None = None


class GateInput(BaseModel):
    """Watch a pull request until something decides (GateDecision)."""

    forge: ForgeSettings
    number: int
    head_sha: str  # as published: a moved head is read as what the forge has now
    seen_reviews: list[int] = Field(default_factory=list)
    said_waiting: bool = False  # return on "waiting for review" only when not said yet


class GateVerdict(BaseModel):
    decision: GateDecision
    gate: ForgeGate
    # "feedback": the forge's findings for the agent; the reviews it answers.
    feedback: ReviewResult | None = None
    reviews: list[int] = Field(default_factory=list)
    message: str = ""


class PullRequestMergeInput(BaseModel):
    forge: ForgeSettings
    number: int
    expected_head_sha: str
    head_branch: str  # deleted once merged
    style: MergeStyle
    title: str
    message: str
