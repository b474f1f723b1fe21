"""The agent's sandbox: what it, and every command its tools start, may see and change.

Each agent, reviewer and check runs under bubblewrap (`bwrap`, Debian's `bubblewrap`):

- the whole file system read-only, with three writable places: the task's workspace, the
  agent's own home (its Claude config and sessions, tool caches) and its own /tmp;
- the task's workspace at one fixed path, `/workspace/<repository name>`, the same for every
  task, round and worker: what a setup records as an absolute path (a venv's scripts, an
  editable install's `.pth`, `node_modules/.bin` links) holds in every later workspace that
  gets it from the setup cache;
- the state dir and the user's repository hidden behind empty folders (the repository's
  object store shown again read-only: the workspace reads it through `alternates`), and the
  worker user's credential files hidden;
- its own PID namespace, no capabilities, and death with the worker (`setpriv --pdeathsig`
  in front; bwrap's `--die-with-parent` takes the namespace with it).

With a gateway, the run has no network of its own: its loopback port GATEWAY_PORT leads,
through socat (started by a bash script, _BRIDGE), to the worker's egress proxy
(autopilot/agent/egress.py), which holds the API credentials and lets it reach the model
API and its granted domains only. There is no fallback: a worker that cannot sandbox does
not start (`detect_sandbox`), and says how to install bubblewrap, socat and bash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autopilot.infra import untrusted_fs
from autopilot.models import TaskSite

INSTALL_HINT = (
    "install bubblewrap, socat and bash (as root: `apt-get install -y bubblewrap socat`; "
    "otherwise `sudo apt-get install bubblewrap socat`, or your system's packages of those "
    "names), then "
    "start the worker again. The agent never runs outside its sandbox"
)
# Inside the sandbox: where its programs find the gateway, and where its socket is mounted.
GATEWAY_PORT = 8117
GATEWAY_SOCKET = "/run/autopilot/egress.sock"
LOOPBACK_NAMES = "127.0.0.1,localhost,::1"
# Started before the command, by bash: its /dev/tcp connects, and `read -t` on a pipe of its
# own waits, without starting a program. socat forwards the sandbox's loopback port to the
# egress socket; the command starts once the port answers (tried every ms, for ~10 s) and
# the worker's proxy answers through it (an empty request head, refused with a 400; a gone
# worker's bridge closes the connection: SIGPIPE ignored meanwhile, so that bash lives to say so).
# bwrap's --die-with-parent takes hold only once the sandbox is set up, tens of ms after the
# start: a worker killed before then left the sandbox running on its own, the bridge keeping
# bwrap's pid 1 (which waits for every process in it) alive for ever. So the command starts
# only while the worker (its proxy) lives; a worker killed after that takes the sandbox with
# it, and on the ways out before the command the bridge is ended.
_BRIDGE = (
    "socat TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork UNIX-CONNECT:{socket} & "
    "bridge=$!; exec 4<> <(:); i=0; "
    "until : 2>/dev/null 3<>/dev/tcp/127.0.0.1/{port}; do i=$((i+1)); "
    'if [ "$i" -ge 10000 ]; then echo "autopilot: the sandbox gateway did not start" >&2; '
    "kill $bridge; exit 97; fi; read -r -t 0.001 -u 4; done; "
    "trap '' PIPE; exec 4>&- 3<>/dev/tcp/127.0.0.1/{port}; printf '\\r\\n\\r\\n' >&3; "
    "IFS= read -r -t 30 answer <&3; exec 3>&-; trap - PIPE; "
    'case "$answer" in HTTP/*) ;; *) echo "autopilot: the worker that started this sandbox '
    'is gone" >&2; kill $bridge; exit 98;; esac; exec "$@"'
)
# The worker user's files that hold credentials, relative to its home: hidden from the agent
# (directories behind an empty folder, files behind an empty file).
CREDENTIALS = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".claude",
    ".claude.json",
    ".config/gcloud",
    ".config/gh",
    ".config/temporalio",  # the Temporal CLI's and SDK's profiles: an API key, TLS keys
    ".config/git/credentials",
    ".git-credentials",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".password-store",
    ".local/share/keyrings",
    ".cargo/credentials",
    ".cargo/credentials.toml",
)
# The worker's variables that name a credential's file or folder elsewhere than CREDENTIALS
# says (KUBECONFIG may list several): hidden the same way. The worker's own Claude config dir
# holds its login; the run's is its own folder (space_environment).
CREDENTIAL_VARIABLES = (
    "CLAUDE_CONFIG_DIR",
    "TEMPORAL_CONFIG_FILE",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "KUBECONFIG",
    "DOCKER_CONFIG",
    "GH_CONFIG_DIR",
    "NPM_CONFIG_USERCONFIG",
)
# Where every task's workspace is inside the sandbox: WORKSPACES/<repository name>.
WORKSPACES = Path("/workspace")
# What of the host's / the sandbox does not take over: made anew (bwrap's own /dev and /proc,
# the run's /tmp) or the sandbox's own (WORKSPACES: the host's entries there are bound into it).
_NOT_FROM_HOST = frozenset({"dev", "proc", "tmp", WORKSPACES.name})
# One namespace of each kind bwrap can make without privileges, except the network's.
_NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot make a sandbox here; the message says how to fix it."""


@dataclass(frozen=True)
class WorkspaceMount:
    """A workspace seen inside the sandbox at `inside` (a fixed path), not where it is."""

    inside: Path
    writable: bool


@dataclass(frozen=True)
class Layout:
    """What one sandboxed command sees: where it starts, what it may change, what is hidden.
    With `mount`, `workdir` (the workspace on this machine) is seen only at `mount.inside`,
    and the command starts there."""

    workdir: Path
    writable: Sequence[Path]  # bound read-write, created if missing
    tmp: Path  # its /tmp
    hidden: Sequence[Path] = ()  # behind an empty folder (or file)
    shown: Sequence[Path] = ()  # read-only again inside a hidden folder
    read_only: Sequence[Path] = ()  # inside a writable one, but not to be changed
    mount: WorkspaceMount | None = None

    @property
    def start(self) -> Path:
        """Where the command starts, as it sees it."""
        return self.workdir if self.mount is None else self.mount.inside


@dataclass(frozen=True)
class Gateway:
    """The sandbox's only way out: the worker's egress proxy, at its Unix socket."""

    socket: Path
    socat: str = "socat"

    def environment(self, token: str, credentials: Sequence[str] | None = None) -> dict[str, str]:
        """What a run's programs need to use the gateway with its grant's token: a proxy for
        the granted domains, and with `credentials` (the worker's credential variables) the
        model API for the CLI, each variable holding the token instead."""
        local = f"127.0.0.1:{GATEWAY_PORT}"
        proxy = f"http://autopilot:{token}@{local}"
        # This sandbox's own loopback, by each of its names, is reached directly (a test's
        # server on localhost); the proxy dials no loopback address anyway.
        env = {"NO_PROXY": LOOPBACK_NAMES, "no_proxy": LOOPBACK_NAMES}
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            env[name] = proxy
        if credentials is not None:
            env["ANTHROPIC_BASE_URL"] = f"http://{local}"
            env |= {name: token for name in credentials}
        return env


@dataclass(frozen=True)
class Sandbox:
    bwrap: str
    # Before bwrap: dies with the worker even when the worker is SIGKILLed.
    death: tuple[str, ...] = ()
    home: Path = field(default_factory=Path.home)
    # Credentials the worker's environment names (`named_credentials`), hidden besides CREDENTIALS.
    named: tuple[Path, ...] = ()
    description: str = "bubblewrap: read-only system, own PID namespace, dies with the worker"

    def wrap(
        self, argv: Sequence[str], layout: Layout, gateway: Gateway | None = None
    ) -> list[str]:
        """`argv` run inside the sandbox that `layout` describes; with `gateway`, with no
        network but the way to it."""
        for folder in (*layout.writable, layout.tmp):
            # A link a run before left in its own folder would be bound, followed, in its place.
            untrusted_fs.replace_with_dir(folder)
        options = [*_NAMESPACES, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        # The host's / read-only, entry by entry onto the sandbox's own root (a tmpfs, made
        # read-only at the end): a bind of / itself is read-only, where no WORKSPACES could
        # be made. /tmp first: the places below may lie inside it (the host's /tmp, as sources).
        options += host_entries(Path("/"), _NOT_FROM_HOST)
        # A host's own WORKSPACES (a cloud IDE keeps its checkouts there) stays as readable as
        # the rest, but for the name the task's workspace takes.
        taken = {layout.mount.inside.name} if layout.mount is not None else set()
        options += host_entries(WORKSPACES, taken)
        options += ["--dev", "/dev", "--proc", "/proc"]
        options += ["--bind", str(layout.tmp), "/tmp"]
        emptied: list[Path] = []
        for path in _depth_first(self._secrets() + [Path(p) for p in layout.hidden]):
            if path.is_dir() and not path.is_symlink():
                options += ["--tmpfs", str(path)]
                emptied.append(path)
            elif path.exists():
                options += ["--ro-bind", os.devnull, str(path)]
        for path in layout.shown:
            if path.exists():
                options += ["--ro-bind", str(path), str(path)]
        for path in _depth_first(list(layout.writable)):
            options += ["--bind", str(path), str(path)]
        for path in layout.read_only:
            if path.exists():
                options += ["--ro-bind", str(path), str(path)]
        if layout.mount is not None:
            bind = "--bind" if layout.mount.writable else "--ro-bind"
            options += [bind, str(layout.workdir), str(layout.mount.inside)]
        for path in emptied:  # not even a throw-away write there: it would only mislead
            options += ["--remount-ro", str(path)]
        options += ["--chdir", str(layout.start)]
        if gateway is not None:
            options += ["--unshare-net", "--tmpfs", "/run"]
            options += ["--bind", str(gateway.socket), GATEWAY_SOCKET]
        options += ["--remount-ro", "/"]  # every mount point is made: nothing new on the root
        if gateway is None:
            return [*self.death, self.bwrap, *options, "--", *argv]
        bridge = _BRIDGE.format(port=GATEWAY_PORT, socket=GATEWAY_SOCKET)
        return [*self.death, self.bwrap, *options, "--", "bash", "-c", bridge, "bash", *argv]

    def _secrets(self) -> list[Path]:
        """What to hide, links followed: a dotfile manager's ~/.aws -> ~/dotfiles/aws is
        hidden where its files are (a mount cannot go on the link itself)."""
        places = [self.home / name for name in CREDENTIALS] + list(self.named)
        found = [Path(os.path.realpath(path)) for path in places if path.exists()]
        return [path for path in found if not self.home.is_relative_to(path)]


def host_entries(folder: Path, leave_out: Collection[str]) -> list[str]:
    """`folder`'s entries on the host but those named in `leave_out`, each at its place and
    read-only; its links (/bin -> usr/bin) as the same links."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    options: list[str] = []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if entry.name in leave_out:
            continue
        if entry.is_symlink():
            options += ["--symlink", os.readlink(entry.path), entry.path]
        else:
            options += ["--ro-bind", entry.path, entry.path]
    return options


def named_credentials(env: Mapping[str, str], home: Path) -> tuple[Path, ...]:
    """The files and folders that CREDENTIAL_VARIABLES in `env` name. Never the home itself
    or a folder above it: hiding that would hide the tools (a CLAUDE_CONFIG_DIR of `~` is the
    user's mistake, and ~/.claude.json is hidden anyway)."""
    named: list[Path] = []
    for name in CREDENTIAL_VARIABLES:
        for entry in env.get(name, "").split(os.pathsep):
            if not entry.strip():
                continue
            path = Path(os.path.abspath(Path(entry).expanduser()))
            if not home.is_relative_to(path):
                named.append(path)
    return tuple(dict.fromkeys(named))


def _depth_first(paths: list[Path]) -> list[Path]:
    """Outer folders before what lies inside them: a later mount goes on top of an earlier."""
    unique = dict.fromkeys(Path(os.path.abspath(path)) for path in paths)
    return sorted(unique, key=lambda path: len(path.parts))


def detect_sandbox(env: Mapping[str, str] | None = None) -> Sandbox:
    """The sandbox of this machine, proven by making one; SandboxUnavailable if it cannot.
    `env` (the worker's, by default) names credentials to hide besides CREDENTIALS."""
    env = os.environ if env is None else env
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bubblewrap (`bwrap`) is not installed: {INSTALL_HINT}")
    if shutil.which("socat") is None:
        raise SandboxUnavailable(f"socat (the sandbox's gateway) is not installed: {INSTALL_HINT}")
    if shutil.which("bash") is None:  # the gateway's bridge script (_BRIDGE) is bash's
        raise SandboxUnavailable(
            f"bash (the sandbox gateway's script) is not installed: {INSTALL_HINT}"
        )
    setpriv = shutil.which("setpriv")
    death = (setpriv, "--pdeathsig", "KILL", "--") if setpriv else ()
    home = Path.home()
    sandbox = Sandbox(bwrap, death, home=home, named=named_credentials(env, home))
    probe = Path(os.environ.get("TMPDIR") or "/tmp")
    argv = sandbox.wrap(["true"], Layout(workdir=Path("/"), writable=(), tmp=probe))
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SandboxUnavailable(f"bubblewrap could not be run ({err}): {INSTALL_HINT}") from err
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()[-500:]
        raise SandboxUnavailable(
            f"bubblewrap cannot make a sandbox on this machine (it said: {said}); it needs "
            "user namespaces (`sysctl kernel.unprivileged_userns_clone=1`) or to run as root. "
            f"Otherwise {INSTALL_HINT}"
        )
    return sandbox


def under_tmp(paths: Sequence[Path]) -> list[Path]:
    """Those of `paths` that the run's own /tmp would hide (a project checked out under /tmp,
    its tools with it), to be shown again read-only."""
    return [path for path in paths if path.is_absolute() and path.is_relative_to("/tmp")]


def tools_of(claude_bin: Path, path_var: str) -> list[Path]:
    """What a run needs to see of the worker's tools: the CLI's install (from the name it is
    called by to the file it links to: npm's `.bin/claude` points into the package) and the
    folders on its PATH."""
    called, real = Path(os.path.abspath(claude_bin)), Path(os.path.realpath(claude_bin))
    install = Path(os.path.commonpath([called.parent, real.parent]))
    return [install, *(Path(entry) for entry in path_var.split(os.pathsep) if entry)]


def task_layout(
    workspace: Path,
    space: Path,
    *,
    state_dir: Path,
    site: TaskSite,
    objects: Path,
    writes_workspace: bool,
    tools: Sequence[Path] = (),
) -> Layout:
    """An agent's (or a reviewer's) layout: its workspace at its fixed path, writable or not
    (the reviewer only reads), and `space`, its own folder for home, config and temp. The
    state dir and the user's repository (a remote is not on this machine) are hidden; the
    repository's objects stay readable for `alternates`."""
    return Layout(
        workdir=workspace,
        writable=[space],
        tmp=space / "tmp",
        hidden=[state_dir, *_local(site)],
        shown=[*under_tmp(tools), objects],
        mount=WorkspaceMount(Path(site.inside), writable=writes_workspace),
    )


def check_layout(
    workspace: Path,
    tmpdir: Path,
    *,
    state_dir: Path,
    site: TaskSite,
    shown: Sequence[Path],
) -> Layout:
    """A check's (or a setup command's) layout: the workspace at its fixed path and the
    check's own temp folder writable, the state dir and the user's repository hidden."""
    return Layout(
        workdir=workspace,
        writable=[tmpdir],
        tmp=tmpdir,
        hidden=[state_dir, *_local(site)],
        shown=shown,
        mount=WorkspaceMount(Path(site.inside), writable=True),
    )


def _local(site: TaskSite) -> list[Path]:
    """The user's repository, if it is on this machine."""
    return [] if not site.repo or site.remote else [Path(site.repo).absolute()]


def space_environment(space: Path) -> dict[str, str]:
    """What a sandboxed agent's environment says about its own folder: its home and its
    Claude config are there (the worker's own hold credentials and the user's settings)."""
    return {
        "HOME": str(space / "home"),
        "CLAUDE_CONFIG_DIR": str(space / "config"),
        "TMPDIR": "/tmp",
    }
