"""The commit after the agent's run: what a failure means, by the task's site."""

from __future__ import annotations

from autopilot import error_types
from autopilot import git as gitops
from autopilot.git.commits import ConflictsRemain, FilesTooLarge
from autopilot.models import CommitInput
from autopilot.steps.commit import CommitFailure, commit_after_run, failed_commit
from autopilot.steps.site import decide

LOCAL = decide("/home/me/shop")
REMOTE = decide("git@example.com:team/shop.git")
COMMIT = CommitInput(workspace_path="/w", base_sha="a", session_id="s", task_id="1", message="m")


def test_a_remote_run_commits_in_place() -> None:
    assert commit_after_run(COMMIT, REMOTE).in_place
    assert not commit_after_run(COMMIT, LOCAL).in_place


def test_a_local_failure_or_conflicts_go_to_the_commit_step() -> None:
    assert failed_commit(gitops.GitError("locked"), LOCAL) is None
    assert failed_commit(ConflictsRemain("markers"), REMOTE) is None


def test_a_remote_failure_is_the_agents_or_a_lost_run() -> None:
    assert failed_commit(FilesTooLarge("big"), REMOTE) == CommitFailure(
        error_types.AGENT_ERROR, lost=False
    )
    assert failed_commit(gitops.ProtectedPathsChanged("ci"), REMOTE) == CommitFailure(
        error_types.PROTECTED_PATHS_CHANGED, lost=False
    )
    assert failed_commit(gitops.GitError("remote away"), REMOTE) == CommitFailure(
        error_types.REMOTE_AWAY, lost=True
    )
