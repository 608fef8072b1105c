"""The streaming load: C clients, each its own langgraph-sdk client, each
looping `threads.create` then `runs.stream(..., stream_mode="messages-tuple")`
on the "chat" graph (graph/stream_graph.py), as a chat application would.

Per stream it times the first token (request sent -> the first `messages`
event carrying a token) and the whole run (request sent -> the stream's end),
and counts the token chunks: a stream without all of them is a failure, not
a fast run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import sdk_load
from langgraph_sdk.client import LangGraphClient

GRAPH = "chat"
TOKENS = 100  # what stream_graph.TOKENS streams; each stream is checked for it
INPUT = {"messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Tally:
    """What the clients of one phase collected (one event loop: no locks)."""

    ttft_ms: list[float] = field(default_factory=list)
    run_ms: list[float] = field(default_factory=list)
    bad: int = 0
    bad_example: str | None = None

    def fail(self, detail: str) -> None:
        self.bad += 1
        if self.bad_example is None:
            self.bad_example = detail[:500]


def carries_token(data: Any) -> bool:
    """A messages-tuple event is [message chunk, metadata]; LangChain also
    sends an empty closing chunk (chunk_position "last"), not a token."""
    if not isinstance(data, list | tuple) or not data or not isinstance(data[0], dict):
        return False
    return bool(data[0].get("content"))


async def one_stream(c: LangGraphClient, tally: Tally, run_timeout: float) -> None:
    thread_id = (await c.threads.create())["thread_id"]
    tokens, first, errors = 0, None, []
    # Timed from the call: the SDK sends the request on the first iteration.
    t0 = time.perf_counter()
    async with asyncio.timeout(run_timeout):
        async for part in c.runs.stream(
            thread_id, GRAPH, input=INPUT, stream_mode="messages-tuple"
        ):
            if part.event.startswith("messages") and carries_token(part.data):
                tokens += 1
                if first is None:
                    first = time.perf_counter()
            elif part.event == "error":
                errors.append(repr(part.data))
    end = time.perf_counter()
    if tokens != TOKENS or errors or first is None:
        tally.fail(f"thread {thread_id}: {tokens} token chunks of {TOKENS}; errors {errors}")
        return
    tally.ttft_ms.append((first - t0) * 1000)
    tally.run_ms.append((end - t0) * 1000)


async def _client_loop(c: LangGraphClient, runs: int, tally: Tally, run_timeout: float) -> None:
    for _ in range(runs):
        await one_stream(c, tally, run_timeout)


async def _phase(
    sdk: list[LangGraphClient], runs_per_client: int, run_timeout: float
) -> tuple[Tally, float]:
    tally = Tally()
    t0 = time.perf_counter()
    # A TaskGroup: a request that fails (a 500, a timeout) ends the round at
    # once rather than leaving the other clients to run into the same wall.
    async with asyncio.TaskGroup() as tg:
        for c in sdk:
            tg.create_task(_client_loop(c, runs_per_client, tally, run_timeout))
    return tally, time.perf_counter() - t0


EventTotals = Callable[[], Awaitable[tuple[int, int, int] | None]]


async def measure(
    url: str,
    clients: int,
    runs_per_client: int,
    warmup_per_client: int,
    run_timeout: float,
    event_totals: EventTotals | None = None,
    server_pgid: int | None = None,
) -> dict[str, Any]:
    """Warm up (every client, untimed), then the timed phase. event_totals
    (rows, bytes of run_events) is read on either side of the timed phase,
    outside the CPU window, so warmup runs count in neither."""
    sdk = [sdk_load.client(url) for _ in range(clients)]
    try:
        if warmup_per_client:
            warm, _ = await _phase(sdk, warmup_per_client, run_timeout)
            if warm.bad:
                raise RuntimeError(f"warmup: {warm.bad} bad stream(s), e.g. {warm.bad_example}")
        before = await event_totals() if event_totals else None
        group0, db0 = group_cpu_seconds(server_pgid), named_cpu_seconds(DATABASES)
        busy0, own0 = sdk_load.machine_busy_seconds(), time.process_time()
        tally, elapsed = await _phase(sdk, runs_per_client, run_timeout)
        busy, own = sdk_load.machine_busy_seconds() - busy0, time.process_time() - own0
        group = group_cpu_seconds(server_pgid) - group0
        db = named_cpu_seconds(DATABASES) - db0
        after = await event_totals() if event_totals else None
    finally:
        for c in sdk:
            await c.aclose()
    runs = clients * runs_per_client
    good = len(tally.run_ms)
    out: dict[str, Any] = {
        "clients": clients,
        "runs": runs,
        "warmup_runs": clients * warmup_per_client,
        "seconds": round(elapsed, 3),
        "runs_per_s": round(runs / elapsed, 2),
        # The server's processes and PostgreSQL (and Redis, where a peer uses
        # it): whatever the machine spent besides these clients.
        "server_cpu_ms_per_run": round((busy - own) / runs * 1000, 2),
        "client_cpu_ms_per_run": round(own / runs * 1000, 2),
        # The server's own processes only (no PostgreSQL, no Redis): a check
        # on the figure above, which anything else busy on the machine inflates.
        "server_process_cpu_ms_per_run": round(group / runs * 1000, 2) if server_pgid else None,
        # PostgreSQL's and Redis's processes (all of this machine's), for
        # the peers that use them: where the rest of the first figure goes.
        "db_cpu_ms_per_run": round(db / runs * 1000, 2),
        "bad_streams": tally.bad,
        "bad_example": tally.bad_example,
    }
    if good:
        out["ttft"] = sdk_load.percentiles(tally.ttft_ms)
        out["run"] = sdk_load.percentiles(tally.run_ms)
    if before is not None and after is not None:
        out["run_events_rows_per_run"] = round((after[0] - before[0]) / runs, 2)
        out["run_events_bytes_per_run"] = round((after[1] - before[1]) / runs, 1)
        out["commits_per_run"] = round((after[2] - before[2]) / runs, 1)
    return out


# The database servers' process names (/proc/<pid>/stat's comm).
DATABASES = frozenset({"postgres", "redis-server"})


def group_cpu_seconds(pgid: int | None) -> float:
    """User + system CPU of the live processes in process group pgid (the
    server and any worker it spawned), from /proc/<pid>/stat."""
    if pgid is None:
        return 0.0
    return _cpu_seconds(lambda comm, group: group == pgid)


def named_cpu_seconds(names: frozenset[str]) -> float:
    """User + system CPU of the live processes named one of ``names``."""
    return _cpu_seconds(lambda comm, group: comm in names)


def _cpu_seconds(wanted: Callable[[str, int], bool]) -> float:
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                head, _, rest = f.read().rpartition(")")
        except OSError:
            continue  # exited meanwhile
        # After the ")" closing comm: state, ppid, pgrp, ... utime is field
        # 14 and stime 15 of the whole line (1-based).
        fields = rest.split()
        if wanted(head.partition("(")[2], int(fields[2])):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_events_counter(dsn: str) -> EventTotals:
    """(rows, bytes) in the peer's run_events table, and the database's
    commits so far; None where it has no such table (langgraph dev;
    langhost keeps its events in Redis). The commit count is PostgreSQL's
    statistics, which idle connections report up to a second or so late."""

    async def totals() -> tuple[int, int, int] | None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute("SELECT to_regclass('run_events') IS NOT NULL")
            row = await cur.fetchone()
            if not row or not row[0]:
                return None
            cur = await conn.execute(
                "SELECT count(*), coalesce(sum(pg_column_size(e.*)), 0),"
                " (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())"
                " FROM run_events e"
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0]), int(row[1]), int(row[2])

    return totals
