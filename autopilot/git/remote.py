"""The remote kind of workspace: the session's repository is a git remote, and workers on many
machines share nothing but it (and the Temporal cluster).

Each worker keeps one cache of the remote in its own state dir (autopilot/git/remote_cache.py):
a bare repository, made once, fetched from then on, never cloned again per task. A task's
workspace is made from the cache exactly as the local kind makes it from the user's
repository (autopilot/git/workspace.py): a repository of its own reading the cache's objects
through alternates. Its commits come back into the cache by the same checked fetch and are
pushed to the remote's `refs/autopilot/<session>/<task>` (not a branch there: a forge's CI on
branch pushes never runs them; autopilot/git/task_refs.py), deleted there once the task is
merged. Nothing else is ever pushed but the target branch, and the user's own checkout is
never involved.

A task's steps may run on different workers: each step finds the workspace here (`here`), or
makes it again from the remote's task branch. The agent's work reaches the remote before its
activity ends (its commit pushes), so nothing a step needs is only on another machine.

The merge happens on the remote by compare-and-swap: the cache fetches the target and the task
branch, `merge_task` computes the merge there (finding, by the commit trailers, a merge that
is already on the remote's target: nothing is merged twice), and the new target is pushed with
`--force-with-lease=<target>:<the head it was computed on>`. When another worker moved the
target in between, the remote refuses, and the merge is fetched and computed again. A crash
between the cache's merge and the push leaves only the cache ahead; the next step fetches the
remote's target over it, so a retry, here or on another worker, merges exactly once.

Locks: the cache's branches are the remote's as last fetched, and a fetch overwrites them.
Every step on a cache holds its lock (a thread lock and `flock`, as several worker processes
may share a state dir) from its fetch to its push: a fetch never moves a task branch back
between its bring-back and its push, nor the target between a merge and its push.

Workspaces live under this worker's own state dir, never the one a request names: a request
may come from a session that another machine started.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from autopilot.git.commits import merge_target_into_branch
from autopilot.git.fresh import set_aside_name
from autopilot.git.kinds import Located, commit_in
from autopilot.git.merge import MERGE_ATTEMPTS, merge_in
from autopilot.git.names import branch_name, workspace_dir
from autopilot.git.refs import branch_ref, find_task_merge, is_ancestor, resolve_rev
from autopilot.git.remote_cache import TRANSPORT_TIMEOUT_S, RemoteCache, cache_path, locked
from autopilot.git.remote_url import RemoteError, shown_url
from autopilot.git.runner import GitError, run_git, run_git_bytes
from autopilot.git.task_refs import remote_refs
from autopilot.git.workspace import (
    WorkspaceBroken,
    bring_back,
    ensure_workspace,
    is_workspace_repo,
    own_workspace,
    prepare_workspace,
    remove_workspace_dirs,
)
from autopilot.infra import untrusted_fs
from autopilot.models import (
    CommitInput,
    CommitResult,
    MergeInput,
    MergeResult,
    RemoveWorkspaceInput,
    TargetMergeInput,
    TargetMergeResult,
    Workspace,
    WorkspaceInput,
    WorkspaceOrigin,
)

TASK_MARK = "autopilot-task"  # in a workspace's .git: its WorkspaceOrigin
_MARK_LIMIT = 64 * 1024  # a WorkspaceOrigin is a few hundred bytes


class TaskBranchMoved(GitError):
    """The remote's task branch has commits this worker's workspace does not: another worker
    pushed the task since this one prepared it. Pushing again cannot help; preparing the task
    again (which starts from the remote's branch) does."""


class RemoteWorkspaces:
    """Task workspaces of a session whose repository (`request.repo`) is a remote URL."""

    def __init__(self, state_dir: str | Path, *, timeout_s: float = TRANSPORT_TIMEOUT_S) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.timeout_s = timeout_s
        # <state_dir>/worktrees: every workspace is a <session>/<task> folder in it.
        self._worktrees = workspace_dir(self.state_dir, "session", "task").parent.parent

    def cache_path(self, url: str) -> Path:
        """This worker's cache of `url` (it may not exist yet)."""
        return cache_path(self.state_dir, url)

    @contextlib.contextmanager
    def cache(self, url: str, first_branch: str | None = None) -> Iterator[RemoteCache]:
        """The cache of `url`, made if missing, held for the `with` block."""
        cache = RemoteCache(self.cache_path(url), url, self.timeout_s)
        with locked(cache.path):
            cache.ensure(first_branch)
            yield cache

    def read_file(self, url: str, branch: str, name: str, commit: str = "") -> bytes | None:
        """The file `name` as the remote's `branch` has it now, or as its `commit` has it
        (None: no such file)."""
        with self.cache(url, branch) as cache:
            self._sync(cache, branch, [])
            revision = commit or f"refs/heads/{branch}"
            proc = run_git_bytes(cache.path, ["show", f"{revision}:{name}"])
        return proc.stdout if proc.returncode == 0 else None

    def _sync(self, cache: RemoteCache, target: str, others: Sequence[str]) -> dict[str, str]:
        seen = cache.sync([target, *others])
        if target not in seen:
            raise RemoteError(
                f"the remote {shown_url(cache.url)} has no branch {target!r} (renamed or "
                "deleted?); push it there again, or start the session with another "
                "--target-branch"
            )
        return seen

    def prepare(self, request: WorkspaceInput) -> Workspace:
        branch = branch_name(request.session_id, request.task_id)
        path = workspace_dir(self.state_dir, request.session_id, request.task_id)
        with self.cache(request.repo, request.target_branch) as cache:
            seen = self._sync(cache, request.target_branch, [branch])
            aside = ""
            if request.fresh:
                aside = _start_afresh(cache, request, seen.get(branch), path)
                seen.pop(branch, None)
            pushed = seen.get(branch)
            if pushed is not None and not _goes_on_from(path, pushed):
                # Another worker went on with the task from here (or this workspace is from
                # before its last push): start again from what the remote has.
                untrusted_fs.remove_path(path)
            workspace = prepare_workspace(
                cache.path,
                request.target_branch,
                self.state_dir,
                request.session_id,
                request.task_id,
            )
            if workspace.path:
                mark_workspace(
                    Path(workspace.path), WorkspaceOrigin.of_workspace(request, workspace)
                )
            self._sweep(cache, request.session_id, request.target_branch, path)
        workspace.set_aside = aside
        return workspace

    def _sweep(self, cache: RemoteCache, session_id: str, target: str, keep: Path) -> None:
        """Remove this worker's copies of the session's merged tasks. The merge's tidy-up
        removes only the merging worker's copy: the workers that ran a task's other steps
        find theirs here, the next time they prepare a task of the session."""
        folder = keep.parent
        for workspace in folder.iterdir() if folder.is_dir() else ():
            if workspace == keep or not is_workspace_repo(workspace):
                continue
            try:
                mark = untrusted_fs.read_file(workspace, ".git", TASK_MARK, limit=_MARK_LIMIT)
                place = WorkspaceOrigin.model_validate_json(mark)
            except (OSError, ValueError):
                continue  # no readable mark (the agent's to change): left for the session's end
            if place.session_id == session_id and find_task_merge(
                cache.path, target, session_id, place.task_id
            ):
                remove_workspace_dirs(workspace)

    def here(self, repo: str, workspace: str, place: WorkspaceOrigin | None) -> Located:
        """The task's workspace on this worker (`workspace` may be another machine's path):
        the one here when it holds what the remote has of the task, else made again from the
        remote's task branch, or from the commit the task started from before its first
        push. `made`: it was made anew here (its setup must run again)."""
        if place is None:
            raise GitError(
                f"a step of a remote session came without its task's place (workspace "
                f"{workspace}); this worker cannot make the workspace again"
            )
        branch = branch_name(place.session_id, place.task_id)
        path = workspace_dir(self.state_dir, place.session_id, place.task_id)
        with self.cache(repo, place.target_branch or None) as cache:
            pushed = cache.sync([branch]).get(branch)
            start = pushed or place.base_sha
            # Kept when it goes on from what the remote has (from the task's base before its
            # first push): else it is another worker's past, an earlier try's, or broken.
            if is_workspace_repo(path) and _goes_on_from(path, start):
                mark_workspace(path, place)
                return Located(str(path), made=False)
            if not _has_commit(cache.path, start):
                if place.target_branch:
                    self._sync(cache, place.target_branch, [])
                else:
                    cache.refresh()
            untrusted_fs.remove_path(path)
            ensure_workspace(cache.path, path, branch, start)
            mark_workspace(path, place)
        return Located(str(path), made=True)

    def target_repo(self, repo: str) -> Path:
        return self.cache_path(repo)

    def shared_objects(self, repo: str) -> Path:
        return self.cache_path(repo) / "objects"

    def commit(self, request: CommitInput) -> CommitResult:
        workspace = str(workspace_dir(self.state_dir, request.session_id, request.task_id))
        if not request.in_place:
            # The workflow's own commit step, on any worker: the workspace as the step before
            # it left it (the agent's activity pushed its work), found or made again.
            self._as_left(request)
        # In place (the agent's activity): the work is in this workspace, whatever the remote
        # has since; a push refused is TaskBranchMoved.
        # Committing in the workspace needs no lock (it only reads the cache's objects);
        # bringing the branch back and pushing it are one locked step.
        outcome = commit_in(workspace, request, repo=None)
        branch = branch_name(request.session_id, request.task_id)
        with self.cache(request.repo) as cache:
            head = bring_back(
                cache.path, workspace, request.session_id, request.task_id, request.base_sha
            )
            _push_task_branch(cache, branch, head)
        return outcome

    def _as_left(self, request: CommitInput) -> None:
        """The task's workspace here as the agent's step left it: found or made again from
        the remote's task branch, with the target merged in again in a conflict round (a
        merge in progress is found as it is, its conflicts with it)."""
        place = WorkspaceOrigin(
            session_id=request.session_id,
            task_id=request.task_id,
            target_branch=request.conflict_target,
            base_sha=request.base_sha,
        )
        located = self.here(request.repo, request.workspace_path, place)
        if request.conflict_target:
            self.merge_target(TargetMergeInput.at(place, request.repo, located.path))

    def merge_target(self, request: TargetMergeInput) -> TargetMergeResult:
        workspace = self.here(request.repo, request.workspace_path, request.origin).path
        branch = branch_name(request.session_id, request.task_id)
        # Held through the merge into the task branch: the cache's target is read there, and
        # outside the lock it could be another task's merge that is never pushed.
        with self.cache(request.repo, request.target_branch) as cache:
            seen = self._sync(cache, request.target_branch, [branch])
            merged = merge_target_into_branch(
                workspace,
                request.target_branch,
                request.session_id,
                request.task_id,
                repo=cache.path,
            )
            if merged.clean:
                # A clean merge is the task's new head, which the review and the merge read
                # wherever they run: pushed now, or by this step's retry (conflicts are pushed
                # with their resolution).
                head = bring_back(
                    cache.path, workspace, request.session_id, request.task_id, request.base_sha
                )
                if seen.get(branch) != head:
                    _push_task_branch(cache, branch, head)
            return merged

    def merge(self, request: MergeInput) -> MergeResult:
        target = request.target_branch
        with self.cache(request.repo, target) as cache:
            for _ in range(MERGE_ATTEMPTS):
                seen = self._sync(cache, target, [request.branch])
                if request.branch not in seen and not find_task_merge(
                    cache.path, target, request.session_id, request.task_id
                ):
                    seen[request.branch] = _push_unpushed_branch(cache, request.branch)
                outcome = merge_in(cache.path, request)
                if not outcome.merged:
                    return outcome  # a conflict: the branch stays for the conflict round
                # Merged, the task branch has nothing the target lacks: it goes (an unmerged
                # task's branch stays, as `starter.py cleanup` keeps it locally).
                branch = request.branch if request.branch in seen else None
                if outcome.already_merged or outcome.merge_sha is None:
                    if branch is not None:  # found on the remote's target: no merge to push
                        cache.delete(branch)
                    return outcome
                if cache.push(outcome.merge_sha, target, expect=seen[target], delete=branch):
                    return outcome
                # Another worker moved the target since the fetch: fetch and merge again.
        raise GitError(
            f"could not merge {request.branch} into {target} on {shown_url(request.repo)}: "
            f"the remote's {target} kept moving during {MERGE_ATTEMPTS} attempts; retry when "
            "it is quiet"
        )

    def publish(
        self, url: str, target: str, branch: str, head_branch: str, env: Mapping[str, str]
    ) -> str:
        """Forge mode: the task branch as the remote has it, pushed to the remote's branch
        `head_branch` (its pull request's); returns the head pushed. Idempotent: a retry pushes
        the same head again."""
        with self.cache(url, target) as cache:
            head = self._sync(cache, target, [branch]).get(branch)
            if head is None:
                raise GitError(
                    f"the remote {shown_url(url)} has no task branch {branch} to publish; "
                    "the step is retried"
                )
            cache.publish(head, head_branch, env)
        return head

    def remove(self, request: RemoveWorkspaceInput) -> None:
        self.remove_at(
            request.repo,
            str(workspace_dir(self.state_dir, request.session_id, request.task_id)),
        )

    def remove_at(self, repo: str, path: str) -> None:
        # A path another worker reported is not this worker's to remove: only a workspace
        # (<worktrees>/<session>/<task>) under this worker's own state dir is.
        workspace = Path(os.path.abspath(path))
        if workspace.parent.parent == self._worktrees:
            remove_workspace_dirs(workspace)


def _start_afresh(
    cache: RemoteCache, request: WorkspaceInput, pushed: str | None, workspace: Path
) -> str:
    """The remote's side of autopilot/git/fresh.py: the task's work is pushed to its set-aside
    ref (refs/autopilot/<session>/<task>--rejected-<head>) and its task ref deleted there,
    in that order (the work is never only in this cache); this worker's workspace goes.
    Returns the set-aside branch, or "" when there was nothing to keep."""
    target = request.target_branch
    if find_task_merge(cache.path, target, request.session_id, request.task_id) is not None:
        return ""
    branch = branch_name(request.session_id, request.task_id)
    head = pushed or cache.head(branch)  # a crash may have come between bring-back and push
    remove_workspace_dirs(workspace)
    if head is None:
        return ""
    aside = ""
    if not is_ancestor(cache.path, head, branch_ref(target)):
        aside = set_aside_name(branch, head)
        if not cache.push(head, aside):
            raise GitError(
                f"cannot set {branch} aside on {shown_url(cache.url)}: its "
                f"{remote_refs(aside)[0]} exists already at another commit; delete that ref "
                "there, then retry"
            )
    cache.delete(branch)
    return aside


def _goes_on_from(workspace: Path, sha: str) -> bool:
    """Whether the workspace's HEAD has `sha` in its history; a broken workspace (the agent
    replaced its .git) does not."""
    try:
        return _holds(workspace, sha)
    except WorkspaceBroken:
        return False


def mark_workspace(workspace: Path, place: WorkspaceOrigin) -> None:
    """Which task a workspace is (its folder names are made safe, the ids are not): read by
    `_sweep` on this worker."""
    untrusted_fs.write_file(workspace, ".git", TASK_MARK, data=place.model_dump_json().encode())


def _holds(workspace: Path, sha: str) -> bool:
    """Whether the task's workspace here has `sha` in its history (no workspace: True, there
    is nothing to throw away)."""
    if not is_workspace_repo(workspace):
        return True
    own_workspace(workspace)  # our config before our git runs there
    head = resolve_rev(workspace, "HEAD")
    return head is not None and is_ancestor(workspace, sha, head)


def _has_commit(repo: Path, sha: str) -> bool:
    return run_git(repo, ["cat-file", "-e", f"{sha}^{{commit}}"]).returncode == 0


def _push_task_branch(cache: RemoteCache, branch: str, head: str) -> None:
    if not cache.push(head, branch):
        raise TaskBranchMoved(
            f"the remote {shown_url(cache.url)} refused {branch} at {head[:12]}: its {branch} "
            "has commits this workspace does not (another worker pushed the task since this "
            "one prepared it); the task must be prepared again"
        )


def _push_unpushed_branch(cache: RemoteCache, branch: str) -> str:
    """The remote lacks the task branch to merge: push the one brought back here (a crash
    came between its bring-back and its push), or say that there is none. Returns its head."""
    head = cache.head(branch)
    if head is None:
        raise GitError(
            f"neither the remote {shown_url(cache.url)} nor this worker's cache has {branch}; "
            "commit the task's work (its commit step) before merging it"
        )
    _push_task_branch(cache, branch, head)
    return head
