"""The forge: pull requests, their gate and their merge (GitHub first)."""

from __future__ import annotations

from collections.abc import Mapping

from autopilot.forge.credentials import forge_auth
from autopilot.forge.github import GitHubForge
from autopilot.forge.interface import (
    Forge,
    ForgeDenied,
    ForgeError,
    ForgeRateLimited,
    ForgeRefused,
    ForgeUnavailable,
)
from autopilot.forge.repo_url import git_auth_env, github_repo_of, web_url
from autopilot.models.forge import ForgeSettings


def connect(settings: ForgeSettings, environ: Mapping[str, str]) -> Forge:
    """The forge the settings name, with this worker's credentials (the activities' only way
    in). No network until the first call, but an App's installation lookup."""
    if settings.kind != "github":
        raise ForgeRefused(f"no forge of kind {settings.kind!r}")
    if not settings.repo:
        raise ForgeRefused("no repository: set [forge] repo = OWNER/NAME")
    return GitHubForge(settings.repo, forge_auth(settings, environ), settings.api_url)


__all__ = [
    "Forge",
    "ForgeDenied",
    "ForgeError",
    "ForgeRateLimited",
    "ForgeRefused",
    "ForgeUnavailable",
    "connect",
    "git_auth_env",
    "github_repo_of",
    "web_url",
]
