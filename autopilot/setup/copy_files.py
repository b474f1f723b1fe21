"""`copy`: files from the user's checkout copied into each new workspace, by name only, and
kept out of git there.

They are the user's local files (`.env.test`, `config/local.toml`): the repository must not
track them, a workspace ignores them (its own `.git/info/exclude`, with the setup's cache
dirs), and the commit step never commits them (autopilot/git/commits.py, `keep_out`).
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path

from autopilot.git import git_output_bytes, nul_separated_paths, shown_path
from autopilot.infra import InputFileError, check_regular, untrusted_fs
from autopilot.models import WorkspaceSettings
from autopilot.setup.paths import UnsafePath, inside, make_parents, parts_of

# A file copied into every workspace is configuration (`.env.test`), not data.
COPY_SIZE_LIMIT = 64 * 1024 * 1024
EXCLUDE_HEADER = "# autopilot: [workspace] copy and cache_dirs (never committed)"
_PATTERN_SPECIALS = "\\*?[!#"


class CopyProblem(ValueError):
    """A `copy` file cannot be copied; the message says which and what to do."""


def tracked(repo: str | Path, rev: str, names: Sequence[str]) -> list[str]:
    """Those of `names` (files, or folders: anything under them) that `rev` tracks."""
    if not names:
        return []
    literal = [f":(literal){name}" for name in names]
    out = git_output_bytes(repo, "ls-tree", "-r", "-z", "--name-only", rev, "--", *literal)
    paths = [shown_path(path) for path in nul_separated_paths(out)]
    return [name for name in names if any(_under(path, name) for path in paths)]


def check_untracked(repo: str | Path, rev: str, settings: WorkspaceSettings) -> None:
    """CopyProblem if `rev` tracks a `copy` file or anything in a cache dir: what the setup
    puts in a workspace is never committed, so it cannot be the repository's."""
    for names, key in ((settings.copy_files, "copy"), (settings.cache_dirs, "cache_dirs")):
        found = tracked(repo, rev, names)
        if found:
            raise CopyProblem(
                f"[workspace] {key} names {', '.join(found)}, which the repository tracks "
                f"({rev}): what the setup puts in a workspace is never committed; take it out "
                f"of {key} in .autopilot.toml, or stop tracking it (`git rm --cached`)"
            )


def check_sources(checkout: Path, names: Sequence[str]) -> None:
    """CopyProblem unless each named file is in the checkout now, reached through no link on
    the way, and a regular file (its own last link followed, as `copy_in` follows it) of at
    most COPY_SIZE_LIMIT: refused before the session starts, not when a workspace is made
    (which would pause it)."""
    for name in names:
        try:
            source = inside(checkout, name)
            check_regular(source, COPY_SIZE_LIMIT)
        except UnsafePath as err:
            raise CopyProblem(
                f"[workspace] copy names {name!r}, whose way goes through a link ({err}); "
                "copy takes files in your checkout's own folders: move the file there, or take "
                "it out of copy"
            ) from err
        except FileNotFoundError:
            raise CopyProblem(
                f"[workspace] copy names {name!r}, which is not in your checkout "
                f"({checkout / name}); create it there, or take it out of copy"
            ) from None
        except InputFileError as err:
            raise CopyProblem(
                f"[workspace] copy names {name!r}, which {err}; copy copies files alone"
            ) from None


def _under(path: str, name: str) -> bool:
    return path == name or path.startswith(name + "/")


def copy_in(checkout: Path, workspace: Path, names: Sequence[str]) -> list[str]:
    """Copy each named file from the checkout to the same place in the workspace (replacing
    what the workspace has there); returns the names copied."""
    for name in names:
        try:
            # The file itself may be a link (it is untracked: the user's own), but no folder
            # on the way: a tracked link there could come from a merged task.
            source = inside(checkout, name)
        except UnsafePath as err:
            raise CopyProblem(f"cannot copy {name!r} from your checkout: {err}") from err
        if not source.is_file():
            raise CopyProblem(
                f"[workspace] copy names {name!r}, which is not a file in your checkout "
                f"({source}); create it there, or take it out of copy in .autopilot.toml"
            )
        try:
            make_parents(workspace, name)
        except UnsafePath as err:
            raise CopyProblem(f"cannot copy {name!r} into the workspace: {err}") from err
        if untrusted_fs.is_real_dir(workspace, *parts_of(name)):
            raise CopyProblem(
                f"cannot copy {name!r} into the workspace {workspace}: a folder is there"
            )
        # Written aside and renamed over the target: a link there is replaced, not followed.
        mode = stat.S_IMODE(source.stat().st_mode)
        untrusted_fs.write_file(workspace, *parts_of(name), data=source.read_bytes(), mode=mode)
    return list(names)


def exclude(workspace: Path, names: Sequence[str]) -> None:
    """The workspace's `.git/info/exclude`: `names` (anchored at its top) are ignored there.
    A linked worktree of an older session shares the user's exclude file: left alone."""
    if not untrusted_fs.is_real_dir(workspace, ".git"):
        return
    if not untrusted_fs.is_real_dir(workspace, ".git", "info"):
        untrusted_fs.remove(workspace, ".git", "info")  # a link or a file: not followed
    untrusted_fs.make_dirs(workspace, ".git", "info")
    lines = [EXCLUDE_HEADER, *(_anchored(name) for name in names)]
    text = ("\n".join(lines) + "\n").encode()
    untrusted_fs.write_file(workspace, ".git", "info", "exclude", data=text)


def _anchored(name: str) -> str:
    """A gitignore pattern for exactly `name`: anchored, special characters escaped."""
    escaped = "".join("\\" + char if char in _PATTERN_SPECIALS else char for char in name)
    if escaped.endswith(" "):
        escaped = escaped[:-1] + "\\ "
    return "/" + escaped
