"""Forge mode at the start (`--forge github`, `[forge]` in .autopilot.toml): the settings
layered, and the checks a run and its dry run share: forge mode needs remote mode, the
repository is read off the remote's URL (or `[forge] repo`), and the starter's own token
reaches it with push rights and the target branch is there. Each refusal says what to fix.

The token is read from the starter's environment here and from each worker's own there
(activities/forge.py): it never goes into the session's request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from autopilot.forge import (
    Forge,
    ForgeDenied,
    ForgeError,
    ForgeRateLimited,
    ForgeUnavailable,
    connect,
    github_repo_of,
)
from autopilot.forge.credentials import TOKEN_VARIABLE
from autopilot.infra import CONFIG_FILE, RepoReviewConfig
from autopilot.models import ForgeSettings, MergeStyle

# What a forge's client gives the starter: a client with the environment's credentials, and
# the repository (OWNER/NAME) a remote URL names on that forge ("" or ValueError: none).
Connect = Callable[[ForgeSettings, Mapping[str, str]], Forge]
RepoOf = Callable[[str, str], str | None]


TOKEN_ENV = TOKEN_VARIABLE
SCOPES = (
    "fine-grained: contents and pull requests read/write; commit statuses, checks and "
    "metadata read; classic: repo"
)


class ForgeProblem(Exception):
    """Forge mode cannot start: the message says what to fix."""


@dataclass(frozen=True)
class ForgeClient:
    connect: Connect
    repo_of: RepoOf


def github_client() -> ForgeClient:
    """GitHub's client (autopilot/forge/github.py) with the starter's credentials."""
    return ForgeClient(connect=connect, repo_of=github_repo_of)


def forge_settings(
    flag: str | None, file_cfg: RepoReviewConfig, *, remote: bool, merge_style: MergeStyle
) -> ForgeSettings:
    """`--forge` over `[forge] kind`, with the file's other [forge] keys. Refuses forge mode
    without remote mode, and `[merge] style = "rebase"` without forge mode."""
    settings = file_cfg.forge
    if flag:
        settings = settings.model_copy(update={"kind": flag})
    if not settings.active:
        if merge_style == "rebase":
            raise ForgeProblem(
                f'[merge] style = "rebase" in {file_cfg.source or CONFIG_FILE} is for forge '
                "mode only (the forge rebases; the pipeline's own merge makes merge commits "
                'or squashes): use "merge" or "squash", or run with --forge github'
            )
        return settings
    if not remote:
        raise ForgeProblem(
            "--forge github (or [forge] kind) runs on top of remote mode: give the forge's "
            "repository with --remote URL (e.g. --remote https://github.com/OWNER/NAME.git)"
        )
    if settings.poll_max_s < settings.poll_s:
        raise ForgeProblem(
            f"[forge] poll_max_s = {settings.poll_max_s:g} is below poll_s = "
            f"{settings.poll_s:g}: the longest wait between reads of a pull request's gate "
            "must be at least the first"
        )
    return settings


def check_forge(
    settings: ForgeSettings,
    url: str,
    target_branch: str,
    client: ForgeClient,
    environ: Mapping[str, str],
    *,
    offline: bool,
) -> ForgeSettings:
    """The settings with the repository found; unless offline, the starter's token reaches
    it with push rights and `target_branch` is there."""
    repo = settings.repo
    if not repo:
        try:
            repo = client.repo_of(url, settings.api_url) or ""
        except ValueError:
            repo = ""
        if not repo:
            raise ForgeProblem(
                f"the remote's URL does not name a repository on {settings.api_url}: give it "
                'in [forge] repo = "OWNER/NAME", or --remote the repository\'s URL on GitHub'
            )
    settings = settings.model_copy(update={"repo": repo})
    if offline:
        return settings
    if not environ.get(TOKEN_ENV) and not (settings.app_id and settings.private_key_file):
        raise ForgeProblem(
            f"forge mode needs a token for {repo}: set {TOKEN_ENV} ({SCOPES}), or a GitHub "
            "App's [forge] app_id and private_key_file, on the starter and each worker"
        )
    try:
        client.connect(settings, environ).check_access(target_branch)
    except ForgeDenied as err:
        raise ForgeProblem(
            f"GitHub refused the token for {repo}: {err}. Set {TOKEN_ENV} ({SCOPES}) or "
            "[forge] app_id and private_key_file, on the starter and each worker"
        ) from err
    except (ForgeUnavailable, ForgeRateLimited) as err:
        raise ForgeProblem(f"GitHub did not answer for {repo}: {err}; try again") from err
    except ForgeError as err:  # refused: the repository or the branch is not there
        raise ForgeProblem(f"GitHub: {err}") from err
    return settings


def describe(settings: ForgeSettings, style: MergeStyle) -> list[str]:
    """The dry run's lines about forge mode ([] without it)."""
    if not settings.active:
        return []
    approvals = (
        f", then {settings.require_approval} approving review(s) by people"
        if settings.require_approval
        else ""
    )
    labels = f", labelled {', '.join(settings.labels)}" if settings.labels else ""
    return [
        f"forge: {settings.kind} {settings.repo} ({settings.api_url})",
        f"  each task: a pull request{labels} once the pipeline's review approves it; merged "
        f"({style}) through GitHub when its required checks pass{approvals}",
        f"  the forge's feedback (failing checks, changes requested): up to {settings.rounds} "
        f"round(s) per task; its gate read every {settings.poll_s:g}-{settings.poll_max_s:g} s",
    ]
