"""What handlers share for the life of the app: pools, the listener, graphs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from pgqueue.core.notifier import Notifier
from pgqueue.execution.graphs import GraphRegistry
from pgqueue.execution.webhook_policy import WebhookPolicy
from pgqueue.resources.streams import RunWatch
from pgqueue.worker.worker import Worker
from server.authorization import Authorizer
from server.http_app import HeaderPolicy
from server.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    # asyncpg: the queue and every read path.
    pool: asyncpg.Pool
    # psycopg: LangGraph's checkpointer (thread state) and store.
    psycopg_pool: AsyncConnectionPool[Any]
    checkpointer: AsyncPostgresSaver
    store: AsyncPostgresStore
    notifier: Notifier
    watch: RunWatch
    registry: GraphRegistry
    # Which request headers a new run gets in its configurable.
    run_headers: HeaderPolicy = field(default_factory=HeaderPolicy)
    # Where a run's webhook may point (langgraph.json's webhooks section).
    webhook_policy: WebhookPolicy = field(default_factory=WebhookPolicy)
    # The Auth's @auth.on handlers (none: every request sees everything).
    authorize: Authorizer = field(default_factory=Authorizer)
    # Background tasks a handler started and nobody awaits (webhooks,
    # on_completion deletes): kept so the loop does not drop them.
    background: set[Any] = field(default_factory=set)
    # Set on the first SIGINT/SIGTERM: open /wait calls wind down.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # serve: the in-process worker pool (/ok reports its load).
    worker: Worker | None = None


def ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]
