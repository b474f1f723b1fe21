"""What `starter.py PLAN --dry-run` shows besides the plan: everything the session would run
and where it would send things, as the checks found it, and which checks were skipped.

The repository's `.autopilot.toml` is data a merged task can change: its commands, its
notification targets, its image and its network domains are shown here so that a person can
see them before anything runs. Webhook URLs are shown by their label only (scheme, host and
port: a webhook's path is often its secret), and every line goes through `printable`.
`--json` gives the same as one object, `DryRunReport`.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel

from autopilot.git import shown_url
from autopilot.infra import Settings, printable, url_label
from autopilot.models import (
    Batch,
    CheckCommand,
    ForgeSettings,
    MergeStyle,
    SessionRequest,
    Task,
    place_of,
)
from autopilot.operate.forge_check import describe as describe_forge
from autopilot.operate.preflight import Accepted

__all__ = ["DryRunReport", "describe_session", "dry_run_report"]


class TaskReport(BaseModel):
    id: str
    title: str
    line: int
    depends_on: list[str]
    files: list[str]
    verification: list[str]

    @classmethod
    def of(cls, task: Task) -> TaskReport:
        same = task.model_dump(include={"id", "title", "line", "depends_on", "verification"})
        return cls(**same, files=[ref.path for ref in task.files])


class BatchReport(BaseModel):
    number: int
    title: str
    line: int
    depends_on: list[int]
    sequential: bool
    place: str  # where its tasks run: local or dagger
    tasks: list[TaskReport]

    @classmethod
    def of(cls, batch: Batch, place: str) -> BatchReport:
        same = batch.model_dump(include={"number", "title", "line", "sequential"})
        tasks = [TaskReport.of(task) for task in batch.tasks]
        return cls(**same, depends_on=batch.dependencies, place=place, tasks=tasks)


class ContainerReport(BaseModel):
    image: str
    user: str
    packages: list[str]
    engine: str  # which engine the runs use; "" when no batch runs in a container


class ReviewReport(BaseModel):
    mode: str
    rounds: int
    checks: list[str]
    check_env: list[str]
    check_timeout_s: float
    reviewer_model: str | None
    reviewer_prompt_chars: int  # its length: the text itself may be long
    on_failure: str


class MergeReport(BaseModel):
    repo: str  # a local path, or the remote's URL without its password
    target_branch: str  # "" when an offline dry run could not ask the remote
    concurrency: int
    style: MergeStyle  # [merge] style: "merge" (a merge commit per task), "squash", "rebase"


class NotifyReport(BaseModel):
    urls: list[str]  # labels only
    installation_urls: list[str]  # AUTOPILOT_NOTIFY's, labels only
    command: list[str]  # AUTOPILOT_NOTIFY_COMMAND's: this installation's, never the repository's


class DryRunReport(BaseModel):
    """`--dry-run --json`: the session a run would start, and what was not checked."""

    session_id: str
    plan: str
    batches: list[BatchReport]  # the selected ones
    execution_place: str  # the session's default: local or dagger
    merge: MergeReport
    review: ReviewReport
    setup: list[str]
    setup_timeout_s: float
    after_restore: list[str]
    copy_files: list[str]
    network: list[str]
    container: ContainerReport | None  # None when no selected batch runs in a container
    notify: NotifyReport
    # Forge mode: where the pull requests go (no credential: the settings hold none).
    forge: ForgeSettings | None = None
    temporal: str
    running: bool  # a session with this id runs: the run would attach to it
    concurrency_note: str
    skipped: list[str]  # the checks --offline skipped


def _commands(checks: list[CheckCommand]) -> list[str]:
    return [check.command for check in checks]


def dry_run_report(accepted: Accepted, settings: Settings) -> DryRunReport:
    request: SessionRequest = accepted.request
    review, workspace = request.review, request.workspace
    return DryRunReport(
        session_id=request.session_id,
        plan=request.plan_path,
        batches=[
            BatchReport.of(batch, place_of(request, batch)) for batch in accepted.selected.batches
        ],
        execution_place=request.execution_place,
        merge=MergeReport(
            repo=shown_url(request.repo),
            target_branch=request.target_branch,
            concurrency=request.concurrency,
            style=request.merge_style,
        ),
        review=ReviewReport(
            mode=review.mode,
            rounds=review.rounds,
            checks=_commands(review.checks),
            check_env=review.check_env,
            check_timeout_s=review.check_timeout_s,
            reviewer_model=review.reviewer_model,
            reviewer_prompt_chars=len(review.reviewer_prompt or ""),
            on_failure=review.on_failure,
        ),
        setup=_commands(workspace.setup),
        setup_timeout_s=workspace.setup_timeout_s,
        after_restore=_commands(workspace.after_restore),
        copy_files=workspace.copy_files,
        network=request.agent.network,
        container=ContainerReport(
            image=request.container.image,
            user=request.container.user,
            packages=request.container.packages,
            engine=accepted.engine,
        )
        if accepted.container_batches
        else None,
        notify=NotifyReport(
            urls=[url_label(url) for url in request.notify.urls],
            installation_urls=[url_label(url) for url in settings.notify],
            command=list(settings.notify_command),
        ),
        forge=request.forge if request.forge.active else None,
        temporal=accepted.temporal,
        running=accepted.running,
        concurrency_note=accepted.concurrency_note,
        skipped=accepted.skipped,
    )


_STYLES = {
    "merge": "a merge commit per task",
    "squash": "one commit per task",
    "rebase": "each task's commits rebased onto the target, by the forge",
}


def _listed(values: list[str]) -> str:
    return ", ".join(values) if values else "none"


def describe_session(report: DryRunReport) -> str:
    """The report as text, one setting a line."""
    review, merge = report.review, report.merge
    lines = [
        f"Session: {report.session_id}" + ("  (running: the run attaches to it)" * report.running),
        f"Merge: into {merge.target_branch or '(the remote default branch)'} of {merge.repo}; "
        f"{merge.concurrency} agent(s) at once; on failure: {review.on_failure}",
        f"Merge style: {merge.style} ({_STYLES[merge.style]})",
        *(describe_forge(report.forge, merge.style) if report.forge else []),
        f"Review: {review.mode}, {review.rounds} round(s); reviewer model: "
        f"{review.reviewer_model or '(the CLI default)'}; reviewer prompt: "
        f"{review.reviewer_prompt_chars} characters",
        f"Checks (each {review.check_timeout_s:g} s): {_listed(review.checks)}",
        "Check environment: " + ", ".join(["PATH", "HOME", "LANG", "TMPDIR", *review.check_env]),
        f"Setup commands (each {report.setup_timeout_s:g} s): {_listed(report.setup)}",
        f"After a cache restore: {_listed(report.after_restore)}",
        f"Copied in from your checkout: {_listed(report.copy_files)}",
        f"Network the agents and checks may reach (besides the model API): "
        f"{_listed(report.network)}",
    ]
    if report.container is not None:
        container = report.container
        lines.append(
            f"Container: image {container.image}, user {container.user}, packages "
            f"{_listed(container.packages)}; engine: {container.engine or '(not checked)'}"
        )
    notify = report.notify
    lines += [
        f"Notify URLs (shown by host): {_listed(notify.urls)}; of this installation: "
        f"{_listed(notify.installation_urls)}",
        "Notify command (this installation's AUTOPILOT_NOTIFY_COMMAND): "
        + (shlex.join(notify.command) if notify.command else "none"),
        f"Temporal: {report.temporal or '(not checked)'}",
    ]
    if report.concurrency_note:
        lines.append(report.concurrency_note)
    if report.skipped:
        lines.append("Skipped (--offline): " + "; ".join(report.skipped))
    return "\n".join(printable(line) for line in lines)
