"""``pgqueue worker``: a worker for langgraph.json's graphs (``--config``)
or for any async handler (``--handler mod:fn``), with the pruner and the
sweeper beside it, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from pgqueue.cli import observe
from pgqueue.cli.database import resolve_database_url, said, wait_for_database
from pgqueue.cli.settings import ProcessSettings, webhook_policy
from pgqueue.core.handler import HandlerFunction
from pgqueue.db import migrate
from pgqueue.db import pools as db
from pgqueue.db.sql import queries
from pgqueue.errors import ConfigError
from pgqueue.maintenance.service import ServiceGroup
from pgqueue.observe.exporter import MetricsServer
from pgqueue.types import Queryable
from pgqueue.worker.heartbeat import EXIT_UNHEALTHY

if TYPE_CHECKING:
    from pgqueue.execution.graphs import GraphRegistry
    from pgqueue.worker.worker import Worker

log = logging.getLogger(__name__)


def load_handler(spec: str) -> HandlerFunction:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--handler must look like 'package.module:function', got {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        handler: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"cannot load handler {spec!r}: {exc}") from None
    return handler  # type: ignore[no-any-return]


def load_graphs(config_path: str | Path) -> GraphRegistry:
    """langgraph.json's graphs, each one built now: a graph that does not
    load stops the process at start (ConfigError), not on its first run."""
    from pgqueue.execution.graphs import load_config

    registry = load_config(config_path)
    for graph_id in registry.specs:
        registry.get(graph_id)
    # Its webhooks section too, headers resolved: `pgqueue server`, which
    # sends none, refuses the langgraph.json its workers would.
    webhook_policy(registry)
    return registry


async def register_graphs(conn: Queryable, registry: GraphRegistry) -> None:
    """Each graph's system assistant, as the platform creates it, and the
    threads' default TTL (langgraph.json's checkpointer.ttl), which the
    database gives every thread created without one (migration 0011)."""
    ids = registry.assistant_ids
    await conn.execute(queries.upsert_system_assistants, list(ids), list(ids.values()))
    default = registry.thread_ttl.default()
    await conn.execute(queries.set_thread_ttl_default, json.dumps(default) if default else None)


def on_signals(callback: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


class NotStarted(Exception):
    """The database went away while the worker was starting: nothing was
    claimed yet, so starting again is safe."""


async def run_worker(args: argparse.Namespace, settings: ProcessSettings, url: str) -> int:
    registry: GraphRegistry | None = None  # with graphs: langgraph.json's retention settings
    try:
        if args.config:
            registry = load_graphs(args.config)
            conn = await asyncpg.connect(url, timeout=db.CONNECT_TIMEOUT)
            try:
                await register_graphs(conn, registry)
            finally:
                await conn.close()
            worker = settings.graph_worker(registry, url)
        else:
            worker = settings.handler_worker(load_handler(args.handler), url)
        pool = await db.create_pool(url, max_size=1, name="maintenance")
    except db.DATABASE_AWAY as exc:
        raise NotStarted(f"{type(exc).__name__}: {exc}") from exc
    exporter = await start_metrics(args, url, worker)
    services = ServiceGroup(settings.maintenance(pool, registry=registry))
    services.start()
    on_signals(worker.stop)
    try:
        try:
            await worker.run()
        except db.DATABASE_AWAY as exc:
            # Before "worker started" (its pool, its LISTEN, its row): the
            # worker held nothing yet. After it, a real failure.
            if worker.started.is_set():
                raise
            raise NotStarted(f"{type(exc).__name__}: {exc}") from exc
    finally:
        # Bounded: a pass stuck on a database that stopped answering (the
        # liveness exit) is cancelled rather than waited for.
        await services.stop(grace=db.CONNECT_TIMEOUT)
        await db.close_pool(pool)
        if exporter is not None:
            await exporter.stop()
    if worker.unhealthy is not None:
        log.error(
            "pgqueue worker: exiting with status %d: %s",
            EXIT_UNHEALTHY,
            worker.unhealthy,
            extra={"event": "worker_unhealthy_exit"},
        )
        return EXIT_UNHEALTHY
    return 0


async def start_metrics(args: argparse.Namespace, url: str, worker: Worker) -> MetricsServer | None:
    """--metrics-port: /metrics and /ok (with the worker pool's load) on
    their own port, printed once bound (the one given, or any free one)."""
    address = observe.metrics_address(args)
    if address is None:
        return None
    host, port = address

    def load() -> dict[str, int]:
        return {"running": len(worker.leases), "slots": worker.config.concurrency}

    server = MetricsServer(url, host, port, load)
    try:
        bound = await server.start()
    except OSError as exc:
        raise ConfigError(f"--metrics-port: cannot listen on {host}:{port}: {exc}") from None
    print(f"pgqueue: metrics on http://{host}:{bound}/metrics", flush=True)
    return server


def cmd_worker(args: argparse.Namespace) -> int:
    if bool(args.handler) == bool(args.config):
        raise SystemExit(
            "pgqueue worker: give exactly one of --config langgraph.json or --handler mod:fn"
        )
    from sqlalchemy.exc import OperationalError  # the schema check's driver error

    settings = ProcessSettings.from_args(args)
    url = resolve_database_url(args)
    deadline = time.monotonic() + settings.startup_wait
    while True:
        # Out of budget: one more try, then the wait exits with the reason.
        wait_for_database(url, max(deadline - time.monotonic(), 0.0))
        try:
            migrate.require_head(url)
            return asyncio.run(run_worker(args, settings, url))
        except (NotStarted, OperationalError) as exc:
            # A database that answered the wait and then went away (a
            # restart as the worker came up), before the worker held
            # anything: wait for it again, within the same start-up budget,
            # instead of exiting with a traceback.
            reason = said(exc)
            log.warning(
                "the database went away while the worker started (%s); waiting for it",
                reason,
                extra={"event": "startup_db_lost"},
            )


def add_command(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        parents=parents,
        help="run a worker for langgraph.json's graphs or an async handler",
    )
    p.add_argument("--config", help="langgraph.json: run its graphs with the LangGraph executor")
    p.add_argument(
        "--handler", help="'package.module:function', an async callable taking a ClaimedRun"
    )
    observe.add_metrics_flags(p)
    p.set_defaults(func=cmd_worker)
