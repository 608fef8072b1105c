"""Authentication with langgraph.json's ``"auth": {"path": "./auth.py:auth"}``.

The file defines a ``langgraph_sdk.Auth`` and its ``@auth.authenticate``
handler, as for the platform. The handler runs on every request but
``/ok``, ``/info``, ``/openapi.json`` and ``/metrics``, with the arguments it names
(``request``, ``path``, ``method``, ``path_params``, ``query_params``,
``headers`` -- bytes to bytes, lower-case names --, ``authorization``).
It returns a user id, a dict with ``identity`` (and ``permissions``,
``display_name``, ...) or an object with those attributes; raising
``Auth.exceptions.HTTPException`` answers with its status (401 by default)
and detail. Any other error also answers 401: a request is never let
through because its check failed. The user reaches the graph in
``config["configurable"]`` as ``langgraph_auth_user``,
``langgraph_auth_user_id`` and ``langgraph_auth_permissions``.

Authorization (the ``@auth.on...`` handlers, which decide what each user
may see and do) is ``server.authorization``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from langgraph_sdk import Auth
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pgqueue.errors import ConfigError
from pgqueue.execution import factories

log = logging.getLogger(__name__)

# Open to everyone, as on the platform: health checks, the API's shape, and
# counts for Prometheus (no resource's data).
OPEN_PATHS = frozenset({"/ok", "/info", "/openapi.json", "/metrics"})

# What the authenticate handler may ask for, each made only if asked (this
# runs on every request).
ARGUMENTS: dict[str, Callable[[Request], Any]] = {
    "request": lambda r: r,
    "path": lambda r: r.url.path,
    "method": lambda r: r.method,
    "path_params": lambda r: r.path_params,
    "query_params": lambda r: dict(r.query_params),
    "headers": lambda r: {k.lower(): v for k, v in r.headers.raw},
    "authorization": lambda r: r.headers.get("authorization"),
}


class Authenticator:
    """Calls the Auth's authenticate handler for a request; the user as a dict."""

    def __init__(self, auth: Any) -> None:
        if not isinstance(auth, Auth):
            raise ConfigError(f"auth: expected a langgraph_sdk.Auth, got {type(auth).__name__}")
        handler = auth._authenticate_handler
        if handler is None:
            raise ConfigError("auth: the Auth has no @auth.authenticate handler")
        wants = list(inspect.signature(handler).parameters)
        unknown = [p for p in wants if p not in ARGUMENTS]
        if unknown:
            raise ConfigError(
                f"auth: the authenticate handler asks for {unknown}; it may take {list(ARGUMENTS)}"
            )
        self._handler = handler
        self._wants = {name: ARGUMENTS[name] for name in wants}

    async def user(self, request: Request) -> dict[str, Any]:
        result: Any = self._handler(**{name: make(request) for name, make in self._wants.items()})
        if inspect.isawaitable(result):
            result = await result
        return _as_user(result)


def _as_user(result: Any) -> dict[str, Any]:
    if isinstance(result, str):
        user: dict[str, Any] = {"identity": result}
    elif isinstance(result, dict):
        user = dict(result)
    else:
        user = {
            name: getattr(result, name)
            for name in ("identity", "display_name", "permissions", "is_authenticated")
            if hasattr(result, name)
        }
    identity = user.get("identity")
    if not isinstance(identity, str) or not identity:
        raise TypeError(f"the authenticate handler returned no identity: {result!r}"[:200])
    user.setdefault("display_name", identity)
    user.setdefault("is_authenticated", True)
    user["permissions"] = list(user.get("permissions") or [])
    return user


class AuthMiddleware:
    """Authenticates each request before routing; the user goes into the
    request's state (``request.state.user``)."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        skip: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        # Requests left alone: the user's own routes (http.app), unless
        # enable_custom_route_auth.
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in OPEN_PATHS
            or (self.skip is not None and self.skip(scope))
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            user = await self.authenticator.user(request)
        except Auth.exceptions.HTTPException as exc:
            response = JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        except Exception as exc:  # noqa: BLE001 - a failed check lets nothing through
            log.warning(
                "authentication failed for %s %s: %s: %s",
                request.method,
                request.url.path,
                type(exc).__name__,
                exc,
                extra={"event": "auth_failed"},
            )
            response = JSONResponse({"detail": "authentication failed"}, status_code=401)
        else:
            scope.setdefault("state", {})["user"] = user
            # A graph factory built for this request (schemas, state) sees
            # the user too, as one built for a run does.
            factories.request_user.set(user)
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def user_of(request: Request) -> dict[str, Any] | None:
    """The authenticated user of a request; None without auth."""
    return getattr(request.state, "user", None)
