"""Remote URLs: which repository names are remotes, what `--remote` accepts, how a URL is
shown to people (its password never), and the environment our transport commands run in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import SplitResult, urlsplit, urlunsplit

from autopilot.git.runner import RepoError

# The transports a remote may use. Anything else (`ext::`, which runs a command, `fd::`, a
# remote helper of some other name) is refused before git sees it.
URL_SCHEMES = ("file", "ssh", "git", "http", "https", "git+ssh", "ssh+git")
ALLOWED_PROTOCOLS = "file:git:ssh:http:https"
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# `[user@]host:path` as git reads it: a colon before any slash (`[::1]:path` for IPv6).
_SCP_LIKE = re.compile(
    r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[^\]/\s]+\]|[^@/:\s\[\]]+):(?P<path>[^\s:].*)$"
)


class RemoteError(RepoError):
    """A remote cannot be used for a session; the message says what to fix."""


def is_remote(repo: str) -> bool:
    """Whether a session's repository is a remote (a URL or `user@host:path`) rather than a
    local path: the local kind's repositories are absolute paths."""
    if repo.startswith("/"):
        return False
    found = _SCHEME.match(repo)
    if found is not None:
        return found["scheme"].lower() in URL_SCHEMES
    return _SCP_LIKE.match(repo) is not None


def repo_name(url: str) -> str:
    """The repository's name in a remote's URL, for people: `project` of
    `git@host:team/project.git`."""
    return re.split(r"[/:]", url.rstrip("/"))[-1].removesuffix(".git")


def shown_url(url: str) -> str:
    """`url` for messages and logs: a password in it is replaced by `***`."""
    if _SCHEME.match(url) is None:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def redact(text: str, url: str) -> str:
    """`text` (git's words) without the password `url` carries."""
    if _SCHEME.match(url) is None:
        return text
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def _bad(given: str, why: str) -> RemoteError:
    return RemoteError(
        f"--remote {shown_url(given)!r} {why}. Give a git remote: a path to a repository on "
        "this machine, file:///abs/path, ssh://[user@]host/path, user@host:path, "
        "git://host/path or http(s)://host/path"
    )


def _normal_url(given: str, parts: SplitResult) -> str:
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise _bad(given, f"uses {parts.scheme}://, which is not a transport autopilot uses")
    path = parts.path.rstrip("/") or parts.path
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _bad(given, "names another machine in a file:// URL")
        if not path.startswith("/"):
            raise _bad(given, "has no absolute path after file://")
        return urlunsplit(("file", "", path, "", ""))
    host = parts.hostname
    if not host or host.startswith("-"):
        raise _bad(given, "has no host name")
    if not path or path == "/":
        raise _bad(given, "names no repository on the host")
    if parts.query or parts.fragment:
        raise _bad(given, "has a query or fragment (`?` or `#`)")
    # Hosts are case-insensitive: one remote, one cache, however it was typed.
    netloc = parts.netloc.rpartition("@")
    lowered = netloc[0] + netloc[1] + netloc[2].lower()
    return urlunsplit((scheme, lowered, path, "", ""))


def remote_url(given: str) -> str:
    """What `--remote` accepts, normalised: a URL (file, ssh, git, http, https), an scp-like
    `[user@]host:path`, or a path to a repository on this machine (made an absolute
    `file://` URL). RemoteError says what is wrong otherwise."""
    text = given.strip()
    if not text:
        raise _bad(given, "is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise _bad(given, "contains control characters")
    if text.startswith("-"):
        raise _bad(given, "starts with '-'")
    if _SCHEME.match(text):
        return _normal_url(given, urlsplit(text))
    if "://" not in text and "::" in text.split("/", 1)[0]:
        raise _bad(given, "names a git remote helper (`<helper>::`), which autopilot refuses")
    scp = _SCP_LIKE.match(text)
    if scp is not None and not Path(text).expanduser().exists():
        if scp["host"].startswith("-"):
            raise _bad(given, "has a host name starting with '-'")
        user = f"{scp['user']}@" if scp["user"] else ""
        return f"{user}{scp['host'].lower()}:{scp['path']}"
    path = Path(text).expanduser().absolute()
    if not path.is_dir():
        raise _bad(given, "is neither a URL nor a directory on this machine")
    return Path(os.path.normpath(path)).as_uri()


def transport_env() -> dict[str, str]:
    """What our git commands that talk to a remote add to their environment: only our
    transports, and ssh that never asks (a missing key fails at once instead of waiting for
    a passphrase no one types), unless the user chose their own ssh command."""
    env = {"GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env
