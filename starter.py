"""Start (or re-attach to) an autonomous session and follow it; look at and steer sessions.

    python starter.py PLAN [--repo DIR] [--start-batch N] [--end-batch M] [--concurrency K]
                           [--target-branch B] [--execution-place local|dagger] [--detach]
                           [--dry-run [--offline] [--json]] ...
    python starter.py status|watch|list|pause|resume|cancel|skip|retry|concurrency|cleanup ...
    python starter.py run PLAN ...   (the same as the first form: for a plan named like a command)

The command line itself is autopilot/operate/command_line.py; this script is its entry point.
"""

from __future__ import annotations

from autopilot.infra import exit_now
from autopilot.operate.command_line import build_parser, main, parse_command_line

__all__ = ["build_parser", "main", "parse_command_line"]

if __name__ == "__main__":
    exit_now(main())
