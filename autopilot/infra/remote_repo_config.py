"""A remote session's `.autopilot.toml`: read from the remote's target branch (there is no
checkout of it on the starter's machine), then checked exactly as a local one."""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path, PurePosixPath

from autopilot.git.remote import RemoteWorkspaces
from autopilot.git.remote_url import shown_url
from autopilot.infra.repo_config import (
    CONFIG_FILE,
    TABLE,
    RepoConfigError,
    RepoReviewConfig,
    load_repo_config,
)


def load_remote_config(workspaces: RemoteWorkspaces, url: str, branch: str) -> RepoReviewConfig:
    """`.autopilot.toml` (and its reviewer_prompt_file) as the remote's `branch` has them;
    RepoConfigError names the remote and branch, and says what is wrong."""
    where = f"{shown_url(url)} ({branch})"
    text = workspaces.read_file(url, branch, CONFIG_FILE)
    if text is None:
        return RepoReviewConfig()
    with tempfile.TemporaryDirectory(prefix="autopilot-remote-config-") as tmp:
        top = Path(tmp)
        (top / CONFIG_FILE).write_bytes(text)
        name = _prompt_file(text)
        if name is not None:
            body = workspaces.read_file(url, branch, name)
            if body is not None:
                (top / name).parent.mkdir(parents=True, exist_ok=True)
                (top / name).write_bytes(body)
        try:
            config = load_repo_config(top)
        except RepoConfigError as err:
            raise RepoConfigError(str(err).replace(str(top), where)) from None
    return config.model_copy(update={"source": f"{where}: {CONFIG_FILE}"})


def _prompt_file(text: bytes) -> str | None:
    """The reviewer prompt file the config names, when it is a plain path inside the repo
    (anything else is left for load_repo_config to refuse with its message)."""
    try:
        name = tomllib.loads(text.decode("utf-8")).get(TABLE, {}).get("reviewer_prompt_file")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
        return None
    if not isinstance(name, str) or not name:
        return None
    path = PurePosixPath(name)
    return None if path.is_absolute() or ".." in path.parts else str(path)
