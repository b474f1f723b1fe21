"""Making a task's workspace ready, before the agent starts and again after a conflict round.

A new workspace gets the `copy` files and its `.git/info/exclude`; then the setup commands
run, exactly like the checks (autopilot/review/checks.py: argv, the checks' sandbox and
minimal environment, a log each, scrubbed), one after the other until one fails. With
`cache_dirs` what they made is stored under the key of the `cache_key` files, and a later
workspace with the same key gets a copy of it instead of running them (autopilot/setup/cache.py),
then the `after_restore` commands, run the same way. Every workspace is at one fixed path in
the sandbox (autopilot/agent/sandbox.py), so what the setup recorded as an absolute path holds
in the copy.

The key the workspace was set up for is kept in its git dir: called again (after a conflict
round), the setup runs only if the lock files changed. The agent could change that note;
it would only spare or cost its own workspace a setup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from autopilot.git import GitError, git_output, is_ancestor, run_git
from autopilot.infra import Redactor, untrusted_fs
from autopilot.models import CheckResult, SetupInput, SetupResult
from autopilot.review import CheckEnv, check_log_name, run_check
from autopilot.setup import cache
from autopilot.setup.copy_files import CopyProblem, check_untracked, copy_in, exclude
from autopilot.setup.paths import UnsafePath

STAMP = "autopilot-setup"  # in the workspace's .git: the key it was set up for
_STAMP_LIMIT = 128
# What of a failed command's output goes into the error (and the session's pause reason);
# the whole output is in its log.
ERROR_TAIL_LINES = 20
ERROR_TAIL_CHARS = 1500


class SetupFailed(Exception):
    """The workspace could not be made ready; `result` says how far it got."""

    def __init__(self, message: str, result: SetupResult) -> None:
        super().__init__(message)
        result.error = message
        self.result = result


def set_up_workspace(
    request: SetupInput,
    env: CheckEnv,
    on_progress: Callable[[str], None] | None = None,
) -> SetupResult:
    started = time.monotonic()
    settings = request.settings
    workspace = Path(request.workspace_path)
    result = SetupResult()
    try:
        stamp = _read_stamp(workspace)
        if stamp is None:  # a new workspace: nothing of the agent's is in it yet
            check_untracked(workspace, "HEAD", settings)
            result.copied = copy_in(Path(request.repo), workspace, settings.copy_files)
            exclude(workspace, settings.keep_out)
        key = cache.cache_key(workspace, settings, request.repo)
        if stamp == key:
            return SetupResult(key=key, unchanged=True)
        result.key = key
        entry = cache.lookup(cache.cache_root(request.state_dir), key)
        if settings.cache_dirs and entry is not None:
            cache.restore(entry, workspace, settings.cache_dirs)
            result.from_cache = True
            _run_commands(request, env, result, on_progress, after_restore=True)
        elif settings.setup:
            cache.clear(workspace, settings.cache_dirs)
            fills_cache = settings.cache_dirs and _untouched(request, workspace)
            _run_commands(request, env, result, on_progress)
            if fills_cache:
                cache.store(
                    cache.cache_root(request.state_dir), key, workspace, settings.cache_dirs
                )
        _write_stamp(workspace, key)
    except (CopyProblem, UnsafePath, cache.CacheProblem, GitError) as err:
        raise SetupFailed(f"workspace setup in {workspace}: {err}", result) from err
    result.duration_s = time.monotonic() - started
    return result


def _run_commands(
    request: SetupInput,
    env: CheckEnv,
    result: SetupResult,
    on_progress: Callable[[str], None] | None,
    *,
    after_restore: bool = False,
) -> None:
    """The setup commands, or with `after_restore` those that follow a cache restore."""
    redactor = Redactor.from_env(env.base)
    workspace, output_dir = Path(request.workspace_path), Path(request.output_dir)
    commands = request.settings.after_restore if after_restore else request.settings.setup
    kind = "after-restore" if after_restore else "setup"
    for index, command in enumerate(commands, start=1):
        if on_progress is not None:
            on_progress(command.command)
        log = output_dir / check_log_name(index, command.command, kind=kind)
        run = run_check(workspace, command, request.settings.setup_timeout_s, log, env, redactor)
        result.commands.append(run)
        if not run.passed:
            raise SetupFailed(_failure(run, request.settings.setup_timeout_s, kind), result)


def _untouched(request: SetupInput, workspace: Path) -> bool:
    """Is the workspace the user's reviewed code alone: its HEAD on the target branch's
    history, nothing changed? Only then does its setup fill the cache. Setup commands run the
    project's own code (install scripts, a build of the project): in a workspace the agent
    worked in (a retry from its branch, a conflict round), what they make is partly the
    agent's, and must not reach the workspaces of other tasks."""
    if not request.target_branch:
        return False
    head = git_output(workspace, "rev-parse", "--verify", "HEAD").strip()
    changed = git_output(workspace, "status", "--porcelain", "--untracked-files=all").strip()
    if changed or run_git(request.repo, ["cat-file", "-e", f"{head}^{{commit}}"]).returncode:
        return False  # changed, or a commit of the agent's (only in the workspace's objects)
    return is_ancestor(request.repo, head, f"refs/heads/{request.target_branch}")


def _failure(run: CheckResult, timeout_s: float, kind: str) -> str:
    if run.timed_out:
        how = f"timed out after {timeout_s:g} s"
    elif run.exit_code is None:
        how = "could not start"
    else:
        how = f"exited with {run.exit_code}"
    lines = run.output_tail.rstrip().splitlines()[-ERROR_TAIL_LINES:]
    tail = "\n".join(lines)[-ERROR_TAIL_CHARS:]
    return (
        f"workspace {kind} command `{run.command}` {how} (whole output: {run.output_path}); "
        f"it ended with:\n{tail}"
    )


def _read_stamp(workspace: Path) -> str | None:
    """None for a linked worktree of an older session (set up every time), or no stamp."""
    try:
        stamp = untrusted_fs.read_file(workspace, ".git", STAMP, limit=_STAMP_LIMIT)
    except OSError:
        return None
    return stamp.decode("ascii", "replace").strip()


def _write_stamp(workspace: Path, key: str) -> None:
    if untrusted_fs.is_real_dir(workspace, ".git"):
        untrusted_fs.write_file(workspace, ".git", STAMP, data=f"{key}\n".encode())
