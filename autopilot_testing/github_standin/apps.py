"""GitHub Apps: a JWT (RS256) signed by the App's key buys an installation token that acts as
the App's bot."""

from __future__ import annotations

import time
from typing import Any

import jwt

from autopilot_testing.github_standin.state import App, Refused, World
from autopilot_testing.github_standin.views import Views


def add_app(world: World, app_id: str, public_key_pem: str) -> int:
    login = f"app-{app_id}[bot]"
    world.add_person(login, "write", kind="Bot")
    installation_id = world.next_id()
    with world.lock:
        world.apps[installation_id] = App(
            app_id, public_key_pem, installation_id, world.people[login]
        )
    return installation_id


def app_of_jwt(world: World, token: str) -> App:
    """The App whose key signed `token` (iss = its id); Refused 401 otherwise."""
    try:
        issuer = str(jwt.decode(token, options={"verify_signature": False})["iss"])
    except (jwt.PyJWTError, KeyError) as error:
        raise Refused(401, "A JSON web token could not be decoded") from error
    with world.lock:
        apps = [app for app in world.apps.values() if app.app_id == issuer]
    for app in apps:
        try:
            jwt.decode(token, app.public_key_pem, algorithms=["RS256"], leeway=60)
        except jwt.PyJWTError:
            continue
        return app
    raise Refused(401, "A JSON web token could not be decoded")


def installation(views: Views, app: App, owner: str) -> dict[str, Any]:
    account = views.user(owner)
    installations = f"{views.urls.api}/app/installations"
    stamp = "2024-01-01T00:00:00Z"
    return {
        "id": app.installation_id,
        "account": account,
        "access_tokens_url": f"{installations}/{app.installation_id}/access_tokens",
        "repositories_url": f"{views.urls.api}/installation/repositories",
        "html_url": f"{views.urls.web}/settings/installations/{app.installation_id}",
        "app_id": int(app.app_id) if app.app_id.isdigit() else 1,
        "app_slug": f"app-{app.app_id}",
        "target_id": account["id"],
        "target_type": "Organization",
        "permissions": {
            "contents": "write",
            "pull_requests": "write",
            "statuses": "write",
            "checks": "write",
            "metadata": "read",
        },
        "events": [],
        "created_at": stamp,
        "updated_at": stamp,
        "single_file_name": None,
        "repository_selection": "all",
        "suspended_by": None,
        "suspended_at": None,
    }


def exchange(world: World, app: App, installation_id: int) -> dict[str, Any]:
    if app.installation_id != installation_id:
        raise Refused(404, "Not Found")
    token = world.add_person(app.bot.login, app.bot.permission, kind="Bot")
    token = "ghs_" + token.removeprefix("ghp_")
    with world.lock:
        world.tokens[token] = app.bot.login
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    return {
        "token": token,
        "expires_at": expires,
        "permissions": {"contents": "write", "pull_requests": "write", "statuses": "write"},
        "repository_selection": "all",
    }
