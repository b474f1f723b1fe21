"""What container mode's settings may be: an image reference, package names, a user name.

Each value reaches a command line (the engine's image pull, `apt-get install`, the container's
user) from a file in the repository, which a merged task can change: a value that would be read
as an option (`-oDPkg::Pre-Invoke::=id` to apt-get) or as something other than a name is
refused, with the rule it breaks.
"""

from __future__ import annotations

import re

__all__ = [
    "ROOT_USERS",
    "ContainerValueError",
    "OptionNotPackage",
    "check_image",
    "check_package",
    "check_user",
]

# Debian Policy 5.6.1: lower case letters, digits, `+`, `-`, `.`; at least two characters,
# starting with a letter or digit. A leading `-` (an option) can never match.
_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# POSIX's portable user names (letters, digits, `.`, `_`, `-`, not starting with `-`), as
# useradd limits them, at most 32 characters. A numeric uid matches too.
_USER_RE = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,31}")
ROOT_USERS = ("root", "0")
# The OCI distribution reference grammar (github.com/distribution/reference, regexp.go):
# [host[:port]/]path[:tag][@digest], a path of lower-case components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_RE = re.compile(
    rf"(?P<name>(?:{_HOST}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::{_TAG})?(?:@{_DIGEST})?"
)
_NAME_LIMIT = 255  # the grammar's limit on the name (host and path)


class ContainerValueError(ValueError):
    """A [container] value (or --image) breaks its rule; the message is the rule."""


class OptionNotPackage(ContainerValueError):
    """A package name that starts with `-`: apt-get would read it as an option."""


def _whole_match(pattern: re.Pattern[str], value: str, rule: str) -> str:
    """`value` when `pattern` matches all of it; else ContainerValueError(`rule`)."""
    if not pattern.fullmatch(value):
        raise ContainerValueError(rule)
    return value


def check_package(value: str) -> str:
    if value.startswith("-"):
        raise OptionNotPackage("an option, not a package name: apt-get would obey it")
    return _whole_match(
        _PACKAGE_RE,
        value,
        "not a Debian package name (lower-case letters, digits, +, - and ., at least two"
        " characters, starting with a letter or digit)",
    )


def check_user(value: str) -> str:
    return _whole_match(
        _USER_RE,
        value,
        "not a user name (letters, digits, ., _ and -, not starting with -, at most 32 characters)",
    )


def check_image(value: str) -> str:
    found = _IMAGE_RE.fullmatch(value)
    if found is None or len(found["name"]) > _NAME_LIMIT:
        raise ContainerValueError(
            "not an image reference ([registry/]name[:tag][@sha256:digest], the name in lower"
            " case, no spaces)"
        )
    return value
