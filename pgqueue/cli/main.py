"""The library's commands, as ``python -m pgqueue``:

    pgqueue migrate                    apply migrations to DATABASE_URL
    pgqueue downgrade base             revert them
    pgqueue worker --config langgraph.json   run graphs (and the sweeper loop)
    pgqueue worker --handler mod:fn    run any async handler instead
    pgqueue sweep --install-cron       sweep by pg_cron instead
    pgqueue prune                      delete what is past keeping, once
    pgqueue runs ls|show|cancel|retry  runs across every thread, for an operator
    pgqueue stats                      the queue at a glance
    pgqueue demo                       a worked example on the embedded server

The installed ``pgqueue`` script is ``server.cli``: these commands plus
``serve`` and ``server``, which live with the HTTP app because the library
never imports it. The CLI and ``server/settings.py`` are the only readers
of the environment; everything else takes config objects.
"""

from __future__ import annotations

import argparse
import signal
import sys
from dataclasses import dataclass
from typing import Any

import asyncpg
import psycopg
from sqlalchemy.exc import DBAPIError

from pgqueue.cli import database, demo, observe, prune, runs, settings, stats, sweep, worker
from pgqueue.db import migrate
from pgqueue.errors import ConfigError, SchemaOutdated, Unavailable

# A statement the database refused, as each driver reports it: alembic's
# SQLAlchemy over psycopg (migrate), psycopg, asyncpg (the worker).
DATABASE_REFUSALS = (DBAPIError, psycopg.DatabaseError, asyncpg.PostgresError)


@dataclass
class Commands:
    """The parser, where subcommands go, and the flag groups they share, so
    ``server.cli`` can add its commands with the same flags."""

    parser: argparse.ArgumentParser
    sub: Any  # argparse's _SubParsersAction, private in typeshed
    # --database-url, --data-dir: every command.
    common: argparse.ArgumentParser
    # The worker knobs (pgqueue.cli.settings): commands that run workers.
    running: argparse.ArgumentParser


def cmd_migrate(args: argparse.Namespace) -> int:
    url = database.resolve_database_url(args)
    migrate.upgrade(url, args.revision)
    print(f"pgqueue: database at revision {migrate.current_revision(url)}")
    return 0


def cmd_downgrade(args: argparse.Namespace) -> int:
    url = database.resolve_database_url(args)
    migrate.downgrade(url, args.revision)
    print(f"pgqueue: database at revision {migrate.current_revision(url)}")
    return 0


def build_commands() -> Commands:
    parser = argparse.ArgumentParser(
        prog="pgqueue", description="Postgres-only run queue for LangGraph agents"
    )
    common = argparse.ArgumentParser(add_help=False)
    database.add_flags(common)
    observe.add_log_flags(common)
    running = argparse.ArgumentParser(add_help=False)
    settings.add_flags(running)
    commands = Commands(
        parser, parser.add_subparsers(dest="command", required=True), common, running
    )

    p = commands.sub.add_parser(
        "migrate", parents=[common], help="apply migrations (alembic upgrade)"
    )
    p.add_argument("--revision", default="head")
    p.set_defaults(func=cmd_migrate)
    p = commands.sub.add_parser(
        "downgrade", parents=[common], help="revert migrations (alembic downgrade)"
    )
    p.add_argument("revision", help="target revision, e.g. base")
    p.set_defaults(func=cmd_downgrade)
    sweep.add_command(commands.sub, [common])
    prune.add_command(commands.sub, [common])
    runs.add_command(commands.sub, [common])
    stats.add_command(commands.sub, [common])
    worker.add_command(commands.sub, [common, running])
    demo.add_command(commands.sub, [common])
    return commands


def build_parser() -> argparse.ArgumentParser:
    return build_commands().parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run its command; what ``main`` of both entry
    points does."""
    args = parser.parse_args(argv)
    # The installed script's first chance (see pgqueue/__main__.py for why).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        observe.apply(args)
        return int(args.func(args) or 0)
    except (ConfigError, SchemaOutdated, Unavailable) as exc:
        # The operator's to fix (a setting, langgraph.json, the schema, a
        # missing component): the message, without a traceback.
        message = str(exc)
        raise SystemExit(
            message if message.startswith("pgqueue") else f"pgqueue: {message}"
        ) from None
    except DATABASE_REFUSALS as exc:
        # The database refused a statement (a role without the privilege to
        # migrate, say): what it said, once, not a driver's traceback.
        raise SystemExit(f"pgqueue: the database refused: {database.said(exc)}") from None
    except KeyboardInterrupt:
        # SIGINT before the command installed its own handlers (connecting,
        # migrating, loading graphs): nothing was started, so a stop, not
        # a crash.
        print("pgqueue: interrupted while starting", file=sys.stderr)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    parser.epilog = (
        "serve and server (HTTP): the installed `pgqueue` command, or `python -m server`"
    )
    return run(parser, argv)
