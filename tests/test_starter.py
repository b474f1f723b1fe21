"""starter.py as a user runs it: bad input is refused before anything starts (exit 2, a message
naming what and where, no traceback); outcomes map to exit codes; Ctrl-C detaches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import starter
from autopilot import git as gitops
from autopilot.operate import preflight
from autopilot_testing import (
    HoldFirst,
    HttpError,
    PlanFollower,
    ScriptedModel,
    Text,
    by_task,
)
from tests.gitutil import git, make_repo
from tests.harness import ROOT, autopilot, clean_env

GOOD_PLAN = """\
# Plan

### Task 1: Write a file

**Files:**
- Create: `one.txt`

```
one
```
"""


def write_plan(tmp_path: Path, text: str = GOOD_PLAN) -> Path:
    plan = tmp_path / "plan.md"
    plan.write_text(text)
    return plan


def run_starter(
    tmp_path: Path,
    *args: str,
    cwd: Path = ROOT,
    temporal: str = "127.0.0.1:9",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The starter with an unreachable Temporal (unless `temporal` names one): validation must
    fail before connecting. `env`: more of the installation's variables."""
    given = env or {}
    env = clean_env()
    env.update(AUTOPILOT_STATE_DIR=str(tmp_path / "state"), TEMPORAL_ADDRESS=temporal, **given)
    return subprocess.run(
        [sys.executable, str(ROOT / "starter.py"), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_user_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--dry-run", "--offline")
    assert done.returncode == 0, done.stderr
    assert "Task 1: Write a file" in done.stdout
    assert "create one.txt" in done.stdout
    assert f"Merge: into main of {repo}" in done.stdout
    assert "Skipped (--offline): the Temporal connection" in done.stdout
    assert "Dry run: nothing was started." in done.stdout
    assert not (tmp_path / "state" / "temporal").exists()


@pytest.mark.reliability(
    "plan file does not exist",
    "starter.py as a user runs it: exit 2, message names the file, no traceback, nothing started",
)
def test_missing_plan_file(tmp_path: Path, repo: Path) -> None:
    done = run_starter(tmp_path, str(tmp_path / "nope.md"), "--repo", str(repo))
    assert_user_error(done, "nope.md", "not found")


@pytest.mark.reliability(
    "malformed plan (a task id defined twice)",
    "starter.py: exit 2 naming file:line and the problem, nothing started",
)
def test_malformed_plan_names_file_and_line(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path, "# P\n\n### Task 1: A\n\nDo a.\n\n### Task 1: B\n\nDo b.\n")
    done = run_starter(tmp_path, str(plan), "--repo", str(repo))
    assert_user_error(done, f"{plan}:7:", "defined twice")


@pytest.mark.reliability(
    "--start-batch beyond the plan's batches",
    "starter.py: exit 2, 'no batch in the range', nothing started",
)
def test_batch_range_selecting_nothing(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--start-batch", "5")
    assert_user_error(done, "no batch in the range 5")


@pytest.mark.reliability(
    "--repo is not a git repository", "starter.py: exit 2 with the reason, nothing started"
)
def test_not_a_git_repo(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    done = run_starter(tmp_path, str(plan), "--repo", str(plain))
    assert_user_error(done, "is not a git repository")


@pytest.mark.reliability(
    "uncommitted changes in the target checkout",
    "starter.py: exit 2 naming the file and 'commit or stash', nothing started",
)
def test_dirty_tree_is_refused(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    (repo / "README.md").write_text("changed\n")
    done = run_starter(tmp_path, str(plan), "--repo", str(repo))
    assert_user_error(done, "README.md", "commit or stash")


@pytest.mark.reliability(
    "--target-branch that does not exist", "starter.py: exit 2 naming the branch, nothing started"
)
def test_unknown_target_branch(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--target-branch", "nope")
    assert_user_error(done, "nope")


@pytest.mark.parametrize(
    "target", ["refs/tags/v1.0", "v1.0", "refs/remotes/origin/main", "HEAD", "a commit"]
)
@pytest.mark.reliability(
    "--target-branch names a tag, a remote-tracking branch, HEAD or a commit",
    "starter.py: exit 2 saying only a branch can be merged into and how to make one; no "
    "session, state or ref created, the tag unmoved",
)
def test_target_that_is_not_a_branch(tmp_path: Path, repo: Path, target: str) -> None:
    git(repo, "tag", "v1.0")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    sha = git(repo, "rev-parse", "HEAD")
    target = sha if target == "a commit" else target
    refs = git(repo, "for-each-ref")
    plan = write_plan(tmp_path)

    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--target-branch", target)
    assert_user_error(
        done,
        f"--target-branch {target!r} is not a branch of {repo}",
        f"git branch <new-name> {target}",
    )
    assert "Temporal" not in done.stderr  # refused before connecting
    assert git(repo, "for-each-ref") == refs
    assert sorted(path.name for path in (tmp_path / "state").glob("*")) == []


@pytest.mark.reliability(
    "--concurrency 0",
    "starter.py: exit 2, '--concurrency 0 is not allowed; use a whole number from 1 to 64'",
)
def test_bad_concurrency(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--concurrency", "0")
    assert_user_error(done, "--concurrency 0 is not allowed; use a whole number of at least 1.")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--heartbeat-timeout", "nan"],
            "--heartbeat-timeout nan is not allowed; use a number of seconds from 1 to 3600.",
        ),
        (
            ["--agent-timeout", "inf"],
            "--agent-timeout inf is not allowed; use a number of seconds from 1 to 604800.",
        ),
        (
            ["--heartbeat-timeout", "1e-9"],
            "--heartbeat-timeout 1e-09 is not allowed; use a number of seconds of at least 1.",
        ),
        (
            ["--check-timeout", "1e300"],
            "--check-timeout 1e+300 is not allowed; use a number of seconds of at most 604800.",
        ),
        (
            ["--max-cost-usd", "-1"],
            "--max-cost-usd -1 is not allowed; use an amount of US dollars greater than 0.",
        ),
        (["--max-cost-usd", "nan"], "--max-cost-usd nan is not allowed; use an amount of US"),
        (["--concurrency", "65"], "--concurrency 65 is not allowed; use a whole number of at most"),
        (["--max-turns", "0"], "--max-turns 0 is not allowed; use a whole number of at least 1."),
        (["--review-rounds", "21"], "--review-rounds 21 is not allowed; use a whole number of at"),
        (
            ["--start-batch", str(2**63)],
            f"--start-batch {2**63} is not allowed; use a whole number of at most {2**63 - 1}.",
        ),
    ],
)
@pytest.mark.reliability(
    "numeric flag that is nan, inf, out of range or negative (timeouts, budget, batches)",
    "starter.py, real run and --dry-run: exit 2 naming the flag and its range, nothing started",
)
def test_numbers_out_of_range(tmp_path: Path, repo: Path, flags: list[str], message: str) -> None:
    plan = write_plan(tmp_path)
    assert_user_error(run_starter(tmp_path, str(plan), "--repo", str(repo), *flags), message)
    assert_user_error(
        run_starter(tmp_path, str(plan), "--repo", str(repo), "--dry-run", *flags), message
    )
    assert not (tmp_path / "state" / "temporal").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["concurrency", "s", "0"], "K 0 is not allowed; use a whole number of at least 1."),
        (
            ["resume", "s", "--max-cost-usd", "inf"],
            "--max-cost-usd inf is not allowed; use an amount of US dollars greater than 0",
        ),
    ],
)
@pytest.mark.reliability(
    "control with a number out of range (concurrency K, resume --max-cost-usd)",
    "starter.py: exit 2 with the range before any server is asked",
)
def test_control_numbers_out_of_range(tmp_path: Path, args: list[str], message: str) -> None:
    assert_user_error(run_starter(tmp_path, *args), message)


@pytest.mark.reliability(
    "plan path is a FIFO", "starter.py: exit 2 at once (never blocks reading), nothing started"
)
def test_plan_that_is_a_fifo(tmp_path: Path, repo: Path) -> None:
    fifo = tmp_path / "plan.md"
    os.mkfifo(fifo)
    done = run_starter(tmp_path, str(fifo), "--repo", str(repo))
    assert_user_error(done, f"{fifo}: is not a regular file (it is a FIFO (named pipe))")


@pytest.mark.reliability(
    "NUL byte in the plan", "starter.py --dry-run and run: exit 2 naming file:line"
)
def test_plan_with_a_nul_byte(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path, GOOD_PLAN.replace("one\n```", "o\0ne\n```"))
    for extra in (["--dry-run"], ["--repo", str(repo)]):
        assert_user_error(run_starter(tmp_path, str(plan), *extra), f"{plan}:9: ", "NUL byte")


BIG_TASK_PLAN = """\
# Big

### Task 1: Small

Write a.

### Task 2: Huge data

```
{data}
```
"""


@pytest.mark.reliability(
    "task body over the server's payload limit (Temporal's 2 MB blob limit)",
    "starter.py --dry-run and run: exit 2 naming the task's file:line and the limit, "
    "before the session would fail with PayloadsTooLarge",
)
def test_task_over_the_payload_limit(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path, BIG_TASK_PLAN.format(data="x" * 3_000_000))
    for extra in (["--dry-run"], []):
        done = run_starter(tmp_path, str(plan), "--repo", str(repo), *extra)
        assert_user_error(
            done,
            f"{plan}:7: Task 2's request to the server would be 2.8",
            "over the server's payload limit (1.75 MiB: Temporal's 2.00 MiB blob limit",
            "its body is 2.86 MiB",
        )
        assert "Task 1" not in done.stderr
    # Just under the limit: the dry run passes.
    plan = write_plan(tmp_path, BIG_TASK_PLAN.format(data="x" * 1_700_000))
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--dry-run", "--offline")
    assert done.returncode == 0, done.stderr


@pytest.mark.reliability(
    "reviewer prompt file of 3 MB in .autopilot.toml",
    "starter.py: exit 2 naming the prompt and the limit (it crashed the start with a "
    "traceback), nothing started",
)
def test_reviewer_prompt_over_the_payload_limit(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    (repo / "review.md").write_text("Check everything. " * 170_000)
    (repo / ".autopilot.toml").write_text('[review]\nreviewer_prompt_file = "review.md"\n')
    git(repo, "add", "review.md", ".autopilot.toml")
    git(repo, "commit", "-qm", "review prompt")
    done = run_starter(tmp_path, str(plan), "--repo", str(repo))
    assert_user_error(
        done,
        "the request that starts the session would be 2.9",
        "the reviewer prompt alone is 2.92 MiB (from reviewer_prompt or reviewer_prompt_file in"
        f" {repo / '.autopilot.toml'}): shorten it. Nothing was started.",
    )


@pytest.mark.reliability(
    "[workspace] copy names a file the repository tracks",
    "starter.py: exit 2 naming the config file, the key and the file, nothing started",
)
def test_a_tracked_copy_file_is_a_config_error(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    (repo / ".env.test").write_text("TRACKED=1\n")
    (repo / ".autopilot.toml").write_text('[workspace]\ncopy = [".env.test"]\n')
    git(repo, "add", ".env.test", ".autopilot.toml")
    git(repo, "commit", "-qm", "tracked env file")
    done = run_starter(tmp_path, str(plan), "--repo", str(repo))
    assert_user_error(
        done,
        f"{repo / '.autopilot.toml'}: [workspace] copy names .env.test, which the repository"
        " tracks (main)",
        "`git rm --cached`",
    )


OUTCOME_PLAN = """\
# Outcomes

## Batch 1: Mixed

### Task 1.1: Needs credentials

Write anything.

### Task 1.2: Builds on 1.1

**Depends on:** Task 1.1

Write more.

### Task 1.3: Already done

Nothing to do.

### Task 1.4: Works

**Files:**
- Create: `works.txt`

```
works
```

## Batch 2: After

**Dependencies:** Batch 1

### Task 2.1: Never runs

Write something.
"""


@pytest.mark.e2e
@pytest.mark.reliability(
    "a task fails, its dependant and the next batch cannot run, an agent changes nothing",
    "real session: failed / blocked / no_changes reported with reasons, the others merge, exit 1",
)
def test_outcomes_and_exit_code(tmp_path: Path, repo: Path) -> None:
    """A task whose attempts are used up fails, its dependant and the next batch are blocked,
    an agent that changes nothing is `no_changes`; the others still merge; exit 1."""
    responder = by_task(
        {
            "1.1": lambda _c: HttpError(529, "overloaded_error", "Overloaded"),
            "1.3": lambda _c: Text("Nothing needed: the work is already there."),
        },
        PlanFollower(),
    )
    plan = write_plan(tmp_path, OUTCOME_PLAN)
    with (
        ScriptedModel(responder) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(
            str(plan), "--repo", str(repo), "--concurrency", "2", "--max-attempts", "1"
        )
        assert done.returncode == 1, done.stdout + done.stderr
        out = done.stdout
        assert "Task 1.1 (Needs credentials): failed" in out
        assert "the model API failed" in out
        assert "Task 1.2 (Builds on 1.1): blocked — Task 1.1 did not merge" in out
        assert "Task 1.3 (Already done): no_changes" in out
        assert "Task 1.4 (Works): merged" in out
        assert "Task 2.1 (Never runs): blocked — batch dependency not met: Batch 1" in out
        assert (repo / "works.txt").read_text() == "works\n"
        # --max-attempts 1: exactly one request for task 1.1.
        assert len([c for c in model.requests if (c.task() or ("",))[0] == "1.1"]) == 1
        # Nothing ran for the blocked tasks; failed and empty tasks left no worktree.
        assert not [c for c in model.requests if (c.task() or ("",))[0] in ("1.2", "2.1")]
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
        session = done.stdout.split("Started session ", 1)[1].split()[0]
        assert [t for t, _ in gitops.list_merges(str(repo), "main", session)] == ["1.4"]


@pytest.mark.e2e
@pytest.mark.reliability(
    "Ctrl-C in the starter while the session runs",
    "SIGINT the real starter: exit 130, the session keeps running; the same command "
    "re-attaches; no work repeated",
)
def test_ctrl_c_detaches_and_the_same_command_reattaches(tmp_path: Path, repo: Path) -> None:
    hold = HoldFirst()
    plan = write_plan(tmp_path)
    with (
        ScriptedModel(hold) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        following = installation.spawn_starter(str(plan), "--repo", str(repo))
        model.wait_for(lambda c: c.turn == 0, timeout=120)
        following.send_signal(signal.SIGINT)
        out, err = following.communicate(timeout=60)
        assert following.returncode == 130, out + err
        assert "Detached; the session keeps running" in out
        assert f"Re-attach with: python starter.py {plan} --repo {repo}" in out
        assert "Traceback" not in err

        # The session is still running (its agent is held): the same command attaches.
        again = installation.spawn_starter(str(plan), "--repo", str(repo))
        assert again.stdout is not None
        first_line = again.stdout.readline()
        assert first_line.startswith("Attached to running session"), first_line
        hold.release.set()
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, out + err
        assert (repo / "one.txt").read_text() == "one\n"
        # One agent run (write, commit, summary): detaching and re-attaching repeated nothing.
        worker_turns = [c for c in model.requests if "StructuredOutput" not in c.tools]
        assert len(worker_turns) == 3


def test_detached_head_without_target_branch(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    git(repo, "checkout", "-q", "--detach")
    done = run_starter(tmp_path, str(plan), "--repo", str(repo))
    assert_user_error(done, "detached", "--target-branch")


def test_bare_repository(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path)
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    done = run_starter(tmp_path, str(plan), "--repo", str(bare))
    assert_user_error(done, "bare repository")


def test_missing_repo_path(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    done = run_starter(tmp_path, str(plan), "--repo", str(tmp_path / "nowhere"))
    assert_user_error(done, "nowhere", "does not exist")


def test_no_shell_anywhere_in_the_project() -> None:
    """The agent runs code; the orchestrator never hands a string to a shell."""
    offenders = []
    for folder in ("autopilot", "activities", "workflows", "bench", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            if "shell=True" in text or "os.system(" in text or "os.popen(" in text:
                offenders.append(str(path))
    for name in ("starter.py", "worker.py"):
        if "shell=True" in (ROOT / name).read_text():
            offenders.append(name)
    assert offenders == []


HOSTILE_PLAN = """\
# Hostile names

### Task 1: $(touch /tmp/pwned-autopilot) `rm -rf ~` ; ../../etc/passwd — ünïcödé & spaces

**Files:**
- Create: `safe.txt`

```
safe
```
"""


@pytest.mark.e2e
def test_hostile_titles_stay_text(tmp_path: Path, repo: Path) -> None:
    plan = write_plan(tmp_path, HOSTILE_PLAN)
    canary = Path("/tmp/pwned-autopilot")
    canary.unlink(missing_ok=True)
    with (
        ScriptedModel(PlanFollower()) as model,
        autopilot(tmp_path / "autopilot", model.env()) as installation,
    ):
        done = installation.starter(str(plan), "--repo", str(repo))
        assert done.returncode == 0, done.stdout + done.stderr
        assert not canary.exists()  # nothing was run by a shell
        assert (repo / "safe.txt").read_text() == "safe\n"
        subjects = git(repo, "log", "--format=%s", "main")
        assert "$(touch /tmp/pwned-autopilot) `rm -rf ~` ; ../../etc/passwd" in subjects
        assert "ünïcödé" in subjects
        # Every worktree stayed inside the state dir; branches are plain ref names.
        branches = git(repo, "branch", "--list", "autopilot/*", "--format=%(refname)")
        for branch in branches.splitlines():
            assert git(repo, "check-ref-format", branch, check=False) == ""
        assert list((tmp_path / "autopilot" / "state" / "worktrees").rglob("safe.txt")) == []


@pytest.mark.parametrize(
    ("plan_text", "where", "message"),
    [
        (
            "## Batch 1: A\n\n**Execution Mode:** docker\n\n### Task 1.1: a\n\nDo a.\n",
            3,
            "unknown Execution Mode 'docker' for Batch 1",
        ),
        (
            "# P\n\n**Execution Mode:** parallel, sequential\n\n### Task 1: a\n\nDo a.\n",
            3,
            "Execution Mode 'parallel, sequential' for the plan says both parallel and sequential",
        ),
        (
            f"## Batch {2**63}: A\n\n### Task 1.1: a\n\nDo a.\n",
            1,
            f"batch number {2**63} is too large; number batches from 0 to {2**63 - 1}",
        ),
        (
            "## Batch 1: A\n\n### Task 1.\u0661: a\n\nDo a.\n\n### Task 1.2: b\n\nDo b.\n",
            3,
            "heading 'Task 1.\u0661: a' looks like a task heading but cannot be read",
        ),
    ],
)
@pytest.mark.reliability(
    "plan with dagger, both how's, a batch number beyond 64 bits or non-ASCII digits",
    "starter.py --dry-run and run: exit 2 naming file:line, nothing started",
)
def test_plan_input_refused_with_file_and_line(
    tmp_path: Path, repo: Path, plan_text: str, where: int, message: str
) -> None:
    plan = write_plan(tmp_path, plan_text)
    for extra in (["--dry-run"], ["--repo", str(repo)]):
        assert_user_error(run_starter(tmp_path, str(plan), *extra), f"{plan}:{where}: {message}")
    assert not (tmp_path / "state" / "temporal").exists()


def test_a_plan_named_like_a_command_runs_with_run(tmp_path: Path) -> None:
    make_repo(tmp_path)
    plan = tmp_path / "status"
    plan.write_text(GOOD_PLAN)
    done = run_starter(tmp_path, "run", "status", "--dry-run", "--offline", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"Plan: {plan}" in done.stdout and "Dry run: nothing was started." in done.stdout


def test_container_mode_runs_four_agents_at_once_unless_told() -> None:
    def concurrency(*flags: str) -> int:
        return preflight.run_numbers(starter.parse_command_line(["plan.md", *flags])).concurrency

    assert concurrency() == 1
    assert concurrency("--execution-place", "dagger") == 4
    assert concurrency("--execution-place", "dagger", "--concurrency", "2") == 2
    assert concurrency("--mode", "dagger") == 4  # the flag's old name still works


def test_an_empty_image_is_refused(tmp_path: Path, repo: Path) -> None:
    plan = tmp_path / "plan.md"
    plan.write_text("### Task 1: a\n\nDo a.\n")
    done = run_starter(tmp_path, str(plan), "--repo", str(repo), "--dry-run", "--image", " ")
    assert done.returncode == 2 and "--image ' ' is not an image reference" in done.stderr
