"""``pgqueue stats``: the queue at a glance, from the database's views, so
every process agrees: runs per status, queue depth (ready and delayed),
the oldest pending run's age, workers alive with their slots and runs,
stale runs, and what ended in the last 5 minutes and hour."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from pgqueue.cli import output
from pgqueue.cli.database import resolve_database_url
from pgqueue.db import pools as db
from pgqueue.resources import admin


def _share(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


async def _stats(args: argparse.Namespace, url: str) -> int:
    conn = await db.connect(url)
    try:
        s = await admin.stats(conn)
    finally:
        await conn.close()
    if args.json:
        output.print_json(
            {
                **dataclasses.asdict(s),
                "error_share_5m": s.error_share_5m,
                "error_share_1h": s.error_share_1h,
            }
        )
        return output.OK
    output.table(["status", "runs"], s.runs.items(), title="Runs")
    output.fields(
        [
            ("ready", s.ready),
            ("delayed", s.delayed),
            ("oldest pending", output.ago(s.oldest_pending_age)),
            ("stale runs", s.stale_runs),
            ("workers alive", f"{s.workers_alive} of {len(s.workers)} registered"),
            ("slots", f"{s.running_on_alive} running of {s.slots}"),
            (
                "ended, last 5 min",
                f"{s.ended_5m} ({s.failed_5m} failed, {_share(s.error_share_5m)})",
            ),
            (
                "ended, last hour",
                f"{s.ended_1h} ({s.failed_1h} failed, {_share(s.error_share_1h)})",
            ),
        ],
        title="Queue",
    )
    if s.workers:
        rows: list[list[Any]] = [
            [
                w["worker_id"],
                f"{w['host']}:{w['pid']}",
                "yes" if w["alive"] else "no",
                f"{w['running']}/{w['concurrency']}",
                output.ago(w["heartbeat_age"]),
            ]
            for w in s.workers
        ]
        output.table(["worker", "host:pid", "alive", "running", "heartbeat"], rows, "Workers")
    return output.OK


def cmd_stats(args: argparse.Namespace) -> int:
    url = resolve_database_url(args)
    return output.run_async(lambda: _stats(args, url))


def add_command(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "stats",
        parents=parents,
        help="the queue at a glance",
        description="Runs per status; queue depth (ready and delayed pending runs) and the "
        "oldest pending run's age; workers alive with their slots and the runs they hold; "
        "stale runs (heartbeat older than the lease window); runs ended in the last 5 "
        "minutes and hour, with the share that failed (error or timeout). Exit status: "
        "0 shown; 2 bad usage; 4 the database could not be reached or refused.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_stats)
