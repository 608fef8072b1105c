"""Fencing cost: one 5-node LangGraph chain, checkpointed by the stock
AsyncPostgresSaver, by pgqueue's FencedPostgresSaver and by a naive wrapper
that checks the lease in its own round trip before each write.

    python bench/fencing_cost.py --dsn postgresql://postgres@127.0.0.1:5432/postgres --runs 300

Every variant runs with durability "sync" and "async", each on its own psycopg
connection made exactly as pgqueue.checkpointer.connect() makes one. The
variants take turns run by run, so drift in a shared machine's load hits them
alike. Each invocation uses a new thread and a freshly claimed run (the claim
and the completion are not timed). One more, untimed invocation per variant
runs under libpq's trace to count round trips (ReadyForQuery messages) and
statements.

The fenced saver's check runs inside the saver's own statements (the
pgqueue_fence trigger on the checkpoint tables), so it should show the same
round trips and statements as stock; the naive wrapper shows what a separate
check per write costs.

A fresh database is created and dropped here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import asyncpg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from psycopg import AsyncConnection
from psycopg.pq import Trace
from psycopg.rows import DictRow

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchdb import ADMIN_DSN, fresh_database  # noqa: E402

from pgqueue.core import queue  # noqa: E402
from pgqueue.core.queue import Completion, NewRun  # noqa: E402
from pgqueue.db import migrate  # noqa: E402
from pgqueue.execution.saver import FencedPostgresSaver, connect  # noqa: E402
from pgqueue.types import Lease  # noqa: E402

WORKER = "bench-worker"
Durability = Literal["sync", "async"]
DURABILITIES: tuple[Durability, ...] = ("sync", "async")
NODES = 5


# --- the graph: five trivial nodes in a chain --------------------------------


class State(TypedDict):
    log: Annotated[list[str], operator.add]  # a list: stored as a blob row
    count: int  # a primitive: inlined in the checkpoint row


def make_node(name: str) -> Any:
    # Async nodes: sync ones would run in a thread pool and add its noise.
    async def node(state: State) -> dict[str, Any]:
        return {"log": [name], "count": state["count"] + 1}

    return node


def build_graph() -> StateGraph[State]:
    graph = StateGraph(State)
    names = [f"n{i}" for i in range(NODES)]
    for name in names:
        graph.add_node(name, make_node(name))
    for a, b in zip([START, *names], [*names, END], strict=True):
        graph.add_edge(a, b)
    return graph


# --- the comparison savers -----------------------------------------------------


# The naive wrapper's own check, sent as a separate statement (comparison only).
NAIVE_FENCE_SQL = "SELECT pgqueue_assert_lease(%s, %s, %s)"


class NaiveFencedSaver(AsyncPostgresSaver):
    """What fencing costs without pipelining: the lease check is its own
    statement and round trip before each write. For comparison only; it is
    not even correct (check and write are separate transactions)."""

    def __init__(self, conn: AsyncConnection[DictRow], lease: Lease) -> None:
        super().__init__(conn)
        self.lease = lease

    async def _fence(self) -> None:
        # The saver's lock: under durability="async" writes overlap the next
        # step, and a psycopg connection runs one thing at a time.
        conn = self.conn
        assert isinstance(conn, AsyncConnection)
        async with self.lock:
            lease = self.lease
            await conn.execute(NAIVE_FENCE_SQL, (lease.run_id, lease.attempt, lease.worker_id))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        await self._fence()
        return await super().aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await self._fence()
        await super().aput_writes(config, writes, task_id, task_path)


FENCED: dict[str, type[FencedPostgresSaver] | type[NaiveFencedSaver]] = {
    "fenced": FencedPostgresSaver,
    "naive wrapper": NaiveFencedSaver,
}


def make_saver(name: str, conn: AsyncConnection[DictRow]) -> AsyncPostgresSaver:
    if name == "stock":
        return AsyncPostgresSaver(conn)
    # A placeholder lease: invoke() binds a claimed run's before each run.
    return FENCED[name](conn, Lease(uuid.uuid4(), 0, WORKER))


# --- the benchmark ---------------------------------------------------------------


@dataclass
class Cell:
    """One saver x one durability; the saver kinds share nothing."""

    saver: str
    durability: Durability
    graph: CompiledStateGraph[Any]
    checkpointer: AsyncPostgresSaver
    ms: list[float] = field(default_factory=list)
    round_trips: int = 0
    statements: int = 0


async def invoke(cell: Cell, qconn: asyncpg.Connection[Any]) -> float:
    """One graph invocation on a new thread under a freshly claimed run;
    returns the milliseconds of ainvoke alone."""
    thread_id = uuid.uuid4()
    await queue.submit(qconn, [NewRun(thread_id=thread_id)], wake=False)
    [run] = await queue.claim(qconn, WORKER, 1)
    # Binding a new lease on the one compiled graph stands in for the worker's
    # saver-per-run: compiling is not what this measures.
    lease = Lease(run.run_id, run.attempt, WORKER)
    if isinstance(cell.checkpointer, FencedPostgresSaver):
        await cell.checkpointer.bind(lease)  # the trigger's lease, on the connection
    elif isinstance(cell.checkpointer, NaiveFencedSaver):
        cell.checkpointer.lease = lease
    config: RunnableConfig = {"configurable": {"thread_id": str(thread_id)}}
    t0 = time.perf_counter()
    out = await cell.graph.ainvoke(
        {"log": [], "count": 0},
        config,
        durability=cell.durability,
    )
    ms = (time.perf_counter() - t0) * 1000
    assert out["count"] == NODES, out
    await queue.complete(qconn, WORKER, [Completion(run.run_id, run.attempt, "success")])
    return ms


async def count_round_trips(cell: Cell, qconn: asyncpg.Connection[Any]) -> None:
    """Trace one invocation's protocol messages: each ReadyForQuery ends a
    round trip (a pipeline Sync or a lone statement)."""
    conn = cell.checkpointer.conn
    assert isinstance(conn, AsyncConnection)
    with tempfile.TemporaryFile() as f:
        conn.pgconn.trace(f.fileno())
        conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            await invoke(cell, qconn)
        finally:
            conn.pgconn.untrace()
        f.seek(0)
        lines = f.read().decode(errors="replace").splitlines()
    cell.round_trips = sum(1 for line in lines if "\tReadyForQuery" in line)
    cell.statements = sum(1 for line in lines if line.startswith("F") and "\tExecute" in line)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def server_info(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            "postgres": await conn.fetchval("SELECT version()"),
            "fsync": await conn.fetchval("SHOW fsync"),
            "synchronous_commit": await conn.fetchval("SHOW synchronous_commit"),
        }
    finally:
        await conn.close()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    savers = ["stock", "fenced", "naive wrapper"]
    async with fresh_database(args.dsn, "fencing") as dsn:
        await asyncio.to_thread(migrate.upgrade, dsn)
        qconn = await asyncpg.connect(dsn)
        conns = {name: await connect(dsn) for name in savers}
        try:
            graph = build_graph()
            cells = []
            for name in savers:
                saver = make_saver(name, conns[name])
                compiled = graph.compile(checkpointer=saver)
                cells += [Cell(name, d, compiled, saver) for d in DURABILITIES]

            for cell in cells:
                await count_round_trips(cell, qconn)
            for _ in range(args.warmup):
                for cell in cells:
                    await invoke(cell, qconn)

            t0 = time.perf_counter()
            for i in range(args.runs):
                # Rotate who goes first so no variant always follows another.
                for cell in cells[i % len(cells) :] + cells[: i % len(cells)]:
                    cell.ms.append(await invoke(cell, qconn))
            wall_s = time.perf_counter() - t0
        finally:
            for conn in conns.values():
                await conn.close()
            await qconn.close()
        info = await server_info(dsn)

    rows = []
    stock = {c.durability: c for c in cells if c.saver == "stock"}
    for c in cells:
        base = stock[c.durability]
        rows.append(
            {
                "variant": c.saver,
                "durability": c.durability,
                "runs": len(c.ms),
                "p50_ms": pct(c.ms, 0.5),
                "p90_ms": pct(c.ms, 0.9),
                "mean_ms": statistics.fmean(c.ms),
                "p50_vs_stock": pct(c.ms, 0.5) / pct(base.ms, 0.5),
                "p90_vs_stock": pct(c.ms, 0.9) / pct(base.ms, 0.9),
                "round_trips_per_invocation": c.round_trips,
                "statements_per_invocation": c.statements,
            }
        )
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {k: v for k, v in vars(args).items() if k != "dsn"},
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            **info,
            **{
                pkg: version(pkg)
                for pkg in ("langgraph", "langgraph-checkpoint-postgres", "psycopg")
            },
        },
        "wall_s": wall_s,
        "rows": rows,
        "samples_ms": {f"{c.saver} / {c.durability}": c.ms for c in cells},
    }


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    a = results["args"]
    out = [
        "## Fencing cost: one 5-node graph invocation, stock vs fenced saver",
        "",
        f"Run {results['when']} on {m['machine']}, {m['cpus']} cores, Python {m['python']}; "
        f"{m['postgres'].split(' on ')[0]} (fsync {m['fsync']}, synchronous_commit "
        f"{m['synchronous_commit']}); langgraph {m['langgraph']}, "
        f"langgraph-checkpoint-postgres {m['langgraph-checkpoint-postgres']}, psycopg {m['psycopg']}.",
        "",
        f"Command: `python bench/fencing_cost.py --runs {a['runs']} --warmup {a['warmup']}`",
        "",
        "| variant | durability | runs | p50 ms | p90 ms | mean ms | p50 / stock | p90 / stock "
        "| round trips / invocation | statements / invocation |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        out.append(
            f"| {r['variant']} | {r['durability']} | {r['runs']} | {r['p50_ms']:.2f} "
            f"| {r['p90_ms']:.2f} | {r['mean_ms']:.2f} | {r['p50_vs_stock']:.2f}x "
            f"| {r['p90_vs_stock']:.2f}x | {r['round_trips_per_invocation']} "
            f"| {r['statements_per_invocation']} |"
        )
    out.append("")
    for d in DURABILITIES:
        [r] = [r for r in results["rows"] if r["variant"] == "fenced" and r["durability"] == d]
        verdict = "within" if r["p50_vs_stock"] <= 1.10 else "OVER"
        out.append(
            f"- fenced / stock, durability={d}: p50 {r['p50_vs_stock']:.2f}x, "
            f"p90 {r['p90_vs_stock']:.2f}x ({verdict} the 10% target at p50)"
        )
    out.append(f"- wall time of the timed rounds: {results['wall_s']:.1f} s")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", default=ADMIN_DSN)
    p.add_argument("--runs", type=int, default=300, help="timed invocations per variant")
    p.add_argument("--warmup", type=int, default=5, help="untimed invocations per variant")
    args = p.parse_args()

    results = asyncio.run(bench(args))
    md = render(results)
    print(md)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (out_dir / f"fencing_cost-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / f"fencing_cost-{stamp}.md").write_text(md)
    print(f"wrote {out_dir}/fencing_cost-{stamp}.{{json,md}}")


if __name__ == "__main__":
    main()
