"""The full ``pgqueue`` command (the installed script, and ``python -m
server``): the library's commands (``pgqueue.cli``) plus the two that serve
HTTP, which live here because the library never imports the app:

    pgqueue serve --config langgraph.json    HTTP API and workers in one process
    pgqueue server --config langgraph.json   HTTP API only (scale apart from workers)
"""

from __future__ import annotations

import argparse

from pgqueue.cli.database import resolve_database_url, wait_for_database
from pgqueue.cli.main import Commands, build_commands, run
from pgqueue.cli.settings import ProcessSettings


def _http(args: argparse.Namespace, *, with_workers: bool) -> int:
    # Imported here: uvicorn, Starlette and the graphs are for these two
    # commands only, not for `pgqueue migrate`.
    from server.main import run as serve
    from server.settings import Settings

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
    )
    return serve(settings, apply_migrations=with_workers)


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
    p = commands.sub.add_parser(
        "serve",
        parents=[commands.common, commands.running, http],
        help="HTTP API and workers in one process (applies pending migrations)",
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
