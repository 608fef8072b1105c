"""Runs made fast with SQL, and the operator commands (``pgqueue runs``,
``pgqueue stats``) run as a user runs them, for the CLI's tests."""

from __future__ import annotations

import asyncio
import subprocess
from uuid import UUID

import asyncpg

from tests.support.procs import run_cli

ERROR = '{"error": "Boom", "message": "it broke"}'


async def seed(
    pool: asyncpg.Pool,
    n: int,
    *,
    status: str = "error",
    threads: int = 1,
    attempt: int = 3,
    max_attempts: int = 3,
    age: str = "2 hours",
    graph: str = "agent",
) -> list[UUID]:
    """``n`` runs on ``threads`` new threads (round robin), created ``age``
    ago, ended a second later unless live; in seq order. One statement: fast
    enough for thousands."""
    rows = await pool.fetch(
        """
        WITH t AS (
            INSERT INTO threads (thread_id, status)
            SELECT gen_random_uuid(), CASE WHEN $1 IN ('pending', 'running') THEN 'busy'
                                           WHEN $1 = 'success' THEN 'idle' ELSE 'error' END
            FROM generate_series(1, $2::int)
            RETURNING thread_id
        ), ta AS (SELECT array_agg(thread_id) AS a FROM t)
        INSERT INTO runs (run_id, thread_id, status, attempt, max_attempts, kwargs, error,
                          created_at, started_at, ended_at, worker_id)
        SELECT gen_random_uuid(), ta.a[1 + i % $2::int], $1, $3, $4,
               jsonb_build_object('graph_id', $5::text),
               CASE WHEN $1 IN ('error', 'timeout') THEN $6::jsonb END,
               now() - $7::text::interval, now() - $7::text::interval,
               CASE WHEN $1 NOT IN ('pending', 'running')
                    THEN now() - $7::text::interval + interval '1 second' END,
               CASE WHEN $1 <> 'pending' THEN 'old-worker' END
        FROM ta, generate_series(0, $8::int - 1) AS i
        ORDER BY i
        RETURNING run_id, seq
        """,
        status,
        threads,
        attempt,
        max_attempts,
        graph,
        ERROR,
        age,
        n,
    )
    return [r["run_id"] for r in sorted(rows, key=lambda r: r["seq"])]


async def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = await asyncio.to_thread(run_cli, database_url, *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result


async def statuses(pool: asyncpg.Pool, ids: list[UUID]) -> list[str]:
    rows = await pool.fetch("SELECT run_id, status FROM runs WHERE run_id = ANY($1)", ids)
    by_id = {r["run_id"]: r["status"] for r in rows}
    return [by_id.get(i, "gone") for i in ids]
