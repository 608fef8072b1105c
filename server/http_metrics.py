"""HTTP requests counted and timed, by route template and status.

The ``route`` label is the template a request matched (``/threads/{thread_id}``),
never its raw path, and "unmatched" for a path no route knows: a scanner
trying a million paths adds no series. A pure ASGI middleware: it does not
buffer or wrap bodies, so streams pass through as they are (their latency
is the stream's whole length).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgqueue.observe.metrics import HTTP_LATENCY, HTTP_REQUESTS

UNMATCHED = "unmatched"
# Methods outside these are counted as "other" (a method is the client's to pick).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_of(scope: Scope) -> str:
    """The template of the route the router matched for ``scope``; for a
    request answered before routing (a 401 from authentication), the one
    it would have matched."""
    route: Any = scope.get("route")
    if route is None:
        router = getattr(scope.get("app"), "router", None)
        for candidate in getattr(router, "routes", ()):
            if candidate.matches(scope)[0] != Match.NONE:
                route = candidate
                break
    if isinstance(route, BaseRoute):
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path or "/"
    return UNMATCHED


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            # The router recorded its match in this very scope dict.
            route = route_of(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)
