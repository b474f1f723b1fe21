"""Where a task runs: the one place that decides it, from the session's repository and the
task's execution place.

The task workflow decides a task's site once, when it prepares the task (`task_site`), and
carries it in every step's input (TaskSite). A step reads the site it was given
(`site_of`); only an input recorded before sites were carried, or one the session workflow
builds without one, is decided here again from its repository. A session's entry points
(starter, preflight, operate) ask `decide` once for what they need.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel

from autopilot.agent.sandbox import WORKSPACES
from autopilot.git.kinds import LOCAL, WorkspaceKind
from autopilot.git.names import safe_component
from autopilot.git.remote import RemoteWorkspaces
from autopilot.git.remote_check import head_of_target
from autopilot.git.remote_url import SCHEME, SCP_LIKE, URL_SCHEMES, repo_name
from autopilot.git.task_refs import kept_work as kept_work_at
from autopilot.infra.config import own_state_dir
from autopilot.models import ExecutionPlace, TaskRequest, TaskSite


def is_remote(repo: str) -> bool:
    """Whether a session's repository is a remote (a URL or `user@host:path`) rather than a
    local path: the local kind's repositories are absolute paths. A host starting with `-`
    (an option to ssh) is no remote."""
    if repo.startswith(("/", "-")):
        return False
    found = SCHEME.match(repo)
    if found is not None:
        if found["scheme"].lower() not in URL_SCHEMES:
            return False
        try:
            host = urlsplit(repo).hostname or ""
        except ValueError:
            return False
        return not host.startswith("-")
    scp = SCP_LIKE.match(repo)
    return scp is not None and not scp["host"].startswith("-")


def workspace_inside(repo: str) -> Path:
    """Where every workspace of `repo` (a local path or a remote's URL) is inside the sandbox
    and the container: WORKSPACES/<its name>, the name made one safe path component."""
    remote = is_remote(repo)
    name = repo_name(repo) if remote else Path(repo.rstrip("/")).name.removesuffix(".git")
    inside = WORKSPACES / safe_component(name or "repository")
    if not remote and repo and Path(repo).absolute().is_relative_to(inside):
        # The user's checkout is there on this machine (a cloud IDE's /workspace/<name>):
        # the workspace must not cover it, whose objects it reads through `alternates`.
        return inside.with_name(f"{inside.name}-task")
    return inside


def decide(repo: str, place: ExecutionPlace = "local") -> TaskSite:
    """The site of a session's tasks in `repo`, run at `place`, before any is prepared."""
    return TaskSite(
        repo=repo,
        kind="remote" if is_remote(repo) else "local",
        place=place,
        inside=str(workspace_inside(repo)),
    )


def task_site(request: TaskRequest) -> TaskSite:
    """The site of `request`'s task: a task with container settings runs in a container."""
    return decide(request.repo, "local" if request.container is None else "dagger")


def site_of(request: BaseModel) -> TaskSite:
    """The site an activity input carries; for one without (recorded before sites were
    carried, or built by the session workflow), decided from its repository."""
    carried = getattr(request, "site", None)
    if isinstance(carried, TaskSite):
        return carried
    task = getattr(request, "request", None)  # AgentInput, ReviewerInput
    if isinstance(task, TaskRequest):
        return task_site(task)
    merge = getattr(request, "merge", None)  # VerifyMergeInput
    repo = getattr(merge if merge is not None else request, "repo", "")
    place: ExecutionPlace = "local" if getattr(request, "container", None) is None else "dagger"
    return decide(repo if isinstance(repo, str) else "", place)


def workspaces(site: TaskSite) -> WorkspaceKind:
    """The workspaces of the site's kind on this worker: a remote's workspaces and cache live
    in this worker's own state dir (its machine shares none with the others)."""
    return remote_workspaces(own_state_dir()) if site.remote else LOCAL


@functools.cache
def remote_workspaces(state_dir: Path) -> RemoteWorkspaces:
    return RemoteWorkspaces(state_dir)


def target_head(repo: str, branch: str) -> str:
    """A session's target branch head as git has it now: on the remote, or in the local
    repository."""
    return head_of_target(repo, branch, remote=decide(repo).remote)


def kept_work(repo: str, branch: str) -> str:
    """Where an unmerged task's work stays, for people: a branch of the local repository, or
    a ref on the remote (with the command that fetches it)."""
    return kept_work_at(repo, branch, remote=decide(repo).remote)
