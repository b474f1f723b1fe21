"""What a worker accepts in an activity's input: a workflow input is data anyone who can start
a workflow on the task queue wrote, so every repository, path, branch and id in it is checked
again here, by the starter's own rules, before git, a sandbox or a file write sees it.

- `repo`: a remote URL exactly as `remote_url` leaves it (autopilot/git/remote_url.py), or an
  absolute, normalised path ("" in histories recorded before the field);
- `state_dir`: the worker's own (`pin_state_dir`: its starter and workers share it), or ""
  (a remote session: each worker's own);
- paths under the state dir (`output_dir`, `tmp_dir`, a workspace's path): inside it, as
  absolute paths (a local session) or relative ones without `..` (a remote session);
- branch names: what git takes as a branch (never an option, never `..`); a remote session's
  target is never shaped like a task branch;
- session and task ids, which become path components: no separators, no leading `.` or `-`;
- the plan's path: absolute and normalised.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel

from autopilot.git.remote_url import RemoteError, checked_remote, shown_url
from autopilot.git.task_refs import is_task_branch_name
from autopilot.models import Task, TaskRequest, TaskSite, Workspace

# Fields holding a model whose fields are checked in turn (AgentInput.request, .commit, ...).
_NESTED = (
    "request",
    "workspace",
    "commit",
    "origin",
    "task",
    "merge",
    "checks",
    "site",
    "make_again",
)
# Where a task's workspace is inside the sandbox and the container (TaskSite.inside).
_INSIDE = "/workspace/"
_MAX_ID = 200
# What git's check-ref-format refuses in a component, and in a name as a whole.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


# The state dir of this worker process, once it pinned it (empty: activities run outside a
# worker, as in unit tests, and a state dir is only checked to be absolute).
_pinned_state_dir: list[str] = []


def pin_state_dir(state_dir: Path) -> None:
    """This worker's own state dir: a local session must name exactly it."""
    _pinned_state_dir[:] = [str(state_dir)]


class InputRefused(ValueError):
    """An activity's input names something no starter would have given: it is refused."""


def _refuse(field: str, value: str, why: str) -> InputRefused:
    return InputRefused(
        f"refused the activity input's {field} {shown_url(value)!r}: {why}. A workflow input "
        "is checked by the starter's rules; start sessions with starter.py"
    )


def _check_repo(value: str) -> None:
    if not value:
        return
    if not value.startswith("/"):  # not a local path: a remote's URL as the starter stores it
        try:
            checked_remote(value)
        except RemoteError as err:
            raise InputRefused(f"refused the activity input's repo: {err}") from None
        return
    _check_absolute("repo", value, "neither a remote URL autopilot uses nor an absolute path")


def _check_site(site: TaskSite, repo: str) -> None:
    """The site's repository is the input's, and its fixed path is one folder of /workspace."""
    if repo and site.repo != repo:
        raise _refuse("site.repo", site.repo, "not the input's repository")
    name = site.inside.removeprefix(_INSIDE)
    if not site.inside.startswith(_INSIDE) or not name or "/" in name or name.startswith("."):
        raise _refuse("site.inside", site.inside, "not a folder of /workspace")


def _check_absolute(field: str, value: str, why: str = "not an absolute path") -> None:
    if not value.startswith("/") or os.path.normpath(value) != value.rstrip("/") or "\0" in value:
        raise _refuse(field, value, f"{why} (normalised, without `..`)")


def _check_under(field: str, value: str, state_dir: str) -> None:
    """`value` is a path inside the state dir: absolute under `state_dir`, or relative to a
    remote session's own state dir (`state_dir` "")."""
    if os.path.isabs(value):
        _check_absolute(field, value)
        if not state_dir or os.path.commonpath([value, state_dir]) != state_dir:
            raise _refuse(field, value, f"not inside the session's state dir {state_dir!r}")
        return
    if state_dir or "\0" in value or ".." in value.split("/"):
        raise _refuse(field, value, "not a path inside the session's state dir")


def _check_branch(field: str, value: str, *, remote: bool) -> None:
    if not value:
        return
    name = value.removeprefix("refs/heads/")
    parts = name.split("/")
    if (
        _BAD_REF_CHARS.search(name)
        or name.startswith("-")
        or "@{" in name
        or ".." in name
        or name == "@"
        or any(not part or part.startswith(".") or part.endswith(".lock") for part in parts)
        or name.endswith(".")
    ):
        raise _refuse(field, value, "not a branch name git accepts")
    if remote and field == "target_branch" and is_task_branch_name(name):
        raise _refuse(field, value, "a remote session's target is never a task branch")


def _check_id(field: str, value: str) -> None:
    if (
        not value
        or len(value) > _MAX_ID
        or value.startswith((".", "-"))
        or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value)
    ):
        raise _refuse(field, value, "not an id that can name a folder (no `/`, no leading `.`)")


def check_input(
    request: BaseModel, state_dir: str | None = None, repo: str = "", remote: bool | None = None
) -> None:
    """Refuse (InputRefused) an activity input that names anything the starter would not:
    checked once, where the activity starts, before it touches git or a file. `state_dir`,
    `repo` and `remote` (its site's kind): those of the input that holds `request` (a nested
    model)."""
    if isinstance(request, TaskSite):
        _check_site(request, repo)
    given_repo = repo
    values = {name: getattr(request, name) for name in type(request).model_fields}
    task = values.get("request")
    if isinstance(task, TaskRequest):  # AgentInput, ReviewerInput: its siblings are that task's
        state_dir, repo = task.state_dir, task.repo
    if isinstance(values.get("repo"), str):
        _check_repo(values["repo"])
        repo = values["repo"] or repo
    if isinstance(values.get("state_dir"), str):
        state_dir = values["state_dir"]
        if state_dir:
            _check_absolute("state_dir", state_dir)
            if _pinned_state_dir and state_dir != _pinned_state_dir[0]:
                raise _refuse("state_dir", state_dir, "not this worker's state dir")
    site = values.get("site")
    if isinstance(site, TaskSite):
        remote = site.remote
    elif remote is None or repo != given_repo:
        # Without a site (recorded before inputs carried one, or built by the session
        # workflow): a checked repo that is no absolute path is a remote's URL.
        remote = bool(repo) and not repo.startswith("/")
    for field in ("session_id", "task_id"):
        if isinstance(values.get(field), str):
            _check_id(field, values[field])
    if isinstance(request, Task):
        _check_id("task id", request.id)
    for field in ("target_branch", "branch", "conflict_target", "head_branch"):
        if isinstance(values.get(field), str):
            _check_branch(field, values[field], remote=remote)
    if isinstance(values.get("plan_path"), str) and values["plan_path"]:
        _check_absolute("plan_path", values["plan_path"])
    # Recorded before inputs named their repository: a local session's absolute paths.
    old_local = not repo and not state_dir
    paths = (
        "output_dir",
        "tmp_dir",
        "workspace_path",
        *(("path",) if isinstance(request, Workspace) else ()),
        *(("workspace",) if isinstance(request, TaskSite) else ()),
    )
    for field in paths:
        value = values.get(field)
        if not isinstance(value, str) or not value:
            continue
        if field in ("workspace_path", "path", "workspace") and remote:
            # Another machine's path: never used here as it is (a remote task's workspace is
            # found under this worker's own state dir), but never relative, never `..`.
            _check_absolute(field, value)
        elif old_local or state_dir is None:
            _check_absolute(field, value)
        else:
            _check_under(field, value, state_dir)
    for field in _NESTED:
        nested = values.get(field)
        if isinstance(nested, BaseModel):
            check_input(nested, state_dir, repo, remote)
