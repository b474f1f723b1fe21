"""`starter.py webhook --listen HOST:PORT`: GitHub's webhook deliveries, so a session reads a
pull request's gate at once instead of at its next poll (forge mode; the polls go on anyway).

Each delivery must carry GitHub's `X-Hub-Signature-256` of its body by the secret in
AUTOPILOT_WEBHOOK_SECRET (the one set in the repository's webhook settings): anything else is
answered 401 and read no further. A delivery about one of our pull requests (its branch
`autopilot-pr/<session>/<task>`: pull requests, reviews, check runs and suites, commit
statuses) signals that session `forge_changed` with the task. The body is data: only its
branch names are read, and they only pick a session and a task to signal.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from temporalio.client import Client
from temporalio.service import RPCError

from autopilot.infra import printable
from autopilot.steps.forge import task_of_head
from workflows.session import SessionWorkflow

SECRET_ENV = "AUTOPILOT_WEBHOOK_SECRET"
BODY_LIMIT = 25 * 1024 * 1024  # GitHub caps a delivery's payload at 25 MB
SIGNAL_TIMEOUT_S = 10.0


class WebhookError(Exception):
    """The receiver cannot start: the message says what to fix."""


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """GitHub's `X-Hub-Signature-256: sha256=<hex HMAC of the body>`, compared in constant
    time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


def heads_of(event: str, payload: Mapping[str, Any]) -> list[str]:
    """The branch names a delivery is about, for the events that move a pull request's gate."""
    heads: list[str] = []
    pull = payload.get("pull_request")
    if event.startswith("pull_request") and isinstance(pull, dict):
        heads.append(str(pull.get("head", {}).get("ref", "")))
    run = payload.get("check_run")
    if event == "check_run" and isinstance(run, dict):
        heads += [str(p.get("head", {}).get("ref", "")) for p in run.get("pull_requests", [])]
        heads.append(str(run.get("check_suite", {}).get("head_branch") or ""))
    suite = payload.get("check_suite")
    if event == "check_suite" and isinstance(suite, dict):
        heads.append(str(suite.get("head_branch") or ""))
    if event == "status":
        heads += [str(branch.get("name", "")) for branch in payload.get("branches", [])]
    return [head for head in dict.fromkeys(heads) if head]


def targets(event: str, body: bytes) -> list[tuple[str, str]]:
    """(session, task) of each of our pull requests a delivery is about."""
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    if not isinstance(payload, dict):
        return []
    found = [task_of_head(head) for head in heads_of(event, payload)]
    return list(dict.fromkeys(target for target in found if target is not None))


def listen_address(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WebhookError(f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:8765")
    return host.strip("[]"), int(port)


async def serve(listen: str, client: Client, environ: Mapping[str, str], out: TextIO) -> int:
    """Receive deliveries until interrupted."""
    secret = environ.get(SECRET_ENV, "")
    if not secret:
        raise WebhookError(
            f"set {SECRET_ENV} to the secret of the repository's webhook (Settings → Webhooks): "
            "deliveries without its signature are refused"
        )
    host, port = listen_address(listen)
    loop = asyncio.get_running_loop()

    def signal(session: str, task: str) -> bool:
        handle = client.get_workflow_handle(session)
        sent = asyncio.run_coroutine_threadsafe(
            handle.signal(SessionWorkflow.forge_changed, task), loop
        )
        try:
            sent.result(timeout=SIGNAL_TIMEOUT_S)
        except (RPCError, TimeoutError):
            return False  # not a session of this cluster, or over: its polls were enough
        return True

    server = ThreadingHTTPServer((host, port), _handler(secret.encode(), signal, out))
    out.write(f"Receiving GitHub webhooks on http://{host}:{server.server_port}/\n")
    out.flush()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        await asyncio.Event().wait()  # until interrupted
    finally:
        server.shutdown()
        server.server_close()
    return 0


def _handler(secret: bytes, signal: Any, out: TextIO) -> type[BaseHTTPRequestHandler]:
    class Delivery(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= BODY_LIMIT:
                self._answer(413 if length else 400)
                return
            body = self.rfile.read(length)
            if not signature_ok(secret, body, self.headers.get("X-Hub-Signature-256")):
                self._answer(401)
                return
            event = self.headers.get("X-GitHub-Event", "")
            for session, task in targets(event, body):
                if signal(session, task):
                    out.write(printable(f"{event}: session {session}, Task {task}") + "\n")
                    out.flush()
            self._answer(202)

        def _answer(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # deliveries are said above, one line each; nothing else is logged

    return Delivery
