"""A worker's cache of one remote: a bare repository in its state dir, made once, fetched and
pushed from then on; every use under one lock.

Its branches are the remote's as last seen (the target, the task branches: the remote keeps
those under refs/autopilot/, see autopilot/git/task_refs.py), plus, for as long
as one locked step lasts, what that step made here and has not pushed yet (a task branch
brought back from its workspace, a merge of the target). Every step fetches what it reads
first, so what a crashed step left unpushed here is overwritten by the remote's value: the
remote is the only truth.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from autopilot.git.refs import branch_ref, resolve_rev
from autopilot.git.remote_url import redact, repo_name, shown_url, transport_env
from autopilot.git.runner import GitError, git_output, run_git
from autopilot.git.task_refs import LEGACY_TASK_REFS, TASK_REFS, remote_refs
from autopilot.infra import make_private_dir, untrusted_fs

# A fetch or push that has not finished after this long is stopped (and the step retried):
# a hung connection must not hold the cache's lock, and every task of the remote, forever.
TRANSPORT_TIMEOUT_S = 600.0
REMOTE_NAME = "origin"  # the remote's name in the cache: the URL is not in any argv we show
CACHES = "remotes"  # <state_dir>/remotes/<slug>-<hash>.git
# The whole config of a cache: bare, no hooks, no gc (task workspaces read its objects
# through alternates: a prune could delete what a workspace's commits stand on), and the
# remote, without fetch refspecs: every fetch names exactly what it takes.
_CACHE_SETTINGS: dict[str, dict[str, str]] = {
    "core": {
        "repositoryformatversion": "0",
        "bare": "true",
        "hookspath": "/dev/null",
        "logallrefupdates": "true",
    },
    "gc": {"auto": "0"},
    "fetch": {"recursesubmodules": "false"},
}
_FETCH = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules"]
_PUSH = ["push", "--porcelain", "--no-signed", "--no-follow-tags", "--no-recurse-submodules"]
# The cache-wide fetch: every branch, the task refs as the cache's task branches, and not the
# legacy task branches (they would map to the same names; `sync` reads them one by one).
_ALL_REFS = (
    "+refs/heads/*:refs/heads/*",
    f"^{LEGACY_TASK_REFS}*",
    f"+{TASK_REFS}*:{LEGACY_TASK_REFS}*",
)

_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def cache_path(state_dir: str | Path, url: str) -> Path:
    """Where this worker keeps its cache of `url`: one per remote, named for people by the
    repository's name and told apart by a hash of the whole URL."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", repo_name(url)).strip("._-")[:40] or "remote"
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return Path(state_dir).absolute() / CACHES / f"{slug}-{digest}.git"


def _thread_lock(cache: Path) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(cache, threading.Lock())


@contextlib.contextmanager
def locked(cache: Path) -> Iterator[None]:
    """Hold the cache: threads of this worker by a lock, other worker processes sharing the
    state dir by `flock` on a file beside it (released by the kernel if the holder dies).
    Not reentrant."""
    with _thread_lock(cache):
        make_private_dir(cache.parent)
        fd = os.open(cache.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _config_text() -> str:
    return "".join(
        f"[{section}]\n" + "".join(f"\t{key} = {value}\n" for key, value in keys.items())
        for section, keys in _CACHE_SETTINGS.items()
    )


class RemoteCache:
    """The cache of `url` at `path`. Every method expects the caller to hold `locked(path)`."""

    def __init__(self, path: Path, url: str, timeout_s: float = TRANSPORT_TIMEOUT_S) -> None:
        self.path = path
        self.url = url
        self.timeout_s = timeout_s
        # Branch: the remote's refs of it at the last `observe` (a task's new and legacy ref).
        self._on_remote: dict[str, dict[str, str]] = {}

    def _transport(self, *args: str) -> str:
        """A git command that talks to the remote: bounded in time, our transports only, never
        a prompt; its failure names the remote without its password."""
        proc = run_git(self.path, args, env=transport_env(), timeout=self.timeout_s)
        if proc.returncode != 0:
            said = redact((proc.stderr.strip() or proc.stdout.strip())[-2000:], self.url)
            raise GitError(
                f"`git {' '.join(args)}` against {shown_url(self.url)} failed (exit "
                f"{proc.returncode}): {said or '(no output)'}; the step is retried"
            )
        return proc.stdout

    def ensure(self, first_branch: str | None = None) -> None:
        """Make the cache if this worker has none yet: made aside, with `first_branch` fetched
        (the long first fetch), then renamed into place, so that a cache at `path` is always
        a whole one and a worker killed while making it leaves nothing half made."""
        if (self.path / "HEAD").is_file():
            return
        making = self.path.with_name(f".making-{self.path.name}")
        untrusted_fs.remove_path(making)
        make_private_dir(making)
        git_output(making, "init", "--quiet", "--bare", "--template=")
        untrusted_fs.write_file(making, "config", data=_config_text().encode())
        git_output(making, "config", "--file", "config", f"remote.{REMOTE_NAME}.url", self.url)
        if first_branch is not None:
            maker = RemoteCache(making, self.url, self.timeout_s)
            maker.sync([first_branch])
        untrusted_fs.remove_path(self.path)  # something else there: not a cache, not ours to keep
        making.rename(self.path)

    def observe(self, branches: Sequence[str]) -> dict[str, str]:
        """The remote's heads of `branches` (short names), for those it has: a task branch's
        at refs/autopilot/, or at its legacy ref when only that one is there."""
        wanted = {ref: branch for branch in branches for ref in remote_refs(branch)}
        out = self._transport("ls-remote", "--", REMOTE_NAME, *wanted)
        on_remote: dict[str, dict[str, str]] = {branch: {} for branch in branches}
        for line in out.splitlines():
            sha, _, ref = line.partition("\t")
            if ref in wanted:  # ls-remote matches a pattern's tail: keep exact names only
                on_remote[wanted[ref]][ref] = sha
        self._on_remote.update(on_remote)
        return {branch: refs[self._source(branch)] for branch, refs in on_remote.items() if refs}

    def _source(self, branch: str) -> str:
        """The remote ref `branch` is read from: the first of its refs the remote had."""
        refs = self._on_remote.get(branch, {})
        return next(ref for ref in remote_refs(branch) if ref in refs)

    def sync(self, branches: Sequence[str]) -> dict[str, str]:
        """Make this cache's `branches` the remote's (forced: the remote is the truth), for
        those the remote has; return their heads. A branch the remote lacks is left as is.
        Only what differs is fetched."""
        seen = self.observe(branches)
        stale = [b for b, sha in seen.items() if resolve_rev(self.path, branch_ref(b)) != sha]
        if stale:
            refspecs = [f"+{self._source(b)}:{branch_ref(b)}" for b in stale]
            self._transport(*_FETCH, "--", REMOTE_NAME, *refspecs)
        # What was fetched may be newer than what ls-remote saw: the cache's value is the one.
        return {b: self.head(b) or seen[b] for b in seen}

    def refresh(self) -> dict[str, str]:
        """Make every branch here the remote's, and drop those the remote no longer has: the
        cache-wide fetch. Returns the remote's branches and heads."""
        self._transport(*_FETCH, "--prune", "--", REMOTE_NAME, *_ALL_REFS)
        out = git_output(
            self.path, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads"
        )
        heads: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            heads[ref.removeprefix("refs/heads/")] = sha
        return heads

    def head(self, branch: str) -> str | None:
        return resolve_rev(self.path, branch_ref(branch))

    def push(
        self, sha: str, branch: str, *, expect: str | None = None, delete: str | None = None
    ) -> bool:
        """Push `sha` to the remote's `branch`: a fast-forward, or, with `expect`, a
        compare-and-swap (`--force-with-lease`: only if the remote's branch is still at
        `expect`). True when the remote's branch is `sha`; False when the remote refused
        because the branch moved (fetch and recompute); GitError on anything else.
        `delete`: a branch the remote has, deleted in the same atomic push (each of its refs
        there, as last observed)."""
        ref = remote_refs(branch)[0]
        lease = [f"--force-with-lease={ref}:{expect}"] if expect is not None else []
        gone = [f":{old}" for old in self._observed_refs(delete)] if delete is not None else []
        atomic = ["--atomic"] if gone else []
        args = [*_PUSH, *lease, *atomic, "--", REMOTE_NAME, f"{sha}:{ref}", *gone]
        proc = run_git(self.path, args, env=transport_env(), timeout=self.timeout_s)
        for line in proc.stdout.splitlines():
            flag, _, rest = line.partition("\t")
            spec, _, summary = rest.partition("\t")
            if spec.rpartition(":")[2] != ref:
                continue
            if flag in (" ", "*", "+", "=", "-") and proc.returncode == 0:
                if branch in self._on_remote:
                    self._on_remote[branch][ref] = sha
                if delete is not None:
                    self._forget(delete)
                return True
            if flag == "!" and summary.startswith("[rejected]"):
                return False
        said = redact((proc.stderr.strip() or proc.stdout.strip())[-2000:], self.url)
        raise GitError(
            f"pushing {sha[:12]} to {branch} on {shown_url(self.url)} failed (exit "
            f"{proc.returncode}): {said or '(no output)'}; the step is retried"
        )

    def publish(self, sha: str, branch: str, env: Mapping[str, str]) -> None:
        """Force `branch` (a branch of the remote's own, refs/heads/) to `sha`: a pull request's
        branch, which is ours alone. `env`: the transport's credentials (a forge token in
        git's config variables: never in argv or the URL)."""
        args = [*_PUSH, "--force", "--", REMOTE_NAME, f"{sha}:{branch_ref(branch)}"]
        proc = run_git(self.path, args, env=transport_env() | dict(env), timeout=self.timeout_s)
        if proc.returncode != 0:
            said = redact((proc.stderr.strip() or proc.stdout.strip())[-2000:], self.url)
            raise GitError(
                f"pushing {sha[:12]} to {branch} on {shown_url(self.url)} failed (exit "
                f"{proc.returncode}): {said or '(no output)'}; the step is retried"
            )

    def delete(self, branch: str) -> None:
        """Delete `branch`, which the remote has (each of its refs there), and here."""
        gone = [f":{ref}" for ref in self._observed_refs(branch)]
        if gone:
            self._transport(*_PUSH, "--atomic", "--", REMOTE_NAME, *gone)
        self._forget(branch)

    def _observed_refs(self, branch: str) -> list[str]:
        """The remote's refs of `branch` as last observed (`sync`, `observe` or a push)."""
        if branch not in self._on_remote:
            self.observe([branch])
        return list(self._on_remote[branch])

    def _forget(self, branch: str) -> None:
        """`branch` is gone from the remote: gone here too."""
        self._on_remote[branch] = {}
        if self.head(branch) is not None:
            git_output(self.path, "update-ref", "-d", branch_ref(branch))
