"""A run's ``webhook`` checked against langgraph.json's webhooks policy
(pgqueue/execution/webhook_policy.py), DNS included, before the run or the
cron that names it is stored: every route that takes one calls
``check_webhook``. Delivery checks again (a name may resolve elsewhere by
then)."""

from __future__ import annotations

from starlette.requests import Request

from pgqueue.execution.webhook_policy import WebhookPolicy
from server.api import invalid
from server.context import ctx


async def check_webhook(request: Request, url: str | None, field: str = "webhook") -> None:
    """A 422 naming ``field`` if ``url`` may not receive webhooks."""
    if url is None:
        return
    problem = await _policy(request).check(url)
    if problem is not None:
        raise invalid(field, problem)


def _policy(request: Request) -> WebhookPolicy:
    # Built once per app. The section was checked when the server started
    # (pgqueue.cli.worker.load_graphs), so this does not fail here.
    state = request.app.state
    policy: WebhookPolicy | None = getattr(state, "webhook_policy", None)
    if policy is None:
        registry = ctx(request).registry
        policy = WebhookPolicy.from_section(registry.webhooks, str(registry.config_path))
        state.webhook_policy = policy
    return policy
