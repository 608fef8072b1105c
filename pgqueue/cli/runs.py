"""``pgqueue runs ls | show | cancel | retry``: runs across every thread,
as an operator sees them (no Auth applies: whoever holds the database URL
sees everything).

Exit status, the same for every subcommand (each says which apply):
0 done; 1 nothing to do (no run matched, or a named run was not in a state
the command acts on); 2 bad usage or input; 3 a named run does not exist;
4 the database could not be reached or refused; 130 interrupted (what was
done stays done).
"""

from __future__ import annotations

import argparse
from typing import Any

from pgqueue.cli import bulk as bulk_cli
from pgqueue.cli import filters, output
from pgqueue.cli.database import resolve_database_url
from pgqueue.cli.output import EXIT_CODES, NOT_FOUND, OK
from pgqueue.db import pools as db
from pgqueue.resources import admin, bulk

# -- ls ----------------------------------------------------------------------


async def _ls(args: argparse.Namespace, url: str, which: admin.RunFilter) -> int:
    conn = await db.connect(url)
    try:
        now = await admin.database_now(conn)
        rows = await admin.list_runs(conn, which, args.limit)
    finally:
        await conn.close()
    if args.json:
        output.print_json(rows)
        return OK
    if not rows:
        print("no runs matched")
        return OK
    output.table(
        ["run", "thread", "graph", "status", "attempt", "age", "took", "error"],
        (
            [
                r["run_id"],
                r["thread_id"],
                r["graph_id"],
                r["status"],
                f"{r['attempt']}/{r['max_attempts']}",
                output.since(r["created_at"], now),
                output.ago((r["ended_at"] - r["started_at"]).total_seconds())
                if r["ended_at"] and r["started_at"]
                else None,
                r["error_type"],
            ]
            for r in rows
        ),
    )
    return OK


def cmd_ls(args: argparse.Namespace) -> int:
    which = filters.run_filter(args)
    url = resolve_database_url(args)
    return output.run_async(lambda: _ls(args, url, which))


# -- show --------------------------------------------------------------------


async def _show(args: argparse.Namespace, url: str) -> int:
    conn = await db.connect(url)
    try:
        now = await admin.database_now(conn)
        run = await admin.show_run(conn, args.run_id)
    finally:
        await conn.close()
    if run is None:
        output.error(f"run {args.run_id} not found")
        if args.json:
            output.print_json({"error": "not found", "run_id": args.run_id})
        return NOT_FOUND
    if args.json:
        output.print_json(run)
        return OK
    worker = run["worker_id"]
    if worker and run["worker_host"]:
        worker = f"{worker} ({run['worker_host']}, pid {run['worker_pid']})"
    error = run["error"] or {}
    output.fields(
        [
            ("status", run["status"]),
            ("thread", run["thread_id"]),
            ("assistant", run["assistant_id"]),
            ("graph", run["graph_id"]),
            (
                "attempt",
                f"{run['attempt']} of {run['max_attempts']}"
                + (f" ({run['releases']} handed back at shutdown)" if run["releases"] else ""),
            ),
            ("worker", worker),
            ("created", f"{run['created_at']} ({output.since(run['created_at'], now)} ago)"),
            ("ready at", run["not_before"]),
            ("started", run["started_at"]),
            ("heartbeat", run["heartbeat_at"]),
            ("ended", run["ended_at"]),
            ("cancel", run["cancel_action"]),
            ("events", run["events"]),
            ("checkpoints", run["checkpoints"]),
            ("error", f"{error.get('error', '')}: {error.get('message', '')}" if error else None),
        ],
        title=f"run {run['run_id']}",
    )
    return OK


def cmd_show(args: argparse.Namespace) -> int:
    url = resolve_database_url(args)
    return output.run_async(lambda: _show(args, url))


# -- the parsers -------------------------------------------------------------


def add_command(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser(
        "runs",
        help="list, show, cancel and retry runs",
        description="Runs across every thread, as an operator sees them (no Auth applies). "
        + EXIT_CODES,
    )
    verbs = runs.add_subparsers(
        dest="runs_command", required=True, metavar="{ls,show,cancel,retry}"
    )

    p = verbs.add_parser(
        "ls",
        parents=parents,
        help="list runs, newest first",
        description="List runs, newest first (by creation). Exit status: 0 listed (also when "
        "no run matched: the listing is empty); 2 bad usage or input; 4 the database could "
        "not be reached or refused.",
    )
    filters.add_flags(p, admin.STATUSES)
    p.add_argument(
        "--limit", type=filters.positive_arg, default=50, help="at most this many runs (50)"
    )
    p.add_argument("--json", action="store_true", help="print a JSON list on stdout")
    p.set_defaults(func=cmd_ls, parser=p, command_name="ls")

    p = verbs.add_parser(
        "show",
        parents=parents,
        help="one run in full",
        description="One run: its fields, attempts, worker, timestamps, error, and how many "
        "stream events and checkpoints it wrote. Exit status: 0 shown; 2 bad usage or input "
        "(not a UUID); 3 no such run; 4 the database could not be reached or refused.",
    )
    p.add_argument("run_id", type=filters.uuid_arg, metavar="ID", help="the run's id")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=cmd_show, parser=p, command_name="show")

    for name, statuses, short, summary in (
        (
            "cancel",
            admin.CANCELLABLE,
            "cancel pending or running runs",
            "Cancel pending or running runs, named or by filter (--status defaults to pending "
            "and running). A pending run ends at once (interrupted, or deleted with --action "
            "rollback); a running one is told by NOTIFY and stopped by its worker (outcome "
            "'cancelling'). Runs whose cancel was already asked for are left alone.",
        ),
        (
            "retry",
            admin.RETRYABLE,
            "put failed runs back to pending",
            "Put runs that ended in error, timeout or interrupted back to pending, named or by "
            "filter (--status defaults to all three): ready now, with their attempt count kept "
            "and max_attempts raised by what it takes to allow one more attempt when they used "
            "them all; the last error stays on the run until it ends again. Each goes behind "
            "the runs already waiting on its thread, which turns busy as on a submit: runs on "
            "one thread still start one at a time and in order. Workers are woken at once.",
        ),
    ):
        p = verbs.add_parser(
            name,
            parents=parents,
            help=short,
            description=f"{summary} Works in batches, each its own transaction, with a "
            f"progress bar on stderr. {EXIT_CODES}",
        )
        p.add_argument("run_ids", nargs="*", type=filters.uuid_arg, metavar="ID", help="runs by id")
        filters.add_flags(p, statuses)
        p.add_argument("--all", action="store_true", help=f"every run {name} acts on")
        if name == "cancel":
            p.add_argument(
                "--action",
                choices=("interrupt", "rollback"),
                default="interrupt",
                help="interrupt (keep the run, status interrupted) or rollback (delete it)",
            )
        p.add_argument(
            "--batch-size",
            type=filters.positive_arg,
            default=bulk.DEFAULT_BATCH,
            help=f"runs per transaction ({bulk.DEFAULT_BATCH})",
        )
        p.add_argument(
            "--no-progress", dest="progress", action="store_false", help="no progress on stderr"
        )
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        p.set_defaults(func=bulk_cli.cmd_bulk, parser=p, command_name=name)
