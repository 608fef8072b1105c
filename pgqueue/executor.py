"""Runs a claimed run's LangGraph graph, durably.

Each run gets its own psycopg connection and a ``FencedPostgresSaver`` bound
to its lease, so every checkpoint commits together with the lease check.
The outcome (success / interrupted / error / timeout, the output, the
thread's status) is written the same way: fenced, in one pipelined
transaction on that connection, so a worker that lost its lease writes
neither checkpoints nor a final status.

A run that comes back after a crash or a sweep continues from its own last
checkpoint with ``ainvoke(None)``: nodes whose writes were committed are not
run again (LangGraph replays their writes), only the node in flight repeats.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from pgqueue.checkpointer import FencedPostgresSaver, RunLease
from pgqueue.encoding import jsonb
from pgqueue.errors import LeaseLost, fenced
from pgqueue.events import EventWriter
from pgqueue.graphs import GraphRegistry
from pgqueue.queue import ClaimedRun, Finished
from pgqueue.sql import queries

log = logging.getLogger(__name__)

StreamMode = Literal["values", "updates", "checkpoints", "tasks", "debug", "messages", "custom"]
STREAM_MODES = get_args(StreamMode)
Durability = Literal["sync", "async", "exit"]
DURABILITY_MODES = get_args(Durability)


@dataclass
class ExecutorConfig:
    # The platform's default run timeout: 24 h, then status 'timeout'.
    run_timeout: float = 24 * 3600
    default_durability: str = "async"


class RetriableError(Exception):
    """Raise (or subclass) in a node to have the run retried with backoff
    instead of failing at once."""


def is_retriable(exc: BaseException) -> bool:
    """Retried: errors marked retriable, and lost database connections (the
    run resumes from its last checkpoint). Everything else fails the run."""
    return isinstance(exc, RetriableError | psycopg.OperationalError) or bool(
        getattr(exc, "retriable", False)
    )


def event_of(chunk: Any, subgraphs: bool) -> tuple[str, Any]:
    """(event name, data) for one astream chunk. With subgraphs the name
    carries the namespace: ``mode|parent:id|child:id``."""
    if subgraphs:
        namespace, mode, data = chunk
        name = "|".join([mode, *namespace]) if namespace else mode
    else:
        name, data = chunk
    return name, data


class GraphExecutor:
    """A worker handler: ``Worker(dsn, GraphExecutor(registry, dsn), ...)``."""

    # Finishes cancels itself (checkpoints kept or deleted), fenced.
    handles_cancel = True

    def __init__(
        self, registry: GraphRegistry, dsn: str, config: ExecutorConfig | None = None
    ) -> None:
        self.registry = registry
        self.dsn = dsn
        self.config = config or ExecutorConfig()

    async def __call__(self, run: ClaimedRun) -> Finished:
        try:
            return await self._execute(run)
        except LeaseLost:
            # Anywhere in the run: a checkpoint, an event or the outcome hit
            # the fence. Nothing of that transaction was written.
            return Finished(None)

    async def _execute(self, run: ClaimedRun) -> Finished:
        kw = run.kwargs
        graph = self.registry.get(self.registry.graph_id_for(run.assistant_id))
        durability = kw.get("durability") or self.config.default_durability
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}")
        durability = cast(Durability, durability)
        stream_mode = kw.get("stream_mode") or ["values"]
        modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
        unknown = [m for m in modes if m not in STREAM_MODES]
        if unknown:
            raise ValueError(
                f"stream_mode {unknown} not supported; choose from {list(STREAM_MODES)}"
            )
        lease = RunLease(run.run_id, run.attempt, run.worker_id)
        user_config = dict(kw.get("config") or {})
        configurable = {**user_config.get("configurable", {}), "thread_id": str(run.thread_id)}
        metadata = {
            **user_config.get("metadata", {}),
            "run_id": str(run.run_id),
            "run_attempt": run.attempt,
        }
        config = RunnableConfig(
            **{**user_config, "configurable": configurable, "metadata": metadata}
        )
        thread_config: RunnableConfig = {
            "configurable": {"thread_id": str(run.thread_id), "checkpoint_ns": ""}
        }

        async with FencedPostgresSaver.for_run(self.dsn, lease) as saver:
            g = graph.copy(update={"checkpointer": saver})
            if run.cancel_action:
                # Cancelled while a worker that died held it.
                return await self._finish_cancel(
                    g, saver, lease, run, run.cancel_action, thread_config
                )
            latest = await saver.aget_tuple(thread_config)
            if latest is not None and latest.metadata.get("run_id") == str(run.run_id):
                # This run already got that far on an earlier attempt: go on
                # from there rather than starting over.
                graph_input: Any = None
                log.info(
                    "resuming run %s from its last checkpoint",
                    run.run_id,
                    extra={
                        "event": "run_resumed",
                        "run_id": str(run.run_id),
                        "attempt": run.attempt,
                    },
                )
            else:
                if kw.get("checkpoint_id"):
                    configurable["checkpoint_id"] = kw["checkpoint_id"]
                graph_input = Command(**kw["command"]) if kw.get("command") else kw.get("input")
            subgraphs = bool(kw.get("stream_subgraphs"))
            events = EventWriter(saver)
            try:
                await events.start()
                events.add("metadata", {"run_id": str(run.run_id), "attempt": run.attempt})
                async with asyncio.timeout(float(kw.get("timeout") or self.config.run_timeout)):
                    async for chunk in g.astream(  # type: ignore[call-overload]
                        graph_input,
                        config,
                        stream_mode=cast(list[StreamMode], modes),
                        subgraphs=subgraphs,
                        durability=durability,
                        interrupt_before=kw.get("interrupt_before"),
                        interrupt_after=kw.get("interrupt_after"),
                        context=kw.get("context"),
                    ):
                        events.add(*event_of(chunk, subgraphs))
                await events.close()
            except asyncio.CancelledError:
                # A user's cancel, or shutdown / a lost lease? Only the first
                # leaves cancel_action on the row.
                action = await self._requested_cancel(saver, run)
                if action is None:
                    raise
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                await events.close()
                return await self._finish_cancel(g, saver, lease, run, action, thread_config)
            except Exception as exc:
                if isinstance(exc, TimeoutError):
                    status = "timeout"
                    limit = kw.get("timeout") or self.config.run_timeout
                    error = {
                        "error": "TimeoutError",
                        "message": f"run exceeded its timeout of {limit} s",
                    }
                elif is_retriable(exc):
                    raise  # the worker retries it with backoff, fenced
                else:
                    status = "error"
                    error = {"error": type(exc).__name__, "message": str(exc)}
                events.add("error", error)
                await events.close()
                return await self._finish(saver, lease, run, status, None, error)
            state = await g.aget_state(thread_config)
            output = state.values
            if state.next or state.interrupts:
                if state.interrupts and isinstance(output, dict):
                    interrupts = [{"value": i.value, "id": i.id} for i in state.interrupts]
                    output = {**output, "__interrupt__": interrupts}
                return await self._finish(saver, lease, run, "interrupted", output, None)
            return await self._finish(saver, lease, run, "success", output, None)

    async def _requested_cancel(self, saver: FencedPostgresSaver, run: ClaimedRun) -> str | None:
        conn = saver.conn
        assert isinstance(conn, psycopg.AsyncConnection)
        async with saver.lock:
            cur = await conn.execute(queries.cancel_action_psycopg, (run.run_id,))
            row = await cur.fetchone()
        return None if row is None else row["cancel_action"]

    async def _finish_cancel(
        self,
        g: Any,
        saver: FencedPostgresSaver,
        lease: RunLease,
        run: ClaimedRun,
        action: str,
        thread_config: RunnableConfig,
    ) -> Finished:
        """interrupt: end 'interrupted', checkpoints kept (the thread can go on
        from there). rollback: delete the run and the checkpoints it wrote."""
        if action == "rollback":
            conn = saver.conn
            assert isinstance(conn, psycopg.AsyncConnection)
            with fenced(f"run {run.run_id} rollback"):
                async with saver.lock, conn.pipeline():
                    cur = await conn.execute(
                        queries.rollback_run_psycopg, (lease.run_id, lease.attempt, lease.worker_id)
                    )
                    await cur.fetchall()
            return Finished("rolled_back")
        state = await g.aget_state(thread_config)
        return await self._finish(saver, lease, run, "interrupted", state.values, None)

    async def _finish(
        self,
        saver: FencedPostgresSaver,
        lease: RunLease,
        run: ClaimedRun,
        status: str,
        output: Any,
        error: dict[str, Any] | None,
    ) -> Finished:
        conn = saver.conn
        assert isinstance(conn, psycopg.AsyncConnection)
        # One round trip. complete_runs is fenced by its own WHERE (run,
        # attempt, worker, running): no row back means the lease was lost.
        async with saver.lock, conn.pipeline():
            cur = await conn.execute(
                queries.complete_runs_psycopg,
                (
                    lease.worker_id,
                    [run.run_id],
                    [run.attempt],
                    [status],
                    [None if output is None else jsonb(output)],
                    [None if error is None else jsonb(error)],
                    [None],
                ),
            )
            rows = await cur.fetchall()
        return Finished(status if rows else None)
