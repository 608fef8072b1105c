"""Authorization with the Auth's ``@auth.on`` handlers, as the platform
defines it (``langgraph_sdk.Auth``).

Each route asks once per resource it touches: ``await authorize(request,
"threads", "read", {"thread_id": ...})``. The most specific handler runs:
``(resource, action)``, then ``(resource, "*")``, ``("*", action)``,
``("*", "*")``, then a global ``@auth.on``. What it returns decides:

- ``None`` or ``True``: allowed, every row (``EVERYTHING``);
- ``False``: 403; raising ``Auth.exceptions.HTTPException``: its status;
  raising anything else: 403 (a failed check lets nothing through);
- a dict: a metadata filter, returned as a ``Visible`` that the resource
  query applies in SQL (rows it hides answer 404, as missing ones).

The handler may change ``value`` in place (set ``metadata["owner"]`` on a
create, rewrite a store ``namespace``): routes read the value back after
asking. Without an Auth, or with one that has no ``@auth.on`` handlers,
every call returns ``EVERYTHING`` without calling anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langgraph_sdk import Auth
from starlette.requests import Request

from pgqueue.errors import Forbidden, InvalidFilter
from pgqueue.resources.visibility import EVERYTHING, Visible, matching
from server.api import ApiError

if TYPE_CHECKING:
    from server.schemas import RunCreate

log = logging.getLogger(__name__)

# Every (resource, action) pgqueue asks about; runs are authorized as their
# threads (threads.create_run to start one, threads.read/update/delete to
# read, cancel and delete them), as on the platform.
ACTIONS: dict[str, tuple[str, ...]] = {
    "threads": ("create", "read", "update", "delete", "search", "create_run"),
    "assistants": ("create", "read", "update", "delete", "search"),
    "crons": ("create", "read", "update", "delete", "search"),
    "store": ("put", "get", "search", "delete", "list_namespaces"),
}


class AuthUser(dict[str, Any]):
    """The authenticated user as handlers read it: ``ctx.user.identity``
    and ``ctx.user["identity"]`` both work, as on the platform."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Authorizer:
    """Runs the Auth's authorization handlers for requests."""

    def __init__(self, auth: Auth | None = None) -> None:
        self._handlers: dict[tuple[str, str], Callable[..., Any]] = {}
        if auth is None or not (auth._handlers or auth._global_handlers):
            return
        for resource, actions in ACTIONS.items():
            for action in actions:
                handler = _most_specific(auth, resource, action)
                if handler is not None:
                    self._handlers[resource, action] = handler

    @property
    def active(self) -> bool:
        return bool(self._handlers)

    def handles(self, resource: str, action: str) -> bool:
        """Whether a handler runs for this pair (and so may change the value
        a route passes it, which the route must then check again)."""
        return (resource, action) in self._handlers

    def uncovered(self) -> list[str]:
        """The resource.action pairs no handler covers (served to every
        authenticated user); empty when authorization is off."""
        if not self.active:
            return []
        return [
            f"{resource}.{action}"
            for resource, actions in ACTIONS.items()
            for action in actions
            if (resource, action) not in self._handlers
        ]

    async def __call__(
        self, request: Request, resource: str, action: str, value: dict[str, Any]
    ) -> Visible:
        handler = self._handlers.get((resource, action))
        if handler is None:
            return EVERYTHING
        user = AuthUser(getattr(request.state, "user", None) or {})
        ctx = Auth.types.AuthContext(
            resource=resource,  # type: ignore[arg-type]
            action=action,  # type: ignore[arg-type]
            user=user,  # type: ignore[arg-type]
            permissions=list(user.get("permissions") or []),
        )
        try:
            result = await handler(ctx=ctx, value=value)
        except Auth.exceptions.HTTPException as exc:
            raise ApiError(
                exc.status_code, str(exc.detail), headers=dict(exc.headers or {})
            ) from None
        except Exception as exc:  # noqa: BLE001 - a failed check lets nothing through
            log.warning(
                "authorization handler for %s.%s raised %s: %s; refused",
                resource,
                action,
                type(exc).__name__,
                exc,
                extra={"event": "authz_failed"},
            )
            raise Forbidden(f"not allowed to {action} {resource}") from None
        if result is None or result is True:
            return EVERYTHING
        if result is False:
            raise Forbidden(f"not allowed to {action} {resource}")
        if not isinstance(result, Mapping):
            log.error(
                "authorization handler for %s.%s returned %s, not None, a bool or a filter",
                resource,
                action,
                type(result).__name__,
                extra={"event": "authz_invalid"},
            )
            raise InvalidFilter()
        try:
            return matching(result)
        except InvalidFilter as exc:
            log.error(
                "authorization handler for %s.%s returned an invalid filter: %s",
                resource,
                action,
                exc,
                extra={"event": "authz_invalid"},
            )
            raise InvalidFilter() from None


def _most_specific(auth: Auth, resource: str, action: str) -> Callable[..., Any] | None:
    for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
        if key in auth._handlers:
            return auth._handlers[key][-1]  # type: ignore[no-any-return]
    if auth._global_handlers:
        return auth._global_handlers[-1]  # type: ignore[no-any-return]
    return None


def authorizer(request: Request) -> Authorizer:
    return request.app.state.ctx.authorize  # type: ignore[no-any-return]


def rewrites(request: Request, resource: str, action: str) -> bool:
    """Whether ``authorize`` for this pair runs a handler that may change the
    value: only then does a route validate that value again."""
    return authorizer(request).handles(resource, action)


async def authorize(request: Request, resource: str, action: str, value: dict[str, Any]) -> Visible:
    """What ``request`` may see of ``resource`` for ``action`` (see the
    module's docstring); raises ``Forbidden`` or an ``ApiError``."""
    return await authorizer(request)(request, resource, action, value)


async def authorize_run(
    request: Request, body: RunCreate, thread_id: UUID | None
) -> tuple[Visible, Visible]:
    """What a new run may reach: its thread (``threads.create_run``; the
    handler may stamp ``metadata``, which the run and a thread it creates
    get) and its assistant (``assistants.read``, asked only for a
    user-made one: a graph's own assistant is open to all, as on the
    platform)."""
    authorize_ = authorizer(request)
    if not authorize_.active:
        return EVERYTHING, EVERYTHING
    value: dict[str, Any] = {
        "thread_id": thread_id,
        "assistant_id": body.assistant_id,
        "run_id": None,
        "status": "pending",
        "metadata": dict(body.metadata or {}),
        "prevent_insert_if_inflight": body.multitask_strategy == "reject",
        "multitask_strategy": body.multitask_strategy,
        "if_not_exists": body.if_not_exists,
        "after_seconds": body.after_seconds,
        "kwargs": body.model_dump(exclude_none=True),
    }
    thread_visible = await authorize_(request, "threads", "create_run", value)
    if isinstance(value.get("metadata"), dict):
        body.metadata = value["metadata"]
    assistant_visible = EVERYTHING
    if not _graphs_own(request.app.state.ctx.registry, body.assistant_id):
        assistant_visible = await authorize_(
            request, "assistants", "read", {"assistant_id": body.assistant_id}
        )
    return thread_visible, assistant_visible


def _graphs_own(registry: Any, assistant: str) -> bool:
    """Whether ``assistant`` names a graph's own assistant (by graph id or
    by its id), which every user may run."""
    if assistant in registry.specs:
        return True
    try:
        return UUID(assistant) in registry.assistant_ids
    except ValueError:
        return False
