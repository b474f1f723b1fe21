"""`./dev demo`: the whole pipeline on the shipped example plan, against a scratch repository.

Real parts throughout: the embedded Temporal server, a worker, the starter, task workspaces and
the pinned Claude Code CLI. The model behind the CLI is the real one when this machine has an
Anthropic key or a Claude login, and otherwise the project's scripted stand-in
(autopilot_testing/scripted_model.py), which writes each task's code block to the file the task
names. The screen says which.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from autopilot.agent import PROJECT_ROOT
from autopilot.infra import (
    ensure_embedded_server,
    exit_now,
    load_settings,
    open_private,
    stop_worker,
    worker_environment,
)
from autopilot.operate import command_line
from autopilot_testing import PlanFollower, ScriptedModel

EXAMPLE_PLAN = PROJECT_ROOT / "examples" / "hello-plan.md"
WORKER_GRACE_S = 30.0  # the demo's worker finishes its runs or is killed after this
CREDENTIAL_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


def has_real_credentials() -> bool:
    if any(os.environ.get(name) for name in CREDENTIAL_VARS):
        return True
    config_dir = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    return (config_dir / ".credentials.json").is_file()


def demo_config(python: str) -> str:
    """The scratch repository's `.autopilot.toml`: each task's workspace gets a virtualenv
    (from the setup's cache after the first task), and the check runs with it, so it passes
    only in a workspace the setup made ready."""
    setup = json.dumps([f"{shlex.quote(python)} -m venv --without-pip .venv"])
    return (
        "[review]\n"
        'checks = [".venv/bin/python -m compileall -q -x [.]venv ."]\n'
        "\n"
        "[workspace]\n"
        f"setup = {setup}\n"
        'cache_dirs = [".venv"]\n'
    )


def make_scratch_repo(parent: Path) -> Path:
    repo = parent / "repo"
    repo.mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "CC3 Autopilot demo")
    git("config", "user.email", "demo@autopilot.invalid")
    (repo / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")
    (repo / ".autopilot.toml").write_text(demo_config(sys.executable))
    git("add", "-A")
    git("commit", "-q", "-m", "Scratch repository for the CC3 Autopilot demo")
    return repo


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open_private(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "worker.py")],
            env=worker_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__)
    parser.add_argument(
        "--scripted",
        action="store_true",
        help="use the scripted stand-in model even when real credentials are present",
    )
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)

    settings = load_settings()
    run_dir = settings.path("demo", time.strftime("%Y%m%d-%H%M%S"), "x").parent
    repo = make_scratch_repo(run_dir)
    task_queue = f"autopilot-demo-{os.getpid()}"
    env = dict(os.environ, AUTOPILOT_TASK_QUEUE=task_queue, PYTHONUNBUFFERED="1")

    print("CC3 Autopilot demo")
    print(f"  plan:       {EXAMPLE_PLAN.relative_to(PROJECT_ROOT)} (2 batches, 5 tasks)")
    print(f"  repository: {repo} (a fresh scratch repo)")
    print(f"  state:      {settings.state_dir} (Temporal database, workspaces, transcripts, logs)")

    with ExitStack() as cleanup:
        if has_real_credentials() and not args.scripted:
            print("  model:      the REAL model, through your Anthropic key / Claude login")
        else:
            model = cleanup.enter_context(ScriptedModel(PlanFollower()))
            env.update(model.env())
            env["CLAUDE_CONFIG_DIR"] = str(run_dir / "claude-config")
            print(
                "  model:      no Anthropic key or Claude login found, so the real `claude` CLI\n"
                "              talks to the project's SCRIPTED STAND-IN model\n"
                "              (autopilot_testing/scripted_model.py), which writes each task's\n"
                "              code block to the file it names."
            )
        print()
        if settings.embedded and ensure_embedded_server(settings):
            print(f"Started the embedded Temporal server ({settings.temporal_address}).")
        worker = start_worker(env, settings.path("logs", f"demo-worker-{os.getpid()}.log"))
        cleanup.callback(stop_worker, worker, WORKER_GRACE_S)
        os.environ.update(env)  # the starter below runs in this process
        code = command_line.main(
            [
                str(EXAMPLE_PLAN),
                "--repo",
                str(repo),
                "--concurrency",
                str(args.concurrency),
                "--task-queue",
                task_queue,
                "--no-worker",
            ]
        )

    print("\nWhat landed on the scratch repository's main branch:")
    log = subprocess.run(
        ["git", "-C", str(repo), "log", "--graph", "--format=%h %s", "main"],
        capture_output=True,
        text=True,
    )
    print(log.stdout)
    python = sys.executable
    print("Run your own plan:")
    print(f"  {python} starter.py path/to/plan.md --repo /path/to/your/repo --dry-run")
    print(f"  {python} starter.py path/to/plan.md --repo /path/to/your/repo --concurrency 2")
    if settings.ui_url:
        print(f"Temporal Web UI (the server keeps running): {settings.ui_url}")
    return code


if __name__ == "__main__":
    exit_now(main())
