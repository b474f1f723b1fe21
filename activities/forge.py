"""Activities on the forge (forge mode): publish a task's branch as a pull request, watch the
pull request's gate, merge it. Thin over autopilot/steps/forge.py and the forge client.

The class holds nothing secret: each call connects with the worker's own credentials
(`connect` reads them from the worker's environment), so no token ever enters a payload. The
client's calls block: they run in a thread while the activity heartbeats, and a rate limit is
waited out here, heartbeating, never failing a task.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TypeVar
from urllib.parse import urlsplit

import structlog
from temporalio import activity

from activities.errors import Translation, checked, git_errors_as_activity_errors, translated
from activities.heartbeat import TICK_S, in_thread
from autopilot.error_types import FORGE_DENIED, FORGE_REFUSED, FORGE_UNAVAILABLE
from autopilot.forge import connect, git_auth_env
from autopilot.forge.credentials import forge_auth
from autopilot.forge.interface import Forge, ForgeDenied, ForgeRefused, ForgeUnavailable
from autopilot.infra import failpoints
from autopilot.infra.config import own_state_dir
from autopilot.models import (
    ForgeMergeResult,
    ForgeSettings,
    GateInput,
    GateVerdict,
    PublishInput,
    PullRequestMergeInput,
    PullRequestRef,
)
from autopilot.steps import forge as steps
from autopilot.steps.site import remote_workspaces

log = structlog.get_logger("forge")
T = TypeVar("T")
# A forge client for the settings, with this worker's own credentials.
Connect = Callable[[ForgeSettings], Forge]
# git's environment for pushing to the forge's repository (its URL) with this worker's own
# credentials.
PushEnv = Callable[[ForgeSettings, str], Mapping[str, str]]


def github(settings: ForgeSettings) -> Forge:
    """GitHub's client with this worker's own credentials (GITHUB_TOKEN, or the App's key)."""
    return connect(settings, os.environ)


def token_env(settings: ForgeSettings, url: str) -> Mapping[str, str]:
    """git's variables that send this worker's token to the forge's host (and nowhere else)
    when the pull request's branch is pushed over http(s); over ssh, the worker's key."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return {}
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    token: str = forge_auth(settings, os.environ).token
    return git_auth_env(token, origin)


class ForgeActivities:
    def __init__(self, connect: Connect, push_env: PushEnv) -> None:
        self._connect = connect
        self._push_env = push_env

    @activity.defn(name="publish_pull_request")
    async def publish(self, request: PublishInput) -> PullRequestRef:
        """Push the task's branch to its pull request's branch, then find or open the pull
        request (a retry after a crash finds the one it opened by its head branch)."""
        checked(request)
        with forge_errors(), git_errors_as_activity_errors():
            env = await in_thread(self._push_env, request.forge, request.repo)
            head = await in_thread(
                remote_workspaces(own_state_dir()).publish,
                request.repo,
                request.target_branch,
                request.branch,
                request.head_branch,
                env,
            )
            forge = await in_thread(self._connect, request.forge)
            pull = (request.head_branch, request.target_branch, request.title, request.body)
            ref = await waited(lambda: forge.open_pull_request(*pull, request.forge.labels))
        failpoints.reach(failpoints.AFTER_PR_OPENED)
        log.info("pull request", number=ref.number, url=ref.url, head=head)
        return ref.model_copy(update={"head_sha": head})

    @activity.defn(name="watch_pull_request")
    async def watch(self, request: GateInput) -> GateVerdict:
        """Until the pull request's gate decides (autopilot/steps/forge.py: decide)."""
        with forge_errors():
            forge = await in_thread(self._connect, request.forge)
            verdict = await steps.watch(forge, request, in_thread, heartbeating_sleep)
        log.info("pull request gate", number=request.number, decision=verdict.decision)
        return verdict

    @activity.defn(name="merge_pull_request")
    async def merge(self, request: PullRequestMergeInput) -> ForgeMergeResult:
        """Merge only the head that passed the gate (`expected_head_sha`), then delete its
        branch. In a merge queue it is enqueued: merged later, seen by the watch."""
        checked(request)
        with forge_errors():
            forge = await in_thread(self._connect, request.forge)
            head = (request.number, request.expected_head_sha, request.style)
            result = await waited(lambda: forge.merge(*head, request.title, request.message))
            if result.outcome == "merged" and result.merge_sha:
                await waited(lambda: forge.delete_branch(request.head_branch))
        log.info("pull request merge", number=request.number, outcome=result.outcome)
        return result

    @activity.defn(name="delete_pull_request_branch")
    async def delete_branch(self, request: PullRequestMergeInput) -> None:
        """A pull request merged elsewhere (the merge queue, a person): its branch goes."""
        checked(request)
        with forge_errors():
            forge = await in_thread(self._connect, request.forge)
            await waited(lambda: forge.delete_branch(request.head_branch))


async def waited(call: Callable[[], T]) -> T:
    """A forge call in a thread, heartbeating, its rate limits waited out."""
    return await steps.forge_call(in_thread, heartbeating_sleep, call)


async def heartbeating_sleep(seconds: float) -> None:
    """Wait `seconds`, heartbeating: a worker that dies while waiting is noticed, and a
    cancelled activity stops at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        activity.heartbeat()
        await asyncio.sleep(min(left, TICK_S))


# The forge's failures: denied pauses the session, refused fails the task (a person has to
# look), unavailable is retried by the retry policy.
FORGE_FAILURES: tuple[Translation, ...] = (
    (ForgeDenied, FORGE_DENIED, True),
    (ForgeRefused, FORGE_REFUSED, True),
    (ForgeUnavailable, FORGE_UNAVAILABLE, False),
)


def forge_errors() -> AbstractContextManager[None]:
    return translated(FORGE_FAILURES)
