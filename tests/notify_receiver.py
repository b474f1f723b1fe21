"""A webhook receiver on 127.0.0.1 (a free port) for the notification tests: it records every
POST and answers with scripted status codes (then 200), or holds a request until released."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness import wait_until


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


class Receiver:
    """`answers`: the status codes of the first requests, in order; `always`: of every request
    (overrides); 200 otherwise. `hold`: requests wait for it before they are answered."""

    def __init__(
        self, *answers: int, always: int | None = None, hold: threading.Event | None = None
    ) -> None:
        self._answers = list(answers)
        self._always = always
        self._hold = hold
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]

    def url(self, path: str = "/hooks/T000/secret-path") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, event: str | None = None) -> list[dict[str, Any]]:
        """The bodies answered with a 2xx (of `event`, if given), in order."""
        with self._lock:
            bodies = [r.json() for r in self.received if 200 <= r.status < 300]
        return [body for body in bodies if event is None or body["event"] == event]

    def wait_for(self, event: str, timeout: float = 30) -> dict[str, Any]:
        found = wait_until(lambda: self.delivered(event), timeout, f"a {event} notification")
        return found[0]

    def _answer(self) -> int:
        with self._lock:
            if self._always is not None:
                return self._always
            return self._answers.pop(0) if self._answers else 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver._hold is not None:
                    receiver._hold.wait(60)
                status = receiver._answer()
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, self.headers.get("Content-Type", ""), body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if status >= 300 else b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the test reads `received`

        return Handler

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            if self._hold is not None:
                self._hold.set()
            self._server.shutdown()
            self._server.server_close()
            thread.join(10)
