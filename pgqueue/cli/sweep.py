"""``pgqueue sweep``: put back the runs of dead workers once, in a loop, or
by a pg_cron job (``--install-cron``, ``--uninstall-cron``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from pgqueue.cli.database import resolve_database_url
from pgqueue.cli.settings import ProcessSettings
from pgqueue.cli.worker import on_signals
from pgqueue.db import pools as db
from pgqueue.errors import Unavailable
from pgqueue.maintenance import pg_cron as cron
from pgqueue.maintenance.sweeper import Sweeper


async def cron_job(
    url: str,
    job: str,
    *,
    uninstall: bool,
    install: Callable[[asyncpg.Connection], Awaitable[int]],
    scheduled: str,
) -> int:
    """--install-cron / --uninstall-cron of ``pgqueue sweep`` and ``pgqueue
    prune``: ``install`` (re)schedules job ``job`` and returns its id;
    ``scheduled`` is said after it. Exit status 2 where pg_cron is unusable."""
    conn = await asyncpg.connect(url, timeout=db.CONNECT_TIMEOUT)
    try:
        if uninstall:
            removed = await cron.uninstall(conn, job)
            print(
                "pgqueue: pg_cron job removed" if removed else "pgqueue: no pg_cron job to remove"
            )
            return 0
        try:
            job_id = await install(conn)
        except Unavailable as exc:
            print(f"pgqueue: {exc}", file=sys.stderr)
            return 2
        print(f"pgqueue: pg_cron job {job!r} (id {job_id}) scheduled {scheduled}")
        return 0
    finally:
        await conn.close()


async def _sweep(args: argparse.Namespace, settings: ProcessSettings, url: str) -> int:
    if args.install_cron or args.uninstall_cron:
        return await cron_job(
            url,
            cron.JOB_NAME,
            uninstall=args.uninstall_cron,
            install=lambda conn: cron.install(conn, args.schedule, settings.stale_after),
            scheduled=f"'{args.schedule}'",
        )
    pool = await db.create_pool(url, max_size=1)
    try:
        sweeper = Sweeper(pool, settings.sweeper_config())
        if args.loop:
            on_signals(sweeper.stop)
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
    settings = ProcessSettings.from_args(args)
    return asyncio.run(_sweep(args, settings, resolve_database_url(args)))


def add_command(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sweep", parents=parents, help="requeue runs of dead workers")
    p.add_argument(
        "--stale-after",
        type=float,
        help="lease window in seconds (default: $PGQUEUE_LEASE_SECONDS, else the "
        "database's pgqueue.lease_timeout, 20 s)",
    )
    p.add_argument("--loop", action="store_true", help="keep sweeping every --interval seconds")
    p.add_argument(
        "--interval",
        dest="sweep_interval",
        type=float,
        help="seconds between sweeps with --loop (default: $PGQUEUE_SWEEP_SECONDS, else 5)",
    )
    p.add_argument(
        "--install-cron", action="store_true", help="schedule the sweep as a pg_cron job"
    )
    p.add_argument("--uninstall-cron", action="store_true", help="remove the pg_cron job")
    p.add_argument(
        "--schedule", default=cron.DEFAULT_SCHEDULE, help="cron schedule (pg_cron 1.4: per minute)"
    )
    p.set_defaults(func=cmd_sweep)
