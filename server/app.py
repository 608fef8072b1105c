"""The Starlette application: ``create_app(settings)``.

Its lifespan opens the pools and the LISTEN connection, loads the graphs of
``langgraph.json`` (and their system assistants), and, for ``pgqueue serve``,
runs workers, the sweeper and the cron scheduler in the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.middleware import Middleware

from pgqueue.cli.worker import load_graphs, register_graphs
from pgqueue.core.notifier import Notifier
from pgqueue.db import pools as db
from pgqueue.errors import ConfigError
from pgqueue.execution.graphs import GraphRegistry
from pgqueue.execution.webhook_policy import WebhookPolicy
from pgqueue.maintenance.service import PeriodicService, ServiceGroup
from pgqueue.resources.streams import RunWatch
from pgqueue.worker.worker import Worker
from server import cors, dashboard, http_app, routes
from server.api import starlette_routes
from server.auth import Authenticator, AuthMiddleware
from server.authorization import Authorizer
from server.context import AppContext
from server.errors import HANDLERS
from server.http_metrics import HttpMetrics
from server.settings import Settings

log = logging.getLogger(__name__)

# HTTP answers 503 + Retry-After rather than wait on a database that is down
# or not answering (asyncpg would try to connect for 60 s, and a statement
# on a dead link waits forever): connects give up after this...
DB_CONNECT_TIMEOUT = 3.0
# ...statements after this (every query on the HTTP path is short; the
# long waits, /wait and streams, are NOTIFY-driven, not long statements).
# asyncpg then sends a cancel request, itself bounded by this, so a request
# on a link that went silent answers 503 after at most twice this...
DB_COMMAND_TIMEOUT = 5.0
# ...and a request waits this long for a free checkpointer connection.
DB_POOL_WAIT = 5.0


def create_app(settings: Settings, registry: GraphRegistry | None = None) -> Starlette:
    registry = registry or load_graphs(settings.config_path)
    run_headers = http_app.HeaderPolicy.from_section(
        registry.http.get("configurable_headers"), str(registry.config_path)
    )
    webhook_policy = WebhookPolicy.from_section(registry.webhooks, str(registry.config_path))
    auth = registry.load_auth()
    authorize = Authorizer(auth)
    if authorize.active and (uncovered := authorize.uncovered()):
        # As the platform warns: these are open to every authenticated user.
        log.warning(
            "auth: no @auth.on handler covers %s; every authenticated user may do these",
            ", ".join(uncovered),
            extra={"event": "authz_uncovered"},
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        url = settings.database_url
        pool = await db.create_pool(
            url,
            min_size=2,
            max_size=20,
            connect_timeout=DB_CONNECT_TIMEOUT,
            command_timeout=DB_COMMAND_TIMEOUT,
            name="http",
        )
        psycopg_pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=10,
            open=False,
            timeout=DB_POOL_WAIT,
            # After a database restart every idle connection is dead, and
            # psycopg finds out only by using it: check on checkout (one
            # empty round trip) so a request gets a live one, not a 503.
            check=AsyncConnectionPool.check_connection,
            kwargs={
                "autocommit": True,
                "prepare_threshold": 0,
                "row_factory": dict_row,
                "connect_timeout": int(DB_CONNECT_TIMEOUT),
            },
        )
        await psycopg_pool.open()
        notifier = Notifier(url)
        await notifier.start()
        await register_graphs(pool, registry)
        context = AppContext(
            settings=settings,
            pool=pool,
            psycopg_pool=psycopg_pool,
            checkpointer=AsyncPostgresSaver(psycopg_pool),  # type: ignore[arg-type]
            store=AsyncPostgresStore(
                psycopg_pool,  # type: ignore[arg-type]
                ttl=registry.store_ttl.store_config(),  # type: ignore[arg-type]
            ),
            notifier=notifier,
            watch=RunWatch(notifier),
            registry=registry,
            run_headers=run_headers,
            webhook_policy=webhook_policy,
            authorize=authorize,
        )
        app.state.ctx = context
        services = ServiceGroup(background_services(context))
        services.start()
        worker_task = None
        worker = None
        # Liveness (serve): the in-process worker ending on its own means it
        # lost its heartbeat past the lease (or crashed): the process exits
        # non-zero once shut down, so that a supervisor restarts it.
        exit_status: list[int] = []
        shutting_down = False
        if settings.run_workers:
            worker = settings.process.graph_worker(
                registry, url, notifier=notifier, live=context.watch.live
            )
            context.worker = worker  # /ok reports its load
            worker_task = asyncio.create_task(worker.run())

            def on_worker_end(task: asyncio.Task[None]) -> None:
                if shutting_down:
                    return
                exit_status.append(_worker_ended(worker, task))
                # The same path as a supervisor's stop: uvicorn stops taking
                # requests, closes open ones, then runs this lifespan's exit.
                os.kill(os.getpid(), signal.SIGTERM)

            worker_task.add_done_callback(on_worker_end)
        # A second SIGINT/SIGTERM (see server/main.py) skips the grace period.
        app.state.hurry = worker.hurry if worker is not None else (lambda: None)
        try:
            yield
        finally:
            shutting_down = True
            if worker is not None and worker_task is not None:
                worker.stop()
                try:
                    await worker_task
                except Exception:
                    if not exit_status:  # else on_worker_end reported it
                        log.exception("in-process worker failed", extra={"event": "worker_crashed"})
            # A pass on a link gone silent ends within twice the command
            # timeout (see above); one stuck longer is cancelled.
            await services.stop(grace=2 * DB_COMMAND_TIMEOUT)
            if context.background:
                await asyncio.wait(list(context.background), timeout=5)
            context.watch.close()
            await notifier.stop()
            await psycopg_pool.close()
            await db.close_pool(pool)
            if exit_status:
                # Everything is closed. uvicorn would report a SIGTERM stop as
                # a clean exit (status 0): exit with the worker's status now.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(exit_status[0])

    # Checked here, at start: a bad http section or auth file stops the server.
    http = registry.http
    user_app = registry.load_http_app()
    if user_app is not None and not isinstance(user_app, Starlette):
        raise ConfigError(
            f"{registry.config_path}: http.app is a {type(user_app).__name__}, "
            "not a Starlette or FastAPI app"
        )
    layers = [
        # Outermost of ours: it counts what CORS and authentication refuse.
        Middleware(HttpMetrics),
        cors.middleware(
            http.get("cors"),
            private_network=settings.private_network_access,
            where=str(registry.config_path),
        ),
    ]
    if auth is not None:
        custom_auth = http.get("enable_custom_route_auth") is True
        layers.append(
            Middleware(
                AuthMiddleware,
                authenticator=Authenticator(auth),
                skip=None if custom_auth else http_app.on_user_routes(user_app),
            )
        )
    prefix = http_app.mount_prefix(http.get("mount_prefix"), str(registry.config_path))
    api = http_app.served_routes(starlette_routes(routes.ROUTERS) + dashboard.routes(), http)
    if user_app is not None:
        order = http.get("middleware_order", "middleware_first")
        if order not in ("middleware_first", "auth_first"):
            raise ConfigError(
                f"{registry.config_path}: http.middleware_order must be "
                '"middleware_first" or "auth_first"'
            )
        app = http_app.merge(
            user_app, api, layers, lifespan, HANDLERS, auth_first=order == "auth_first"
        )
    else:
        app = Starlette(
            routes=api,
            exception_handlers=HANDLERS,  # type: ignore[arg-type]
            lifespan=lifespan,
            middleware=layers,
        )
    if prefix is not None:
        # Outermost, so every layer above sees the paths without it.
        app.add_middleware(http_app.MountPrefix, prefix=prefix)
    return app


def _worker_ended(worker: Worker, task: asyncio.Task[None]) -> int:
    """Log why the in-process worker stopped by itself; the exit status:
    EXIT_UNHEALTHY when it lost its heartbeat, 1 when it crashed."""
    from pgqueue.worker.heartbeat import EXIT_UNHEALTHY

    status, why = 1, "stopped unexpectedly"
    if not task.cancelled() and task.exception() is not None:
        why = f"crashed: {task.exception()!r}"
    elif worker.unhealthy is not None:
        status, why = EXIT_UNHEALTHY, worker.unhealthy
    log.error(
        "in-process worker %s; shutting the server down, exit status %d",
        why,
        status,
        extra={"event": "worker_unhealthy_exit"},
    )
    return status


def background_services(context: AppContext) -> list[PeriodicService]:
    """Maintenance every server process runs: the cron scheduler (each tick
    fires once across processes), the store's TTL sweep and the pruner
    (with the checkpointer, for keep_latest thread TTLs), and with workers
    the sweeper, as the worker command runs it."""
    from pgqueue.maintenance.store_sweeper import StoreSweeper, StoreSweeperConfig
    from pgqueue.resources.scheduler import Scheduler
    from server.routes.crons import cron_run_request

    s = context.settings
    minutes = context.registry.store_ttl.sweep_interval_minutes
    services: list[PeriodicService] = [
        Scheduler(context.pool, context.registry, cron_run_request, s.scheduler_config()),
        StoreSweeper(context.store, StoreSweeperConfig(interval=minutes * 60)),
    ]
    services.extend(
        s.process.maintenance(
            context.pool,
            workers=s.run_workers,
            checkpointer=context.checkpointer,
            registry=context.registry,
        )
    )
    return services
