"""Commit what the agent left, in the agent's own run: the policy for a commit that fails.

A failing commit (a lock, markers left in a conflict round) must not turn the agent's
finished work into a failed attempt: the task workflow's commit step takes it over. In a
remote session that step may run on another machine, where the work left here is not: the
commit must reach the remote in the agent's run (in place: in the workspace it ran in). What
the agent did to its workspace (kept-out files committed, its history rewritten, its .git
replaced) is then its failure, an attempt; the next attempt starts from what the remote has.
Anything else (the remote away, another worker's push of the task) is a lost run."""

from __future__ import annotations

from typing import NamedTuple

from autopilot import error_types
from autopilot import git as gitops
from autopilot.git.commits import ConflictsRemain, FilesTooLarge, WorkspaceFilesCommitted
from autopilot.models import CommitInput, TaskSite


class CommitFailure(NamedTuple):
    """A commit after the agent's run that fails the run."""

    error_type: str
    lost: bool


def commit_after_run(commit: CommitInput, site: TaskSite) -> CommitInput:
    """The commit as the agent's run makes it: in place where the work is only here."""
    return commit.model_copy(update={"in_place": True}) if site.remote else commit


def failed_commit(err: gitops.GitError, site: TaskSite) -> CommitFailure | None:
    """What a failed commit after the agent's run means: None hands it to the task
    workflow's commit step (which retries it, or says what is wrong), else the run's
    failure, lost or not."""
    if not site.remote or isinstance(err, ConflictsRemain):
        # Conflicts: the commit step says so (the task's conflict outcome); where it runs
        # without this workspace, it merges the target in again and finds the same.
        return None
    if isinstance(err, gitops.ProtectedPathsChanged):  # ends the task at once
        return CommitFailure(error_types.PROTECTED_PATHS_CHANGED, lost=False)
    if isinstance(err, WorkspaceFilesCommitted | FilesTooLarge | gitops.WorkspaceBroken):
        return CommitFailure(error_types.AGENT_ERROR, lost=False)
    return CommitFailure(error_types.REMOTE_AWAY, lost=True)
