"""Which GitHub repository a git remote URL names, and how git's transport gets the token.

The remote URL is data: a name with characters GitHub never gives one is refused, not used.
The token reaches git through GIT_CONFIG_* variables (never argv, never the URL), as an
http.<origin>.extraheader scoped to the forge's host only.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import urlsplit

from autopilot.git.remote_url import SCP_LIKE
from autopilot.models.forge import DEFAULT_GITHUB_API

__all__ = ["git_auth_env", "github_host", "github_repo_of", "web_url"]

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,99})")


def github_host(api_url: str) -> str:
    """The host people and git use: github.com for api.github.com, else the API's host."""
    host = (urlsplit(api_url).hostname or "").lower()
    return "github.com" if host == "api.github.com" else host


def web_url(api_url: str) -> str:
    """Where the pull requests' pages are: https://github.com, or the Enterprise host."""
    parts = urlsplit(api_url)
    if (parts.hostname or "").lower() == "api.github.com":
        return "https://github.com"
    return f"{parts.scheme}://{parts.netloc}"


def github_repo_of(url: str, api_url: str = DEFAULT_GITHUB_API) -> str | None:
    """OWNER/NAME when `url` is a remote on the forge's host, else None."""
    url = url.strip()
    scp = SCP_LIKE.match(url) if "://" not in url else None
    if scp is not None:
        host, path = scp["host"], scp["path"]
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh"):
            return None
        host, path = parts.hostname or "", parts.path
    if host.lower() != github_host(api_url):
        return None
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    pieces = path.split("/")
    if len(pieces) != 2 or not all(_NAME.fullmatch(piece) for piece in pieces):
        return None
    if pieces[1] in (".", "..") or pieces[1].endswith("."):
        return None
    return f"{pieces[0]}/{pieces[1]}"


def git_auth_env(token: str, git_origin: str) -> dict[str, str]:
    """Variables that make git send the token to `git_origin` (scheme://host[:port]) only."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{git_origin.rstrip('/')}/.extraheader",
        "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}",
    }
