"""Turns exceptions into JSON error responses, all registered in HANDLERS.

Client mistakes the server finds itself arrive here as ``ApiError`` (4xx, a
message naming the field). The library's refusals (``pgqueue.errors``) get
their status from one table, ``REFUSALS``, and their message as the detail;
routes do not catch them. A value PostgreSQL refuses that validation let
through (a NUL byte in a string, a number out of range) is still the
client's: 422. A database that cannot be reached is 503 with
``Retry-After``. Anything else, the library's other errors included (a lost
lease, a graph that fails to load), is our bug: 500, logged with its
traceback, which never goes into the response.
"""

from __future__ import annotations

import logging

import asyncpg
import psycopg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pgqueue.errors import Conflict, Forbidden, Invalid, NotFound, PgqueueError
from server.api import JSON, ApiError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "2"

# The library's refusals a client can cause, and the status each answers
# (a subclass answers its nearest listed base's: ThreadBusy is a Conflict).
REFUSALS: dict[type[PgqueueError], int] = {
    NotFound: 404,
    Forbidden: 403,
    Conflict: 409,
    Invalid: 422,
}


def _error(status: int, detail: str, **extra: object) -> JSON:
    return JSON({"detail": detail, **extra}, status_code=status)


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    body: dict[str, object] = {"detail": exc.detail}
    if exc.errors:
        body["errors"] = exc.errors
    return JSON(body, status_code=exc.status, headers=exc.headers)


def as_api_error(exc: PgqueueError) -> ApiError:
    """A refusal as the client sees it: the status from REFUSALS, the
    message as the detail (an ``Invalid`` names its field in ``errors``, as
    the server's own validation does)."""
    status = next(REFUSALS[cls] for cls in type(exc).__mro__ if cls in REFUSALS)
    errors = [{"field": exc.field, "message": exc.problem}] if isinstance(exc, Invalid) else None
    return ApiError(status, str(exc), errors)


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PgqueueError)
    return await api_error(request, as_api_error(exc))


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSON({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def database_refused(request: Request, exc: Exception) -> Response:
    log.info(
        "database refused a value from %s %s: %s",
        request.method,
        request.url.path,
        exc,
        extra={"event": "http_data_error"},
    )
    return _error(422, f"a value in the request was not accepted: {exc}")


async def database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning(
        "database unavailable for %s %s: %s",
        request.method,
        request.url.path,
        exc,
        extra={"event": "http_db_unavailable"},
    )
    return JSON(
        {"detail": "the database is unreachable; retry shortly"},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception(
        "unhandled error in %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"event": "http_unhandled"},
    )
    return _error(500, "internal server error")


HANDLERS = {
    ApiError: api_error,
    **dict.fromkeys(REFUSALS, refused),
    HTTPException: http_error,
    asyncpg.DataError: database_refused,
    psycopg.DataError: database_refused,
    asyncpg.PostgresConnectionError: database_unavailable,
    asyncpg.CannotConnectNowError: database_unavailable,
    asyncpg.InterfaceError: database_unavailable,
    psycopg.OperationalError: database_unavailable,
    ConnectionError: database_unavailable,
    OSError: database_unavailable,
    Exception: unexpected,
}
