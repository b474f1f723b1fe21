"""Turn git failures into activity errors that say whether a retry can help."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from autopilot.error_types import (
    CHECKOUT_IN_THE_WAY,
    CONFLICTS_REMAIN,
    FILES_TOO_LARGE,
    GIT_ERROR,
    INPUT_REFUSED,
    PROTECTED_PATHS_CHANGED,
    REPO_UNUSABLE,
    WORKSPACE_FILES_COMMITTED,
)
from autopilot.git import (
    CheckoutInTheWay,
    ConflictsRemain,
    FilesTooLarge,
    GitError,
    ProtectedPathsChanged,
    RepoError,
    WorkspaceFilesCommitted,
)
from autopilot.git.input_check import InputRefused, check_input

Input = TypeVar("Input", bound=BaseModel)


def checked(request: Input) -> Input:
    """`request` once its repository, paths, branches and ids passed the starter's rules
    (autopilot/git/input_check.py); else the activity fails for good, having run nothing."""
    try:
        check_input(request)
    except InputRefused as err:
        raise ApplicationError(str(err), type=INPUT_REFUSED, non_retryable=True) from None
    return request


# Exceptions as activity errors, most specific first: (exception, error type, final). A final
# one fails the activity for good (a retry cannot fix it); the others are retried after the
# retry policy's backoff.
Translation = tuple[type[Exception], str, bool]

GIT_FAILURES: tuple[Translation, ...] = (
    # The agent left conflict markers: the conflict round failed, a retry cannot fix it.
    (ConflictsRemain, CONFLICTS_REMAIN, True),
    # The agent left a file too big to commit: its branch stays out.
    (FilesTooLarge, FILES_TOO_LARGE, True),
    # The agent committed what the setup put in its workspace: its branch stays out.
    (WorkspaceFilesCommitted, WORKSPACE_FILES_COMMITTED, True),
    # The agent changed CI or agent configuration unasked: its branch stays out.
    (ProtectedPathsChanged, PROTECTED_PATHS_CHANGED, True),
    # The user's files or their rebase are in the way: nothing changes until they act, and
    # the task waits for them (its `retry`), not for a backoff.
    (CheckoutInTheWay, CHECKOUT_IN_THE_WAY, True),
    # The repository itself is unusable (gone, bare, no branch): retrying cannot fix it.
    (RepoError, REPO_UNUSABLE, True),
    # Locks, a busy checkout, a full disk: worth another attempt after the backoff.
    (GitError, GIT_ERROR, False),
)


@contextmanager
def translated(failures: Sequence[Translation]) -> Iterator[None]:
    """Raise the first of `failures` that the block's exception is as its activity error."""
    try:
        yield
    except Exception as err:
        for kind, error_type, final in failures:
            if isinstance(err, kind):
                raise ApplicationError(str(err), type=error_type, non_retryable=final) from err
        raise


def git_errors_as_activity_errors() -> AbstractContextManager[None]:
    return translated(GIT_FAILURES)
