"""Remote URLs: which repository names are remotes, what `--remote` accepts, how a URL is
shown to people (its password never), and the environment our transport commands run in.

A URL is data: it reaches git only after `remote_url` accepted it (on the starter, and again
on every worker, which gets it in a workflow input), and only after `--` in git's argv. A URL
never carries a secret: a session's URL is stored in its workflow input, its search
attributes, its status and every notification, so credentials stay in git's own helpers.
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
SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# `[user@]host:path` as git reads it: a colon before any slash (`[::1]:path` for IPv6).
SCP_LIKE = re.compile(
    r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[^\]/\s]+\]|[^@/:\s\[\]]+):(?P<path>[^\s:].*)$"
)


# Schemes whose user part is never a login name (http's is often a token: GitHub, GitLab and
# Bitbucket all take `https://<token>@host/...`), so any user part in them is refused.
_NO_USER_SCHEMES = ("http", "https", "git")
_CREDENTIALS_HELP = (
    "Keep credentials out of the URL (it is stored in the session's workflow input, its "
    "search attributes, `status`, `list` and every notification): let git's credential "
    "helpers hold them (`git config --global credential.helper store` or `cache`, "
    "`gh auth setup-git` for GitHub), or use ssh with a key (ssh://git@host/path)"
)


class RemoteError(RepoError):
    """A remote cannot be used for a session; the message says what to fix."""


def repo_name(url: str) -> str:
    """The repository's name in a remote's URL, for people: `project` of
    `git@host:team/project.git`."""
    return re.split(r"[/:]", url.rstrip("/"))[-1].removesuffix(".git")


def _secrets(url: str) -> list[str]:
    """What in `url` may be a secret: its password, and the user part of a scheme whose user
    is often a token."""
    if SCHEME.match(url) is None:
        # `user:password@host:path`, which git reads as host `user` and a path with `@`.
        scp = SCP_LIKE.match(url)
        head = scp["path"].split("/", 1)[0] if scp is not None else ""
        return [head.rpartition("@")[0]] if "@" in head else []
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        if parts.scheme.lower() in _NO_USER_SCHEMES:
            found.append(parts.username or "")
    except ValueError:
        return []
    return [secret for secret in found if secret]


def shown_url(url: str) -> str:
    """`url` for messages and logs: a password in it, and an http(s) or git:// user part (a
    token, often), is replaced by `***`."""
    if not _secrets(url):
        return url
    if SCHEME.match(url) is None:
        return redact(url, url)
    parts = urlsplit(url)
    user = parts.username or ""
    if parts.scheme.lower() in _NO_USER_SCHEMES:
        user = "***"
    secret = ":***" if parts.password is not None else ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}{secret}@{host}"))


def redact(text: str, url: str) -> str:
    """`text` (git's words) without the secrets `url` carries."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def _bad(given: str, why: str) -> RemoteError:
    return RemoteError(
        f"--remote {shown_url(given)!r} {why}. Give a git remote: a path to a repository on "
        "this machine, file:///abs/path, ssh://[user@]host/path, user@host:path, "
        "git://host/path or http(s)://host/path"
    )


def _credentials(given: str, what: str) -> RemoteError:
    return RemoteError(f"--remote {shown_url(given)!r} carries {what}. {_CREDENTIALS_HELP}")


def _normal_url(given: str, parts: SplitResult) -> str:
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        raise _bad(given, f"uses {parts.scheme}://, which is not a transport autopilot uses")
    if parts.password is not None:
        raise _credentials(given, "a password")
    if parts.username is not None and scheme in _NO_USER_SCHEMES:
        # Not only `user:password@`: `https://<token>@host/` authenticates with the token as
        # the user name. A plain user name goes in git's config instead
        # (`git config --global credential.https://host.username NAME`).
        raise _credentials(given, f"a user part in a {scheme}:// URL (a token, often)")
    path = parts.path.rstrip("/") or parts.path
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _bad(given, "names another machine in a file:// URL")
        if not path.startswith("/"):
            raise _bad(given, "has no absolute path after file://")
        return urlunsplit(("file", "", _normal_path(path), "", ""))
    host = parts.hostname
    if not host or host.startswith("-"):
        raise _bad(given, "has no host name")
    if not path or path == "/":
        raise _bad(given, "names no repository on the host")
    if path.lstrip("/").startswith("-"):
        raise _bad(given, "has a path starting with '-'")
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
    if SCHEME.match(text):
        try:
            parts = urlsplit(text)
            _ = parts.port  # urlsplit checks the port only when it is asked for
        except ValueError as err:
            raise _bad(given, f"is not a URL git reads ({err})") from None
        return _normal_url(given, parts)
    if "://" not in text and "::" in text.split("/", 1)[0]:
        raise _bad(given, "names a git remote helper (`<helper>::`), which autopilot refuses")
    local = _local_path(text)
    scp = SCP_LIKE.match(text)
    if scp is not None and not local.exists():
        if scp["host"].startswith("-"):
            raise _bad(given, "has a host name starting with '-'")
        if scp["path"].startswith("-"):
            raise _bad(given, "has a path starting with '-'")
        if _secrets(text):
            raise _credentials(given, "what looks like `user:password@host`")
        user = f"{scp['user']}@" if scp["user"] else ""
        return f"{user}{scp['host'].lower()}:{scp['path']}"
    if not local.is_dir():
        raise _bad(given, "is neither a URL nor a directory on this machine")
    return Path(_normal_path(str(local.absolute()))).as_uri()


def _local_path(text: str) -> Path:
    """`text` as a path on this machine, `~` expanded (`~nobody-here` stays as it is)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # the home of a user this machine does not have
        return Path(text)


def _normal_path(path: str) -> str:
    """`path` (absolute) without `..`, `.` or repeated slashes, a leading `//` included (POSIX
    keeps that one, and `file:////` would not read back as the same URL)."""
    return "/" + os.path.normpath(path).lstrip("/")


def checked_remote(url: str) -> str:
    """`url` from a workflow input, checked again where it is used (a worker): it must be a
    remote URL as `remote_url` leaves it, so nothing the starter would refuse reaches git
    here. RemoteError otherwise."""
    # A local path (the local kind's repositories are absolute paths) is no URL as stored:
    # remote_url makes it a file:// URL, or refuses it.
    try:
        normal = remote_url(url)
    except RemoteError:
        raise RemoteError(
            f"the repository {shown_url(url)!r} is not a remote URL autopilot uses"
        ) from None
    if normal != url:
        raise RemoteError(
            f"the remote URL {shown_url(url)!r} is not in the form the starter stores "
            f"({shown_url(normal)!r}); start the session again with `starter.py --remote`"
        )
    return url


def transport_env() -> dict[str, str]:
    """What our git commands that talk to a remote add to their environment: only our
    transports, and ssh that never asks (a missing key fails at once instead of waiting for
    a passphrase no one types), unless the user chose their own ssh command."""
    env = {"GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env
