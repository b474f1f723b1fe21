"""The command line of `python starter.py`: start (or re-attach to) an autonomous session and
follow it; look at and steer sessions. It lives in operate (starter.py only calls `main`) so
that the demo can run it in its own process without importing the script above it.

    python starter.py PLAN [--repo DIR] [--start-batch N] [--end-batch M] [--concurrency K]
                           [--target-branch B] [--execution-place local|dagger] [--detach]
                           [--dry-run [--offline] [--json]] ...
    python starter.py status|watch|list|pause|resume|cancel|skip|retry|concurrency|cleanup ...
    python starter.py run PLAN ...   (the same as the first form: for a plan named like a command)

Exit codes: 0 every requested task merged; 1 the session ended with tasks not merged (or
failed); 2 bad input (plan, repo, settings), nothing started; 130 detached with Ctrl-C, the
session keeps running. The checks are autopilot/operate/preflight.py's, the same for a run and
its --dry-run.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path
from typing import TextIO

from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy

from autopilot.git import CachesAside
from autopilot.infra import (
    CONFIG_FILE,
    MODES,
    ON_FAILURE,
    ConfigError,
    Settings,
    TemporalUnavailable,
    WorkerStartFailed,
    connect,
    ensure_worker,
    load_settings,
    printable,
)
from autopilot.models import (
    AgentSettings,
    SessionRequest,
    SessionStatus,
)
from autopilot.operate import commands
from autopilot.operate.dry_run_report import describe_session, dry_run_report
from autopilot.operate.follow import EXIT_MERGED, EXIT_NOT_MERGED, follow, report
from autopilot.operate.preflight import DEFAULT_CONCURRENCY, UserError, preflight
from autopilot.plan import PlanError, batch_numbers, batch_ref, describe_plan
from workflows.session import SessionWorkflow

EXIT_BAD_INPUT, EXIT_DETACHED = 2, 130
PROG = "python starter.py"
RUN_DESCRIPTION = "Run a markdown master plan with Claude Code, durably, on Temporal."
RUN_COMMAND = "run"  # the default command: `starter.py PLAN` is `starter.py run PLAN`
_AGENT = AgentSettings()
# The agent's numeric flags: (flag, type, default, metavar, help). One table, one loop.
_AGENT_FLAGS: tuple[tuple[str, type, float, str, str], ...] = (
    (
        "--agent-timeout",
        float,
        _AGENT.attempt_timeout_s,
        "S",
        "time limit of one agent attempt, seconds (%(default).0f)",
    ),
    (
        "--idle-timeout",
        float,
        _AGENT.idle_timeout_s,
        "S",
        "an agent silent this long is hung: stopped and retried (%(default).0f)",
    ),
    (
        "--heartbeat-timeout",
        float,
        _AGENT.heartbeat_timeout_s,
        "S",
        "a worker silent this long is gone: its task moves to another (%(default).0f)",
    ),
    (
        "--max-attempts",
        int,
        _AGENT.max_attempts,
        "N",
        "agent attempts per task before it fails (%(default)d)",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The `run` command's parser on its own (a plan and its flags)."""
    return _run_arguments(argparse.ArgumentParser(prog=PROG, description=RUN_DESCRIPTION))


def build_cli() -> tuple[argparse.ArgumentParser, set[str]]:
    """The whole command line, `run` (the default command) and the operator commands, and the
    commands' names."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_help = f"run a plan (the default command: `{PROG} PLAN` is `{PROG} run PLAN`)"
    _run_arguments(
        sub.add_parser(RUN_COMMAND, prog=PROG, help=run_help, description=RUN_DESCRIPTION)
    )
    commands.add_commands(sub)
    return parser, set(sub.choices)


def parse_command_line(argv: list[str]) -> argparse.Namespace:
    """argv, as `run` unless it starts with a command's name (so a plan file named like a
    command runs as `run status`)."""
    parser, names = build_cli()
    return parser.parse_args(argv if argv and argv[0] in names else [RUN_COMMAND, *argv])


def _run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("plan", type=Path, help="the plan file (markdown)")
    # A string, not a Path: Path("") would be "." and hide an empty --repo.
    parser.add_argument("--repo", help="target repository (.)")
    parser.add_argument(
        "--remote",
        metavar="URL",
        help="run on a git remote instead of a local repository (a path, file://, ssh://, "
        "user@host:path, git:// or https://): workers on any machine make the workspaces from "
        "it, push task branches there and merge there; your checkout is never touched",
    )
    parser.add_argument(
        "--forge",
        choices=["github"],
        help="land each task as a pull request on the forge that hosts --remote, merged "
        "through its checks and reviews (or [forge] kind in .autopilot.toml)",
    )
    parser.add_argument(
        "--start-batch",
        type=batch_ref,
        metavar="N",
        help="first batch to run: its number, or the id of a task in it (3.1.1)",
    )
    parser.add_argument(
        "--end-batch",
        type=batch_ref,
        metavar="M",
        help="last batch to run: its number, or the id of a task in it",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="K",
        help=f"agents at once ({DEFAULT_CONCURRENCY['local']}; with --execution-place dagger "
        f"{DEFAULT_CONCURRENCY['dagger']})",
    )
    parser.add_argument("--target-branch", metavar="B", help="branch to merge into (current)")
    parser.add_argument(
        "--execution-place",
        choices=["local", "dagger"],
        default="local",
        help="where the tasks' agents and checks run: their sandboxed workspace here (local) or "
        "a Dagger container (dagger); a batch's **Execution Mode:** place wins",
    )
    # The flag's name before the vocabulary settled on "execution place": still read.
    parser.add_argument(
        "--mode", dest="execution_place", choices=["local", "dagger"], help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--image", help="container mode's base image (default: [container] image, else pinned)"
    )
    parser.add_argument("--max-turns", type=int, default=_AGENT.max_turns)
    parser.add_argument("--model", help="model for the agent (the CLI's default)")
    for flag, kind, default, metavar, text in _AGENT_FLAGS:
        parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)
    parser.add_argument(
        "--max-cost-usd",
        type=float,
        metavar="USD",
        help="pause the session (not kill it) when its agents have cost this much",
    )
    parser.add_argument(
        "--detach", action="store_true", help="start (or find) the session and return at once"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="every task not merged yet starts from the target's head; the work on its branch "
        "from an earlier run is set aside (kept as autopilot/<session>/<task>--rejected-<sha>)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="make every check the run makes, print what the session would run; start nothing",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="with --dry-run: skip the checks that reach out (the remote, the container "
        "engine, Temporal); the report names each one skipped",
    )
    parser.add_argument(
        "--json", action="store_true", help="with --dry-run: the report as one JSON object"
    )
    review = parser.add_argument_group(
        "review", f"defaults come from {CONFIG_FILE} in the repo, then from these flags"
    )
    review.add_argument(
        "--review", choices=MODES, help="what must approve a task before it merges (both)"
    )
    review.add_argument(
        "--review-rounds", type=int, metavar="N", help="agent rounds per task, fixes included (3)"
    )
    review.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="CMD",
        help="a check command run in the task's workspace, e.g. 'pytest -q' (repeatable)",
    )
    review.add_argument("--check-timeout", type=float, metavar="S", help="per check (900)")
    review.add_argument("--reviewer-model", metavar="MODEL", help="model of the agent reviewer")
    review.add_argument(
        "--reviewer-prompt", metavar="TEXT", help="extra instructions for the agent reviewer"
    )
    review.add_argument(
        "--on-failure",
        choices=ON_FAILURE,
        help="when a task fails, is rejected or conflicts: go on, or pause the session",
    )
    review.add_argument(
        "--verify-merged",
        action=argparse.BooleanOptionalAction,
        help="check a branch merged with the target's new commits before it merges, so the "
        "target only moves to a checked tree (default: on; [review] verify_merged)",
    )
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="POST a JSON notification there when the session pauses, a task fails, is rejected"
        f" or conflicts, and when it ends (repeatable; added to [notify] in {CONFIG_FILE})",
    )
    parser.add_argument("--task-queue", help="task queue (default: AUTOPILOT_TASK_QUEUE)")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="do not start a background worker when none is polling",
    )
    return parser


async def dry_run(args: argparse.Namespace, settings: Settings, out: TextIO) -> None:
    """The run's checks, every one (those that reach out too, unless --offline); then what the
    session would run is printed, and nothing is started."""
    with CachesAside(settings.state_dir) as aside:
        accepted = await preflight(args, settings, aside, dry_run=True)
    report = dry_run_report(accepted, settings)
    if args.json:
        out.write(report.model_dump_json(indent=2) + "\n")
        return
    out.write(describe_plan(accepted.plan, accepted.selected, args.execution_place) + "\n\n")
    out.write(describe_session(report) + "\n")
    out.write("Dry run: nothing was started.\n")


async def start_or_attach(
    client: Client, request: SessionRequest, task_queue: str
) -> WorkflowHandle[SessionWorkflow, SessionStatus]:
    """Start the session, or return the running one with the same id (checked by
    `preflight`: its settings are the same)."""
    return await client.start_workflow(
        SessionWorkflow.run,
        request,
        id=request.session_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"{Path(request.plan_path).name} on {Path(request.repo).name}",
        static_details=(
            f"Plan `{request.plan_path}`, repo `{request.repo}`, "
            f"target branch `{request.target_branch}`"
        ),
    )


async def run(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    with CachesAside(settings.state_dir) as aside:
        accepted = await preflight(args, settings, aside, dry_run=False)
        request, client = accepted.request, accepted.client
        assert client is not None  # a run is never offline
        task_queue = args.task_queue or settings.task_queue
        if settings.embedded and not args.no_worker:
            log = await ensure_worker(client, settings, task_queue)
            if log is not None:
                out.write(f"Started a background worker (log: {log}).\n")
        handle = await start_or_attach(client, request, task_queue)
        aside.adopt()  # accepted: the remote's cache is the worker's now
    verb = "Attached to running" if accepted.running else "Started"
    out.write(f"{verb} session {request.session_id}\n")
    if accepted.concurrency_note:
        out.write(accepted.concurrency_note + "\n")
    if args.detach:
        out.write(f"Detached. Follow it with: {reattach_command(args.argv)}\n")
        return EXIT_MERGED
    try:
        final = await follow(client, handle, out)
    except WorkflowFailureError as err:
        out.write(f"Session {request.session_id} did not complete: {err.cause or err}\n")
        return EXIT_NOT_MERGED
    return report(final, settings.ui_url, out, rerun=reattach_command(args.argv))


def reattach_command(argv: list[str]) -> str:
    """The same command without --detach: it finds the session by its id and follows it."""
    return "python starter.py " + " ".join(shlex.quote(a) for a in argv if a != "--detach")


async def operate(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    client = await connect(settings)
    return await commands.run_command(args, client, settings, out)


def _resolve_batch_ids(args: argparse.Namespace) -> None:
    """--start-batch/--end-batch given as a task id: the number of the batch holding it."""
    try:
        args.start_batch, args.end_batch = batch_numbers(
            args.plan.expanduser(), args.start_batch, args.end_batch
        )
    except PlanError as err:
        raise UserError(str(err)) from err


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_command_line(argv)
    if args.command == commands.TEMPORAL_COMMAND:
        try:
            return commands.run_temporal_cli(args.cli_args, load_settings())
        except (ConfigError, TemporalUnavailable) as err:
            print(f"error: {printable(str(err), keep=chr(10))}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.command != RUN_COMMAND:
        try:
            commands.check_numbers(args)
            return asyncio.run(operate(args, load_settings(), out))
        except (commands.CommandError, ConfigError, TemporalUnavailable) as err:
            print(f"error: {printable(str(err), keep=chr(10))}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            return EXIT_DETACHED
    args.argv = argv
    try:
        _resolve_batch_ids(args)
        settings = load_settings()
        if args.dry_run:
            asyncio.run(dry_run(args, settings, out))
            return EXIT_MERGED
        return asyncio.run(run(args, settings, out))
    except (UserError, ConfigError, TemporalUnavailable, WorkerStartFailed) as err:
        print(f"error: {printable(str(err), keep=chr(10))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        # asyncio.run cancelled the follow loop; the session itself runs on in Temporal.
        out.write(
            "\nDetached; the session keeps running on the worker. "
            f"Re-attach with: {reattach_command(argv)}\n"
        )
        return EXIT_DETACHED
