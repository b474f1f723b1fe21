"""Start (or re-attach to) an autonomous session and follow it; look at and steer sessions.

    python starter.py PLAN [--repo DIR] [--start-batch N] [--end-batch M] [--concurrency K]
                           [--target-branch B] [--mode local|dagger] [--detach] [--dry-run] ...
    python starter.py status|watch|list|pause|resume|cancel|skip|retry|concurrency|cleanup ...
    python starter.py run PLAN ...   (the same as the first form: for a plan named like a command)

Exit codes: 0 every requested task merged; 1 the session ended with tasks not merged (or
failed); 2 bad input (plan, repo, settings), nothing started; 130 detached with Ctrl-C, the
session keeps running.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from autopilot import git as gitops
from autopilot.agent.container_access import EngineUnavailable, engine_preflight
from autopilot.git.remote import RemoteWorkspaces
from autopilot.git.remote_check import check_remote
from autopilot.git.remote_url import RemoteError, is_remote
from autopilot.infra.config import ConfigError, Settings, load_settings
from autopilot.infra.options import RUN_RANGES, OptionError, RunNumbers
from autopilot.infra.payload_size import PayloadTooLarge, check_requests
from autopilot.infra.process_exit import exit_now
from autopilot.infra.remote_repo_config import load_remote_config
from autopilot.infra.repo_config import (
    CONFIG_FILE,
    MODES,
    ON_FAILURE,
    RepoConfigError,
    RepoReviewConfig,
    load_repo_config,
    merge_notify_settings,
    merge_review_settings,
)
from autopilot.infra.temporal_connection import TemporalUnavailable, connect
from autopilot.infra.worker_process import WorkerStartFailed, ensure_worker
from autopilot.models import (
    AgentSettings,
    ContainerSettings,
    Plan,
    SessionRequest,
    SessionStatus,
    place_of,
)
from autopilot.operate import commands
from autopilot.operate.follow import EXIT_MERGED, EXIT_NOT_MERGED, follow, report
from autopilot.operate.session_id import session_id
from autopilot.operate.session_settings import differences, refusal
from autopilot.plan.parser import PlanError, load_plan, select_batches
from autopilot.plan.report import describe_plan
from autopilot.plan.safe_text import printable
from autopilot.setup.copied import CopyProblem, check_untracked
from workflows.session import SessionWorkflow

EXIT_BAD_INPUT, EXIT_DETACHED = 2, 130
PROG = "python starter.py"
STATUS_QUERY_TIMEOUT = timedelta(seconds=5)


class UserError(Exception):
    """Bad input: printed as is, exit code 2, nothing started."""


# The review flags' argparse names, and merge_review_settings' (the [review] keys).
REVIEW_FLAGS = {
    "review": "mode",
    "review_rounds": "rounds",
    "check": "checks",
    "check_timeout": "check_timeout_s",
    "reviewer_model": "reviewer_model",
    "reviewer_prompt": "reviewer_prompt",
    "on_failure": "on_failure",
    "verify_merged": "verify_merged",
}
RUN_DESCRIPTION = "Run a markdown master plan with Claude Code, durably, on Temporal."
RUN_COMMAND = "run"  # the default command: `starter.py PLAN` is `starter.py run PLAN`
_AGENT = AgentSettings()
# Agents at once when --concurrency is not given: containers take the agents' load off the
# worker's own cores.
DEFAULT_CONCURRENCY = {"local": 1, "dagger": 4}
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
    parser.add_argument("--repo", type=Path, help="target repository (.)")
    parser.add_argument(
        "--remote",
        metavar="URL",
        help="run on a git remote instead of a local repository (a path, file://, ssh://, "
        "user@host:path, git:// or https://): workers on any machine make the workspaces from "
        "it, push task branches there and merge there; your checkout is never touched",
    )
    parser.add_argument("--start-batch", type=int, metavar="N", help="first batch to run")
    parser.add_argument("--end-batch", type=int, metavar="M", help="last batch to run")
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="K",
        help=f"agents at once ({DEFAULT_CONCURRENCY['local']}; with --mode dagger "
        f"{DEFAULT_CONCURRENCY['dagger']})",
    )
    parser.add_argument("--target-branch", metavar="B", help="branch to merge into (current)")
    parser.add_argument(
        "--mode",
        choices=["local", "dagger"],
        default="local",
        help="where the tasks' agents and checks run: their sandboxed workspace here (local) or "
        "a Dagger container (dagger); a batch's **Execution Mode:** place wins",
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
        "--dry-run", action="store_true", help="print what the plan says; start nothing"
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
        help="a check command run in the task's worktree, e.g. 'pytest -q' (repeatable)",
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


def validate(args: argparse.Namespace, settings: Settings) -> SessionRequest:
    """Everything checked locally before anything starts."""
    numbers = _numbers(args)
    plan_path = args.plan.expanduser().resolve()
    _, selected = _plan(plan_path, args)
    if args.remote is not None:
        request = _remote_request(args, numbers, plan_path, settings)
    else:
        try:
            repo = gitops.check_repo(str(_repo_arg(args).expanduser()), args.target_branch)
        except gitops.RepoError as err:
            raise UserError(str(err)) from err
        repo_path = Path(repo.path)
        file_cfg = _repo_config(lambda: load_repo_config(repo_path))
        request = _request(
            args, numbers, repo_path, plan_path, repo.target_branch, settings, file_cfg
        )
        try:
            check_untracked(repo.path, repo.target_branch, request.workspace)
        except CopyProblem as err:
            raise UserError(f"{repo_path / CONFIG_FILE}: {err}") from err
    _check_payloads(args, request, selected)
    _check_engine(request, selected)
    return request


def _repo_arg(args: argparse.Namespace) -> Path:
    return Path(".") if args.repo is None else Path(args.repo)


def _remote_request(
    args: argparse.Namespace, numbers: RunNumbers, plan_path: Path, settings: Settings
) -> SessionRequest:
    """Remote mode: the remote answers, has the target branch and takes pushes (checked
    without changing it); its .autopilot.toml is read from that branch; the plan goes along in
    the request, as the workers may be on machines without the starter's disk."""
    if args.repo is not None:
        raise UserError(
            "--repo and --remote name two repositories; give --remote alone for a remote "
            "session (your checkout is not used), or --repo alone for a local one"
        )
    try:
        checked = check_remote(args.remote, args.target_branch)
    except RemoteError as err:
        raise UserError(f"--remote: {err}") from err
    remote = RemoteWorkspaces(settings.state_dir)
    file_cfg = _repo_config(lambda: load_remote_config(remote, checked.url, checked.target_branch))
    if file_cfg.workspace.copy_files:
        raise UserError(
            f"{file_cfg.source}: [workspace] copy names files from your checkout "
            f"({', '.join(file_cfg.workspace.copy_files)}), and a remote session has none (its "
            "workers may be on other machines): remove `copy` from the target branch's "
            f"{CONFIG_FILE}, or run the session with --repo"
        )
    request = _request(
        args, numbers, checked.url, plan_path, checked.target_branch, settings, file_cfg
    )
    return request.model_copy(
        update={"state_dir": "", "plan_text": plan_path.read_bytes().decode("utf-8")}
    )


def _repo_config(read: Callable[[], RepoReviewConfig]) -> RepoReviewConfig:
    try:
        return read()
    except (RepoConfigError, gitops.GitError) as err:
        raise UserError(str(err)) from err


def _check_engine(request: SessionRequest, selected: Plan) -> None:
    """Container mode needs a Dagger engine: without one, nothing starts."""
    dagger_batches = [b.number for b in selected.batches if place_of(request, b) == "dagger"]
    if not dagger_batches:
        return
    try:
        engine_preflight(os.environ)
    except EngineUnavailable as err:
        which = (
            "--mode dagger"
            if request.mode == "dagger"
            else ("**Execution Mode:** dagger in batch " + ", ".join(map(str, dagger_batches)))
        )
        raise UserError(f"{which} runs tasks in containers, but {err}") from err


def _numbers(args: argparse.Namespace) -> RunNumbers:
    flags = {name: getattr(args, name) for name in RUN_RANGES}
    if flags["concurrency"] is None:
        flags["concurrency"] = DEFAULT_CONCURRENCY[args.mode]
    try:
        return RunNumbers.from_flags(flags)
    except OptionError as err:
        raise UserError(str(err)) from err


def _plan(plan_path: Path, args: argparse.Namespace) -> tuple[Plan, Plan]:
    """The whole plan and the batches the run selects; the session parses its own snapshot."""
    try:
        plan = load_plan(plan_path)
        return plan, select_batches(plan, args.start_batch, args.end_batch)
    except PlanError as err:
        raise UserError(str(err)) from err


def _request(
    args: argparse.Namespace,
    numbers: RunNumbers,
    repo: Path | str,
    plan_path: Path,
    target_branch: str,
    settings: Settings | None,
    file_cfg: RepoReviewConfig,
) -> SessionRequest:
    """The session's input (`repo`: a local repository's path, or a remote's URL). Without
    settings (a dry run): no state dir, as nothing starts."""
    try:
        flags = {key: getattr(args, dest) for dest, key in REVIEW_FLAGS.items()}
        review = merge_review_settings(file_cfg, **flags)
        notify = merge_notify_settings(file_cfg, args.notify)
    except RepoConfigError as err:
        raise UserError(str(err)) from err
    agent = numbers.agent_settings(args.model)
    agent.network = file_cfg.network
    return SessionRequest(
        session_id=session_id(repo, plan_path, args.start_batch, args.end_batch),
        repo=str(repo),
        plan_path=str(plan_path),
        target_branch=target_branch,
        start_batch=numbers.start_batch,
        end_batch=numbers.end_batch,
        concurrency=numbers.concurrency,
        mode=args.mode,
        container=_container(file_cfg.container, args.image),
        state_dir=str(settings.state_dir) if settings else "",
        agent=agent,
        review=review,
        workspace=file_cfg.workspace,
        max_cost_usd=numbers.max_cost_usd,
        notify=notify,
    )


def _container(configured: ContainerSettings, image: str | None) -> ContainerSettings:
    """[container] of .autopilot.toml, with --image over its image."""
    if image is None:
        return configured
    if not image.strip() or image != image.strip():
        raise UserError(f"--image {image!r} is not an image reference; give e.g. node:22-slim")
    return configured.model_copy(update={"image": image})


def _check_payloads(args: argparse.Namespace, request: SessionRequest, selected: Plan) -> None:
    where = (
        f"the remote's {CONFIG_FILE}"
        if is_remote(request.repo)
        else str(Path(request.repo) / CONFIG_FILE)
    )
    source = (
        "--reviewer-prompt"
        if args.reviewer_prompt is not None
        else f"reviewer_prompt or reviewer_prompt_file in {where}"
    )
    try:
        check_requests(request, selected, source)
    except (PayloadTooLarge, PlanError) as err:
        raise UserError(str(err)) from err


def dry_run(args: argparse.Namespace, out: TextIO) -> None:
    numbers = _numbers(args)
    plan_path = args.plan.expanduser().resolve()
    plan, selected = _plan(plan_path, args)
    # The repo is not checked (nothing starts), but its .autopilot.toml is read if it has one:
    # the review settings travel in every task's request, whose size is checked here too.
    # A remote is not contacted: its settings are not read.
    if args.remote is not None:
        repo: Path | str = args.remote
        file_cfg = RepoReviewConfig()
    else:
        repo = _repo_arg(args).expanduser().resolve()
        file_cfg = _repo_config(lambda: load_repo_config(Path(repo)))
    request = _request(args, numbers, repo, plan_path, args.target_branch or "", None, file_cfg)
    _check_payloads(args, request, selected)
    out.write(describe_plan(plan, selected, args.mode) + "\n")
    out.write("Dry run: nothing was started.\n")


async def start_or_attach(
    client: Client, request: SessionRequest, task_queue: str
) -> tuple[WorkflowHandle[SessionWorkflow, SessionStatus], bool, str]:
    """Start the session, or return the running one with the same id (True: attached) and a
    note when this command asks for another concurrency. A running session with other
    settings that cannot change: UserError, nothing started."""
    handle = commands.session_handle(client, request.session_id)
    try:
        running = (await handle.describe()).status.name == "RUNNING"  # type: ignore[union-attr]
    except RPCError:
        running = False
    note = ""
    if running:
        found = differences(await running_request(client, handle), request)
        if found.fixed:
            raise UserError(refusal(request.session_id, found.fixed))
        note = found.concurrency_note
    handle = await client.start_workflow(
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
    return handle, running, note


async def running_request(
    client: Client, handle: WorkflowHandle[SessionWorkflow, SessionStatus]
) -> SessionRequest:
    """The running session's settings: the input of its current run (from the server, no
    worker needed), with the live concurrency and budget when a worker answers in time."""
    request: SessionRequest | None = None
    async for event in handle.fetch_history_events():
        started = event.workflow_execution_started_event_attributes
        [request] = await client.data_converter.decode(started.input.payloads, [SessionRequest])
        break
    if request is None:
        raise UserError(f"session {handle.id} has no history yet; run the command again")
    try:
        status = await handle.query(SessionWorkflow.status, rpc_timeout=STATUS_QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError):
        return request  # no worker answers now: the settings it started with
    return request.model_copy(
        update={"concurrency": status.concurrency, "max_cost_usd": status.max_cost_usd}
    )


async def run(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    request = validate(args, settings)
    task_queue = args.task_queue or settings.task_queue
    client = await connect(settings)
    if settings.embedded and not args.no_worker:
        log = await ensure_worker(client, settings, task_queue)
        if log is not None:
            out.write(f"Started a background worker (log: {log}).\n")
    handle, attached, note = await start_or_attach(client, request, task_queue)
    verb = "Attached to running" if attached else "Started"
    out.write(f"{verb} session {request.session_id}\n")
    if note:
        out.write(note + "\n")
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
        if args.dry_run:
            dry_run(args, out)
            return EXIT_MERGED
        settings = load_settings()
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


if __name__ == "__main__":
    exit_now(main())
