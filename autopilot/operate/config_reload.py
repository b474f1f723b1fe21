"""`starter.py resume --reload-config`: a paused session's settings, as the target's head
has its `.autopilot.toml` now.

The file is read and checked exactly as a start reads it: a local session's from the target
branch's head commit (refusing a work-tree copy that differs), a remote session's from the
remote's target head. The session's flags stay over it as at the start: a review setting
that differs from what the session's own commit's file gave was set by a flag, and is kept;
`--check` commands and `--image` likewise. Nothing here talks to the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autopilot import git as gitops
from autopilot.git import CachesAside, RemoteError, check_remote
from autopilot.infra import CONFIG_FILE, RepoConfigError, RepoReviewConfig, merge_review_settings
from autopilot.models import (
    ConfigReload,
    ContainerSettings,
    NotifySettings,
    Plan,
    ReviewSettings,
    SessionRequest,
)
from autopilot.operate.committed_config import load_committed_config, load_session_config
from autopilot.operate.remote_repo_config import load_remote_config
from autopilot.plan import PayloadTooLarge, check_requests
from autopilot.setup import CopyProblem, check_sources, check_untracked
from autopilot.steps.site import decide

__all__ = ["ReloadError", "TargetConfig", "read_target_config", "reload_of", "reloaded_request"]

# The review settings a flag may set over the file (merge_review_settings' layered keys).
_LAYERED = (
    "mode",
    "rounds",
    "check_timeout_s",
    "reviewer_model",
    "reviewer_prompt",
    "on_failure",
    "verify_merged",
)


class ReloadError(Exception):
    """The new settings cannot be read or are refused: printed as is, exit code 2."""


@dataclass(frozen=True)
class TargetConfig:
    """The `.autopilot.toml` of the session's own commit, and of the target's head now."""

    commit: str  # the target's head
    pinned: RepoReviewConfig
    head: RepoReviewConfig


def read_target_config(running: SessionRequest, state_dir: Path) -> TargetConfig:
    """Both files, checked as a start checks them; ReloadError says what to fix."""
    if not running.config_commit:
        raise ReloadError(
            f"session {running.session_id} started before sessions kept the commit of their "
            f"{CONFIG_FILE}, so its flags cannot be told from the file's settings; cancel it "
            "and start it again to use the new file"
        )
    try:
        if decide(running.repo).remote:
            return _remote(running, state_dir)
        return _local(running)
    except (RepoConfigError, gitops.GitError, gitops.RepoError, RemoteError) as err:
        raise ReloadError(str(err)) from None


def _local(running: SessionRequest) -> TargetConfig:
    repo = gitops.check_repo(running.repo, running.target_branch, clean=False)
    head = load_session_config(repo)
    try:
        check_untracked(repo.path, repo.target_branch, head.workspace)
        check_sources(Path(repo.path), head.workspace.copy_files)
    except CopyProblem as err:
        raise ReloadError(f"{Path(repo.path) / CONFIG_FILE}: {err}") from None
    pinned = load_committed_config(Path(repo.path), running.config_commit)
    return TargetConfig(repo.head_sha, pinned, head)


def _remote(running: SessionRequest, state_dir: Path) -> TargetConfig:
    checked = check_remote(running.repo, running.target_branch)
    with CachesAside(state_dir) as aside:
        head = load_remote_config(
            aside.workspaces, checked.url, checked.target_branch, checked.head_sha
        )
        pinned = load_remote_config(
            aside.workspaces, checked.url, checked.target_branch, running.config_commit
        )
    if head.workspace.copy_files:
        raise ReloadError(
            f"{head.source}: [workspace] copy names files from your checkout, and a remote "
            f"session has none: remove `copy` from the target branch's {CONFIG_FILE}"
        )
    return TargetConfig(checked.head_sha, pinned, head)


def _file_review(config: RepoReviewConfig) -> ReviewSettings:
    """The review settings the file gives with no flag over it."""
    return merge_review_settings(
        config,
        mode=None,
        rounds=None,
        checks=[],
        check_timeout_s=None,
        reviewer_model=None,
        reviewer_prompt=None,
        on_failure=None,
        verify_merged=None,
    )


def _kept_flags(running: ReviewSettings, pinned: ReviewSettings) -> dict[str, object]:
    """The session's review settings that its file did not give: a flag set them."""
    return {
        key: getattr(running, key)
        for key in _LAYERED
        if getattr(running, key) != getattr(pinned, key)
    }


def reloaded_request(running: SessionRequest, files: TargetConfig) -> SessionRequest:
    """`running` with the head's file in place of the pinned one, the flags kept over it."""
    try:
        pinned_review, head_review = _file_review(files.pinned), _file_review(files.head)
    except RepoConfigError as err:
        raise ReloadError(str(err)) from None
    pinned_checks = {check.command for check in pinned_review.checks}
    head_checks = {check.command for check in head_review.checks}
    flag_checks = [
        check
        for check in running.review.checks
        if check.command not in pinned_checks and check.command not in head_checks
    ]
    review = head_review.model_copy(
        update={
            **_kept_flags(running.review, pinned_review),
            "checks": [*head_review.checks, *flag_checks],
            "reviewer_max_turns": running.review.reviewer_max_turns,
        }
    )
    image = running.container.image
    container: ContainerSettings = files.head.container
    if image != files.pinned.container.image:  # --image was given
        container = container.model_copy(update={"image": image})
    flag_urls = [url for url in running.notify.urls if url not in files.pinned.notify.urls]
    notify = NotifySettings(
        urls=list(dict.fromkeys([*files.head.notify.urls, *flag_urls])),
        command=running.notify.command,
    )
    agent = running.agent.model_copy(
        update={"network": files.head.network, "ports": files.head.ports}
    )
    reloaded = running.model_copy(
        update={
            "review": review,
            "workspace": files.head.workspace,
            "container": container,
            "agent": agent,
            "notify": notify,
            "config_commit": files.commit,
        }
    )
    try:
        # The session's own request, as a start measures it (each task's request adds its
        # text, which was measured when the session started).
        check_requests(reloaded, Plan(path=running.plan_path, batches=[]), _prompt_source(files))
    except PayloadTooLarge as err:
        raise ReloadError(f"{err} The session keeps its settings, paused.") from None
    return reloaded


def _prompt_source(files: TargetConfig) -> str:
    where = files.head.source or CONFIG_FILE
    return f"reviewer_prompt or reviewer_prompt_file in {where} at {files.commit[:12]}"


def reload_of(
    reloaded: SessionRequest, changes: list[str], max_cost_usd: float | None
) -> ConfigReload:
    """The update's input: the settings a task reads when it starts."""
    return ConfigReload(
        max_cost_usd=max_cost_usd,
        config_commit=reloaded.config_commit,
        review=reloaded.review,
        workspace=reloaded.workspace,
        container=reloaded.container,
        network=reloaded.agent.network,
        ports=reloaded.agent.ports,
        changes=changes,
    )
