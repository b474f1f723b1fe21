"""The inventory of the paths the agent could have touched that the pipeline's own steps (outside
the sandbox) read, write, remove or make: one entry each, with the real step that touches it.

docs/SECURITY.md ("## Paths the agent could have touched") has one table row per entry and
no other (tests/test_agent_paths.py checks both ways), and tests/test_agent_paths.py plants a
link to a file outside, a link to a folder outside, a FIFO and a huge sparse file at each
`path` and runs its `step`.

`path` is relative to the task's workspace, or to its own folder with `<space>/` (the agent's
home, Claude config and temp: `<session>/.agents/<task>/agent`), or to a check's temp dir with
`<check tmp>/`.
"""

from __future__ import annotations

from dataclasses import dataclass

SPACE = "<space>/"
CHECK_TMP = "<check tmp>/"


@dataclass(frozen=True)
class Touch:
    where: str  # file:function of the pipeline's code that touches `path`
    path: str
    step: str  # which real step of the pipeline is run (tests/test_agent_paths.py, STEPS)
    # the step may fail on what was planted (it must, where what it needs is gone), but only so
    may_fail: tuple[str, ...] = ()


INVENTORY = [
    Touch("autopilot/git/workspace.py:_own_workspace", ".git", "commit", ("WorkspaceBroken",)),
    Touch("autopilot/git/refs.py:_is_linked_worktree", ".git", "prepare", ("WorkspaceBroken",)),
    Touch("autopilot/git/workspace.py:_own_workspace", ".git/config", "commit"),
    Touch("autopilot/git/workspace.py:_write_workspace_config", ".git/config.autopilot", "commit"),
    Touch("autopilot/git/workspace.py:_own_workspace", ".git/commondir", "commit"),
    Touch("autopilot/git/workspace.py:_own_workspace", ".git/config.worktree", "commit"),
    Touch(
        "autopilot/git/refs.py:_clear_stale_index_lock", ".git/index.lock", "prepare", ("GitError",)
    ),
    Touch("autopilot/git/commits.py:_merge_message", ".git/MERGE_MSG", "conclude merge"),
    Touch("autopilot/git/commits.py:_conflict_state", "README.md", "conflicts"),
    Touch("autopilot/git/diff_and_fingerprint.py:_hash_entry", "left/by/the/agent", "fingerprint"),
    Touch("autopilot/git/remote.py:_mark", ".git/autopilot-task", "mark"),
    Touch("autopilot/git/workspace.py:remove_workspace_dirs", "left/by/the/agent", "remove"),
    Touch("autopilot/git/workspace.py:remove_workspace_dirs", SPACE + "home/left", "remove"),
    Touch("autopilot/agent/sandbox.py:Sandbox.wrap", SPACE + "tmp", "sandbox"),
    Touch("autopilot/review/checks.py:private_tmpdir", CHECK_TMP + "left/by/a/check", "check tmp"),
    Touch("autopilot/setup/steps.py:_read_stamp", ".git/autopilot-setup", "setup"),
    Touch("autopilot/setup/copy_files.py:copy_in", ".env.test", "setup"),
    Touch("autopilot/setup/copy_files.py:exclude", ".git/info", "setup"),
    Touch("autopilot/setup/copy_files.py:exclude", ".git/info/exclude", "setup"),
    Touch("autopilot/setup/cache.py:_file_digest", "deps.lock", "setup"),
    Touch("autopilot/setup/cache.py:clear", "deps", "setup", ("SetupFailed",)),
    Touch("autopilot/setup/cache.py:restore", "deps/inside", "setup from cache"),
]
