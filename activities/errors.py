"""Turn git failures into activity errors that say whether a retry can help."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def git_errors_as_activity_errors() -> Iterator[None]:
    try:
        yield
    except ConflictsRemain as err:
        # The agent left conflict markers: the conflict round failed, a retry cannot fix it.
        raise ApplicationError(str(err), type=CONFLICTS_REMAIN, non_retryable=True) from err
    except FilesTooLarge as err:
        # The agent left a file too big to commit: its branch stays out.
        raise ApplicationError(str(err), type=FILES_TOO_LARGE, non_retryable=True) from err
    except WorkspaceFilesCommitted as err:
        # The agent committed what the setup put in its workspace: its branch stays out.
        raise ApplicationError(
            str(err), type=WORKSPACE_FILES_COMMITTED, non_retryable=True
        ) from err
    except ProtectedPathsChanged as err:
        # The agent changed CI or agent configuration unasked: its branch stays out.
        raise ApplicationError(str(err), type=PROTECTED_PATHS_CHANGED, non_retryable=True) from err
    except CheckoutInTheWay as err:
        # The user's files or their rebase are in the way: nothing changes until they act,
        # and the task waits for them (its `retry`), not for a backoff.
        raise ApplicationError(str(err), type=CHECKOUT_IN_THE_WAY, non_retryable=True) from err
    except RepoError as err:
        # The repository itself is unusable (gone, bare, no branch): retrying cannot fix it.
        raise ApplicationError(str(err), type=REPO_UNUSABLE, non_retryable=True) from err
    except GitError as err:
        # Locks, a busy checkout, a full disk: worth another attempt after the backoff.
        raise ApplicationError(str(err), type=GIT_ERROR) from err
