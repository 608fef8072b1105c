"""``pgqueue prune``: delete what is past keeping once (a pass of the
pruner every server and worker runs), or schedule the same pass as a
pg_cron job (``--install-cron``, ``--uninstall-cron``).

A pass is a series of short transactions, one batch each, so Ctrl-C (or a
lost connection) between or during batches leaves nothing half-deleted:
the batch under way rolls back and the next pass deletes it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from typing import Any

from pgqueue.cli.database import resolve_database_url
from pgqueue.cli.settings import ProcessSettings
from pgqueue.cli.sweep import cron_job
from pgqueue.cli.worker import load_graphs
from pgqueue.db import pools as db
from pgqueue.maintenance import pg_cron as cron
from pgqueue.maintenance.pruner import DAY, Pruner


async def _cron(args: argparse.Namespace, settings: ProcessSettings, url: str) -> int:
    registry = load_graphs(args.config) if args.config and args.install_cron else None
    days = settings.pruner_config(registry).run_retention / DAY
    return await cron_job(
        url,
        cron.PRUNE_JOB,
        uninstall=args.uninstall_cron,
        install=lambda conn: cron.install_prune(conn, args.schedule, days),
        scheduled=f"'{args.schedule}', keeping finished runs {days:g} days",
    )


async def _prune(args: argparse.Namespace, settings: ProcessSettings, url: str) -> int:
    if args.install_cron or args.uninstall_cron:
        return await _cron(args, settings, url)
    registry = load_graphs(args.config) if args.config else None
    pool = await db.create_pool(url, max_size=1)
    try:
        result = await Pruner(pool, settings.pruner_config(registry)).run_once()
    finally:
        await pool.close()
    if args.json:
        print(json.dumps(dataclasses.asdict(result)))
    else:
        print(" ".join(f"{k}={v}" for k, v in dataclasses.asdict(result).items() if k != "skipped"))
    if result.skipped:
        print("pgqueue: another process was pruning; this pass stopped early", file=sys.stderr)
        return 3
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    settings = ProcessSettings.from_args(args)
    try:
        return asyncio.run(_prune(args, settings, resolve_database_url(args)))
    except KeyboardInterrupt:
        # Each batch is its own transaction: the one under way rolled back.
        print("pgqueue: prune interrupted; what was deleted stays deleted", file=sys.stderr)
        return 130


def add_command(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "prune",
        parents=parents,
        help="delete old events, finished runs and expired threads once",
        description="One pass of the pruner: stream events an hour after their run ended, "
        "finished runs past the run retention (each thread's newest stays), threads whose "
        "TTL ran out, unreferenced checkpoint blobs and writes. Exit status: 0 done, "
        "3 another process was pruning (this pass stopped early), 130 interrupted.",
    )
    p.add_argument(
        "--run-retention-days",
        type=float,
        help="days a finished run is kept (default: $PGQUEUE_RUN_RETENTION_DAYS, else "
        "--config's pgqueue.run_retention_days, else 30)",
    )
    p.add_argument("--config", help="langgraph.json: its run retention and TTL sweep limit")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument(
        "--install-cron",
        action="store_true",
        help="schedule the pass as a pg_cron job (CALL pgqueue_prune())",
    )
    p.add_argument("--uninstall-cron", action="store_true", help="remove the pg_cron job")
    p.add_argument(
        "--schedule", default=cron.DEFAULT_SCHEDULE, help="cron schedule (pg_cron 1.4: per minute)"
    )
    p.set_defaults(func=cmd_prune)
