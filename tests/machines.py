"""Workers as separate machines on one box, for remote mode's tests: each worker has its own
state dir, home and working directory, and runs in a mount namespace of its own where the
user's checkout is an empty directory; they share only the remote (`git daemon` on loopback)
and the Temporal server. The remote is a bare clone of the test's repository."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.git_daemon import git_daemon
from tests.gitutil import git
from tests.harness import Autopilot


@dataclass
class Remote:
    bare: Path  # the remote's repository, as its server has it
    url: str  # git://127.0.0.1:<port>/project.git
    port: int

    def branches(self) -> list[str]:
        return git(self.bare, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()

    def task_refs(self) -> list[str]:
        """The task work kept on the remote: refs/autopilot/<session>/<task>, no branches."""
        return git(self.bare, "for-each-ref", "--format=%(refname)", "refs/autopilot").split()


@contextlib.contextmanager
def served_remote(tmp_path: Path, repo: Path) -> Iterator[Remote]:
    """A bare clone of `repo`, served by `git daemon` (pushes allowed) until the block ends."""
    served = tmp_path / "served"
    served.mkdir()
    bare = served / "project.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(repo), str(bare))
    with git_daemon(served) as daemon:
        yield Remote(bare=bare, url=daemon.url("project.git"), port=daemon.port)


def own_mount_namespace(hidden: Path) -> list[str]:
    """A command prefix that runs a process in a mount namespace of its own where `hidden` is
    an empty tmpfs: a machine without the user's checkout. [] where namespaces are refused
    (the workers then only know the remote's URL)."""
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return []
    script = 'mount -t tmpfs -o mode=0700 none "$0" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(hidden)]


def start_machine(
    installation: Autopilot, root: Path, name: str, hidden: Path, *args: str
) -> subprocess.Popen[bytes]:
    """A worker on a machine of its own (`root/name`), that cannot see `hidden`."""
    machine = root / name
    (machine / "home").mkdir(parents=True)
    (machine / "work").mkdir()
    return installation.start_worker(
        *args,
        wrap=own_mount_namespace(hidden),
        cwd=machine / "work",
        AUTOPILOT_STATE_DIR=str(machine / "state"),
        HOME=str(machine / "home"),
        CLAUDE_CONFIG_DIR=str(machine / "claude-config"),
        TEMPORAL_ADDRESS=installation.address,  # the cluster, not a server of its own
    )


def checkout_state(repo: Path) -> tuple[str, str, str]:
    """What a session must never change in the user's checkout: refs, files, HEAD."""
    return (
        git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        git(repo, "status", "--porcelain"),
        git(repo, "rev-parse", "HEAD"),
    )
