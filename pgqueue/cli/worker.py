"""``pgqueue worker``: a worker for langgraph.json's graphs (``--config``)
or for any async handler (``--handler mod:fn``), with the pruner and the
sweeper beside it, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from pgqueue.cli.database import resolve_database_url, wait_for_database
from pgqueue.cli.settings import ProcessSettings
from pgqueue.core.handler import HandlerFunction
from pgqueue.db import migrate
from pgqueue.db import pools as db
from pgqueue.db.sql import queries
from pgqueue.maintenance.service import ServiceGroup
from pgqueue.types import Queryable
from pgqueue.worker.heartbeat import EXIT_UNHEALTHY

if TYPE_CHECKING:
    from pgqueue.execution.graphs import GraphRegistry

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
    return registry


async def register_graphs(conn: Queryable, registry: GraphRegistry) -> None:
    """Each graph's system assistant, as the platform creates it."""
    ids = registry.assistant_ids
    await conn.execute(queries.upsert_system_assistants, list(ids), list(ids.values()))


def on_signals(callback: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


async def run_worker(args: argparse.Namespace, settings: ProcessSettings, url: str) -> int:
    if args.config:
        registry = load_graphs(args.config)
        conn = await asyncpg.connect(url)
        try:
            await register_graphs(conn, registry)
        finally:
            await conn.close()
        worker = settings.graph_worker(registry, url)
    else:
        worker = settings.handler_worker(load_handler(args.handler), url)
    pool = await db.create_pool(url, max_size=1)
    services = ServiceGroup(settings.maintenance(pool))
    services.start()
    on_signals(worker.stop)
    try:
        await worker.run()
    finally:
        # Bounded: a pass stuck on a database that stopped answering (the
        # liveness exit) is cancelled rather than waited for.
        await services.stop(grace=db.CONNECT_TIMEOUT)
        await db.close_pool(pool)
    if worker.unhealthy is not None:
        log.error(
            "pgqueue worker: exiting with status %d: %s",
            EXIT_UNHEALTHY,
            worker.unhealthy,
            extra={"event": "worker_unhealthy_exit"},
        )
        return EXIT_UNHEALTHY
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    if bool(args.handler) == bool(args.config):
        raise SystemExit(
            "pgqueue worker: give exactly one of --config langgraph.json or --handler mod:fn"
        )
    settings = ProcessSettings.from_args(args)
    url = resolve_database_url(args)
    wait_for_database(url, settings.startup_wait)
    migrate.require_head(url)
    return asyncio.run(run_worker(args, settings, url))


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
    p.set_defaults(func=cmd_worker)
