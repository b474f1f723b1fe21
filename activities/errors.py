"""Turn git failures into activity errors that say whether a retry can help."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.exceptions import ApplicationError

from autopilot.gitops import ConflictsRemain, GitError, RepoError


@contextmanager
def git_errors_as_activity_errors() -> Iterator[None]:
    try:
        yield
    except ConflictsRemain as err:
        # The agent left conflict markers: the conflict round failed, a retry cannot fix it.
        raise ApplicationError(str(err), type="ConflictsRemain", non_retryable=True) from err
    except RepoError as err:
        # The repository itself is unusable (gone, bare, no branch): retrying cannot fix it.
        raise ApplicationError(str(err), type="RepoUnusable", non_retryable=True) from err
    except GitError as err:
        # Locks, a busy checkout, a full disk: worth another attempt after the backoff.
        raise ApplicationError(str(err), type="GitError") from err
