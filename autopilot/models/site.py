"""Where a task runs: the execution place and the site the task workflow decides once
(autopilot/steps/site.py), carried in every step's input."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from autopilot.models.task import TaskRequest
    from autopilot.models.workspace import Workspace, WorkspaceInput


# Where a task's agent and checks run: its sandboxed workspace on the worker, or a container.
ExecutionPlace = Literal["local", "dagger"]


class WorkspaceOrigin(BaseModel):
    """What a worker needs to make a task's workspace again when it has none (remote mode,
    where a task's steps may each run on another machine): the remote's task branch, or the
    commit the task started from."""

    session_id: str
    task_id: str
    target_branch: str
    base_sha: str

    @classmethod
    def of(cls, request: TaskRequest, workspace: Workspace) -> WorkspaceOrigin:
        return cls(
            session_id=request.session_id,
            task_id=request.task.id,
            target_branch=request.target_branch,
            base_sha=workspace.base_sha,
        )

    @classmethod
    def of_workspace(cls, request: WorkspaceInput, workspace: Workspace) -> WorkspaceOrigin:
        same = request.model_dump(include={"session_id", "task_id", "target_branch"})
        return cls(**same, base_sha=workspace.base_sha)


class TaskSite(BaseModel):
    """Where a task runs, decided once by autopilot/steps/site.py when the task workflow
    prepares the task, and carried in every step's input: no step works it out again."""

    repo: str  # the session's repository: an absolute path (local) or a remote's URL
    kind: Literal["local", "remote"]  # its workspaces' kind (autopilot/git/kinds.py)
    place: ExecutionPlace = "local"  # the agent and checks in the sandbox, or a container
    inside: str  # the workspace's fixed path inside the sandbox and the container
    workspace: str = ""  # the workspace's path where it was prepared ("": not yet)
    # Remote: what a worker that lacks the workspace needs to make it again.
    make_again: WorkspaceOrigin | None = None

    @property
    def remote(self) -> bool:
        return self.kind == "remote"

    def prepared(self, path: str, make_again: WorkspaceOrigin) -> TaskSite:
        """The same site once its workspace is prepared at `path`."""
        return self.model_copy(update={"workspace": path, "make_again": make_again})
