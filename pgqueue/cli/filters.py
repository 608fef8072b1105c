"""The operator commands' shared flags: which runs (``--status``,
``--thread``, ``--assistant``, ``--older-than``, ``--newer-than``) and
how values are read. A value that does not parse is argparse's error,
exit 2, naming the option."""

from __future__ import annotations

import argparse
from datetime import timedelta
from uuid import UUID

from pgqueue.cli import output
from pgqueue.resources import admin


def uuid_arg(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a UUID") from None


def age_arg(text: str) -> timedelta:
    try:
        return output.parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def add_flags(p: argparse.ArgumentParser, statuses: tuple[str, ...]) -> None:
    p.add_argument(
        "--status",
        action="append",
        choices=statuses,
        help="only runs with this status (repeat for several)",
    )
    p.add_argument("--thread", type=uuid_arg, help="only runs on this thread (UUID)")
    p.add_argument("--assistant", help="only runs of this assistant (UUID) or graph id")
    p.add_argument(
        "--older-than",
        type=age_arg,
        metavar="AGE",
        help="only runs created more than AGE ago (30s, 10m, 2h, 7d, 1w)",
    )
    p.add_argument(
        "--newer-than", type=age_arg, metavar="AGE", help="only runs created less than AGE ago"
    )


def run_filter(args: argparse.Namespace) -> admin.RunFilter:
    """The filter the flags give."""
    statuses = tuple(dict.fromkeys(args.status)) if args.status else None
    assistant_id: UUID | None = None
    graph_id: str | None = None
    if args.assistant:
        try:
            assistant_id = UUID(args.assistant)
        except ValueError:
            graph_id = args.assistant
    return admin.RunFilter(
        statuses=statuses,
        thread_id=args.thread,
        assistant_id=assistant_id,
        graph_id=graph_id,
        older_than=args.older_than,
        newer_than=args.newer_than,
    )
