"""The coding agent: the Claude CLI invocation, its prompts, the run and its stream, and what
contains it (sandbox, network egress, process guard).

Its face is the names below; container.py and container_engine.py load the Dagger SDK, so
callers import them from their modules, when a task runs in a container.
"""

from __future__ import annotations

from autopilot.agent.cli import (
    PROJECT_ROOT,
    UNATTENDED_DEFAULTS,
    ClaudeNotFound,
    agent_environment,
    claude_argv,
    find_claude,
    model_route,
    stream_json_argv,
)
from autopilot.agent.container_access import (
    CLI_DOWNLOAD,
    ENGINE_IMAGE,
    PORT_VAR,
    TOKEN_VAR,
    ContainerFailed,
    EngineAccess,
    EngineError,
    EngineLost,
    EngineTimedOut,
    EngineUnavailable,
    engine_preflight,
)
from autopilot.agent.container_stream import (
    ADDRESS_VAR,
    FORWARDER_JS,
    FORWARDER_PATH,
    SERVICE_ALIAS,
    SERVICE_PORT,
    STREAM_TOKEN_VAR,
    StreamListener,
)
from autopilot.agent.egress import (
    MAX_HEAD,
    Egress,
    Grant,
    Streams,
    open_tcp,
)
from autopilot.agent.egress_http import (
    MAX_HEADERS,
    BadRequest,
    parse_head,
)
from autopilot.agent.egress_names import (
    DEFAULT_PORTS,
    TargetRefused,
    checked_host,
    checked_port,
    public_addresses,
)
from autopilot.agent.process_guard import (
    ProcessGuard,
    detect_guard,
    kill_tree,
)
from autopilot.agent.prompts import (
    CONTEXT_LIMIT,
    conflict_prompt,
    continue_prompt,
    fix_prompt,
    merged_checks_prompt,
    task_prompt,
)
from autopilot.agent.rate_limits import (
    DEFAULT_WAIT_S,
    MAX_WAIT_S,
    MIN_WAIT_S,
    seconds_until_reset,
)
from autopilot.agent.runner import (
    AgentFailure,
    StreamState,
    classify,
    run_claude,
)
from autopilot.agent.sandbox import (
    GATEWAY_PORT,
    INSTALL_HINT,
    Gateway,
    Layout,
    Sandbox,
    SandboxUnavailable,
    check_layout,
    detect_sandbox,
    host_entries,
    named_credentials,
    space_environment,
    task_layout,
    tools_of,
    under_tmp,
)

__all__ = [
    "ADDRESS_VAR",
    "CLI_DOWNLOAD",
    "CONTEXT_LIMIT",
    "DEFAULT_PORTS",
    "DEFAULT_WAIT_S",
    "ENGINE_IMAGE",
    "FORWARDER_JS",
    "FORWARDER_PATH",
    "GATEWAY_PORT",
    "INSTALL_HINT",
    "MAX_HEAD",
    "MAX_HEADERS",
    "MAX_WAIT_S",
    "MIN_WAIT_S",
    "PORT_VAR",
    "PROJECT_ROOT",
    "SERVICE_ALIAS",
    "SERVICE_PORT",
    "STREAM_TOKEN_VAR",
    "TOKEN_VAR",
    "UNATTENDED_DEFAULTS",
    "AgentFailure",
    "BadRequest",
    "ClaudeNotFound",
    "ContainerFailed",
    "Egress",
    "EngineAccess",
    "EngineError",
    "EngineLost",
    "EngineTimedOut",
    "EngineUnavailable",
    "Gateway",
    "Grant",
    "Layout",
    "ProcessGuard",
    "Sandbox",
    "SandboxUnavailable",
    "StreamListener",
    "StreamState",
    "Streams",
    "TargetRefused",
    "agent_environment",
    "check_layout",
    "checked_host",
    "checked_port",
    "classify",
    "claude_argv",
    "conflict_prompt",
    "continue_prompt",
    "detect_guard",
    "detect_sandbox",
    "engine_preflight",
    "find_claude",
    "fix_prompt",
    "host_entries",
    "kill_tree",
    "merged_checks_prompt",
    "model_route",
    "named_credentials",
    "open_tcp",
    "parse_head",
    "public_addresses",
    "run_claude",
    "seconds_until_reset",
    "space_environment",
    "stream_json_argv",
    "task_layout",
    "task_prompt",
    "tools_of",
    "under_tmp",
]
