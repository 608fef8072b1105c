"""Every router, in the order the OpenAPI document lists them."""

from __future__ import annotations

from server.api import Router
from server.routes import (
    assistants,
    crons,
    dashboard,
    meta,
    metrics,
    runs,
    stateless,
    store,
    thread_state,
    threads,
)

ROUTERS: list[Router] = [
    meta.router,
    assistants.router,
    threads.router,
    thread_state.router,
    runs.router,
    stateless.router,
    crons.router,
    store.router,
    dashboard.router,
    metrics.router,
]
