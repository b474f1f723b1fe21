"""The forge's credentials, from the worker's own environment and files: a GITHUB_TOKEN, or a
GitHub App's key (an installation token, which PyGithub refreshes before it expires).

The token never enters a model, a log line or an exception message; the agent's runs never
get it (autopilot/agent/allowed_env.py lets no *_TOKEN through).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from github import Auth, GithubIntegration
from github.GithubException import GithubException

from autopilot.forge.errors import forge_error
from autopilot.forge.interface import ForgeDenied
from autopilot.models.forge import ForgeSettings

__all__ = ["TOKEN_VARIABLE", "forge_auth", "installation_auth"]

TOKEN_VARIABLE = "GITHUB_TOKEN"


def forge_auth(settings: ForgeSettings, environ: Mapping[str, str]) -> Auth.Auth:
    """The App's installation when the settings name one, else the token in GITHUB_TOKEN."""
    if settings.app_id:
        return installation_auth(settings)
    token = environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise ForgeDenied(
            f"no {TOKEN_VARIABLE} in the worker's environment: set it to a token with "
            f"contents:write and pull_requests:write on {settings.repo or 'the repository'}, "
            f"or configure a GitHub App (app_id, private_key_file)"
        )
    return Auth.Token(token)


def installation_auth(settings: ForgeSettings) -> Auth.AppInstallationAuth:
    key_file = Path(settings.private_key_file).expanduser()
    if not settings.private_key_file or not key_file.is_file():
        raise ForgeDenied(
            f"the GitHub App's private key file {settings.private_key_file!r} is not on this "
            f"worker: set private_key_file in [forge]"
        )
    app = Auth.AppAuth(settings.app_id, key_file.read_text())
    installation_id = settings.installation_id
    if not installation_id:
        owner, _, name = settings.repo.partition("/")
        integration = GithubIntegration(auth=app, base_url=settings.api_url.rstrip("/"))
        try:
            installation_id = str(integration.get_repo_installation(owner, name).id)
        except GithubException as exc:
            raise forge_error(
                exc, f"finding the App's installation on {settings.repo}", settings.repo
            ) from exc
        finally:
            integration.close()
    return Auth.AppInstallationAuth(app, int(installation_id))
