"""The ``pgqueue`` command: this module and ``server/settings.py`` are the
only readers of the environment; everything else takes config objects.

    pgqueue migrate                    apply migrations to DATABASE_URL
    pgqueue serve --config langgraph.json    HTTP API and workers in one process
    pgqueue server --config langgraph.json   HTTP API only (scale apart from workers)
    pgqueue worker --config langgraph.json   run graphs (and the sweeper loop)
    pgqueue worker --handler mod:fn    run any async handler instead
    pgqueue sweep --install-cron       sweep by pg_cron instead
    pgqueue demo                       a worked example on the embedded server
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import asyncpg

from pgqueue.db import embedded, migrate
from pgqueue.db import pools as db
from pgqueue.db.sql import queries
from pgqueue.maintenance import pg_cron as cron
from pgqueue.maintenance.pruner import Pruner, PrunerConfig
from pgqueue.maintenance.service import PeriodicService
from pgqueue.maintenance.sweeper import Sweeper, SweeperConfig
from pgqueue.worker.heartbeat import (
    DEFAULT_LEASE_SECONDS,
    EXIT_UNHEALTHY,
    UNHEALTHY_EXIT_DEADLINE,
    HeartbeatConfig,
)
from pgqueue.worker.worker import Handler, Worker, WorkerConfig

log = logging.getLogger("pgqueue")

DEFAULT_DATA_DIR = Path(".pgqueue") / "pgdata"


def resolve_database_url(args: argparse.Namespace) -> str:
    url = args.database_url or os.environ.get("DATABASE_URL")
    if url:
        return url
    default_dir = DEFAULT_DATA_DIR
    if getattr(args, "config", None):
        # Kept next to the project's langgraph.json, wherever it is run from.
        default_dir = Path(args.config).resolve().parent / DEFAULT_DATA_DIR
    data_dir = Path(args.data_dir or os.environ.get("PGQUEUE_DATA_DIR") or default_dir)
    try:
        url = embedded.start(data_dir)
    except embedded.EmbeddedUnavailable as exc:
        raise SystemExit(str(exc)) from None
    print(f"pgqueue: no DATABASE_URL; using embedded PostgreSQL in {data_dir}", file=sys.stderr)
    return url


def load_handler(spec: str) -> Handler:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--handler must look like 'package.module:function', got {spec!r}")
    sys.path.insert(0, os.getcwd())
    try:
        handler: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"cannot load handler {spec!r}: {exc}") from None
    return handler  # type: ignore[no-any-return]


# How long a starting worker or server waits for a database that is not
# answering yet (restarting, or starting beside it under a supervisor)
# before it gives up with a message instead of a traceback.
STARTUP_WAIT_SECONDS = 60.0


def wait_for_database(url: str, timeout: float | None = None) -> None:
    """Return once ``url`` accepts a connection; retry with backoff until
    ``timeout`` (PGQUEUE_STARTUP_WAIT_SECONDS, default 60), then exit 1 with
    the last error."""
    import time

    import psycopg

    if timeout is None:
        timeout = float(os.environ.get("PGQUEUE_STARTUP_WAIT_SECONDS", STARTUP_WAIT_SECONDS))
    deadline = time.monotonic() + timeout
    delay = 0.25
    while True:
        try:
            psycopg.connect(url, connect_timeout=int(db.CONNECT_TIMEOUT)).close()
            return
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            if time.monotonic() + delay > deadline:
                raise SystemExit(
                    f"pgqueue: the database did not answer for {timeout:.0f} s: {reason}"
                ) from None
            log.warning(
                "database not reachable yet (%s); retrying in %.1f s",
                reason,
                delay,
                extra={"event": "startup_db_wait"},
            )
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def cmd_migrate(args: argparse.Namespace) -> int:
    url = resolve_database_url(args)
    migrate.upgrade(url, args.revision)
    print(f"pgqueue: database at revision {migrate.current_revision(url)}")
    return 0


def cmd_downgrade(args: argparse.Namespace) -> int:
    url = resolve_database_url(args)
    migrate.downgrade(url, args.revision)
    print(f"pgqueue: database at revision {migrate.current_revision(url)}")
    return 0


async def _cron(args: argparse.Namespace, url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        if args.uninstall_cron:
            removed = await cron.uninstall(conn)
            print(
                "pgqueue: pg_cron job removed" if removed else "pgqueue: no pg_cron job to remove"
            )
            return 0
        try:
            job_id = await cron.install(conn, args.schedule, args.stale_after)
        except cron.CronUnavailable as exc:
            print(f"pgqueue: {exc}", file=sys.stderr)
            return 2
        print(f"pgqueue: pg_cron job {cron.JOB_NAME!r} (id {job_id}) scheduled '{args.schedule}'")
        return 0
    finally:
        await conn.close()


async def _sweep(args: argparse.Namespace, url: str) -> int:
    if args.install_cron or args.uninstall_cron:
        return await _cron(args, url)
    pool = await db.create_pool(url, max_size=1)
    try:
        sweeper = Sweeper(pool, SweeperConfig(interval=args.interval, stale_after=args.stale_after))
        if args.loop:
            _on_signals(sweeper.stop)
            await sweeper.run()
        else:
            result = await sweeper.run_once()
            print(
                f"requeued={result.requeued} failed={result.failed} "
                f"workers_removed={result.workers_removed}"
            )
    finally:
        await pool.close()
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    return asyncio.run(_sweep(args, resolve_database_url(args)))


def _on_signals(callback: Any) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


def worker_config(args: argparse.Namespace) -> WorkerConfig:
    return WorkerConfig(
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        heartbeat=HeartbeatConfig(
            interval=args.heartbeat_interval,
            lease_timeout=args.stale_after or DEFAULT_LEASE_SECONDS,
            exit_deadline=UNHEALTHY_EXIT_DEADLINE,
        ),
        shutdown_grace=args.shutdown_grace,
    )


async def _graph_executor(config_path: str, url: str, concurrency: int) -> Handler:
    from pgqueue.execution.executor import ExecutorConfig, GraphExecutor
    from pgqueue.execution.graphs import ConfigError, load_config

    try:
        registry = load_config(config_path)
        for graph_id in registry.specs:
            registry.get(graph_id)  # fail now, not on the first run
    except ConfigError as exc:
        raise SystemExit(f"pgqueue: {exc}") from None
    conn = await asyncpg.connect(url)
    try:
        ids = registry.assistant_ids
        await conn.execute(queries.upsert_system_assistants, list(ids), list(ids.values()))
    finally:
        await conn.close()
    return GraphExecutor(registry, url, ExecutorConfig(pool_size=concurrency))


async def _worker(args: argparse.Namespace, url: str) -> int:
    if bool(args.handler) == bool(args.config):
        raise SystemExit(
            "pgqueue worker: give exactly one of --config langgraph.json or --handler mod:fn"
        )
    config = worker_config(args)
    if args.config:
        from pgqueue.execution.executor import is_retriable

        handler = await _graph_executor(args.config, url, config.concurrency)
        config.is_retriable = is_retriable
    else:
        handler = load_handler(args.handler)
    worker = Worker(url, handler, config)
    # Maintenance beside the worker: the sweeper (unless pg_cron or another
    # process does it) and the pruner. Both are safe to run in every process.
    pool = await db.create_pool(url, max_size=1)
    services: list[PeriodicService] = [Pruner(pool, PrunerConfig())]
    if args.sweep:
        services.append(
            Sweeper(pool, SweeperConfig(interval=args.sweep_interval, stale_after=args.stale_after))
        )
    tasks = [asyncio.create_task(service.run()) for service in services]
    _on_signals(worker.stop)
    try:
        await worker.run()
    finally:
        for service in services:
            service.stop()
        # Bounded: a pass stuck on a database that stopped answering (the
        # liveness exit) is cancelled rather than waited for.
        _, stuck = await asyncio.wait(tasks, timeout=db.CONNECT_TIMEOUT)
        for task in stuck:
            task.cancel()
        for service, result in zip(
            services, await asyncio.gather(*tasks, return_exceptions=True), strict=True
        ):
            if isinstance(result, Exception):
                log.error(
                    "%s stopped with an error: %r",
                    service.name,
                    result,
                    extra={"event": "service_crashed"},
                )
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
    url = resolve_database_url(args)
    wait_for_database(url)
    migrate.require_head(url)
    return asyncio.run(_worker(args, url))


def _http(args: argparse.Namespace, *, with_workers: bool) -> int:
    from pgqueue.execution.graphs import ConfigError
    from server.main import run
    from server.settings import Settings

    url = resolve_database_url(args)
    wait_for_database(url)
    settings = Settings.from_env(
        url,
        args.config,
        host=args.host,
        port=args.port,
        run_workers=with_workers,
        jobs_per_worker=getattr(args, "concurrency", None),
        poll_seconds=getattr(args, "poll_interval", None),
        heartbeat_seconds=getattr(args, "heartbeat_interval", None),
        stale_after_seconds=getattr(args, "stale_after", None),
        sweep_seconds=getattr(args, "sweep_interval", None),
        shutdown_grace_seconds=getattr(args, "shutdown_grace", None),
    )
    try:
        return run(settings, apply_migrations=with_workers)
    except ConfigError as exc:
        raise SystemExit(f"pgqueue: {exc}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    return _http(args, with_workers=True)


def cmd_server(args: argparse.Namespace) -> int:
    return _http(args, with_workers=False)


def cmd_demo(args: argparse.Namespace) -> int:
    from pgqueue.cli.demo import run_demo

    url = resolve_database_url(args)
    migrate.upgrade(url)
    return asyncio.run(run_demo(url, args.runs))


def _float_env(name: str, default: float | None) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgqueue", description="Postgres-only run queue for LangGraph agents"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url", help="PostgreSQL URL (default: $DATABASE_URL, else embedded)"
    )
    common.add_argument(
        "--data-dir",
        help="embedded server's data directory (default: $PGQUEUE_DATA_DIR or ./.pgqueue/pgdata)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", parents=[common], help="apply migrations (alembic upgrade)")
    p.add_argument("--revision", default="head")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("downgrade", parents=[common], help="revert migrations (alembic downgrade)")
    p.add_argument("revision", help="target revision, e.g. base")
    p.set_defaults(func=cmd_downgrade)

    # Unset: the database's pgqueue.lease_timeout (20 s unless set there).
    stale_default = _float_env("PGQUEUE_LEASE_SECONDS", None)
    p = sub.add_parser("sweep", parents=[common], help="requeue runs of dead workers")
    p.add_argument(
        "--stale-after",
        type=float,
        default=None,
        help="lease window in seconds (default: the database's pgqueue.lease_timeout, 20 s)",
    )
    p.add_argument("--loop", action="store_true", help="keep sweeping every --interval seconds")
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument(
        "--install-cron", action="store_true", help="schedule the sweep as a pg_cron job"
    )
    p.add_argument("--uninstall-cron", action="store_true", help="remove the pg_cron job")
    p.add_argument(
        "--schedule", default=cron.DEFAULT_SCHEDULE, help="cron schedule (pg_cron 1.4: per minute)"
    )
    p.set_defaults(func=cmd_sweep)

    running = argparse.ArgumentParser(add_help=False)
    running.add_argument(
        "--concurrency",
        "--n-jobs-per-worker",
        type=int,
        default=int(
            os.environ.get("PGQUEUE_CONCURRENCY") or os.environ.get("N_JOBS_PER_WORKER") or 10
        ),
        help="runs executed at once per process (default 10)",
    )
    running.add_argument(
        "--poll-interval", type=float, default=_float_env("PGQUEUE_POLL_SECONDS", 5.0)
    )
    running.add_argument(
        "--heartbeat-interval", type=float, default=_float_env("PGQUEUE_HEARTBEAT_SECONDS", 5.0)
    )
    running.add_argument(
        "--stale-after",
        type=float,
        default=stale_default,
        help="lease window for the sweeper loop (default: $PGQUEUE_LEASE_SECONDS, else the database's pgqueue.lease_timeout, 20 s)",
    )
    running.add_argument(
        "--sweep-interval", type=float, default=_float_env("PGQUEUE_SWEEP_SECONDS", 5.0)
    )
    running.add_argument(
        "--shutdown-grace",
        type=float,
        default=_float_env("PGQUEUE_SHUTDOWN_GRACE_SECONDS", 25.0),
        help="on SIGINT/SIGTERM, seconds in-flight runs get to finish before they are handed "
        "back to the queue; a second signal skips it (default: $PGQUEUE_SHUTDOWN_GRACE_SECONDS, "
        "else 25)",
    )

    p = sub.add_parser(
        "worker",
        parents=[common, running],
        help="run a worker for langgraph.json's graphs or an async handler",
    )
    p.add_argument("--config", help="langgraph.json: run its graphs with the LangGraph executor")
    p.add_argument(
        "--handler", help="'package.module:function', an async callable taking a ClaimedRun"
    )
    p.add_argument(
        "--no-sweep",
        dest="sweep",
        action="store_false",
        help="leave sweeping to pg_cron or another process",
    )
    p.set_defaults(func=cmd_worker)

    http = argparse.ArgumentParser(add_help=False)
    http.add_argument(
        "--config", default="langgraph.json", help="langgraph.json (default ./langgraph.json)"
    )
    http.add_argument("--host", default=os.environ.get("PGQUEUE_HOST", "127.0.0.1"))
    http.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 2024))
    p = sub.add_parser(
        "serve",
        parents=[common, running, http],
        help="HTTP API and workers in one process (applies pending migrations)",
    )
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser(
        "server",
        parents=[common, http],
        help="HTTP API only; run `pgqueue worker` processes beside it",
    )
    p.set_defaults(func=cmd_server)

    p = sub.add_parser(
        "demo", parents=[common], help="submit and run a few no-op runs, print the queue"
    )
    p.add_argument("--runs", type=int, default=20)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("PGQUEUE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # SIGINT before the command installed its own handlers (connecting,
        # migrating, loading graphs): nothing was started, so a stop, not
        # a crash.
        print("pgqueue: interrupted while starting", file=sys.stderr)
        return 0
