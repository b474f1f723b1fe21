"""Which of the worker's environment variables a run may be given: allowlists, by purpose.

A run (agent, reviewer, check, setup command) gets only what is named here; the worker's
other variables (cloud credentials such as AWS_*, GOOGLE_*, exporter headers in OTEL_*, the
Temporal connection) never reach it, whatever their names. How the CLI reaches the model API
is not taken from the worker at all: a sandboxed run is given the gateway's variables
(sandbox.Gateway.environment), a container run the worker's own (`MODEL_ROUTE`, asked for by
name). A new purpose's variables (a package tool's, say) are one more `Allowed` group here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Allowed:
    """Variables passed by name, or by prefix except the names `excluded`."""

    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    excluded: frozenset[str] = frozenset()
    excluded_suffixes: tuple[str, ...] = ()  # of upper-cased names: credentials by their look

    def admits(self, name: str) -> bool:
        if name in self.excluded or name.upper().endswith(self.excluded_suffixes):
            return False
        return name in self.names or name.startswith(self.prefixes)


def pick(env: Mapping[str, str], groups: Iterable[Allowed]) -> dict[str, str]:
    """The variables of `env` that one of `groups` admits."""
    groups = tuple(groups)
    return {name: value for name, value in env.items() if any(g.admits(name) for g in groups)}


# Where programs are, whose run it is, its locale, its clock and its temp folder.
SYSTEM = Allowed(
    names=frozenset(
        {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"}
    ),
    prefixes=("LC_",),
)
# The Claude Code CLI's own settings (its documented variables): limits, timeouts, switches.
CLAUDE_CLI = Allowed(
    names=frozenset(
        {
            "API_TIMEOUT_MS",
            "MAX_THINKING_TOKENS",
            "MAX_MCP_OUTPUT_TOKENS",
            "BASH_DEFAULT_TIMEOUT_MS",
            "BASH_MAX_TIMEOUT_MS",
            "BASH_MAX_OUTPUT_LENGTH",
        }
    ),
    prefixes=("CLAUDE_CODE_", "DISABLE_"),
    # Not settings: a credential, a client certificate's key, and the switches to other
    # clouds' APIs, whose credentials stay out (the gateway speaks the Anthropic API only).
    excluded=frozenset(
        {
            "CLAUDE_CODE_OAUTH_TOKEN",
            "CLAUDE_CODE_CLIENT_CERT",
            "CLAUDE_CODE_CLIENT_KEY",
            "CLAUDE_CODE_CLIENT_KEY_PASSPHRASE",
            "CLAUDE_CODE_USE_BEDROCK",
            "CLAUDE_CODE_USE_VERTEX",
            "CLAUDE_CODE_USE_FOUNDRY",
            "CLAUDE_CODE_SKIP_BEDROCK_AUTH",
            "CLAUDE_CODE_SKIP_VERTEX_AUTH",
            "CLAUDE_CODE_SKIP_FOUNDRY_AUTH",
        }
    ),
)
# Who the agent's commits are by.
GIT_IDENTITY = Allowed(
    names=frozenset(
        {"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"}
    )
)
# How the CLI reaches the model API with the worker's own credentials: only for a run the
# worker's credentials may reach (container mode); a sandboxed run gets the gateway's.
MODEL_ROUTE = Allowed(
    names=frozenset(
        {
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "NO_PROXY",
            "https_proxy",
            "http_proxy",
            "no_proxy",
            "NODE_EXTRA_CA_CERTS",
        }
    )
)

# Where the package tools fetch from and how (a private index, a registry mirror): the
# installation's settings, which a setup or check would otherwise fail without. Never one that
# looks like a credential (a token, a password, a key: `check_env` names those when a
# repository needs them), and never PYTHONPATH or the like, which would change what runs.
PACKAGE_TOOLS = Allowed(
    names=frozenset({"GOPROXY", "GOFLAGS", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOSUMDB"}),
    prefixes=("PIP_", "UV_", "npm_config_", "NPM_CONFIG_", "YARN_", "CARGO_"),
    excluded_suffixes=("_TOKEN", "_PASSWORD", "_KEY", "_SECRET", "_AUTH", "_CREDENTIALS"),
)

# An agent's or the reviewer's run: the CLI and the tools it starts.
AGENT = (SYSTEM, CLAUDE_CLI, GIT_IDENTITY, PACKAGE_TOOLS)
# A check's or a setup command's: the repository's own code, so the least (plus the names the
# repository's `check_env` asks for, autopilot/review/checks.py).
CHECK = (Allowed(names=frozenset({"PATH", "HOME", "LANG"})), PACKAGE_TOOLS)
