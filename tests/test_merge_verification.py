"""Main always green ([review] verify_merged): the target moves only to a tree whose checks
passed as that tree.

The session's decisions with stand-in activities (tests/workflow_stubs.py), and the git steps
under them (merge_task's verified_only, the target merged into a task's workspace) on real
repositories. The whole pipeline, with the real CLI and real checks: tests/test_green_e2e.py.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

import starter
from activities.checks import CheckActivities
from autopilot.agent import Egress, Sandbox, detect_sandbox, merged_checks_prompt
from autopilot.git import commit_changes, merge_task, prepare_workspace
from autopilot.infra import RepoReviewConfig, merge_review_settings, parse_check
from autopilot.models import (
    ChecksInput,
    MergeResult,
    ReviewSettings,
    SessionState,
    SessionStatus,
    TargetMergeInput,
    TargetMergeResult,
    TaskState,
    TaskStatus,
    VerifyMergeInput,
    VerifyMergeResult,
    Workspace,
)
from autopilot.operate import preflight
from autopilot.operate.commands import print_status
from autopilot.steps.site import decide, workspaces
from tests.gitutil import commit_file, git, head, isolate_git, make_repo, trailers, write
from tests.workflow_stubs import (
    CHECK,
    TARGET,
    Stubs,
    check,
    make_batch,
    make_plan,
    make_task,
    review_settings,
    start_session,
    worker,
)

pytestmark = pytest.mark.timeout(60)

MOVED = MergeResult(merged=False, target_moved=True, message="main moved")
FAILING = VerifyMergeResult(
    clean=True, head_sha="verified", checks=[check(False, "NameError: name 'f' is not defined")]
)


async def run_session(
    client: Client, stubs: Stubs, review: ReviewSettings | None = None
) -> SessionStatus:
    stubs.plan = stubs.plan or make_plan(make_batch(1, make_task("1")))
    async with worker(client, stubs) as queue:
        handle = await start_session(client, queue, review=review or review_settings("checks"))
        return await handle.result()


# -- the session's merge step ------------------------------------------------------------------


async def test_target_not_moved_merges_without_verification(client: Client, stubs: Stubs) -> None:
    status = await run_session(client, stubs)

    task = status.task("1")
    assert (task.state, task.merge_checks, task.merged_checks_round) == (
        TaskState.MERGED,
        0,
        False,
    )
    [merge] = stubs.inputs("merge_task", "1")
    assert merge.verified_only  # merged only because the branch held the target's head
    assert not stubs.inputs("verify_merge")


async def test_target_moved_verifies_the_merge_then_merges(client: Client, stubs: Stubs) -> None:
    stubs.script("merge_task", "1", MOVED)
    status = await run_session(client, stubs)

    assert status.status == SessionState.COMPLETED, status.error
    task = status.task("1")
    assert (task.state, task.merge_checks, task.merge_sha) == (TaskState.MERGED, 1, "m-1")
    assert stubs.names().count("verify_merge") == 1
    assert stubs.index("merge_task", "1") < stubs.index("verify_merge", "1")
    [verify] = stubs.inputs("verify_merge", "1")
    assert (verify.merge.target_branch, verify.merge.base_sha) == (TARGET, "base")
    assert verify.checks.checks == [CHECK]
    assert verify.checks.workspace_path == verify.merge.workspace_path
    assert verify.checks.output_dir.endswith("/1/merged-1")
    assert [merge.verified_only for merge in stubs.inputs("merge_task", "1")] == [True, True]
    assert len(stubs.inputs("run_agent", "1")) == 1  # passed: no round for the agent


async def test_verification_checks_in_the_container_where_the_task_checks(
    client: Client, stubs: Stubs
) -> None:
    stubs.script("merge_task", "1", MOVED)
    stubs.plan = make_plan(make_batch(1, make_task("1")))
    async with worker(client, stubs) as queue:
        handle = await start_session(
            client, queue, review=review_settings("checks"), execution_place="dagger"
        )
        status = await handle.result()

    assert status.task("1").state == TaskState.MERGED
    [round_checks] = stubs.inputs("run_checks", "1")
    [verify] = stubs.inputs("verify_merge", "1")
    assert verify.checks.container is not None
    assert verify.checks.container == round_checks.container
    assert verify.checks.origin == round_checks.origin


async def test_failing_verification_gets_a_round_then_merges(client: Client, stubs: Stubs) -> None:
    stubs.script("merge_task", "1", MOVED)
    stubs.script("verify_merge", "1", FAILING)
    status = await run_session(client, stubs)

    assert status.status == SessionState.COMPLETED, status.error
    task = status.task("1")
    assert (task.state, task.merged_checks_round, task.conflict_round) == (
        TaskState.MERGED,
        True,
        False,
    )
    assert task.workflow_id == f"{status.id}/task-1/merged-checks"
    jobs = stubs.inputs("run_agent", "1")
    assert [(job.purpose, job.request.resolve_conflict) for job in jobs] == [
        ("task", False),
        ("merged_checks", True),
    ]
    assert jobs[1].request.merged_checks == FAILING.checks
    prompt = merged_checks_prompt(jobs[1].request, TARGET)
    assert f"fail `{CHECK.command}` together" in prompt
    assert "NameError: name 'f' is not defined" in prompt
    # the round merged the target in first, was reviewed again, then merged
    assert stubs.inputs("merge_target", "1")
    assert len(stubs.inputs("run_checks", "1")) == 2
    assert len(stubs.inputs("merge_task", "1")) == 2


async def test_failing_verification_after_its_round_ends_in_conflict(
    client: Client, stubs: Stubs
) -> None:
    stubs.script("merge_task", "1", MOVED, MOVED)
    stubs.script("verify_merge", "1", FAILING, FAILING)
    status = await run_session(client, stubs)

    task = status.task("1")
    assert (task.state, task.merge_checks) == (TaskState.CONFLICT, 2)
    assert task.last_error is not None
    assert f"still fail `{CHECK.command}` together after its round" in task.last_error
    assert f"{TARGET} untouched" in task.last_error
    assert status.status == SessionState.INCOMPLETE
    assert len(stubs.inputs("run_agent", "1")) == 2  # one round, not more
    assert [
        verify.checks.output_dir.rsplit("/", 1)[1] for verify in stubs.inputs("verify_merge")
    ] == [
        "merged-1",
        "merged-2",
    ]


async def test_conflicting_verification_gets_the_conflict_round(
    client: Client, stubs: Stubs
) -> None:
    stubs.script("merge_task", "1", MOVED)
    stubs.script("verify_merge", "1", VerifyMergeResult(clean=False, conflict_files=["x.py"]))
    stubs.script("merge_target", "1", TargetMergeResult(clean=False, conflict_files=["x.py"]))
    status = await run_session(client, stubs)

    task = status.task("1")
    assert (task.state, task.conflict_round, task.merged_checks_round) == (
        TaskState.MERGED,
        True,
        False,
    )
    assert [job.purpose for job in stubs.inputs("run_agent", "1")] == ["task", "conflict"]


async def test_a_target_that_keeps_moving_fails_the_merge(client: Client, stubs: Stubs) -> None:
    stubs.script("merge_task", "1", MOVED, MOVED, MOVED)
    status = await run_session(client, stubs)

    task = status.task("1")
    assert (task.state, task.merge_checks) == (TaskState.FAILED, 3)
    assert task.last_error is not None and "moved again" in task.last_error
    assert len(stubs.inputs("merge_task", "1")) == 3


async def test_verify_merged_off_merges_as_before(client: Client, stubs: Stubs) -> None:
    review = review_settings("checks").model_copy(update={"verify_merged": False})
    status = await run_session(client, stubs, review)

    assert status.task("1").state == TaskState.MERGED
    [merge] = stubs.inputs("merge_task", "1")
    assert not merge.verified_only and not stubs.inputs("verify_merge")


async def test_no_checks_nothing_to_verify(client: Client, stubs: Stubs) -> None:
    status = await run_session(client, stubs, review_settings("agent"))

    assert status.task("1").state == TaskState.MERGED
    [merge] = stubs.inputs("merge_task", "1")
    assert not merge.verified_only and not stubs.inputs("verify_merge")


# -- the setting ---------------------------------------------------------------------------------


def test_verify_merged_is_on_by_default_and_the_flag_wins_over_the_file() -> None:
    def verify(file_value: bool | None, *flags: str) -> bool:
        args = starter.parse_command_line(["plan.md", *flags])
        given = {key: getattr(args, dest) for dest, key in preflight.REVIEW_FLAGS.items()}
        file_cfg = RepoReviewConfig(verify_merged=file_value)
        return merge_review_settings(file_cfg, **given).verify_merged

    assert verify(None) is True
    assert verify(False) is False
    assert verify(None, "--no-verify-merged") is False
    assert verify(False, "--verify-merged") is True


def test_status_says_how_often_a_merge_was_checked_and_the_round() -> None:
    status = SessionStatus(
        id="s",
        status=SessionState.COMPLETED,
        repo="/repo",
        plan_path="/plan.md",
        target_branch=TARGET,
        concurrency=1,
    )
    status.tasks = [
        TaskStatus(id="1", title="A", batch=1, state=TaskState.MERGED),
        TaskStatus(id="2", title="B", batch=1, state=TaskState.MERGED, merge_checks=1),
        TaskStatus(
            id="3",
            title="C",
            batch=1,
            state=TaskState.MERGED,
            merge_checks=2,
            merged_checks_round=True,
        ),
    ]
    shown = io.StringIO()
    print_status(status, as_json=False, out=shown)

    lines = shown.getvalue().splitlines()
    checked = [line.strip() for line in lines if "checked merged with" in line]
    assert checked == [
        f"checked merged with {TARGET}'s new commits 1 time(s)",
        f"checked merged with {TARGET}'s new commits 2 time(s); they failed together once: "
        "a merged-checks round followed",
    ]


# -- the git steps under it --------------------------------------------------------------------

SESSION = "sess-green"


@pytest.fixture(autouse=True)
def _hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path / "home")


def task_workspace(repo: Path, state: Path, task: str, files: dict[str, str]) -> Workspace:
    ws = prepare_workspace(repo, "main", state, SESSION, task)
    for name, content in files.items():
        write(Path(ws.path), name, content)
    commit_changes(ws.path, ws.base_sha, SESSION, task, f"Task {task}", repo=repo)
    return ws


def test_verified_only_merges_nothing_a_branch_was_not_checked_with(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    ws = task_workspace(repo, tmp_path / "state", "1", {"b.txt": "task\n"})
    moved = commit_file(repo, "a.txt", "someone else\n")

    outcome = merge_task(repo, "main", ws.branch, SESSION, "1", "Merge 1", verified_only=True)

    assert (outcome.merged, outcome.target_moved) == (False, True)
    assert head(repo, "main") == moved


def test_verified_only_merges_exactly_the_branch_tree_once_it_holds_the_target(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    ws = task_workspace(repo, tmp_path / "state", "1", {"b.txt": "task\n"})
    moved = commit_file(repo, "a.txt", "someone else\n")
    # what verify_merge does before its checks: the target merged in, in the workspace
    merged = workspaces(decide(str(repo))).merge_target(
        TargetMergeInput(
            workspace_path=ws.path,
            target_branch="main",
            session_id=SESSION,
            task_id="1",
            repo=str(repo),
            base_sha=ws.base_sha,
        )
    )
    assert merged.clean
    # brought back to the user's repository, where the merge reads the branch
    assert head(repo, ws.branch) == merged.head_sha == head(Path(ws.path))

    outcome = merge_task(repo, "main", ws.branch, SESSION, "1", "Merge 1", verified_only=True)

    assert outcome.merged and outcome.merge_sha == head(repo, "main")
    tree = git(repo, "rev-parse", f"{outcome.merge_sha}^{{tree}}")
    assert tree == git(repo, "rev-parse", f"{merged.head_sha}^{{tree}}")
    assert git(repo, "log", "-1", "--format=%P", "main").split() == [moved, merged.head_sha]
    assert trailers(repo, "main") == {"Autopilot-Session": [SESSION], "Autopilot-Task": ["1"]}


# -- the activity: the merge, then the checks on it, in the sandbox ----------------------------


@pytest_asyncio.fixture
async def egress() -> AsyncIterator[Egress]:
    with tempfile.TemporaryDirectory(prefix="egress-") as folder:
        proxy = await Egress(Path(folder) / "egress.sock", {}).start()
        yield proxy
        await proxy.close()


def verify_input(repo: Path, state: Path, ws: Workspace, check: str) -> VerifyMergeInput:
    return VerifyMergeInput(
        merge=TargetMergeInput(
            workspace_path=ws.path,
            target_branch="main",
            session_id=SESSION,
            task_id="1",
            repo=str(repo),
            base_sha=ws.base_sha,
        ),
        checks=ChecksInput(
            workspace_path=ws.path,
            checks=[parse_check(check)],
            timeout_s=60,
            output_dir=str(state / "checks" / SESSION / "1" / "merged-1"),
            tmp_dir=str(state / "tmp"),
            repo=str(repo),
            state_dir=str(state),
        ),
    )


async def test_verify_merge_checks_the_branch_merged_with_the_target(
    tmp_path: Path, egress: Egress
) -> None:
    repo = make_repo(tmp_path / "repo")
    state = tmp_path / "state"
    ws = task_workspace(repo, state, "1", {"b.txt": "task\n"})
    commit_file(repo, "a.txt", "someone else\n")
    sandbox = detect_sandbox()
    runner = CheckActivities(Sandbox(sandbox.bwrap, sandbox.death, home=tmp_path / "home"), egress)
    # Passes only where both the target's new file and the task's are.
    both = "sh -c 'test -f a.txt && test -f b.txt && git log -1 --format=%s'"

    verified = await ActivityEnvironment().run(
        runner.verify_merge, verify_input(repo, state, ws, both)
    )

    assert verified.clean and not verified.failed_checks, verified.checks
    assert verified.head_sha == head(repo, ws.branch)  # brought back, for the merge
    assert "Merge main into" in verified.checks[0].output_tail
    assert Path(verified.checks[0].output_path).is_file()


async def test_verify_merge_runs_no_check_on_a_conflict(tmp_path: Path, egress: Egress) -> None:
    repo = make_repo(tmp_path / "repo")
    state = tmp_path / "state"
    ws = task_workspace(repo, state, "1", {"a.txt": "task\n"})
    commit_file(repo, "a.txt", "someone else\n")
    sandbox = detect_sandbox()
    runner = CheckActivities(Sandbox(sandbox.bwrap, sandbox.death, home=tmp_path / "home"), egress)

    verified = await ActivityEnvironment().run(
        runner.verify_merge, verify_input(repo, state, ws, "true")
    )

    assert (verified.clean, verified.conflict_files, verified.checks) == (False, ["a.txt"], [])
    # the merge stays in progress, its conflicts for the conflict round's agent
    assert git(Path(ws.path), "rev-parse", "-q", "--verify", "MERGE_HEAD")
