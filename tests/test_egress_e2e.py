"""The egress proxy against a hostile agent and a hostile repository check, through the real
pipeline (starter, worker, Temporal, the claude CLI, bubblewrap): the repository grants
`example.org`; the agent asks the proxy for a loopback port of this machine in every spelling
that once got out or could, and the check sends the model API a request with its own proxy
token. A loopback listener and the scripted model's log say whether anything got through."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autopilot.agent import GATEWAY_PORT
from autopilot_testing import (
    STRUCTURED_OUTPUT,
    Conversation,
    PlanFollower,
    Reply,
    ScriptedModel,
    ToolCall,
    ToolUses,
)
from tests.gitutil import commit_file, git, make_repo
from tests.harness import autopilot

PLAN = """\
# One task

## Batch 1: Only

### Task 1.1: Alpha

**Files:**
- Create: `alpha.txt`

```text
alpha
```
"""

CHECK_SAYS = "FROM-THE-CHECK"
# The check: the model API with its own token (from HTTPS_PROXY), as an agent's CLI would call
# it; then a granted name on a port not granted.
CHECK = f"""\
token=${{HTTPS_PROXY#http://autopilot:}}
token=${{token%@*}}
curl -s -X POST -H "x-api-key: $token" -H "content-type: application/json" \\
  -d '{{"model":"m","max_tokens":5,"messages":[{{"role":"user","content":"{CHECK_SAYS}"}}]}}' \\
  http://127.0.0.1:{GATEWAY_PORT}/v1/messages
echo
curl -s -x "$HTTP_PROXY" http://example.org:22/
"""


def targets(port: int) -> list[str]:
    """A loopback port, spelt to pass for a granted name or as an address; and a granted name
    on a port not granted (its refusal lists the ports the grant got from .autopilot.toml)."""
    hosts = [
        "127.0.0.1\0%.example.org",  # the allowlist saw `….example.org`, the resolver 127.0.0.1
        "127.0.0.1%.example.org",
        "127.0.0.1\0.example.org",
        "example.org@127.0.0.1",
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "localhost",
        "[::ffff:127.0.0.1]",
        "[::1]",
    ]
    return [f"{host}:{port}" for host in hosts] + ["example.org:22"]


# Run in the agent's sandbox: each target as CONNECT and as an absolute-form GET, the run's
# proxy credentials from HTTPS_PROXY; one line per try with the proxy's answer.
ATTACK = """\
import base64, os, socket, sys
token = os.environ["HTTPS_PROXY"].split("autopilot:", 1)[1].split("@", 1)[0]
auth = base64.b64encode(("autopilot:" + token).encode()).decode()
for i, target in enumerate(sys.argv[1:]):
    target = target.replace("NUL", "\\0")
    for line in ("CONNECT " + target, "GET http://" + target + "/"):
        s = socket.create_connection(("127.0.0.1", GATEWAY))
        head = line + " HTTP/1.1\\r\\nProxy-Authorization: Basic " + auth + "\\r\\n\\r\\n"
        s.sendall(head.encode("latin-1"))
        s.settimeout(10)
        answer = b""
        try:
            while chunk := s.recv(4096):  # the proxy closes after a refusal
                answer += chunk
        except OSError as err:
            answer += b" (no more: " + str(err).encode() + b")"
        answer = answer.decode("latin-1")
        print("TRY", i, line.split(" ")[0], repr(answer))
        s.close()
""".replace("GATEWAY", str(GATEWAY_PORT))


@dataclass
class Listener:
    """A loopback port of this machine that records every connection it accepts."""

    server: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))
    accepted: list[tuple[str, int]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def serve(self) -> None:
        while True:
            try:
                connection, peer = self.server.accept()
            except OSError:
                return  # closed: the test is over
            self.accepted.append(peer)
            connection.close()


class HostileAgent:
    """Tries every spelling of the listener's port through the proxy, then does its task."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.follower = PlanFollower()

    def __call__(self, conversation: Conversation) -> Reply:
        if STRUCTURED_OUTPUT in conversation.tools:
            return self.follower(conversation)  # the reviewer
        if conversation.turn == 0 and not conversation.side_call:
            args = " ".join(f"'{t.replace(chr(0), 'NUL')}'" for t in targets(self.port))
            command = f"python3 - {args} <<'EOF'\n{ATTACK}EOF"
            return ToolUses([ToolCall("Bash", {"command": command, "description": "x"})])
        return self.follower(conversation)


@dataclass
class Outcome:
    repo: Path
    state: Path
    listener: Listener
    conversations: list[Conversation]
    side_calls: list[Conversation]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    root = tmp_path_factory.mktemp("egress-e2e")
    listener = Listener()
    threading.Thread(target=listener.serve, daemon=True).start()
    repo = make_repo(root / "repo")
    commit_file(repo, "hostile_check.sh", CHECK)
    config = (
        f'[sandbox]\nnetwork = ["example.org"]\nports = [443, 80, {listener.port}]\n'
        '[review]\nchecks = ["sh hostile_check.sh"]\n'
    )
    commit_file(repo, ".autopilot.toml", config)
    plan = root / "plan.md"
    plan.write_text(PLAN)
    agent = HostileAgent(listener.port)
    try:
        with ScriptedModel(agent) as model, autopilot(root / "autopilot", model.env()) as ap:
            done = ap.starter(str(plan), "--repo", str(repo))
            assert done.returncode == 0, done.stdout + done.stderr
            yield Outcome(repo, ap.state_dir, listener, model.snapshot(), list(model.side_calls))
    finally:
        listener.server.close()


@pytest.mark.e2e
@pytest.mark.reliability(
    "a hostile agent asks the egress proxy for a loopback port of the worker as a granted name"
    " (`127.0.0.1\\0%.example.org`, `%`, `@`) and as an address in every notation, by CONNECT"
    " and absolute-form GET",
    "the loopback listener sees no connection; every try is refused; the task merges",
)
def test_a_hostile_agent_reaches_no_loopback_port_through_the_proxy(hostile_run: Outcome) -> None:
    results = "\n".join(r for c in hostile_run.conversations for r in c.last_tool_results)
    tries = [line for line in results.splitlines() if line.startswith("TRY ")]
    assert len(tries) == 2 * len(targets(0)), results
    for line in tries:
        assert "'HTTP/1.1 403 " in line or "'HTTP/1.1 400 " in line, line
    assert hostile_run.listener.accepted == []
    # [sandbox] ports reached the agent's grant
    ports = f"not among the ports this run may reach (443, 80, {hostile_run.listener.port})"
    assert ports in results, results
    log = git(hostile_run.repo, "log", "--first-parent", "--format=%s", "main").splitlines()
    assert log[0] == "Merge task 1.1: Alpha"


@pytest.mark.e2e
@pytest.mark.reliability(
    "a repository check sends the model API a request with its own proxy token as x-api-key",
    "the proxy refuses it (403, checks may not use the model API); the model records nothing of it",
)
def test_a_hostile_check_gets_no_model_api(hostile_run: Outcome) -> None:
    asked = [*hostile_run.conversations, *hostile_run.side_calls]
    assert not [c for c in asked if CHECK_SAYS in c.prompt], "the check reached the model"
    logs = "\n".join(p.read_text() for p in (hostile_run.state / "checks").rglob("*.log"))
    assert "only the agent's and the reviewer's runs may use the model API" in logs, logs
    # [sandbox] ports reached the check's grant too
    ports = f"not among the ports this run may reach (443, 80, {hostile_run.listener.port})"
    assert ports in logs, logs
