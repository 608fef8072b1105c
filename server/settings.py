"""The server's configuration, read from the environment and CLI flags.

With ``pgqueue/cli.py`` this is the only code that reads the environment;
the app and the library take a ``Settings`` object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 2024


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class Settings:
    database_url: str
    config_path: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # serve: workers, sweeper and scheduler in the server's process.
    run_workers: bool = False
    jobs_per_worker: int = 10
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
    # Webhook delivery: attempts and backoff between them.
    webhook_attempts: int = 4
    webhook_backoff_seconds: float = 0.5
    # Lease and maintenance timings for in-process workers (serve).
    heartbeat_seconds: float = 5.0
    sweep_seconds: float = 5.0
    stale_after_seconds: float | None = None
    poll_seconds: float = 5.0
    # Graceful shutdown (serve): seconds in-flight runs get to finish before
    # they are handed back to the queue; a second signal skips the wait.
    shutdown_grace_seconds: float = 25.0
    # Cron scheduler: how often it looks for due schedules.
    scheduler_seconds: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, database_url: str, config_path: str | Path, **overrides: object) -> Settings:
        """Defaults, then ``PGQUEUE_*`` variables, then explicit overrides."""
        stale = os.environ.get("PGQUEUE_LEASE_SECONDS")
        values: dict[str, object] = {
            "jobs_per_worker": _env_int("N_JOBS_PER_WORKER", 10),
            "max_body_bytes": _env_int("PGQUEUE_MAX_BODY_BYTES", 10 * 1024 * 1024),
            "keepalive_seconds": _env_float("PGQUEUE_KEEPALIVE_SECONDS", 5.0),
            "wait_shutdown_seconds": _env_float("PGQUEUE_WAIT_SHUTDOWN_SECONDS", 5.0),
            "heartbeat_seconds": _env_float("PGQUEUE_HEARTBEAT_SECONDS", 5.0),
            "sweep_seconds": _env_float("PGQUEUE_SWEEP_SECONDS", 5.0),
            "stale_after_seconds": float(stale) if stale else None,
            "poll_seconds": _env_float("PGQUEUE_POLL_SECONDS", 5.0),
            "scheduler_seconds": _env_float("PGQUEUE_SCHEDULER_SECONDS", 1.0),
            "webhook_attempts": _env_int("PGQUEUE_WEBHOOK_ATTEMPTS", 4),
            "shutdown_grace_seconds": _env_float("PGQUEUE_SHUTDOWN_GRACE_SECONDS", 25.0),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(database_url=database_url, config_path=Path(config_path), **values)  # type: ignore[arg-type]
