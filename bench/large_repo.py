"""A task's git steps on a large repository: how long preparing its workspace (a repository of
its own reading the user's objects through alternates), committing and bringing the work
back, merging into a checked-out target and removing the workspace take, beside a plain
`git worktree add` of the same tree (what a workspace cost before) measured in the same run.

    .venv/bin/python -m bench.large_repo                      # 10,000 files, 2,000 commits
    .venv/bin/python -m bench.large_repo --files 2000 --commits 200 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from autopilot import git as gitops
from autopilot.models import Workspace

SESSION = "bench-large"


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(cwd), *args], input=stdin, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


def make_repo(path: Path, files: int, commits: int) -> None:
    """`files` files in folders of 100, then `commits` more commits each changing one file;
    written with `git fast-import` (seconds, not minutes)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Bench")
    git(path, "config", "user.email", "bench@example.com")
    stream: list[bytes] = []

    def blob(text: str) -> bytes:
        data = text.encode()
        return b"data %d\n%s\n" % (len(data), data)

    stamp = "1700000000 +0000"
    stream.append(b"commit refs/heads/main\n")
    stream.append(f"committer Bench <bench@example.com> {stamp}\n".encode())
    stream.append(blob("the tree"))
    for index in range(files):
        name = f"src/d{index // 100:03d}/f{index:05d}.txt"
        stream.append(f"M 644 inline {name}\n".encode() + blob(f"file {index}\n" * 20))
    for number in range(commits):
        stream.append(b"commit refs/heads/main\n")
        stream.append(f"committer Bench <bench@example.com> {stamp}\n".encode())
        stream.append(blob(f"change {number}"))
        index = number % files
        name = f"src/d{index // 100:03d}/f{index:05d}.txt"
        stream.append(f"M 644 inline {name}\n".encode() + blob(f"changed {number}\n"))
    git(path, "fast-import", "--quiet", stdin=b"".join(stream))
    git(path, "checkout", "-q", "-f", "main")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def one_task(repo: Path, state: Path, task: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    workspace: list[Workspace] = []
    figures["prepare"] = timed(
        lambda: workspace.append(gitops.prepare_workspace(repo, "main", state, SESSION, task))
    )
    ws = workspace[0]
    Path(ws.path, f"task-{task}.txt").write_text("the task's work\n")
    figures["commit and bring back"] = timed(
        lambda: gitops.commit_changes(ws.path, ws.base_sha, SESSION, task, "work", repo=repo)
    )
    figures["merge"] = timed(
        lambda: gitops.merge_task(repo, "main", ws.branch, SESSION, task, f"Merge {task}")
    )
    figures["remove"] = timed(lambda: gitops.remove_workspace(repo, ws.path))
    return figures


def worktree_add(repo: Path, folder: Path, task: str) -> float:
    """What a task's workspace cost before: a linked worktree of the same tree."""
    path = folder / f"wt-{task}"
    seconds = timed(lambda: git(repo, "worktree", "add", "-q", "--detach", str(path), "main"))
    git(repo, "worktree", "remove", "--force", str(path))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.large_repo", description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5, help="tasks, one after the other")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-large-") as scratch:
        root = Path(scratch)
        repo = root / "repo"
        made = timed(lambda: make_repo(repo, args.files, args.commits))
        count = len(git(repo, "ls-files").splitlines())
        depth = git(repo, "rev-list", "--count", "main")
        print(f"repository: {count:,} files, {depth} commits, made in {made:.1f} s")
        runs = [one_task(repo, root / "state", str(n)) for n in range(1, args.runs + 1)]
        baseline = [worktree_add(repo, root, str(n)) for n in range(1, args.runs + 1)]
        print(f"median of {args.runs} tasks, one after the other:")
        for step in runs[0]:
            values = [run[step] for run in runs]
            print(f"  {step:<22} {statistics.median(values) * 1000:8.0f} ms")
        prepare = statistics.median(run["prepare"] for run in runs)
        before = statistics.median(baseline)
        print(
            f"  {'git worktree add':<22} {before * 1000:8.0f} ms  (what a workspace cost "
            f"before; prepare / this: {prepare / before:.2f})"
        )


if __name__ == "__main__":
    main()
