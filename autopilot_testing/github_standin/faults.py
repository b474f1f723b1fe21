"""The faults a test asks for: the next N requests answered 5xx or rate limited."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    status: int
    headers: dict[str, str]
    body: dict[str, str]


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []

    def fail_next(self, n: int, status: int) -> None:
        fault = Fault(status, {}, {"message": "Server Error"})
        with self._lock:
            self._queue.extend([fault] * n)

    def rate_limit_next(self, n: int, kind: str, wait_s: float) -> None:
        if kind == "primary":
            reset = int(time.time() + wait_s + 0.999)
            headers = {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": "5000",
                "x-ratelimit-reset": str(reset),
                "x-ratelimit-resource": "core",
            }
            body = {
                "message": "API rate limit exceeded for user.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            }
            fault = Fault(403, headers, body)
        else:
            body = {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                "before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            }
            fault = Fault(403, {"retry-after": str(max(1, round(wait_s)))}, body)
        with self._lock:
            self._queue.extend([fault] * n)

    def take(self) -> Fault | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None
