"""Turns exceptions into JSON error responses.

Client mistakes arrive here as ``ApiError`` (4xx, a message naming the field).
A value PostgreSQL refuses that validation let through (a NUL byte in a
string, a number out of range) is still the client's: 422. A database that
cannot be reached is 503 with ``Retry-After``. Anything else is our bug: 500,
logged with its traceback, which never goes into the response.
"""

from __future__ import annotations

import logging

import asyncpg
import psycopg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.api import JSON, ApiError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "2"


def _error(status: int, detail: str, **extra: object) -> JSON:
    return JSON({"detail": detail, **extra}, status_code=status)


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    body: dict[str, object] = {"detail": exc.detail}
    if exc.errors:
        body["errors"] = exc.errors
    return JSON(body, status_code=exc.status, headers=exc.headers)


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
