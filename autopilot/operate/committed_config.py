"""A session's `.autopilot.toml` as one commit of its target branch has it, never a work tree's.

The starter reads the file (and its reviewer_prompt_file) from the target branch's head commit
with git plumbing, and the session records that commit (`SessionRequest.config_commit`). What
the file grants then travels in the session's input: nothing during the session reads the file
again, so a task that edits it (and is merged) changes only what a later session does, or what
a paused one does once a person runs `resume --reload-config` (autopilot/operate/config_reload.py).

A work-tree copy does not count. When the checkout of the target branch has a
`.autopilot.toml` other than the committed one (untracked, or ignored: a tracked change is
already refused as uncommitted), the start is refused with what to do, rather than running
with settings that the person did not see.
"""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from autopilot.git import RepoCheck, run_git, run_git_bytes
from autopilot.infra import (
    CONFIG_FILE,
    CONFIG_SIZE_LIMIT,
    TABLE,
    InputFileError,
    RepoConfigError,
    RepoReviewConfig,
    load_repo_config,
    read_regular,
)

# A file as a commit has it: its bytes, or None when the commit has no plain file there.
FileReader = Callable[[str], bytes | None]
# Plain files only: a link's blob is its target's name, not the file's text.
_PLAIN_FILE_MODES = ("100644", "100755")


def config_from(read: FileReader, where: str) -> RepoReviewConfig:
    """`.autopilot.toml` and its reviewer_prompt_file as `read` gives them, checked as a
    checkout's would be; RepoConfigError names `where` (the repository) for the file's place."""
    text = read(CONFIG_FILE)
    if text is None:
        return RepoReviewConfig()
    with tempfile.TemporaryDirectory(prefix="autopilot-config-") as tmp:
        top = Path(tmp)
        (top / CONFIG_FILE).write_bytes(text)
        name = _prompt_file(text)
        if name is not None:
            body = read(name)
            if body is not None:
                (top / name).parent.mkdir(parents=True, exist_ok=True)
                (top / name).write_bytes(body)
        try:
            config = load_repo_config(top)
        except RepoConfigError as err:
            raise RepoConfigError(str(err).replace(str(top), where)) from None
    return config


def committed_file(repo: Path, commit: str, name: str) -> bytes | None:
    """The plain file `name` as `commit` of `repo` has it (None: none there, or not a file)."""
    listed = run_git(repo, ["ls-tree", "-z", commit, "--", name]).stdout
    mode = listed.split(" ", 1)[0] if listed else ""
    if mode not in _PLAIN_FILE_MODES:
        return None
    proc = run_git_bytes(repo, ["cat-file", "blob", f"{commit}:{name}"])
    return proc.stdout if proc.returncode == 0 else None


def load_committed_config(repo: Path, commit: str) -> RepoReviewConfig:
    """`repo`'s `.autopilot.toml` as `commit` has it; messages name the file in `repo`."""
    config = config_from(lambda name: committed_file(repo, commit, name), str(repo))
    if config.source is None:
        return config
    return config.model_copy(update={"source": str(repo / CONFIG_FILE)})


def load_session_config(repo: RepoCheck) -> RepoReviewConfig:
    """A local session's settings: the file as its target branch's head (`repo.head_sha`) has
    it, after checking that the target's checkout holds no other copy of it."""
    if repo.checked_out_at is not None:
        check_work_tree_copy(Path(repo.checked_out_at), repo.target_branch, repo.head_sha)
    return load_committed_config(Path(repo.path), repo.head_sha)


def check_work_tree_copy(checkout: Path, branch: str, commit: str) -> None:
    """RepoConfigError when the checkout of `branch` has a `.autopilot.toml` that is not the
    one `commit` has: the session would not use it, and the person may think it does."""
    path = checkout / CONFIG_FILE
    work_tree: bytes | None = b""  # a link: never the committed file, whatever it points at
    if not path.is_symlink():
        try:
            work_tree = read_regular(path, CONFIG_SIZE_LIMIT)  # a FIFO there would hang a read
        except FileNotFoundError:
            return
        except InputFileError as err:
            raise RepoConfigError(
                f"{path} {err}; {CONFIG_FILE} must be a text file of settings, committed on "
                f"{branch!r}: move this one away"
            ) from None
    committed = committed_file(checkout, commit, CONFIG_FILE)
    if work_tree == committed:
        return
    what = (
        "is not committed"
        if committed is None
        else f"differs from the one committed on {branch!r} ({commit[:12]})"
    )
    raise RepoConfigError(
        f"{path} {what}: a session uses the {CONFIG_FILE} of its target branch's commit, so"
        " that a task's edits cannot change what it runs with. Commit the file on"
        f" {branch!r} to use it, or move it away to run with the committed one."
    )


def _prompt_file(text: bytes) -> str | None:
    """The reviewer prompt file the config names, when it is a plain path inside the repo
    (anything else is left for load_repo_config to refuse with its message)."""
    try:
        name = tomllib.loads(text.decode("utf-8")).get(TABLE, {}).get("reviewer_prompt_file")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, AttributeError):
        return None
    if not isinstance(name, str) or not name:
        return None
    path = PurePosixPath(name)
    return None if path.is_absolute() or ".." in path.parts else str(path)
