"""Every log line an activity writes carries the ids a person needs to find its work:
workflow id, session id, task id, activity and attempt, bound as structlog context vars for
the activity's duration (they follow it into the threads it starts)."""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


def ids_from_workflow_id(workflow_id: str) -> dict[str, str]:
    """Session and task ids from our workflow ids: `<session>` or
    `<session>/task-<task>[/retry-N][/conflict]`."""
    session, _, rest = workflow_id.partition("/task-")
    ids = {"session_id": session}
    if rest:
        ids["task_id"] = rest.split("/", 1)[0]
    return ids


class _BindActivityIds(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        workflow_id = info.workflow_id or ""  # None only for standalone activities
        with structlog.contextvars.bound_contextvars(
            workflow_id=workflow_id,
            activity=info.activity_type,
            attempt=info.attempt,
            **ids_from_workflow_id(workflow_id),
        ):
            return await self.next.execute_activity(input)


class LogContextInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindActivityIds(next)
