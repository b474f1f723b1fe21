"""An activity cut short by its worker's shutdown is lost, not cancelled.

After SIGTERM and the grace period, the SDK cancels what still runs. Reported as cancelled,
the workflow would take it for an operator's cancel; reported as RunLost (a retryable
ApplicationError, one of error_types.LOST_RUN), the step runs again on another worker and the
agent's run resumes there without spending an attempt. The agent activity says more itself
(where its session got to: activities/agent.py `handed_over`); this covers the others.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from autopilot import error_types


class _HandOverOnShutdown(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except asyncio.CancelledError:
            if not activity.is_worker_shutdown():
                raise
            raise ApplicationError(
                f"the worker stopped before {activity.info().activity_type} finished; "
                "it runs again on another worker",
                type=error_types.RUN_LOST,
                category=ApplicationErrorCategory.BENIGN,
            ) from None


class ShutdownInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _HandOverOnShutdown(next)
