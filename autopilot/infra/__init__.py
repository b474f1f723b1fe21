"""What every process shares: settings and options, the Temporal connection and search
attributes, logs, private files, secret scrubbing and fault injection."""

from __future__ import annotations

from autopilot.infra.check_commands import (
    CheckSyntaxError,
    parse_check,
)
from autopilot.infra.config import (
    ConfigError,
    Settings,
    agent_task_queue,
    forge_task_queue,
    load_settings,
    on_this_worker,
    own_state_dir,
)
from autopilot.infra.container_rules import (
    ContainerValueError,
    check_image,
)
from autopilot.infra.exit_without_teardown import (
    exit_now,
)
from autopilot.infra.failpoints import (
    AFTER_MERGE,
    FAILPOINTS_ENV,
)
from autopilot.infra.host_names import (
    HostNameRefused,
    IPAddress,
    check_grant,
    is_dns_label,
    is_ip_literal,
    is_public,
    private_address_reason,
)
from autopilot.infra.input_files import (
    BOM,
    FileTooBig,
    InputFileError,
    IsDirectory,
    NotRegularFile,
    check_regular,
    read_regular,
)
from autopilot.infra.logs import (
    configure_logging,
)
from autopilot.infra.malloc_arenas import (
    ARENAS_VAR,
    CHOSEN_BY_US,
    forget_arena_cap,
    restart_with_arena_cap,
    worker_environment,
)
from autopilot.infra.notify_targets import (
    ALLOW_PRIVATE_SETTING,
    NOTIFY_COMMAND_SETTING,
    NotifyUrlError,
    allows_private,
    check_public,
    command_label,
    private_refusal,
    resolve,
    url_label,
)
from autopilot.infra.options import (
    BATCH_NUMBER_MAX,
    CONCURRENCY,
    MAX_COST_USD,
    RUN_RANGES,
    OptionError,
    RunNumbers,
    flag_value,
    not_allowed,
)
from autopilot.infra.printable import (
    printable,
)
from autopilot.infra.private_files import (
    make_private_dir,
    open_private,
)
from autopilot.infra.protected_paths import (
    is_protected,
    names,
    normalise,
    protected_changes,
    unnamed_protected,
)
from autopilot.infra.redact import (
    MIN_SECRET_CHARS,
    NO_SECRETS,
    Redactor,
    StreamScrubber,
    looks_secret,
    secret_values,
)
from autopilot.infra.repo_config import (
    CONFIG_FILE,
    CONFIG_SIZE_LIMIT,
    MODES,
    ON_FAILURE,
    PROMPT_FILE_LIMIT,
    TABLE,
    RepoConfigError,
    RepoReviewConfig,
    load_repo_config,
    merge_notify_settings,
    merge_review_settings,
)
from autopilot.infra.repo_paths import (
    relative_path,
)
from autopilot.infra.reserved_env import (
    CREDENTIALS,
)
from autopilot.infra.run_logs import (
    PREVIOUS_RUNS,
    RUN_MARK,
    UNKNOWN_RUN,
    begin_run,
)
from autopilot.infra.temporal_connection import (
    TemporalUnavailable,
    connect,
    embedded_server_answers,
    ensure_embedded_server,
    stop_embedded_server,
    temporal_cli,
)
from autopilot.infra.untrusted_fs import (
    UntrustedPath,
    remove_path,
)
from autopilot.infra.worker_options import (
    DEFAULT_GRACEFUL_SHUTDOWN_S,
    DEFAULT_MAX_AGENTS,
    GRACEFUL_SHUTDOWN_VAR,
    MAX_AGENTS_VAR,
    WorkerOptions,
    add_worker_options,
    worker_options,
)
from autopilot.infra.worker_process import (
    WorkerStartFailed,
    ensure_worker,
    has_pollers,
    stop_worker,
)

__all__ = [
    "AFTER_MERGE",
    "ALLOW_PRIVATE_SETTING",
    "ARENAS_VAR",
    "BATCH_NUMBER_MAX",
    "BOM",
    "CHOSEN_BY_US",
    "CONCURRENCY",
    "CONFIG_FILE",
    "CONFIG_SIZE_LIMIT",
    "CREDENTIALS",
    "DEFAULT_GRACEFUL_SHUTDOWN_S",
    "DEFAULT_MAX_AGENTS",
    "FAILPOINTS_ENV",
    "GRACEFUL_SHUTDOWN_VAR",
    "MAX_AGENTS_VAR",
    "MAX_COST_USD",
    "MIN_SECRET_CHARS",
    "MODES",
    "NOTIFY_COMMAND_SETTING",
    "NO_SECRETS",
    "ON_FAILURE",
    "PREVIOUS_RUNS",
    "PROMPT_FILE_LIMIT",
    "RUN_MARK",
    "RUN_RANGES",
    "TABLE",
    "UNKNOWN_RUN",
    "CheckSyntaxError",
    "ConfigError",
    "ContainerValueError",
    "FileTooBig",
    "HostNameRefused",
    "IPAddress",
    "InputFileError",
    "IsDirectory",
    "NotRegularFile",
    "NotifyUrlError",
    "OptionError",
    "Redactor",
    "RepoConfigError",
    "RepoReviewConfig",
    "RunNumbers",
    "Settings",
    "StreamScrubber",
    "TemporalUnavailable",
    "UntrustedPath",
    "WorkerOptions",
    "WorkerStartFailed",
    "add_worker_options",
    "agent_task_queue",
    "allows_private",
    "begin_run",
    "check_grant",
    "check_image",
    "check_public",
    "check_regular",
    "command_label",
    "configure_logging",
    "connect",
    "embedded_server_answers",
    "ensure_embedded_server",
    "ensure_worker",
    "exit_now",
    "flag_value",
    "forge_task_queue",
    "forget_arena_cap",
    "has_pollers",
    "is_dns_label",
    "is_ip_literal",
    "is_protected",
    "is_public",
    "load_repo_config",
    "load_settings",
    "looks_secret",
    "make_private_dir",
    "merge_notify_settings",
    "merge_review_settings",
    "names",
    "normalise",
    "not_allowed",
    "on_this_worker",
    "open_private",
    "own_state_dir",
    "parse_check",
    "printable",
    "private_address_reason",
    "private_refusal",
    "protected_changes",
    "read_regular",
    "relative_path",
    "remove_path",
    "resolve",
    "restart_with_arena_cap",
    "secret_values",
    "stop_embedded_server",
    "stop_worker",
    "temporal_cli",
    "unnamed_protected",
    "url_label",
    "worker_environment",
    "worker_options",
]
