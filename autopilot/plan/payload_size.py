"""Will a request fit through the server? Its real encoded size against Temporal's blob limit.

The Temporal server refuses any payload over its blob size limit (`limit.blobSize.error`, 2 MiB
by default) with PayloadsTooLarge: a task body of 3 MB would pass the starter and fail inside
the session, and a 3 MB reviewer prompt would crash the start. So the starter measures each
request the way it will be sent (the pydantic data converter's JSON payload, as protobuf)
before anything starts:

- the SessionRequest that starts the session, and
- each task's TaskRequest, the child workflow's input, built by `TaskRequest.of` exactly as the
  session builds it. The task workflow's activities carry that request
  again with a little more (the workspace, a review round's findings, check output tails): the
  safety margin is for that.

Per request, never the whole plan: the plan will travel by reference, each task's own
request is what must fit.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio.api.common.v1 import Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from autopilot.models import Batch, Plan, SessionRequest, Task, TaskRequest
from autopilot.plan.parser import PlanError, PlanIssue

__all__ = [
    "BLOB_SIZE_LIMIT",
    "PAYLOAD_LIMIT",
    "SAFETY_MARGIN",
    "PayloadTooLarge",
    "check_requests",
    "encoded_size",
    "mib",
]

BLOB_SIZE_LIMIT = 2 * 1024 * 1024  # Temporal's default limit.blobSize.error
# What an activity input adds to a TaskRequest: a workspace, a review with findings and the
# tails of failed checks (3,000 characters each), the conflict files.
SAFETY_MARGIN = 256 * 1024
PAYLOAD_LIMIT = BLOB_SIZE_LIMIT - SAFETY_MARGIN


def encoded_size(value: BaseModel) -> int:
    """Bytes `value` takes as a workflow or activity input: its payload, as the server gets it."""
    payloads = pydantic_data_converter.payload_converter.to_payloads([value])
    return Payloads(payloads=payloads).ByteSize()


def mib(size: int) -> str:
    return f"{size / (1024 * 1024):.2f} MiB"


LIMIT_TEXT = (
    f"the server's payload limit ({mib(PAYLOAD_LIMIT)}: Temporal's {mib(BLOB_SIZE_LIMIT)} blob"
    f" limit less a {SAFETY_MARGIN // 1024} KiB margin)"
)


class PayloadTooLarge(ValueError):
    """A request would not pass the server's payload limit; the message says which and why."""


def check_requests(request: SessionRequest, plan: Plan, prompt_source: str) -> None:
    """Refuse (PayloadTooLarge, or PlanError naming each task's file:line) any request the
    session would send over PAYLOAD_LIMIT. `prompt_source` says where the reviewer prompt came
    from, for the message."""
    # A remote session carries its plan's text, and, from its parse on, the parsed plan as
    # well, through every continue-as-new.
    size = encoded_size(request) + _size(request.plan_text)
    if size > PAYLOAD_LIMIT:
        prompt = _size(request.review.reviewer_prompt)
        culprit = (
            f"the reviewer prompt alone is {mib(prompt)} (from {prompt_source}): shorten it"
            if prompt > PAYLOAD_LIMIT // 2
            else f"a remote session carries its plan ({mib(_size(request.plan_text))}) through "
            "Temporal, twice: split the plan into smaller files"
            if _size(request.plan_text) > PAYLOAD_LIMIT // 4
            else "shorten the settings that carry text (reviewer prompt, checks)"
        )
        raise PayloadTooLarge(
            f"the request that starts the session would be {mib(size)}, over {LIMIT_TEXT};"
            f" {culprit}. Nothing was started."
        )
    issues: list[PlanIssue] = []
    for batch in plan.batches:
        for task in batch.tasks:
            size = encoded_size(TaskRequest.of(request, plan, batch, task))
            if size > PAYLOAD_LIMIT:
                issues.append(
                    PlanIssue(line=task.line, message=_task_message(task, batch, plan, size))
                )
    if issues:
        raise PlanError(plan.path, issues)


def _size(text: str | None) -> int:
    return len((text or "").encode("utf-8"))


def _task_message(task: Task, batch: Batch, plan: Plan, size: int) -> str:
    parts = {
        "its body": _size(task.body),
        f"the description of Batch {batch.number}": _size(batch.description),
        "the plan context (the text before the first batch)": _size(plan.context),
    }
    biggest = max(parts, key=lambda name: parts[name])
    return (
        f"Task {task.id}'s request to the server would be {mib(size)}, over {LIMIT_TEXT};"
        f" {biggest} is {mib(parts[biggest])}: move large text (data, generated code) into"
        " files in the repo and name them in the task"
    )
