"""langgraph.json's ``http`` section beyond CORS, as the platform reads it.

- ``app``: the user's own Starlette or FastAPI app. It becomes the served
  app, keeping its middleware, lifespan and exception handlers; its routes
  come before the API's, so one may shadow an API route, except ``/ok`` and
  ``/openapi.json``, which stay the server's (health checks must not break).
- ``enable_custom_route_auth``: the Auth's authentication covers the user's
  routes too (by default only the API's).
- ``disable_assistants``, ``_threads``, ``_runs``, ``_store``, ``_meta``:
  those route groups are not served. (``_mcp`` and ``_ui``: pgqueue serves
  neither anyway.)
- ``configurable_headers``: request headers, by ``includes``/``excludes``
  patterns (``*`` the only wildcard), copied into a new run's
  ``configurable``. Credentials never are.
- ``mount_prefix``: every route under that path; ``/ok`` answers at the
  root too, where load balancers look for it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pgqueue.errors import ConfigError

# Never copied into a run, whatever the patterns say: they are credentials.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-service-key", "x-tenant-id"})

# Routes the user's app cannot shadow.
UNSHADOWABLE = frozenset({"/ok", "/openapi.json"})

# Each disable_* flag and the paths it takes away (runs on a thread are runs).
_GROUPS: dict[str, Callable[[str], bool]] = {
    "disable_runs": lambda p: p.startswith("/runs") or bool(re.match(r"/threads/[^/]+/runs", p)),
    "disable_threads": lambda p: p.startswith("/threads"),
    "disable_assistants": lambda p: p.startswith("/assistants"),
    "disable_store": lambda p: p.startswith("/store"),
    "disable_meta": lambda p: p in ("/info", "/openapi.json"),
}


def served_routes(routes: list[Route], http: Mapping[str, Any]) -> list[Route]:
    """``routes`` less the groups a ``disable_*`` flag switches off."""
    off = [test for flag, test in _GROUPS.items() if http.get(flag) is True]
    return [r for r in routes if not any(test(r.path) for test in off)]


@dataclass(frozen=True)
class HeaderPolicy:
    """Which request headers a run gets in its configurable."""

    includes: tuple[re.Pattern[str], ...] = ()
    excludes: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def from_section(cls, section: Any, where: str) -> HeaderPolicy:
        if section is None:
            return cls()
        if not isinstance(section, Mapping) or set(section) - {"includes", "excludes"}:
            raise ConfigError(
                f"{where}: http.configurable_headers must be an object of includes/excludes"
            )
        lists = {}
        for key in ("includes", "excludes"):
            patterns = section.get(key) or []
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ConfigError(
                    f"{where}: http.configurable_headers.{key} must be a list of strings"
                )
            lists[key] = tuple(_pattern(p) for p in patterns)
        return cls(**lists)

    def pick(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers to copy (names lower-cased, as HTTP has them). None
        without ``includes``: the platform copies nothing by default."""
        if not self.includes:
            return {}
        return {
            name: value
            for name, value in ((n.lower(), v) for n, v in headers.items())
            if name not in _SECRET_HEADERS
            and any(p.fullmatch(name) for p in self.includes)
            and not any(p.fullmatch(name) for p in self.excludes)
        }


def _pattern(text: str) -> re.Pattern[str]:
    # Literals and * only: a pattern is configuration, not a regex to run.
    return re.compile(".*".join(re.escape(part) for part in text.lower().split("*")))


def on_user_routes(user_app: Starlette | None) -> Callable[[Scope], bool]:
    """Whether a request is for one of the user's routes (which the API's
    authentication leaves alone unless enable_custom_route_auth)."""
    if user_app is None:
        return lambda scope: False
    routes: list[BaseRoute] = list(user_app.router.routes)

    def matches(scope: Scope) -> bool:
        if scope["path"] in UNSHADOWABLE:
            return False
        return any(route.matches(scope)[0] != Match.NONE for route in routes)

    return matches


def merge(
    user_app: Starlette,
    api_routes: list[Route],
    middleware: list[Middleware],
    lifespan: Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]],
    handlers: Mapping[Any, Any],
    *,
    auth_first: bool = False,
) -> Starlette:
    """The user's app, serving the API too: the unshadowable routes first,
    then the user's, then the API's; the user's middleware outside ours
    (``middleware_order: "auth_first"``: inside, so it sees only
    authenticated requests); our lifespan around the user's; our exception
    handlers where the user has none of their own."""
    first = [r for r in api_routes if r.path in UNSHADOWABLE]
    rest = [r for r in api_routes if r.path not in UNSHADOWABLE]
    user_app.router.routes = [*first, *user_app.router.routes, *rest]
    theirs_first = [*user_app.user_middleware, *middleware]
    user_app.user_middleware = (
        [*middleware, *user_app.user_middleware] if auth_first else theirs_first
    )
    theirs = user_app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def both(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app), theirs(app) as state:
            yield state

    user_app.router.lifespan_context = both
    for kind, handler in handlers.items():
        user_app.exception_handlers.setdefault(kind, handler)
    user_app.middleware_stack = None  # built again, with ours, on first call
    return user_app


def mount_prefix(prefix: Any, where: str) -> str | None:
    """``http.mount_prefix`` checked: "/api" or "/v1/agents", not "api/"."""
    if prefix is None:
        return None
    if (
        not isinstance(prefix, str)
        or not prefix.startswith("/")
        or prefix.endswith("/")
        or "//" in prefix
    ):
        raise ConfigError(
            f"{where}: http.mount_prefix must start with / and not end with one, like /api"
        )
    return prefix


class MountPrefix:
    """Serves ``app`` under ``prefix``: the prefix moves from the path to
    ``root_path`` (as a proxy stripping it would), so routes, auth and CORS
    see the paths they know. Location headers stay relative to the prefix:
    both SDKs join them to the URL they were given, which includes it."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        path: str = scope["path"]
        if path == self.prefix or path.startswith(self.prefix + "/"):
            inner = path[len(self.prefix) :] or "/"
            root = scope.get("root_path", "") + self.prefix
            await self.app({**scope, "path": inner, "root_path": root}, receive, send)
        elif path == "/ok":
            await self.app(scope, receive, send)
        else:
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
