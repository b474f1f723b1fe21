"""Every path the agent could have touched that a step of the pipeline touches
(tests/agent_paths.py): with a link to a file outside, a link to a folder outside, a FIFO or a
huge sparse file there, the real step ends (completes, or fails as it should) within its
deadline, and nothing outside changes."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from autopilot import git as gitops
from autopilot.agent import Sandbox, task_layout
from autopilot.git import (
    commit_changes,
    mark_workspace,
    merge_target_into_branch,
    prepare_workspace,
)
from autopilot.infra import parse_check, remove_path
from autopilot.models import SetupInput, Workspace, WorkspaceOrigin, WorkspaceSettings
from autopilot.review import CheckEnv, private_tmpdir
from autopilot.setup import set_up_workspace
from autopilot.steps.site import decide
from tests.agent_paths import CHECK_TMP, INVENTORY, SPACE, Touch
from tests.gitutil import commit_file, git, isolate_git, make_repo
from tests.test_untrusted_fs import HUGE, snapshot

SESSION = "sess-paths"
DEADLINE_S = 60.0
SECURITY = Path(__file__).resolve().parents[1] / "docs" / "SECURITY.md"
SECTION = "## Paths the agent could have touched"
KINDS = ["link to a file outside", "link to a folder outside", "FIFO", "huge sparse file"]


@dataclass
class Places:
    repo: Path
    ws: Workspace
    tmp: Path
    outside: Path

    @property
    def workspace(self) -> Path:
        return Path(self.ws.path)

    @property
    def space(self) -> Path:
        return gitops.agent_space_path(self.tmp / "state", SESSION, "1") / "agent"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


@pytest.fixture
def places(tmp_path: Path) -> Places:
    repo = make_repo(tmp_path / "repo")
    commit_file(repo, "deps.lock", "helper 1.0\n")
    (repo / ".env.test").write_text("TOKEN_FOR_TESTS=abc\n")  # the user's, untracked
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "bashrc").write_text("the worker's own ~/.bashrc\n")
    (outside / "keep" / "file").write_text("kept\n")
    ws = prepare_workspace(repo, "main", tmp_path / "state", SESSION, "1")
    return Places(repo, ws, tmp_path, outside)


def plant(path: Path, kind: str, outside: Path) -> None:
    """`kind` at `path`, in place of whatever is there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_path(path)
    if kind == "link to a file outside":
        path.symlink_to(outside / "bashrc")
    elif kind == "link to a folder outside":
        path.symlink_to(outside / "keep")
    elif kind == "FIFO":
        os.mkfifo(path)
    else:
        with path.open("wb") as handle:
            handle.truncate(HUGE)


# --------------------------------------------------------------------------------------------
# The steps: each plants (`put`, when the place is there) and runs
# --------------------------------------------------------------------------------------------


class Put(Protocol):
    """Plants what the test plants at its path (a check's temp dir: the one given)."""

    def __call__(self, check_tmp: Path | None = None) -> None: ...


def setup_request(places: Places, ws: Workspace) -> SetupInput:
    settings = WorkspaceSettings.model_validate(
        {
            "setup": [parse_check("sh -c 'mkdir -p deps && echo ran > deps/runs'")],
            "cache_key": ["deps.lock"],
            "cache_dirs": ["deps"],
            "copy_files": [".env.test"],
        }
    )
    return SetupInput(
        workspace_path=ws.path,
        repo=str(places.repo),
        state_dir=str(places.tmp / "state"),
        settings=settings,
        output_dir=str(places.tmp / "logs" / Path(ws.path).name),
        target_branch="main",
    )


def plant_nothing(check_tmp: Path | None = None) -> None:
    """A step run before the one the test plants for."""


def commit_step(places: Places, put: Put) -> None:
    git(places.workspace, "config", "x.y", "1")  # the agent's: our step writes ours back
    put()
    commit_changes(places.ws.path, places.ws.base_sha, SESSION, "1", "Task", repo=places.repo)


def prepare_step(places: Places, put: Put) -> None:
    put()
    prepare_workspace(places.repo, "main", places.tmp / "state", SESSION, "1")


def in_conflict(places: Places) -> None:
    """The task's conflict round: the target merged in, README.md in conflict."""
    commit_file(places.repo, "README.md", "the target's\n", "target")
    (places.workspace / "README.md").write_text("the task's\n")
    commit_step(places, plant_nothing)
    merged = merge_target_into_branch(places.ws.path, "main", SESSION, "1", repo=places.repo)
    assert merged.conflict_files == ["README.md"], merged


def conclude_merge_step(places: Places, put: Put) -> None:
    in_conflict(places)
    (places.workspace / "README.md").write_text("resolved\n")
    commit_step(places, put)


def conflicts_step(places: Places, put: Put) -> None:
    in_conflict(places)
    put()
    gitops.unresolved_conflicts(places.ws.path)


def fingerprint_step(places: Places, put: Put) -> None:
    put()
    gitops.tree_fingerprint(places.ws.path)


def mark_step(places: Places, put: Put) -> None:
    put()
    mark_workspace(
        places.workspace,
        WorkspaceOrigin(
            session_id=SESSION, task_id="1", target_branch="main", base_sha=places.ws.base_sha
        ),
    )


def remove_step(places: Places, put: Put) -> None:
    places.space.mkdir(parents=True, exist_ok=True)
    put()
    gitops.remove_workspace(places.repo, places.ws.path)
    assert not places.workspace.exists() and not places.space.exists()


def sandbox_step(places: Places, put: Put) -> None:
    places.space.mkdir(parents=True, exist_ok=True)
    put()
    layout = task_layout(
        places.workspace,
        places.space,
        state_dir=places.tmp / "state",
        site=decide(str(places.repo)),
        objects=places.repo / ".git" / "objects",
        writes_workspace=True,
    )
    Sandbox("bwrap").wrap(["true"], layout)
    tmp = places.space / "tmp"
    assert tmp.is_dir() and not tmp.is_symlink()


def check_tmp_step(places: Places, put: Put) -> None:
    with private_tmpdir(places.tmp / "state" / "tmp") as folder:
        put(folder)
    assert not folder.exists() and not folder.is_symlink()


def setup_step(places: Places, put: Put) -> None:
    put()
    set_up_workspace(setup_request(places, places.ws), CheckEnv())


def setup_from_cache_step(places: Places, put: Put) -> None:
    first = prepare_workspace(places.repo, "main", places.tmp / "state", SESSION, "0")
    assert not set_up_workspace(setup_request(places, first), CheckEnv()).from_cache
    set_up_workspace(setup_request(places, places.ws), CheckEnv())  # as the agent found it
    put()
    (places.workspace / ".git" / "autopilot-setup").unlink()  # set up again: from the cache
    assert set_up_workspace(setup_request(places, places.ws), CheckEnv()).from_cache


STEPS: dict[str, Callable[[Places, Put], None]] = {
    "commit": commit_step,
    "prepare": prepare_step,
    "conclude merge": conclude_merge_step,
    "conflicts": conflicts_step,
    "fingerprint": fingerprint_step,
    "mark": mark_step,
    "remove": remove_step,
    "sandbox": sandbox_step,
    "check tmp": check_tmp_step,
    "setup": setup_step,
    "setup from cache": setup_from_cache_step,
}


def run_with_deadline(step: Callable[[], None]) -> BaseException | None:
    """The step's exception, if any; a step still running at the deadline fails the test."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            step()
            outcome.append(None)
        except BaseException as err:  # handed to the test thread
            outcome.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(DEADLINE_S)
    assert not worker.is_alive(), f"the step still runs after {DEADLINE_S:g} s: it hangs"
    return outcome[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "touch", INVENTORY, ids=[f"{t.where.split(':')[1]}-{t.path}" for t in INVENTORY]
)
@pytest.mark.reliability(
    "the agent leaves a link to a file or a folder outside, a FIFO or a huge sparse file where "
    "a step of the pipeline reads, writes or removes",
    "each path of the inventory, each kind, through the real step: it ends within its deadline "
    "(done, or failed as it should) and nothing outside changes",
)
def test_what_the_agent_left_changes_nothing_outside_and_hangs_nothing(
    places: Places, touch: Touch, kind: str
) -> None:
    before = snapshot(places.outside)

    def put(check_tmp: Path | None = None) -> None:
        """Plant at the touch's path: in the agent's own folder, a check's temp dir (given by
        the step that makes it) or the workspace."""
        if touch.path.startswith(SPACE):
            plant(places.space / touch.path.removeprefix(SPACE), kind, places.outside)
        elif check_tmp is not None:
            plant(check_tmp / touch.path.removeprefix(CHECK_TMP), kind, places.outside)
        else:
            plant(places.workspace / touch.path, kind, places.outside)

    failed = run_with_deadline(lambda: STEPS[touch.step](places, put))
    if failed is not None and type(failed).__name__ not in touch.may_fail:
        raise failed
    assert snapshot(places.outside) == before
    assert not list(places.tmp.glob("outside*/**/*autopilot*"))


def section_rows() -> list[str]:
    text = SECURITY.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    return [line for line in section.splitlines() if re.match(r"\| `[^`]+` \|", line)]


def test_the_security_doc_lists_exactly_the_inventory() -> None:
    rows = section_rows()
    for touch in INVENTORY:
        assert any(f"`{touch.where}`" in row and f"`{touch.path}`" in row for row in rows), touch
    for row in rows:
        assert any(f"`{touch.where}`" in row and f"`{touch.path}`" in row for touch in INVENTORY), (
            f"{row}: not in tests/agent_paths.py"
        )
