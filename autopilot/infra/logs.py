"""structlog for every process: readable lines on stderr, JSON lines in a file.

The standard library's loggers (the Temporal SDK's, `activity.logger`, `workflow.logger`) go
through the same processors, so one file holds everything a worker did.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog

from autopilot.infra.printable import printable
from autopilot.infra.private_files import touch_private

SHARED_PROCESSORS: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def escape_control_characters(
    _logger: object, _name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Text from a plan (task titles in summaries and messages) printed on a terminal as is
    could move the cursor or recolour it: escape its control characters, but for the line
    breaks and tabs of a multi-line message. JSON lines escape them already."""
    return {
        key: printable(value, keep="\n\t") if isinstance(value, str) else value
        for key, value in event.items()
    }


# A traceback's local variables hold what the code was handling: an API key in the egress
# proxy, a token, a prompt. Tracebacks are logged without them, on the console and in the file.
TRACEBACKS_WITHOUT_LOCALS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def configure_logging(json_file: Path | None, level: int = logging.INFO) -> None:
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                escape_control_characters,
                structlog.dev.ConsoleRenderer(
                    colors=sys.stderr.isatty(),
                    exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False),
                ),
            ],
            foreign_pre_chain=SHARED_PROCESSORS,
        )
    )
    handlers.append(console)
    if json_file is not None:
        # The handler opens the file itself (append): made private first, it stays so.
        to_file = logging.FileHandler(touch_private(json_file), encoding="utf-8")
        to_file.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    TRACEBACKS_WITHOUT_LOCALS,
                    structlog.processors.JSONRenderer(),
                ],
                foreign_pre_chain=SHARED_PROCESSORS,
            )
        )
        handlers.append(to_file)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
