"""Where a remote keeps a session's task branches: `refs/autopilot/<session>/<task>`, outside
`refs/heads/`, so a forge's CI that runs on branch pushes never runs an unreviewed agent's
commits (its workflow files, with the repository's secrets). Only the target branch is pushed
under `refs/heads/`, and only with a reviewed merge.

A worker's cache keeps each task branch as the branch `autopilot/<session>/<task>` (the
workspaces and merges read branches), and maps it to the remote's ref at every fetch and push.
Sessions started before this layout pushed their task branches to
`refs/heads/autopilot/<session>/<task>`: that legacy ref is still read when the new one is
missing, and deleted with the new one when the task merges.
"""

from __future__ import annotations

from autopilot.git.refs import branch_ref
from autopilot.git.remote_url import shown_url

TASK_BRANCH_PREFIX = "autopilot/"  # the cache's name of a task branch (names.branch_name)
TASK_REFS = "refs/autopilot/"  # where the remote keeps them
LEGACY_TASK_REFS = "refs/heads/autopilot/"  # where it kept them before


def is_task_branch_name(branch: str) -> bool:
    """Whether `branch` (short) is a task branch: `autopilot/<session>/<task>`. The starter
    and the workers refuse a target branch of that shape, so the two never mix."""
    return branch.startswith(TASK_BRANCH_PREFIX) and branch.count("/") == 2


def remote_refs(branch: str) -> tuple[str, ...]:
    """The remote's refs of `branch` (a short name as the cache has it), the one pushed to
    first: a task branch's ref under refs/autopilot/ and its legacy ref, else the branch."""
    if is_task_branch_name(branch):
        rest = branch.removeprefix(TASK_BRANCH_PREFIX)
        return (TASK_REFS + rest, LEGACY_TASK_REFS + rest)
    return (branch_ref(branch),)


def fetch_command(url: str, branch: str) -> str:
    """How a person fetches a kept task's work from the remote (it is no branch there)."""
    return f"git fetch {shown_url(url)} {remote_refs(branch)[0]}"


def kept_work(repo: str, branch: str, *, remote: bool) -> str:
    """Where an unmerged task's work stays, for people: a branch of the local repository, or
    a ref on the remote (with the command that fetches it)."""
    if remote:
        return f"Its work is kept on the remote: `{fetch_command(repo, branch)}`."
    return f"Its branch `{branch}` is kept."
