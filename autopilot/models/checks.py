"""A repo's check commands and their results: run by the review, the setup and merges."""

from __future__ import annotations

from pydantic import BaseModel


class CheckCommand(BaseModel):
    """One check as the user wrote it, and the argv it runs (no shell unless they wrote one)."""

    command: str
    argv: list[str]


class CheckResult(BaseModel):
    command: str
    passed: bool
    exit_code: int | None = None  # None: it could not start, or timed out
    timed_out: bool = False
    duration_s: float = 0.0
    output_tail: str = ""  # the end of stdout+stderr, for findings and status
    output_path: str = ""  # the whole output, kept under the state dir
