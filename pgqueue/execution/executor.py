"""Runs a claimed run's LangGraph graph, durably.

Each run gets its own psycopg connection and a ``FencedPostgresSaver`` bound
to its lease, so every checkpoint commits together with the lease check.
The outcome (success / interrupted / error / timeout, the output, the
thread's status) is written the same way (``outcome``): fenced, in one
pipelined transaction on that connection, so a worker that lost its lease
writes neither checkpoints nor a final status.

A run that comes back after a crash or a sweep continues from its own last
checkpoint with ``ainvoke(None)``: nodes whose writes were committed are not
run again (LangGraph replays their writes), only the node in flight repeats.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.types import Command

from pgqueue.core.handler import Finished
from pgqueue.core.live import LiveRuns
from pgqueue.core.queue import ClaimedRun
from pgqueue.errors import LeaseLost, RetriableError
from pgqueue.execution import chunks, outcome, webhooks
from pgqueue.execution.chunks import STREAM_MODES
from pgqueue.execution.events import EventWriter
from pgqueue.execution.factories import RUN
from pgqueue.execution.graphs import GraphRegistry
from pgqueue.execution.messages import MessageEvents
from pgqueue.execution.saver import FencedPostgresSaver, RunConnections
from pgqueue.execution.webhooks import WebhookConfig
from pgqueue.types import Lease

log = logging.getLogger(__name__)

Durability = Literal["sync", "async", "exit"]
DURABILITY_MODES = get_args(Durability)


@dataclass
class ExecutorConfig:
    # The platform's default run timeout: 24 h, then status 'timeout'.
    run_timeout: float = 24 * 3600
    default_durability: str = "async"
    # A run's first events wait this long before their own write, so a short
    # run's events commit with its final status instead (streams see them
    # at most this late). This for runs a client streams as they happen.
    # Streaming a token every 20 ms (bench/http_stream.py): 20 ms wrote
    # about one event per transaction; 50 ms cut server CPU per run by a
    # quarter; 100 ms by a third more, but tokens came in 10 lumps a second.
    event_flush_delay: float = 0.05
    # ...and this for the others (create + join or wait), whose events
    # matter only to a client that may join the stream later: a run that
    # ends within it commits once. Under 20 concurrent clients that was
    # about 2 transactions fewer per run and 13% less of the worker's CPU.
    background_event_flush_delay: float = 0.1
    # With durability async or exit, checkpoints commit in groups, at most
    # this long after they are made (or earlier, with the run's events or
    # its final status): a crash loses no more than this of a run's progress.
    checkpoint_flush_delay: float = 0.1
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    # Checkpointer connections at most: a run takes one for each of its
    # transactions and reads, not for its life, so this bounds the writes
    # in flight, not the runs.
    pool_size: int = 10


def is_retriable(exc: BaseException) -> bool:
    """Retried: errors marked retriable, and lost database connections (the
    run resumes from its last checkpoint). Everything else fails the run."""
    return isinstance(exc, RetriableError | psycopg.OperationalError) or bool(
        getattr(exc, "retriable", False)
    )


class GraphExecutor:
    """A worker handler: ``Worker(dsn, GraphExecutor(registry, dsn), ...)``.
    Implements ``pgqueue.core.handler.Handler`` (by shape: the executor and
    the worker know each other only through that contract)."""

    # Finishes cancels itself (checkpoints kept or deleted), fenced.
    handles_cancel = True

    def __init__(
        self,
        registry: GraphRegistry,
        dsn: str,
        config: ExecutorConfig | None = None,
        *,
        live: LiveRuns | None = None,
    ) -> None:
        """``live``: this process's followers (``pgqueue serve``), handed
        each run's committed events from memory."""
        self.registry = registry
        self._live = live
        self.dsn = dsn
        self.config = config or ExecutorConfig()
        self._started: dict[Lease, datetime] = {}
        self._connections = RunConnections(dsn, self.config.pool_size)
        self._webhooks = webhooks.Deliveries()

    async def __call__(self, run: ClaimedRun) -> Finished:
        self._started[run.lease] = datetime.now(UTC)
        try:
            return await self._execute(run)
        except LeaseLost:
            # Anywhere in the run: a checkpoint, an event or the outcome hit
            # the fence. Nothing of that transaction was written.
            return Finished(None)
        finally:
            self._started.pop(run.lease, None)

    async def aclose(self) -> None:
        """Close the checkpointer connections: only once no run executes
        (a graph's background checkpoint write must never meet a closed
        pool)."""
        await self._webhooks.wait(self.config.webhooks.timeout)
        await self._connections.aclose()

    async def _execute(self, run: ClaimedRun) -> Finished:
        kw = run.kwargs
        # Runs submitted over HTTP name their graph (the assistant may be a
        # user-created one); older or direct submissions name a system assistant.
        graph_id = kw.get("graph_id") or self.registry.graph_id_for(run.assistant_id)
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
        lease = run.lease
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

        async with (
            FencedPostgresSaver.from_pool(
                await self._connections.checkpoints(),
                lease,
                wait_for_flush=durability == "sync",
                # Group commit for async/exit durability; sync writes each
                # checkpoint before the next step, as it promises.
                flush_delay=None if durability == "sync" else self.config.checkpoint_flush_delay,
            ) as saver,
            # A graph factory's context (if it returns a context manager):
            # _stream leaves it when the graph stops, as the platform does;
            # this only makes sure of it on the other ways out.
            AsyncExitStack() as factory,
        ):
            try:
                # A factory is called now, with this run's config, user and
                # context; a plain graph is the one loaded at start.
                graph = await factory.enter_async_context(
                    self.registry.graph(graph_id, config, RUN, context=kw.get("context"))
                )
            except Exception as exc:
                if is_retriable(exc):
                    raise
                return await self._not_built(saver, run, graph_id, exc)
            g = graph.copy(update={"checkpointer": saver})
            # A checkpoint alone holds every channel's value unless the
            # graph has delta channels (rebuilt from history when read).
            saver.remember_latest = not any(
                isinstance(c, DeltaChannel) for c in graph.channels.values()
            )
            if run.cancel_action:
                # Cancelled while a worker that died held it.
                return await self._finish_cancel(g, saver, run, run.cancel_action, thread_config)
            # Only a later attempt can find checkpoints of its own run. (A claim
            # commits before anything the attempt writes, so if a database
            # crash lost the claim it lost those writes too: attempt 1
            # never has a predecessor.)
            latest = await saver.aget_tuple(thread_config) if run.attempt > 1 else None
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
            # Without the flag (submitted from Python, or before it existed):
            # as a streamed run.
            events = self._events(saver, run, live=kw.get("live_stream", True))
            try:
                how = (graph_input, config, modes, durability, thread_config)
                return await self._stream(g, saver, run, events, *how, factory)
            finally:
                # Whatever ended the run, no flush may outlive it on this
                # connection (it goes back to the pool for the next run).
                await events.abandon()

    def _events(self, saver: FencedPostgresSaver, run: ClaimedRun, *, live: bool) -> EventWriter:
        """The run's event writer; ``live``: a client streams the run as it
        happens (events flush sooner)."""
        return EventWriter(
            saver,
            continues=run.attempt > 1,
            flush_delay=self.config.event_flush_delay
            if live
            else self.config.background_event_flush_delay,
            live=self._live.start(run.run_id) if self._live is not None else None,
            pool=self._connections.events,
        )

    async def _stream(
        self,
        g: Any,
        saver: FencedPostgresSaver,
        run: ClaimedRun,
        events: EventWriter,
        graph_input: Any,
        config: RunnableConfig,
        modes: list[str],
        durability: Durability,
        thread_config: RunnableConfig,
        factory: AsyncExitStack,
    ) -> Finished:
        """Run the graph, streaming its chunks to ``events``; write how it
        ended. ``factory`` (the graph factory's context) is left when the
        graph stops, with its error if it failed; an error leaving it fails
        the run."""
        kw = run.kwargs
        subgraphs = bool(kw.get("stream_subgraphs"))
        # Mode "messages" as the platform streams it (the SDK's
        # "messages-tuple" is LangGraph's own).
        split = MessageEvents() if kw.get("split_messages") else None
        try:
            await events.start()
            events.add("metadata", {"run_id": str(run.run_id), "attempt": run.attempt})
            async with (
                asyncio.timeout(float(kw.get("timeout") or self.config.run_timeout)),
                factory,
            ):
                async for name, data in chunks.stream(
                    g,
                    graph_input,
                    config,
                    modes,
                    subgraphs,
                    durability=durability,
                    interrupt_before=kw.get("interrupt_before"),
                    interrupt_after=kw.get("interrupt_after"),
                    context=kw.get("context"),
                ):
                    mode, bar, namespace = name.partition("|")
                    if split is not None and mode == "messages":
                        for event, payload in split.events(data):
                            events.add(event + bar + namespace, payload)
                    else:
                        events.add(name, data)
        except asyncio.CancelledError:
            # A user's cancel, or shutdown / a lost lease? Only the first
            # leaves cancel_action on the row.
            action = await outcome.requested_cancel(saver, run)
            if action is None:
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await events.close()
            return await self._finish_cancel(g, saver, run, action, thread_config)
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
            return await self._finish(saver, run, status, None, error, events=events)
        state = await g.aget_state(thread_config)
        output = state.values
        if state.interrupts and isinstance(output, dict):
            interrupts = [{"value": i.value, "id": i.id} for i in state.interrupts]
            output = {**output, "__interrupt__": interrupts}
        # A graph that stopped at an interrupt ran as it should: the run
        # succeeded and its thread is "interrupted" (as on the platform,
        # where a run is "interrupted" only when a cancel interrupted it).
        return await self._finish(saver, run, "success", output, None, state, events)

    async def _not_built(
        self, saver: FencedPostgresSaver, run: ClaimedRun, graph_id: str, exc: Exception
    ) -> Finished:
        """The graph's factory failed for this run: the run fails as a
        failing graph does (an error event, status error), fenced; the
        worker goes on with other runs."""
        error = {
            "error": type(exc).__name__,
            "message": f"graph {graph_id!r} could not be built for this run: {exc}",
        }
        log.warning(
            "graph factory of %r failed for run %s: %s: %s",
            graph_id,
            run.run_id,
            type(exc).__name__,
            exc,
            extra={"event": "graph_factory_failed", "run_id": str(run.run_id)},
        )
        # Its events commit with the final status (the delay outlasts this).
        events = self._events(saver, run, live=True)
        try:
            await events.start()
            events.add("metadata", {"run_id": str(run.run_id), "attempt": run.attempt})
            events.add("error", error)
            return await self._finish(saver, run, "error", None, error, events=events)
        finally:
            await events.abandon()

    async def _finish_cancel(
        self,
        g: Any,
        saver: FencedPostgresSaver,
        run: ClaimedRun,
        action: str,
        thread_config: RunnableConfig,
    ) -> Finished:
        """interrupt: end 'interrupted', checkpoints kept (the thread can go on
        from there). rollback: delete the run and the checkpoints it wrote."""
        if action == "rollback":
            await outcome.roll_back(saver, run)
            return Finished("rolled_back")
        state = await g.aget_state(thread_config)
        return await self._finish(saver, run, "interrupted", state.values, None, state)

    async def _finish(
        self,
        saver: FencedPostgresSaver,
        run: ClaimedRun,
        status: str,
        output: Any,
        error: dict[str, Any] | None,
        state: Any = None,
        events: EventWriter | None = None,
    ) -> Finished:
        """Write the outcome (see ``outcome.write``); once it is stored, post
        the run's webhook, if it named one."""
        if not await outcome.write(saver, run, status, output, error, state, events):
            return Finished(None)  # the lease was lost: nothing was written
        if events is not None:
            events.ended(status)
        url = run.kwargs.get("webhook")
        if url:
            started = self._started.get(run.lease, datetime.now(UTC))
            body = webhooks.payload(run, status, output, error, started)
            self._webhooks.send(url, body, self.config.webhooks)
        return Finished(status)
