"""``pgqueue serve`` and ``pgqueue server``: the app under uvicorn."""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from pgqueue.cli.database import migrate_and_say
from pgqueue.db import migrate
from server.settings import Settings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, plus: the first SIGINT/SIGTERM tells open /wait
    calls to wind down (see streaming.wait); a second tells in-process
    workers to skip their grace period (their runs are still handed back)."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_first_signal: Callable[[], None],
        on_second_signal: Callable[[], None],
    ) -> None:
        super().__init__(config)
        # What a newcomer can try, after the "serving" line (not in a
        # prefork child: its parent says it once).
        self.next_steps = True
        self._on_first_signal = on_first_signal
        self._on_second_signal = on_second_signal

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # Once bound, with the port bound (the one asked for, or the
            # one the system chose for --port 0).
            port = self.servers[0].sockets[0].getsockname()[1]
            print(f"pgqueue: serving on http://{self.config.host}:{port}", flush=True)
            if self.next_steps:
                print(next_steps(f"http://{self.config.host}:{port}"), flush=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            self._on_second_signal()
        else:
            self._on_first_signal()
        super().handle_exit(sig, frame)


def next_steps(url: str) -> str:
    return (
        f"pgqueue: the dashboard is at {url}/dashboard; try it: curl {url}/info, "
        f'or from Python: langgraph_sdk.get_client(url="{url}")'
    )


def run(settings: Settings, *, apply_migrations: bool) -> int:
    """Serve until SIGINT/SIGTERM. ``serve`` applies pending migrations
    (it just works, like ``langgraph dev``); ``server`` refuses to start on
    an outdated schema rather than change it."""
    from server.app import create_app

    if apply_migrations:
        migrate_and_say(settings.database_url)
    else:
        migrate.require_head(settings.database_url)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_level="warning",
        # uvicorn's loggers write through the root's handlers, in the
        # process's --log-format, not through handlers of their own.
        log_config=None,
        access_log=settings.access_log,
        # A bound on open connections at shutdown. Streams end at once
        # (clients resume with Last-Event-ID) and /wait calls within
        # settings.wait_shutdown_seconds (then cut: clients reconnect through
        # Location); in-process workers drain after it, with their own grace.
        timeout_graceful_shutdown=int(settings.wait_shutdown_seconds) + 5,
    )

    def stopping() -> None:
        context = getattr(app.state, "ctx", None)
        if context is not None:
            context.stopping.set()

    def hurry() -> None:
        getattr(app.state, "hurry", lambda: None)()

    server = _Server(config, stopping, hurry)
    server.next_steps = not settings.reuse_port
    # uvicorn shuts down on SIGINT/SIGTERM, then re-raises the signal to the
    # handler that was there before: make that a clean exit (status 0), as
    # a supervisor expects of a requested stop.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    if settings.access_log:
        # log_level="warning" above quiets uvicorn's own chatter; the access
        # log is its INFO lines, one per request.
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    sockets = None
    if settings.reuse_port:
        from server.prefork import reuse_port_socket

        sockets = [reuse_port_socket(settings.host, settings.port)]
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        pass
    return 0


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
