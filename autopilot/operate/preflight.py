"""The starter's checks: one function, `preflight`, that a run and its `--dry-run` both call.
A dry run differs only in starting nothing afterwards.

Every check a run makes before it starts a session is here, those that reach out included:
the remote answers and takes pushes, the container engine is there, Temporal answers, a
running session of the same id has the same settings. `--offline` (a dry run only) skips
those that reach out, and the report names each one skipped. The remote caches made while
checking are made aside (autopilot/git/caches_aside.py): a refused run leaves the state dir as
it found it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from autopilot import git as gitops
from autopilot.agent import EngineUnavailable, engine_preflight
from autopilot.git import CachesAside, RemoteError, check_remote, remote_url
from autopilot.infra import (
    CONFIG_FILE,
    RUN_RANGES,
    ContainerValueError,
    OptionError,
    RepoConfigError,
    RepoReviewConfig,
    RunNumbers,
    Settings,
    allows_private,
    check_image,
    connect,
    embedded_server_answers,
    merge_notify_settings,
    merge_review_settings,
    printable,
    temporal_cli,
)
from autopilot.models import ContainerSettings, Plan, SessionRequest, SessionStatus, place_of
from autopilot.operate import commands
from autopilot.operate.committed_config import load_session_config
from autopilot.operate.forge_check import (
    ForgeClient,
    ForgeProblem,
    check_forge,
    forge_settings,
    github_client,
)
from autopilot.operate.remote_repo_config import load_remote_config
from autopilot.operate.session_id import session_id
from autopilot.operate.session_settings import differences, refusal
from autopilot.plan import PayloadTooLarge, PlanError, check_requests, load_plan, select_batches
from autopilot.setup import CopyProblem, check_sources, check_untracked
from autopilot.steps.site import decide
from workflows.session import SessionWorkflow

# Agents at once when --concurrency is not given: containers take the agents' load off the
# worker's own cores.
DEFAULT_CONCURRENCY = {"local": 1, "dagger": 4}
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
STATUS_QUERY_TIMEOUT = timedelta(seconds=5)
# Far over any real URL: a longer --remote is a mistake, and is not echoed whole.
REMOTE_LENGTH_LIMIT = 2048
_SHOWN_REMOTE = 80
# What `--offline` skips, as the dry run names them.
SKIPPED_REMOTE = "the remote's answer, push rights and .autopilot.toml"
SKIPPED_ENGINE = "the container engine's preflight"
SKIPPED_TEMPORAL = "the Temporal connection, and a running session's settings"
SKIPPED_FORGE = "the forge's answer to the token (push rights, the target branch)"


class UserError(Exception):
    """Bad input: printed as is, exit code 2, nothing started."""


@dataclass
class Accepted:
    """What the checks found: the session's request, the plan, and what was not checked."""

    request: SessionRequest
    plan: Plan
    selected: Plan
    client: Client | None = None
    engine: str = ""  # which container engine the runs will use ("" when none is needed)
    container_batches: list[int] = field(default_factory=list)  # batches run in containers
    temporal: str = ""  # what the Temporal check found
    running: bool = False  # a session with this id runs (the run attaches to it)
    concurrency_note: str = ""
    skipped: list[str] = field(default_factory=list)


async def preflight(
    args: argparse.Namespace, settings: Settings, aside: CachesAside, *, dry_run: bool
) -> Accepted:
    """Every check of a run; UserError (or TemporalUnavailable) on the first that fails.
    `args.offline` (a dry run's) skips the checks that reach out."""
    offline: bool = args.offline
    if offline and not dry_run:
        raise UserError("--offline is for --dry-run only: a run needs the checks it skips")
    if args.json and not dry_run:
        raise UserError("--json is for --dry-run only: a run prints its progress as text")
    accepted = validate_session(args, settings, aside, offline=offline)
    if offline:
        accepted.skipped.append(SKIPPED_TEMPORAL)
        return accepted
    if dry_run and settings.embedded and not embedded_server_answers(settings):
        temporal_cli()  # TemporalUnavailable when the run could not start the server either
        accepted.temporal = (
            f"the embedded server at {settings.temporal_address} is not running; the run starts it"
        )
        return accepted
    client = await connect(settings)
    accepted.client = client
    accepted.temporal = f"answers at {settings.temporal_address}"
    accepted.running, accepted.concurrency_note = await running_session(client, accepted.request)
    return accepted


def validate(args: argparse.Namespace, settings: Settings) -> SessionRequest:
    """The session's request, every check but Temporal's made (remote caches made aside and
    dropped): what a script needs to build the request a run would start."""
    with CachesAside(settings.state_dir) as aside:
        return validate_session(args, settings, aside, offline=False).request


def validate_session(
    args: argparse.Namespace,
    settings: Settings,
    aside: CachesAside,
    *,
    offline: bool,
    forge_client: Callable[[], ForgeClient] = github_client,
) -> Accepted:
    """Everything but Temporal: the flags, the plan, the repository or remote, its
    .autopilot.toml, the forge, the payload sizes and the container engine."""
    numbers = run_numbers(args)
    plan_path = args.plan.expanduser().resolve()
    plan, selected = _plan(plan_path, args)
    _check_target_branch(args.target_branch)
    skipped: list[str] = []
    if args.remote is not None:
        request = _remote_request(args, numbers, plan_path, settings, aside, offline=offline)
        if offline:
            skipped.append(SKIPPED_REMOTE)
    else:
        request = _local_request(args, numbers, plan_path, settings)
    if request.forge.active:
        request = _with_forge(request, forge_client(), settings, offline=offline)
        if offline:
            skipped.append(SKIPPED_FORGE)
    _check_payloads(args, request, selected)
    in_containers = _dagger_batches(request, selected)
    engine = ""
    if offline:
        if in_containers:
            skipped.append(SKIPPED_ENGINE)
    else:
        engine = _check_engine(request, in_containers)
    return Accepted(
        request, plan, selected, engine=engine, container_batches=in_containers, skipped=skipped
    )


async def running_session(client: Client, request: SessionRequest) -> tuple[bool, str]:
    """Whether a session with the request's id runs, and a note when this command asks it
    for another concurrency. Other settings that cannot change: UserError."""
    handle = commands.session_handle(client, request.session_id)
    try:
        running = (await handle.describe()).status.name == "RUNNING"  # type: ignore[union-attr]
    except RPCError:
        return False, ""
    if not running:
        return False, ""
    found = differences(await running_request(client, handle), request)
    if found.fixed:
        raise UserError(refusal(request.session_id, found.fixed))
    return True, found.concurrency_note


async def running_request(
    client: Client, handle: WorkflowHandle[SessionWorkflow, SessionStatus]
) -> SessionRequest:
    """The running session's settings: the ones it starts its next tasks with (moved by
    `resume --reload-config`) when a worker answers in time, else the input of its current
    run (from the server, no worker needed); with the live concurrency and budget."""
    request: SessionRequest | None = None
    async for event in handle.fetch_history_events():
        started = event.workflow_execution_started_event_attributes
        [request] = await client.data_converter.decode(started.input.payloads, [SessionRequest])
        break
    if request is None:
        raise UserError(f"session {handle.id} has no history yet; run the command again")
    try:
        request = await handle.query(SessionWorkflow.settings, rpc_timeout=STATUS_QUERY_TIMEOUT)
        status = await handle.query(SessionWorkflow.status, rpc_timeout=STATUS_QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError):
        return request  # no worker answers now: the settings it started with
    return request.model_copy(
        update={"concurrency": status.concurrency, "max_cost_usd": status.max_cost_usd}
    )


def _check_target_branch(given: str | None) -> None:
    if given is not None and not given.strip():
        raise UserError(
            "--target-branch is empty; give the branch to merge into (e.g. main), or leave "
            "the flag out to merge into the repository's current branch"
        )


def _repo_arg(args: argparse.Namespace) -> Path:
    if args.repo is None:
        return Path(".")
    if not str(args.repo).strip():
        raise UserError(
            "--repo is empty; give the path of your git repository (--repo . for the current "
            "directory, or leave the flag out)"
        )
    if printable(args.repo) != args.repo:
        # Every message names the repository: a newline in its name would forge a line.
        raise UserError(
            f"--repo {args.repo!r} contains control characters; give the repository's path "
            "without them"
        )
    return Path(args.repo)


def _local_request(
    args: argparse.Namespace, numbers: RunNumbers, plan_path: Path, settings: Settings
) -> SessionRequest:
    try:
        repo = gitops.check_repo(str(_repo_arg(args).expanduser()), args.target_branch)
    except gitops.RepoError as err:
        raise UserError(str(err)) from err
    repo_path = Path(repo.path)
    file_cfg = _repo_config(lambda: load_session_config(repo))
    request = _request(
        args, numbers, repo_path, plan_path, repo.target_branch, settings, file_cfg
    ).model_copy(update={"config_commit": repo.head_sha})
    try:
        check_untracked(repo.path, repo.target_branch, request.workspace)
        check_sources(repo_path, request.workspace.copy_files)
    except CopyProblem as err:
        raise UserError(f"{repo_path / CONFIG_FILE}: {err}") from err
    return request


def _shown_remote(given: str) -> str:
    return repr(given if len(given) <= _SHOWN_REMOTE else given[:_SHOWN_REMOTE] + "...")


def _remote_request(
    args: argparse.Namespace,
    numbers: RunNumbers,
    plan_path: Path,
    settings: Settings,
    aside: CachesAside,
    *,
    offline: bool,
) -> SessionRequest:
    """Remote mode: the remote answers, has the target branch and takes pushes (checked
    without changing it); its .autopilot.toml is read from that branch; the plan goes along in
    the request, as the workers may be on machines without the starter's disk. Offline: only
    the URL's form is checked, and the remote's settings are not read."""
    if args.repo is not None:
        raise UserError(
            "--repo and --remote name two repositories; give --remote alone for a remote "
            "session (your checkout is not used), or --repo alone for a local one"
        )
    given: str = args.remote
    if len(given) > REMOTE_LENGTH_LIMIT:
        raise UserError(
            f"--remote {_shown_remote(given)} is {len(given)} characters long, over the limit "
            f"of {REMOTE_LENGTH_LIMIT} for a remote's URL (shown cut); check what was pasted"
        )
    try:
        if offline:
            url, target = remote_url(given), args.target_branch or ""
            file_cfg = RepoReviewConfig()
        else:
            checked = check_remote(given, args.target_branch)
            url, target, commit = checked.url, checked.target_branch, checked.head_sha
            file_cfg = _repo_config(
                lambda: load_remote_config(aside.workspaces, url, target, commit)
            )
    except RemoteError as err:
        raise UserError(str(err)) from err
    if file_cfg.workspace.copy_files:
        raise UserError(
            f"{file_cfg.source}: [workspace] copy names files from your checkout "
            f"({', '.join(file_cfg.workspace.copy_files)}), and a remote session has none (its "
            "workers may be on other machines): remove `copy` from the target branch's "
            f"{CONFIG_FILE}, or run the session with --repo"
        )
    request = _request(args, numbers, url, plan_path, target, settings, file_cfg)
    return request.model_copy(
        update={
            "state_dir": "",
            "plan_text": plan_path.read_bytes().decode("utf-8"),
            "config_commit": "" if offline else checked.head_sha,
        }
    )


def _with_forge(
    request: SessionRequest, client: ForgeClient, settings: Settings, *, offline: bool
) -> SessionRequest:
    """Forge mode: its repository found and, unless offline, reached with the starter's own
    token (push rights, the target branch)."""
    try:
        forge = check_forge(
            request.forge,
            request.repo,
            request.target_branch,
            client,
            os.environ,
            offline=offline,
        )
    except ForgeProblem as err:
        raise UserError(str(err)) from err
    return request.model_copy(
        update={"forge": forge.model_copy(update={"ui_url": settings.ui_url})}
    )


def _repo_config(read: Callable[[], RepoReviewConfig]) -> RepoReviewConfig:
    try:
        return read()
    except (RepoConfigError, gitops.GitError) as err:
        raise UserError(str(err)) from err


def _dagger_batches(request: SessionRequest, selected: Plan) -> list[int]:
    return [b.number for b in selected.batches if place_of(request, b) == "dagger"]


def _check_engine(request: SessionRequest, dagger_batches: list[int]) -> str:
    """Container mode needs a Dagger engine: without one, nothing starts. Which one the runs
    will use ("" when no batch runs in a container)."""
    if not dagger_batches:
        return ""
    try:
        access = engine_preflight(os.environ)
    except EngineUnavailable as err:
        which = (
            "--execution-place dagger"
            if request.execution_place == "dagger"
            else ("**Execution Mode:** dagger in batch " + ", ".join(map(str, dagger_batches)))
        )
        raise UserError(f"{which} runs tasks in containers, but {err}") from err
    return f"the dagger CLI at {access.cli}" if access.cli else f"the session on port {access.port}"


def run_numbers(args: argparse.Namespace) -> RunNumbers:
    flags = {name: getattr(args, name) for name in RUN_RANGES}
    if flags["concurrency"] is None:
        flags["concurrency"] = DEFAULT_CONCURRENCY[args.execution_place]
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
    settings: Settings,
    file_cfg: RepoReviewConfig,
) -> SessionRequest:
    """The session's input (`repo`: a local repository's path, or a remote's URL)."""
    try:
        flags = {key: getattr(args, dest) for dest, key in REVIEW_FLAGS.items()}
        review = merge_review_settings(file_cfg, **flags)
        notify = merge_notify_settings(
            file_cfg, args.notify, allow_private=allows_private(os.environ)
        )
    except RepoConfigError as err:
        raise UserError(str(err)) from err
    try:
        forge = forge_settings(
            args.forge,
            file_cfg,
            remote=decide(str(repo)).remote,
            merge_style=file_cfg.merge_style,
        )
    except ForgeProblem as err:
        raise UserError(str(err)) from err
    agent = numbers.agent_settings(args.model)
    agent.network = file_cfg.network
    agent.ports = file_cfg.ports
    return SessionRequest(
        session_id=session_id(repo, plan_path, args.start_batch, args.end_batch),
        repo=str(repo),
        plan_path=str(plan_path),
        target_branch=target_branch,
        start_batch=numbers.start_batch,
        end_batch=numbers.end_batch,
        concurrency=numbers.concurrency,
        execution_place=args.execution_place,
        container=_container(file_cfg.container, args.image),
        state_dir=str(settings.state_dir),
        agent=agent,
        review=review,
        workspace=file_cfg.workspace,
        merge_style=file_cfg.merge_style,
        forge=forge,
        fresh=args.fresh,
        max_cost_usd=numbers.max_cost_usd,
        notify=notify,
    )


def _container(configured: ContainerSettings, image: str | None) -> ContainerSettings:
    """[container] of .autopilot.toml, with --image over its image."""
    if image is None:
        return configured
    try:
        check_image(image)
    except ContainerValueError as err:
        raise UserError(f"--image {image!r} is {err}; give e.g. node:22-slim") from None
    return configured.model_copy(update={"image": image})


def _check_payloads(args: argparse.Namespace, request: SessionRequest, selected: Plan) -> None:
    where = (
        f"the remote's {CONFIG_FILE}"
        if decide(request.repo).remote
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
