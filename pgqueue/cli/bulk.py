"""``pgqueue runs cancel`` and ``pgqueue runs retry``: named runs, or every
run a filter matches, in batches (``pgqueue.resources.bulk``).

Ctrl-C is safe at any moment: the first lets the batch under way commit
and stops (exit 130, saying how many were done); a second stops at once,
and the batch under way rolls back. Either way each run is either done or
untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
from typing import Any
from uuid import UUID

from pgqueue.cli import filters, output
from pgqueue.cli.database import resolve_database_url
from pgqueue.db import pools as db
from pgqueue.resources import admin, bulk


class _Interrupts:
    """First Ctrl-C: stop after the batch under way. Second: stop now (the
    batch under way rolls back). ``done`` counts what committed."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.done = 0

    def install(self) -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._first)

    def _first(self) -> None:
        self.stop.set()
        # Python's own handler again: a second Ctrl-C raises KeyboardInterrupt.
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        output.error("interrupted: stopping after this batch (Ctrl-C again to stop now)")


async def _choose(
    pool: Any, args: argparse.Namespace, which: admin.RunFilter | None
) -> tuple[list[UUID], dict[UUID, str]]:
    """The runs to act on, in order, and why each named run that will not
    be was refused (nothing when chosen by filter)."""
    retrying = args.command_name == "retry"
    if which is not None:
        return await admin.find_run_ids(pool, which, skip_cancelling=not retrying), {}
    found = await admin.run_statuses(pool, args.run_ids)
    acts_on = admin.RETRYABLE if retrying else admin.CANCELLABLE
    ids: list[UUID] = []
    refused: dict[UUID, str] = {}
    for run_id in dict.fromkeys(args.run_ids):
        status = found.get(run_id)
        if status is None:
            refused[run_id] = "not found"
        elif status not in acts_on:
            refused[run_id] = f"not {'retryable' if retrying else 'live'} ({status})"
        else:
            ids.append(run_id)
    return ids, refused


async def _bulk(
    args: argparse.Namespace, url: str, which: admin.RunFilter | None, ctl: _Interrupts
) -> int:
    retrying = args.command_name == "retry"
    verb = "retried" if retrying else "cancelled"
    pool = await db.create_pool(url, min_size=1, max_size=1)
    try:
        ids, refused = await _choose(pool, args, which)
        ctl.install()
        with output.ProgressReport(verb, len(ids), enabled=args.progress and bool(ids)) as bar:

            def progress(so_far: bulk.BulkResult) -> None:
                ctl.done = so_far.done
                bar(so_far.processed, so_far.total)

            how: dict[str, Any] = {
                "batch_size": args.batch_size,
                "progress": progress,
                "stop": ctl.stop,
            }
            if retrying:
                result = await bulk.retry(pool, ids, **how)
            else:
                result = await bulk.cancel(pool, ids, args.action, **how)
    finally:
        await db.close_pool(pool)
    named: dict[UUID, str] = {}
    if which is None:
        for run_id in dict.fromkeys(args.run_ids):
            named[run_id] = refused.get(run_id) or result.outcomes.get(run_id, "changed meanwhile")
    return _report(args, verb, result, named)


def _report(
    args: argparse.Namespace, verb: str, result: bulk.BulkResult, named: dict[UUID, str]
) -> int:
    if args.json:
        document: dict[str, Any] = {
            verb: result.done,
            "matched": result.total,
            "skipped": result.skipped,
            "interrupted": result.stopped,
        }
        if named:
            document["runs"] = {str(k): v for k, v in named.items()}
        output.print_json(document)
    else:
        for run_id, state in named.items():
            print(f"{run_id}: {state}")
        if not named and result.total == 0:
            print("no runs matched")
        elif not result.stopped:
            left = f" ({result.skipped} changed meanwhile and were left)" if result.skipped else ""
            print(f"{verb} {result.done} of {result.total} runs{left}")
    if result.stopped:
        output.error(
            f"interrupted: {verb} {result.done} of {result.total} runs; the rest are untouched"
        )
        return output.INTERRUPTED
    if "not found" in named.values():
        return output.NOT_FOUND
    if named:
        return output.OK if len(result.outcomes) == len(named) else output.NOTHING
    return output.OK if result.done else output.NOTHING


def cmd_bulk(args: argparse.Namespace) -> int:
    which: admin.RunFilter | None = None
    if args.run_ids:
        if args.all or not filters.run_filter(args).empty:
            args.parser.error("give run IDs or a filter (--status, --thread, ..., --all), not both")
    else:
        which = filters.run_filter(args)
        if which.empty and not args.all:
            args.parser.error("name the runs: run IDs, a filter (--status, --thread, ...) or --all")
        if which.statuses is None:
            acts_on = admin.RETRYABLE if args.command_name == "retry" else admin.CANCELLABLE
            which = dataclasses.replace(which, statuses=acts_on)
    url = resolve_database_url(args)
    ctl = _Interrupts()
    try:
        return output.run_async(lambda: _bulk(args, url, which, ctl))
    except KeyboardInterrupt:
        output.error(
            f"stopped: {ctl.done} runs were done; the batch under way was rolled back "
            "and the rest are untouched"
        )
        return output.INTERRUPTED
