"""The full ``pgqueue`` command (the installed script, and ``python -m
server``): the library's commands (``pgqueue.cli``) plus the two that serve
HTTP, which live here because the library never imports the app:

    pgqueue serve --config langgraph.json    HTTP API and workers in one process
    pgqueue server --config langgraph.json   HTTP API only (scale apart from workers)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import TYPE_CHECKING

from pgqueue.cli.database import resolve_database_url, wait_for_database
from pgqueue.cli.main import Commands, build_commands, run
from pgqueue.cli.settings import ProcessSettings

if TYPE_CHECKING:
    from server.settings import Settings


def _http(args: argparse.Namespace, *, with_workers: bool) -> int:
    # Imported here: uvicorn, Starlette and the graphs are for these two
    # commands only, not for `pgqueue migrate`.
    from server.main import run as serve
    from server.settings import Settings

    if args.reuse_port:
        from server.prefork import follow_parent

        follow_parent(args.reuse_port)
    process = ProcessSettings.from_args(args)
    url = resolve_database_url(args)
    wait_for_database(url, process.startup_wait)
    settings = Settings.from_env(
        url,
        args.config,
        process=process,
        host=args.host,
        port=args.port,
        run_workers=with_workers,
        access_log=args.access_log,
        reuse_port=args.reuse_port is not None,
    )
    workers = _workers(args)
    if workers > 1:
        return _prefork(settings, url, workers)
    # A prefork child: its parent migrated.
    return serve(settings, apply_migrations=with_workers and args.reuse_port is None)


def _workers(args: argparse.Namespace) -> int:
    """serve's --workers, else $WEB_CONCURRENCY (uvicorn's and gunicorn's
    name), else 1; server takes none (scale it with a process manager)."""
    given = getattr(args, "workers", None)
    if given is None:
        text = os.environ.get("WEB_CONCURRENCY", "").strip() if hasattr(args, "workers") else ""
        try:
            given = int(text) if text else 1
        except ValueError:
            raise SystemExit(
                f"pgqueue: WEB_CONCURRENCY must be a whole number, got {text!r}"
            ) from None
    if given < 1:
        raise SystemExit(f"pgqueue: --workers must be 1 or more, got {given}")
    return given


def _without_workers(argv: list[str]) -> list[str]:
    """``argv`` less its --workers (a child's command line says 1, once)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            kept.append(arg)
    return kept


def _prefork(settings: Settings, url: str, workers: int) -> int:
    from pgqueue.cli.database import migrate_and_say
    from server.prefork import Prefork

    migrate_and_say(url)
    # The children get the URL this process resolved (an embedded server it
    # started stays up while it waits on them), one worker each, and the
    # port this process holds.
    argv = [*_without_workers(sys.argv[1:]), "--database-url", url, "--workers", "1"]
    # The children keep their metrics' counters in files there, and each
    # /metrics answer sums them, whichever child answers (prometheus_client's
    # multiprocess mode): a directory of the operator's, else one for this run.
    with tempfile.TemporaryDirectory(prefix="pgqueue-metrics-") as own:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", own)
        return Prefork(argv, settings.host, settings.port, workers).run()


def cmd_serve(args: argparse.Namespace) -> int:
    return _http(args, with_workers=True)


def cmd_server(args: argparse.Namespace) -> int:
    return _http(args, with_workers=False)


def add_http_commands(commands: Commands) -> None:
    http = argparse.ArgumentParser(add_help=False)
    http.add_argument(
        "--config", default="langgraph.json", help="langgraph.json (default ./langgraph.json)"
    )
    http.add_argument(
        "--host", help="address to listen on (default: $PGQUEUE_HOST, else 127.0.0.1)"
    )
    http.add_argument(
        "--port",
        type=int,
        help="port to listen on, 0 for any free one (default: $PORT, else 2024)",
    )
    http.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        help="one line per request on stderr (default: $PGQUEUE_ACCESS_LOG, else on for "
        "serve, off for server)",
    )
    # A child of `serve --workers N`, and its parent's pid (server/prefork.py).
    http.add_argument("--reuse-port", type=int, metavar="PARENT_PID", help=argparse.SUPPRESS)
    p = commands.sub.add_parser(
        "serve",
        parents=[commands.common, commands.running, http],
        help="HTTP API and workers in one process (applies pending migrations)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the port, each with its own workers "
        "(default: $WEB_CONCURRENCY, else 1)",
    )
    p.set_defaults(func=cmd_serve)
    p = commands.sub.add_parser(
        "server",
        parents=[commands.common, http],
        help="HTTP API only; run `pgqueue worker` processes beside it",
    )
    p.set_defaults(func=cmd_server)


def build_parser() -> argparse.ArgumentParser:
    commands = build_commands()
    add_http_commands(commands)
    return commands.parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)
