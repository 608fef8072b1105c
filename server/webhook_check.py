"""A run's ``webhook`` checked against langgraph.json's webhooks policy
(pgqueue/execution/webhook_policy.py), DNS included, before the run or the
cron that names it is stored: every route that takes one calls
``check_webhook``. Delivery checks again (a name may resolve elsewhere by
then)."""

from __future__ import annotations

from starlette.requests import Request

from server.api import invalid
from server.context import ctx


async def check_webhook(request: Request, url: str | None, field: str = "webhook") -> None:
    """A 422 naming ``field`` if ``url`` may not receive webhooks."""
    if url is None:
        return
    problem = await ctx(request).webhook_policy.check(url)
    if problem is not None:
        raise invalid(field, problem)
