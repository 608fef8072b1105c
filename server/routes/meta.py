"""``/ok``, ``/info`` and ``/openapi.json``."""

from __future__ import annotations

import asyncio
from importlib.metadata import PackageNotFoundError, version

from starlette.requests import Request
from starlette.responses import Response

from pgqueue.db.sql import queries
from server.api import JSON, Router
from server.context import ctx

router = Router("meta")

# How long /ok waits for the database before answering 503.
OK_TIMEOUT = 2.0
# Probes given up on, still unwinding (the loop holds tasks only weakly).
_abandoned: set[asyncio.Future[object]] = set()


def _forget(probe: asyncio.Future[object]) -> None:
    _abandoned.discard(probe)
    if not probe.cancelled():
        probe.exception()  # retrieved: no "exception was never retrieved" noise


def _version() -> str:
    try:
        return version("pgqueue")
    except PackageNotFoundError:
        return "0.0.0"


@router.route(
    "GET",
    "/ok",
    summary="Liveness, the database, and (serve) the worker pool's load",
    responses={200: "OK", 503: "Database unreachable"},
)
async def ok(request: Request) -> Response:
    """``{"ok": true, "database": {"ok": true}}``, and with in-process
    workers (serve) ``"workers": {"running": n, "slots": m}``: runs held
    and the pool's concurrency. 503 when the database does not answer."""
    # The probe runs in a task of its own that this request stops waiting for
    # after OK_TIMEOUT: cancelling a query on a database that stopped
    # answering makes asyncpg wait for the cancel's own round trip before
    # the connection goes back to the pool, so a timeout around the query
    # itself could hold the answer up indefinitely.
    context = ctx(request)
    probe = asyncio.ensure_future(context.pool.fetchval(queries.ping, timeout=OK_TIMEOUT))
    done, _ = await asyncio.wait({probe}, timeout=OK_TIMEOUT)
    if probe not in done:
        probe.cancel()
        _abandoned.add(probe)
        probe.add_done_callback(_forget)
        return _unreachable("TimeoutError")
    if (exc := probe.exception()) is not None:  # any failure is "not ready"
        return _unreachable(type(exc).__name__)
    report: dict[str, object] = {"ok": True, "database": {"ok": True}}
    if (worker := context.worker) is not None:
        report["workers"] = {"running": len(worker.leases), "slots": worker.config.concurrency}
    return JSON(report)


def _unreachable(why: str) -> Response:
    return JSON(
        {"ok": False, "detail": f"database unreachable: {why}", "database": {"ok": False}},
        status_code=503,
        headers={"Retry-After": "2"},
    )


@router.route("GET", "/info", summary="Server version and capabilities")
async def info(_request: Request) -> Response:
    return JSON(
        {
            "version": _version(),
            "flags": {"assistants": True, "crons": True, "langsmith": False},
            "metadata": {"runtime": "pgqueue", "queue": "postgres"},
        }
    )


@router.route("GET", "/openapi.json", summary="This API's OpenAPI document")
async def openapi(request: Request) -> Response:
    from server import routes
    from server.openapi import build_spec

    state = request.app.state
    if not hasattr(state, "openapi"):
        state.openapi = build_spec(routes.ROUTERS, _version())
    return JSON(state.openapi)
