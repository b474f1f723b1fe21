"""Validating a remote before a session starts: it answers, it has the target branch, and we
may push to it. Each failure is a RemoteError that says what to fix."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict

from autopilot.git.refs import branch_head_sha
from autopilot.git.remote_url import (
    RemoteError,
    checked_remote,
    redact,
    remote_url,
    shown_url,
    transport_env,
)
from autopilot.git.runner import GitTimeout, git_output, run_git
from autopilot.git.task_refs import TASK_REFS, is_task_branch_name

PREFLIGHT_TIMEOUT_S = 20.0
# The dry-run push's destination: in the task refs' namespace (where the session pushes), a
# name no task has (those are refs/autopilot/<s>/<t>).
PREFLIGHT_REF = f"{TASK_REFS}preflight-check"
_SHOWN_BRANCHES = 10


class RemoteCheck(BaseModel):
    """A remote validated by `check_remote`."""

    model_config = ConfigDict(frozen=True)

    url: str  # normalised (remote_url)
    target_branch: str  # short branch name, e.g. "main"
    head_sha: str  # the target branch's head on the remote


def _run_remote(
    scratch: str, url: str, args: list[str], timeout_s: float, silent: str
) -> subprocess.CompletedProcess[str]:
    """Run a git command against the remote; RemoteError(`silent`) when it does not answer in
    time."""
    try:
        return run_git(scratch, args, env=transport_env(), timeout=timeout_s)
    except GitTimeout:
        raise RemoteError(silent) from None


def _said(proc: subprocess.CompletedProcess[str], url: str) -> str:
    """The end of what a failed git command said, with the URL's credentials hidden."""
    return redact((proc.stderr.strip() or proc.stdout.strip())[-1000:], url)


def _ask(scratch: str, url: str, args: list[str], timeout_s: float, doing: str) -> str:
    """Run a git command against the remote; RemoteError if it does not answer."""
    shown = shown_url(url)
    silent = (
        f"the remote {shown} did not answer within {timeout_s:g} s ({doing}); check the "
        "URL, and that the server is up and reachable from this machine (a firewall, a "
        "VPN, a proxy)"
    )
    proc = _run_remote(scratch, url, args, timeout_s, silent)
    if proc.returncode != 0:
        said = _said(proc, url)
        raise RemoteError(
            f"the remote {shown} does not answer ({doing}): {said or '(no output)'}. Check the "
            "URL, that the server is up and reachable from here, and that your credentials "
            "(an ssh key in your agent, an https token) give access to it"
        )
    return proc.stdout


def _heads(scratch: str, url: str, timeout_s: float) -> tuple[dict[str, str], str | None]:
    """The remote's branches (short name: sha) and the branch its HEAD names, if any."""
    args = ["ls-remote", "--symref", "--", url, "HEAD", "refs/heads/*"]
    out = _ask(scratch, url, args, timeout_s, "listing its branches")
    heads: dict[str, str] = {}
    default: str | None = None
    for line in out.splitlines():
        left, _, ref = line.partition("\t")
        if left.startswith("ref: ") and ref == "HEAD":
            default = left.removeprefix("ref: ").removeprefix("refs/heads/")
        elif ref.startswith("refs/heads/"):
            heads[ref.removeprefix("refs/heads/")] = left
    return heads, default


def _listed(heads: dict[str, str]) -> str:
    # The task branches autopilot pushed are no target: shown only when there is nothing else.
    pool = [name for name in sorted(heads) if not name.startswith("autopilot/")] or sorted(heads)
    names = pool[:_SHOWN_BRANCHES]
    more = len(pool) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _target(
    scratch: str, url: str, given: str | None, heads: dict[str, str], default: str | None
) -> str:
    shown = shown_url(url)
    if not heads:
        raise RemoteError(f"the remote {shown} has no branches; push the branch to merge into")
    if given is None:
        if default is None or default not in heads:
            raise RemoteError(
                f"the remote {shown} names no default branch; give the branch to merge into "
                f"with --target-branch (its branches include: {_listed(heads)})"
            )
        return default
    name = given.removeprefix("refs/heads/")
    valid = (
        not name.startswith("refs/")
        and run_git(scratch, ["check-ref-format", "--branch", name]).returncode == 0
    )
    if not valid:
        raise RemoteError(
            f"--target-branch {given!r} is not a branch name: only a branch (a name like main "
            "or feature/x, or refs/heads/<name>) can be merged into on the remote"
        )
    if is_task_branch_name(name):
        raise RemoteError(
            f"--target-branch {given!r} is shaped like an autopilot task branch "
            "(autopilot/<session>/<task>); merge into another branch"
        )
    if name not in heads:
        raise RemoteError(
            f"the remote {shown} has no branch {name!r}; its branches include: "
            f"{_listed(heads)}. Give one of them with --target-branch, or push {name!r} there"
        )
    return name


def _refuse_checked_out_target(url: str, branch: str) -> None:
    """A file:// remote that is a checkout with the target checked out refuses every merge's
    push (`receive.denyCurrentBranch`), and is someone's working files: refused up front."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return
    path = Path(unquote(parts.path))
    bare = run_git(path, ["rev-parse", "--is-bare-repository"]).stdout.strip()
    head = run_git(path, ["symbolic-ref", "--quiet", "HEAD"]).stdout.strip()
    if bare == "false" and head == f"refs/heads/{branch}":
        raise RemoteError(
            f"the remote {path} is a checkout with {branch!r} checked out: git refuses pushes "
            f"to it, and its files are someone's work. Give a bare repository instead (`git "
            f"clone --bare {path} <new-path>`), or check out another branch there"
        )


def _check_push(scratch: str, url: str, sha: str, timeout_s: float) -> None:
    """A dry-run push of the target's own head to a scratch branch: it reaches the remote's
    receiving side (where push rights are checked) and sends and changes nothing."""
    args = ["push", "--dry-run", "--porcelain", "--no-signed", "--", url, f"{sha}:{PREFLIGHT_REF}"]
    shown = shown_url(url)
    silent = (
        f"the remote {shown} answered but did not take a (dry-run) push within "
        f"{timeout_s:g} s; check that the server accepts pushes from this machine"
    )
    proc = _run_remote(scratch, url, args, timeout_s, silent)
    accepted = any(
        line.partition("\t")[0] in ("*", " ", "+", "=") for line in proc.stdout.splitlines()
    )
    if proc.returncode != 0 or not accepted:
        said = _said(proc, url)
        raise RemoteError(
            f"no push rights on the remote {shown}: a dry-run push to {PREFLIGHT_REF} was "
            f"refused ({said or 'no output'}). Autopilot pushes task refs (refs/autopilot/...) "
            "and merges there: use a URL and credentials that may push (an ssh key with write "
            "access, an https token with write scope; a git daemon needs "
            "--enable=receive-pack)"
        )


def check_remote(
    url: str, target_branch: str | None = None, timeout_s: float = PREFLIGHT_TIMEOUT_S
) -> RemoteCheck:
    """Validate that the remote `url` can take a session's task branches and merges into
    `target_branch` (default: the branch the remote's HEAD names); each failure is a
    RemoteError whose message says what to fix. Nothing is changed on the remote."""
    url = remote_url(url)
    with tempfile.TemporaryDirectory(prefix="autopilot-remote-check-") as scratch:
        git_output(scratch, "init", "--quiet", "--bare", "--template=")
        heads, default = _heads(scratch, url, timeout_s)
        branch = _target(scratch, url, target_branch, heads, default)
        _refuse_checked_out_target(url, branch)
        _check_push(scratch, url, heads[branch], timeout_s)
    return RemoteCheck(url=url, target_branch=branch, head_sha=heads[branch])


def remote_head(url: str, branch: str, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> str:
    """The remote's `branch` head now; RemoteError when it does not answer or has no such
    branch."""
    url = checked_remote(url)  # from a workflow: checked again before git sees it
    with tempfile.TemporaryDirectory(prefix="autopilot-remote-head-") as scratch:
        git_output(scratch, "init", "--quiet", "--bare", "--template=")
        heads, _ = _heads(scratch, url, timeout_s)
    if branch not in heads:
        raise RemoteError(f"the remote {shown_url(url)} has no branch {branch!r}")
    return heads[branch]


def head_of_target(repo: str, branch: str, *, remote: bool) -> str:
    """A session's target branch head as git has it now: on the remote (`remote`, as the
    session's site says), or in the local repository."""
    return remote_head(repo, branch) if remote else branch_head_sha(repo, branch)
