"""How to find and call the Claude Code CLI.

The old system died on a PATH that its subprocesses did not inherit; here the binary is found
once, at worker start, and every run gets an explicit environment.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from autopilot.agent import allowed_env
from autopilot.models import AgentSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The project's own pinned install (./dev setup) first, then where installers usually put it.
USUAL_PLACES = (
    PROJECT_ROOT / "tools" / "claude-code" / "node_modules" / ".bin" / "claude",
    Path.home() / ".claude" / "local" / "claude",
    Path.home() / ".local" / "bin" / "claude",
    Path.home() / ".npm-global" / "bin" / "claude",
    Path("/opt/homebrew/bin/claude"),
    Path("/usr/local/bin/claude"),
    Path("/usr/bin/claude"),
)

# Defaults for an unattended run; a value the user set wins.
UNATTENDED_DEFAULTS = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    # The CLI retries API errors itself, up to 10 times by default; the workflow owns retries.
    "CLAUDE_CODE_MAX_RETRIES": "2",
}
STANDARD_PATH = ("/usr/local/bin", "/opt/homebrew/bin", "/usr/bin", "/bin")


class ClaudeNotFound(Exception):
    """No usable `claude` binary; the message lists where we looked and what to do."""


def find_claude(env: Mapping[str, str] | None = None) -> Path:
    """AUTOPILOT_CLAUDE_BIN, then PATH, then the usual install places."""
    env = os.environ if env is None else env
    explicit = env.get("AUTOPILOT_CLAUDE_BIN", "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return _absolute(path)
        raise ClaudeNotFound(
            f"AUTOPILOT_CLAUDE_BIN={explicit} is not an executable file; point it at the "
            "`claude` binary or unset it to search PATH."
        )
    on_path = shutil.which("claude", path=env.get("PATH"))
    if on_path:
        return _absolute(Path(on_path))
    for candidate in USUAL_PLACES:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return _absolute(candidate)
    looked = ", ".join(str(p) for p in USUAL_PLACES)
    raise ClaudeNotFound(
        "the Claude Code CLI (`claude`) was not found: not in AUTOPILOT_CLAUDE_BIN, not on PATH, "
        f"not in {looked}. Run ./dev setup (installs the pinned CLI into tools/claude-code) or "
        "set AUTOPILOT_CLAUDE_BIN=/path/to/claude."
    )


def _absolute(path: Path) -> Path:
    """Absolute, but symlinks kept: npm's `bin/claude` is a link into the package, and its
    folder (where `node` lives too) is the one agent_environment puts first on PATH."""
    return Path(os.path.abspath(path))


def agent_environment(
    claude_bin: Path, base: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The explicit environment of one CLI run: of the worker's, what autopilot/agent/allowed_env.py
    allows an agent; the way to the model API comes in `extra` (the gateway's, or
    `model_route` for a run that may hold the worker's credentials)."""
    env = allowed_env.pick(base, allowed_env.AGENT)
    for name, value in UNATTENDED_DEFAULTS.items():
        env.setdefault(name, value)
    # The binary's own folder first (node lives beside an npm-installed claude), then the
    # worker's PATH, then the standard places: the Bash tool needs git, sh and friends.
    path_entries = [str(claude_bin.parent), *base.get("PATH", "").split(os.pathsep)]
    path_entries += STANDARD_PATH
    env["PATH"] = os.pathsep.join(dict.fromkeys(p for p in path_entries if p))
    env.setdefault("HOME", str(Path.home()))
    env["TERM"] = "dumb"
    env.update(extra or {})
    return env


def model_route(base: Mapping[str, str]) -> dict[str, str]:
    """The worker's own way to the model API (its base URL, credentials, proxy), for a run
    outside the sandbox's gateway: container mode, and the tests that run the CLI bare."""
    return allowed_env.pick(base, [allowed_env.MODEL_ROUTE])


def stream_json_argv(claude_bin: Path) -> list[str]:
    """The head of every `claude -p` command line the pipeline runs (the agent's and the
    reviewer's): one event a line, which the runner reads as it comes."""
    return [
        str(claude_bin),
        "-p",
        "--output-format=stream-json",
        "--verbose",  # stream-json refuses to run without it
    ]


def claude_argv(
    claude_bin: Path, settings: AgentSettings, session_id: str, *, resume: bool = False
) -> list[str]:
    """The `claude -p` command line. The prompt goes on stdin: variadic flags such as
    --allowedTools would swallow a positional prompt."""
    argv = [
        *stream_json_argv(claude_bin),
        f"--permission-mode={settings.permission_mode}",
        f"--allowedTools={','.join(settings.allowed_tools)}",
        f"--max-turns={settings.max_turns}",
    ]
    argv.append(f"--resume={session_id}" if resume else f"--session-id={session_id}")
    if settings.model:
        argv.append(f"--model={settings.model}")
    return argv
