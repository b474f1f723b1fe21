"""Every refusal of `starter.py PLAN`, made both ways: the run and its `--dry-run` exit 2 with
the same message, leave the state dir (and the temporary folder) as they found them, and take
less than 10 s each.

A case is one line of CASES: a name, the flags after the plan, what the message says, and
optionally what to set up first (a `World` method) and another plan path. Temporal is down
(TEMPORAL_ADDRESS names a closed port): a case that every other check accepts is refused by
the connection, in the dry run as in the run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gitutil import commit_file, git, make_repo
from tests.harness import ROOT, clean_env
from tests.test_starter import GOOD_PLAN

DEADLINE_S = 10.0


@dataclass
class World:
    """What a case's flags may name: `{plan}`, `{repo}`, `{remote}` (a bare clone of repo,
    given by path), `{tmp}`."""

    tmp: Path

    @property
    def repo(self) -> Path:
        return self.tmp / "repo"

    @property
    def remote(self) -> Path:
        return self.tmp / "remote.git"

    def config(self, text: str | bytes) -> None:
        """A committed .autopilot.toml (a session reads it from the target's commit)."""
        path = self.repo / ".autopilot.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        git(self.repo, "add", "--", path.name)
        git(self.repo, "commit", "-q", "-m", "settings")

    def fifo_config(self) -> None:
        os.mkfifo(self.repo / ".autopilot.toml")

    def bom_config(self) -> None:
        self.config(b"\xef\xbb\xbf[review]\nrounds = 2\n")

    def packages_option(self) -> None:
        self.config('[container]\npackages = ["-oDPkg::Pre-Invoke::=id"]\n')

    def user_command(self) -> None:
        self.config('[container]\nuser = "node; rm -rf /"\n')

    def user_root(self) -> None:
        self.config('[container]\nuser = "root"\n')

    def copy_through_link(self) -> None:
        (self.repo / "etcdir").symlink_to("/etc")
        self.config('[workspace]\ncopy = ["etcdir/hostname"]\n')

    def copy_a_fifo(self) -> None:
        os.mkfifo(self.repo / ".env.test")
        self.config('[workspace]\ncopy = [".env.test"]\n')

    def copy_missing(self) -> None:
        self.config('[workspace]\ncopy = [".env.test"]\n')

    def dirty(self) -> None:
        (self.repo / "README.md").write_text("changed\n")

    def mid_rebase(self) -> None:
        git(self.repo, "checkout", "-q", "-b", "side")
        commit_file(self.repo, "README.md", "side\n")
        git(self.repo, "checkout", "-q", "main")
        commit_file(self.repo, "README.md", "main\n")
        git(self.repo, "rebase", "side", check=False)  # a conflict: stops mid-rebase

    def table_typo(self) -> None:
        self.config("[reveiw]\nrounds = 2\n")

    def cyclic_plan(self) -> None:
        (self.tmp / "plan.md").write_text(
            "### Task 1: a\n\n**Depends on:** Task 2\n\n### Task 2: b\n\n**Depends on:** Task 1\n"
        )

    def detached(self) -> None:
        git(self.repo, "checkout", "-q", "--detach")

    def bad_remote_config(self) -> None:
        clone = self.tmp / "clone"
        git(self.tmp, "clone", "-q", str(self.remote), str(clone))
        commit_file(clone, ".autopilot.toml", "[review]\nrounds = 'many'\n")
        git(clone, "push", "-q", "origin", "main")


@dataclass(frozen=True)
class Case:
    name: str
    flags: tuple[str, ...]
    message: str
    prepare: Callable[[World], None] | None = None
    plan: str = "{plan}"


CASES = [
    Case("remote is an option", ("--remote=-oProxyCommand=x",), "starts with '-'"),
    Case("remote helper", ("--remote", "ext::sh -c x"), "names a git remote helper"),
    Case("empty remote", ("--remote", ""), "--remote '' is empty"),
    Case("file:///etc", ("--remote", "file:///etc"), "the remote file:///etc does not answer"),
    Case("remote and repo", ("--remote", "{remote}", "--repo", "{repo}"), "name two repositories"),
    Case("long remote", ("--remote", "x" * 5000), "5000 characters long, over the limit"),
    Case("dagger, no engine", ("--repo", "{repo}", "--mode", "dagger"), "no Dagger engine"),
    Case("mid-rebase", ("--repo", "{repo}"), "a rebase is in progress", World.mid_rebase),
    Case(
        "mid-rebase, target named",
        ("--repo", "{repo}", "--target-branch", "main"),
        "a rebase is in progress",
        World.mid_rebase,
    ),
    Case("empty target branch", ("--repo", "{repo}", "--target-branch", ""), "is empty"),
    Case("uncommitted changes", ("--repo", "{repo}"), "uncommitted changes", World.dirty),
    Case("repo is a file", ("--repo", "{plan}"), "is not a directory"),
    Case("empty repo", ("--repo", ""), "--repo is empty"),
    Case("repo with a newline", ("--repo", "a\nb"), "--repo 'a\\nb' contains control"),
    Case("config is a FIFO", ("--repo", "{repo}"), "(it is a FIFO", World.fifo_config),
    Case("config has a BOM", ("--repo", "{repo}"), "byte order mark (BOM", World.bom_config),
    Case("package is an option", ("--repo", "{repo}"), "never options", World.packages_option),
    Case("user is a command", ("--repo", "{repo}"), "user = 'node; rm", World.user_command),
    Case("user is root", ("--repo", "{repo}"), "allow_root = true", World.user_root),
    Case("image with spaces", ("--repo", "{repo}", "--image", "node 22 slim"), "not an image"),
    Case("copy through a link", ("--repo", "{repo}"), "through a link", World.copy_through_link),
    Case("copy of a FIFO", ("--repo", "{repo}"), "(it is a FIFO", World.copy_a_fifo),
    Case("copy of nothing", ("--repo", "{repo}"), "not in your checkout", World.copy_missing),
    Case(
        "missing plan",
        ("--repo", "{repo}"),
        "no\\nplan.md: plan file not found",
        plan="no\nplan.md",
    ),
    Case("remote's config", ("--remote", "{remote}"), "rounds", World.bad_remote_config),
    # Today's good messages, kept so.
    Case("dependency cycle", ("--repo", "{repo}"), "dependency cycle: Task 1", World.cyclic_plan),
    Case("table typo", ("--repo", "{repo}"), "(did you mean 'review'?)", World.table_typo),
    Case("unknown target", ("--repo", "{repo}", "--target-branch", "x"), "has no branch 'x'"),
    Case("range selects nothing", ("--repo", "{repo}", "--start-batch", "5"), "no batch in"),
    Case("detached HEAD", ("--repo", "{repo}"), "has a detached HEAD", World.detached),
    Case("bad number", ("--repo", "{repo}", "--concurrency", "0"), "--concurrency 0 is not"),
    Case("Temporal down", ("--repo", "{repo}"), "cannot connect to Temporal"),
    Case("Temporal down, remote", ("--remote", "{remote}"), "cannot connect to Temporal"),
]


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root`, with its kind and (for a file) a hash of its contents."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = "link " + os.readlink(path)
        elif path.is_file():
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[name] = "dir" if path.is_dir() else "other"
    return found


def starter(world: World, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in clean_env().items() if not k.startswith("DAGGER_")}
    env.update(
        AUTOPILOT_STATE_DIR=str(world.tmp / "state"),
        TEMPORAL_ADDRESS="127.0.0.1:9",  # nothing listens there
        TMPDIR=str(world.tmp / "scratch"),
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *args],
        cwd=world.tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,  # a hang (a FIFO read) fails the case
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
@pytest.mark.reliability(
    "bad input of every kind: plan, .autopilot.toml, flags, repository state, remote, Temporal",
    "starter.py run and --dry-run: the same exit 2 and message, nothing on "
    "stdout, the state dir and TMPDIR unchanged, each within 10 s",
)
def test_the_run_and_the_dry_run_refuse_alike(tmp_path: Path, case: Case) -> None:
    world = World(tmp_path)
    make_repo(world.repo)
    git(tmp_path, "clone", "-q", "--bare", str(world.repo), str(world.remote))
    (tmp_path / "plan.md").write_text(GOOD_PLAN)
    (tmp_path / "scratch").mkdir()
    (tmp_path / "state").mkdir(mode=0o700)
    if case.prepare is not None:
        case.prepare(world)
    names = {"plan": tmp_path / "plan.md", "repo": world.repo, "remote": world.remote}
    args = [case.plan.format(**names), *(flag.format(**names) for flag in case.flags)]
    before = snapshot(tmp_path / "state")
    answers = []
    for extra in ([], ["--dry-run"]):
        done = starter(world, [*args, *extra])
        assert done.returncode == 2, (extra, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert case.message in done.stderr, done.stderr
        assert done.stdout == "", done.stdout  # nothing printed as if it had started
        assert snapshot(tmp_path / "state") == before, extra
        assert list((tmp_path / "scratch").iterdir()) == [], extra
        answers.append(done.stderr)
    assert answers[0] == answers[1]
