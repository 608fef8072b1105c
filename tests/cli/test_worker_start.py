"""``pgqueue worker`` meeting a database that goes away while it starts:
past its wait for the database, before it claims anything (a PostgreSQL
restart as a supervisor brings the worker up)."""

from __future__ import annotations

import asyncio
import glob
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import asyncpg

from pgqueue.core import queue
from pgqueue.core.queue import NewRun
from tests.support.procs import FAST, worker_process
from tests.support.relay import Relay
from tests.support.waiting import eventually


class DroppingFront(Relay):
    """A TCP address in front of the test database. It forwards every
    connection, except that it closes the ones numbered in ``drop`` (from
    1) as soon as they arrive: to a client, the database went away."""

    def __init__(self, database_url: str, drop: range) -> None:
        super().__init__()
        self._database_url = database_url
        self._drop = drop
        self.accepted = 0

    async def open_upstream(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.accepted += 1
        if self.accepted in self._drop:
            raise ConnectionRefusedError("dropped on purpose")
        parts = urlsplit(self._database_url)
        if parts.hostname:
            return await asyncio.open_connection(parts.hostname, parts.port or 5432)
        # The embedded server: a Unix socket in the directory ?host= names.
        [socket_dir] = parse_qs(parts.query)["host"]
        [path] = [p for p in glob.glob(f"{socket_dir}/.s.PGSQL.*") if not p.endswith(".lock")]
        return await asyncio.open_unix_connection(path)

    @property
    def database_url(self) -> str:
        """The test database's URL, through this front."""
        parts = urlsplit(self._database_url)
        query = {k: v for k, v in parse_qs(parts.query).items() if k != "host"}
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(
            parts._replace(
                netloc=f"{user}127.0.0.1:{self.port}", query=urlencode(query, doseq=True)
            )
        )


async def test_a_worker_whose_database_goes_away_while_it_starts_waits_for_it(
    pool: asyncpg.Pool, database_url: str
) -> None:
    # Connections 1 and 2 are the start-up wait's and the schema check's;
    # 3 is the worker's first pool: from there the database is "away" for
    # three connections, then back.
    async with DroppingFront(database_url, drop=range(3, 6)) as front:
        await front.point_at(0)  # the port is the database URL's, not a relay target
        with worker_process(front.database_url, "noop", *FAST) as worker:

            async def started() -> bool:
                if worker.proc.poll() is not None:
                    raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.log()}")
                return "worker started" in worker.log()

            await eventually(started, timeout=60, what="the worker to start")
            assert "the database went away while the worker started" in worker.log()
            assert "Traceback" not in worker.log(), worker.log()
            [sub] = await queue.submit(pool, [NewRun()])

            async def done() -> bool:
                status = await pool.fetchval(
                    "SELECT status FROM runs WHERE run_id = $1", sub.run_id
                )
                return bool(status == "success")

            await eventually(done, timeout=30, what="the run to succeed")
