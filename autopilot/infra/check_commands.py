"""A check or setup command as the repository's settings write it (`pytest -q`), split into an
argv like a shell would split it, though no shell ever runs it.

Here, below the review and setup that run these commands, because the repository's settings
are checked when they are read.
"""

from __future__ import annotations

import shlex

from autopilot.models import CheckCommand


class CheckSyntaxError(ValueError):
    """A check command cannot be split into an argv; the message says which and how to fix it."""


def parse_check(command: str) -> CheckCommand:
    text = command.strip()
    if not text:
        raise CheckSyntaxError(f"check {command!r} is empty; write a command such as 'pytest -q'.")
    if "\0" in text:  # exec cannot pass it; fail here rather than at run time
        raise CheckSyntaxError(f"check {command!r} contains a NUL character; remove it.")
    try:
        argv = shlex.split(text)
    except ValueError as err:
        raise CheckSyntaxError(
            f"check {command!r} cannot be split into arguments ({err}); {_split_fix(err)}"
        ) from err
    return CheckCommand(command=text, argv=argv)


def _split_fix(err: ValueError) -> str:
    if "escaped" in str(err):  # shlex: "No escaped character", a backslash at the very end
        return "remove the trailing backslash or double it."
    return "close the quote, or escape a literal quote with a backslash."
