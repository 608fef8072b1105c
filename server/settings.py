"""The server's configuration, read from the environment and CLI flags.

With ``pgqueue.cli`` this is the only code that reads the environment; the
app and the library take a ``Settings`` object. The knobs of the workers
that ``serve`` runs in-process (and the maintenance beside them) are the
worker command's own, in ``pgqueue.cli.settings.ProcessSettings``; this
adds the ones only an HTTP server has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pgqueue.cli.settings import ProcessSettings, env_number
from pgqueue.resources.scheduler import SchedulerConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2024


@dataclass
class Settings:
    database_url: str
    config_path: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # serve: workers, the sweeper and the pruner in the server's process.
    run_workers: bool = False
    # Those workers' knobs: --concurrency, --heartbeat-interval, webhooks...
    process: ProcessSettings = field(default_factory=ProcessSettings)
    # Requests larger than this answer 413 before their body is parsed.
    max_body_bytes: int = 10 * 1024 * 1024
    # SSE comment keep-alives and /wait newlines, so proxies keep the line open.
    keepalive_seconds: float = 5.0
    # On shutdown, an open /wait (or join) still answers a run that ends
    # within this long; then its connection is cut and the client reconnects
    # through Location. uvicorn's bound on open connections is 5 s more.
    wait_shutdown_seconds: float = 5.0
    # How often a joiner re-reads a run's status when no NOTIFY came (a sweep
    # that failed the run, a NOTIFY lost while the listener reconnected).
    join_poll_seconds: float = 1.0
    # Cron scheduler (every server process): how often it looks for due crons.
    scheduler_seconds: float = SchedulerConfig.interval
    # One line per request on stderr (uvicorn's access log): serve's default.
    access_log: bool = False
    # A child of `serve --workers N` (server/prefork.py): bind the port with
    # SO_REUSEPORT beside its siblings, and leave migrating to the parent.
    reuse_port: bool = False
    # Answer Private Network Access preflights (serve: a hosted page such as
    # Studio calling a server on the developer's machine; see server/cors.py).
    private_network_access: bool = False

    @classmethod
    def from_env(
        cls,
        database_url: str,
        config_path: str | Path,
        *,
        process: ProcessSettings | None = None,
        host: str | None = None,
        port: int | None = None,
        run_workers: bool = False,
        access_log: bool | None = None,
        reuse_port: bool = False,
    ) -> Settings:
        """Defaults, then ``PGQUEUE_*`` variables, then the flags given
        (None: not given)."""
        return cls(
            database_url=database_url,
            config_path=Path(config_path),
            host=host or os.environ.get("PGQUEUE_HOST") or DEFAULT_HOST,
            port=port if port is not None else env_number("PORT", int, DEFAULT_PORT),
            run_workers=run_workers,
            # serve (a developer's terminal) logs each request unless told not to.
            access_log=access_log
            if access_log is not None
            else env_number("PGQUEUE_ACCESS_LOG", int, int(run_workers)) != 0,
            reuse_port=reuse_port,
            private_network_access=run_workers,
            process=process or ProcessSettings.from_env(),
            max_body_bytes=env_number("PGQUEUE_MAX_BODY_BYTES", int, cls.max_body_bytes),
            keepalive_seconds=env_number("PGQUEUE_KEEPALIVE_SECONDS", float, cls.keepalive_seconds),
            wait_shutdown_seconds=env_number(
                "PGQUEUE_WAIT_SHUTDOWN_SECONDS", float, cls.wait_shutdown_seconds
            ),
            scheduler_seconds=env_number("PGQUEUE_SCHEDULER_SECONDS", float, cls.scheduler_seconds),
        )

    def scheduler_config(self) -> SchedulerConfig:
        return SchedulerConfig(interval=self.scheduler_seconds)
