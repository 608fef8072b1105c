"""Sweeping and pruning by pg_cron instead of (or besides) the in-process
loops.

pg_cron must be in ``shared_preload_libraries`` and the job installed in
the database named by ``cron.database_name``. Debian's pg_cron 1.4 schedules
per minute, so the cron sweep alone recovers a dead worker's run within
lease + 1 minute; the in-process loop does it within lease + a few seconds.
"""

from __future__ import annotations

import asyncpg

from pgqueue.db.sql import queries
from pgqueue.errors import Unavailable
from pgqueue.maintenance.pruner import PrunerConfig

JOB_NAME = "pgqueue-sweep"
PRUNE_JOB = "pgqueue-prune"
DEFAULT_SCHEDULE = "* * * * *"


async def install(
    conn: asyncpg.Connection, schedule: str = DEFAULT_SCHEDULE, stale_after: float | None = None
) -> int:
    """Create the extension if needed and (re)schedule the sweep; returns the job id."""
    interval = None if stale_after is None else f"{stale_after} seconds"
    return await _schedule(conn, JOB_NAME, queries.install_sweep_cron, schedule, interval)


async def install_prune(
    conn: asyncpg.Connection, schedule: str = DEFAULT_SCHEDULE, run_retention_days: float = 30.0
) -> int:
    """(Re)schedule ``CALL pgqueue_prune(...)`` (migration 0012); returns the job id."""
    retention = f"{run_retention_days} days"
    pause_ratio = PrunerConfig.pause_ratio
    return await _schedule(
        conn, PRUNE_JOB, queries.install_prune_cron, schedule, retention, pause_ratio
    )


async def _schedule(
    conn: asyncpg.Connection, job: str, statement: str, schedule: str, *arguments: object
) -> int:
    try:
        await conn.execute(queries.create_pg_cron)
    except asyncpg.PostgresError as exc:
        raise Unavailable(
            f"pg_cron is not usable on this server: {exc}. It must be installed "
            "(Debian: postgresql-15-cron), listed in shared_preload_libraries, and "
            "cron.database_name must name this database."
        ) from exc
    async with conn.transaction():
        await conn.execute(queries.uninstall_cron, job)
        job_id = await conn.fetchval(statement, schedule, *arguments)
    return int(job_id)


async def uninstall(conn: asyncpg.Connection, job: str = JOB_NAME) -> bool:
    has_cron = await conn.fetchval(queries.has_pg_cron)
    if not has_cron:
        return False
    return bool(await conn.fetch(queries.uninstall_cron, job))
