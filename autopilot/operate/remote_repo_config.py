"""A remote session's `.autopilot.toml`: read from the commit of the remote's target branch
that the session starts from (there is no checkout of it on the starter's machine), then
checked exactly as a local one (autopilot/operate/committed_config.py)."""

from __future__ import annotations

from autopilot.git import RemoteWorkspaces, shown_url
from autopilot.infra import CONFIG_FILE, RepoReviewConfig
from autopilot.operate.committed_config import config_from


def load_remote_config(
    workspaces: RemoteWorkspaces, url: str, branch: str, commit: str
) -> RepoReviewConfig:
    """`.autopilot.toml` (and its reviewer_prompt_file) as the remote's `branch` has them at
    `commit`; RepoConfigError names the remote and branch, and says what is wrong."""
    where = f"{shown_url(url)} ({branch})"
    config = config_from(lambda name: workspaces.read_file(url, branch, name, commit), where)
    if config.source is None:
        return config
    return config.model_copy(update={"source": f"{where}: {CONFIG_FILE}"})
