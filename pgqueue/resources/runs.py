"""Runs as the HTTP API creates and reads them, on top of ``queue``.

``create`` turns a request into one queue submission: it resolves the
assistant (a user-made one, or a graph's system assistant), merges the
assistant's config and context under the request's, picks or makes the
thread, and submits with the multitask strategy, all in the submit's own
transaction. The server validates shapes; this module enforces what only
the database knows (the thread exists, the thread is idle, ...).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from pgqueue.core import queue
from pgqueue.db.encoding import loads
from pgqueue.db.ids import uuid7
from pgqueue.db.sql import queries
from pgqueue.errors import Conflict, Invalid, NotFound
from pgqueue.execution.graphs import GraphRegistry, system_assistant_id
from pgqueue.resources.visibility import EVERYTHING, Visible
from pgqueue.types import Queryable

# The mark of a stateless run's thread that goes once the run ends
# (on_completion=delete). The process serving the run deletes it then; should
# that process die first, the scheduler's cleanup pass does, a grace period
# later (scheduler.py).
TEMPORARY_THREAD_TAG = {"on_completion": "delete"}


@dataclass
class RunRequest:
    assistant: str
    # None: a stateless run on a new, temporary thread.
    thread_id: UUID | None
    # What the executor reads: input, command, config, context, stream_mode,
    # durability, interrupt_before/after, checkpoint_id, webhook, ...
    kwargs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    multitask_strategy: str = "enqueue"
    if_not_exists: str = "reject"
    after_seconds: float = 0.0
    # Stateless runs: delete the thread once the run ends, or keep it.
    on_completion: str = "delete"
    # What the request may reach (an Auth's filters): the thread
    # (threads.create_run) and a user-made assistant (assistants.read).
    # A cron's tick passes EVERYTHING: creating the cron was authorized.
    thread_visible: Visible = field(kw_only=True)
    assistant_visible: Visible = field(kw_only=True)


def _merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **override}
    for key in ("configurable", "metadata"):
        if isinstance(base.get(key), dict) or isinstance(override.get(key), dict):
            merged[key] = {**(base.get(key) or {}), **(override.get(key) or {})}
    return merged


async def resolve_assistant(
    conn: Queryable, registry: GraphRegistry, assistant: str, visible: Visible
) -> dict[str, Any]:
    """The assistant row for a UUID or a graph id (its system assistant).
    A user-made one must pass ``visible``; a graph's own assistant is open
    to every user who may run it, as on the platform."""
    if assistant in registry.specs:
        # A graph's system assistant: made at startup with no config or
        # context, and read-only (see assistants.py). Nothing to read.
        return {
            "assistant_id": system_assistant_id(assistant),
            "graph_id": assistant,
            "config": {},
            "context": {},
        }
    try:
        assistant_id = UUID(assistant)
    except ValueError:
        # Not an id that could exist: bad input (422), as on the platform.
        raise Invalid(
            "assistant_id",
            f"{assistant!r} is neither an assistant UUID nor a graph id; "
            f"graphs: {sorted(registry.specs)}",
        ) from None
    if assistant_id in registry.assistant_ids:
        visible = EVERYTHING
    row = await conn.fetchrow(queries.get_assistant_for_run, assistant_id, visible.filter)
    if row is None or row["graph_id"] not in registry.specs:
        raise NotFound(f"assistant {assistant} not found")
    return {
        "assistant_id": row["assistant_id"],
        "graph_id": row["graph_id"],
        "config": loads(row["config"]) or {},
        "context": loads(row["context"]) or {},
    }


async def create(
    db: asyncpg.Pool | asyncpg.Connection, registry: GraphRegistry, request: RunRequest
) -> dict[str, Any]:
    """Submit one run; returns it as the API shows a run. Given a connection
    in a transaction (the cron scheduler's), the run commits with it. Raises
    ``NotFound`` (assistant, thread) or ``ThreadBusy`` (a ``Conflict``)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await create(conn, registry, request)
    conn = db
    assistant = await resolve_assistant(
        conn, registry, request.assistant, request.assistant_visible
    )
    kwargs = dict(request.kwargs)
    config = _merge_config(assistant["config"], kwargs.get("config") or {})
    config["configurable"] = {
        **config.get("configurable", {}),
        "assistant_id": str(assistant["assistant_id"]),
        "graph_id": assistant["graph_id"],
    }
    kwargs["config"] = config
    if assistant["context"] or kwargs.get("context"):
        kwargs["context"] = {**assistant["context"], **(kwargs.get("context") or {})}
    kwargs["graph_id"] = assistant["graph_id"]
    stateless = request.thread_id is None
    thread_id = uuid.uuid4() if stateless else request.thread_id
    if stateless:
        kwargs["on_completion"] = request.on_completion
    run = queue.NewRun(
        run_id=uuid7(),
        thread_id=thread_id,
        assistant_id=assistant["assistant_id"],
        kwargs=kwargs,
        metadata=request.metadata,
        delay=request.after_seconds,
        # The thread names its graph from now on: clients list a graph's
        # threads by it, and its state (and a copy's) is read with it.
        thread_metadata={
            "graph_id": assistant["graph_id"],
            "assistant_id": str(assistant["assistant_id"]),
        },
    )
    temporary = stateless and request.on_completion == "delete"
    try:
        async with conn.transaction() if temporary else contextlib.nullcontext():
            submitted = await queue.submit(
                conn,
                [run],
                create_threads=stateless or request.if_not_exists == "create",
                multitask_strategy=request.multitask_strategy,
                # A thread the request may not see is answered as missing,
                # and never run on or created over (if_not_exists=create).
                thread_filter=request.thread_visible.filter,
            )
            if temporary:
                await conn.execute(queries.tag_thread, thread_id, json.dumps(TEMPORARY_THREAD_TAG))
    except asyncpg.ForeignKeyViolationError:
        raise NotFound(f"thread {thread_id} not found") from None
    created: datetime = submitted[0].created_at
    return {
        "run_id": run.run_id,
        "thread_id": thread_id,
        "assistant_id": assistant["assistant_id"],
        "created_at": created,
        "updated_at": created,
        "status": "pending",
        "metadata": request.metadata,
        "multitask_strategy": request.multitask_strategy,
        "kwargs": kwargs,
    }


def _run_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "run_id": row["run_id"],
        "thread_id": row["thread_id"],
        "assistant_id": row["assistant_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "status": row["status"],
        "metadata": loads(row["metadata"]),
        "multitask_strategy": row["multitask_strategy"] or "enqueue",
        "kwargs": loads(row["kwargs"]),
    }


async def get(
    pool: Queryable, thread_id: UUID, run_id: UUID, *, visible: Visible
) -> dict[str, Any]:
    row = await pool.fetchrow(queries.get_thread_run, run_id, thread_id, visible.filter)
    if row is None:
        raise NotFound(f"run {run_id} not found on thread {thread_id}")
    return _run_json(row)


@dataclass(frozen=True)
class Ended:
    """A run's result once it ended (``result`` is what join answers)."""

    status: str | None
    result: Any


async def ended(
    pool: Queryable, thread_id: UUID, run_id: UUID, *, visible: Visible
) -> Ended | None:
    """None while the run is pending or running; else its result, from one
    query: its values (with ``__interrupt__`` when interrupted), or
    ``{"__error__": ...}``, or ``{}`` if it no longer exists (rolled back)."""
    row = await pool.fetchrow(queries.get_run_result, run_id, thread_id, visible.filter)
    if row is None:
        return Ended(None, {})
    status = row["status"]
    if status in ("pending", "running"):
        return None
    if status in ("error", "timeout"):
        return Ended(status, {"__error__": loads(row["error"])})
    output = loads(row["output"])
    return Ended(status, {} if output is None else output)


async def list_for_thread(
    pool: Queryable,
    thread_id: UUID,
    status: str | None,
    limit: int,
    offset: int,
    *,
    visible: Visible,
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        queries.list_thread_runs, thread_id, status, limit, offset, visible.filter
    )
    if not rows and not await pool.fetchval(queries.thread_exists, thread_id, visible.filter):
        raise NotFound(f"thread {thread_id} not found")
    return [_run_json(r) for r in rows]


async def delete(pool: Queryable, thread_id: UUID, run_id: UUID, *, visible: Visible) -> None:
    row = await pool.fetchrow(queries.delete_finished_run, run_id, thread_id, visible.filter)
    if row is None:
        raise NotFound(f"run {run_id} not found on thread {thread_id}")
    if not row["deleted"]:
        raise Conflict(f"run {run_id} is {row['status']}; cancel it before deleting it")


async def cancel(
    pool: Queryable,
    run_ids: list[UUID] | None,
    action: str,
    *,
    thread_id: UUID | None = None,
    statuses: list[str] | None = None,
    visible: Visible,
) -> dict[UUID, str]:
    """Cancel live runs (by id, or every live run of a thread) on threads
    ``visible`` shows; pending ones end at once, running ones are stopped
    by their worker. Returns {run_id: outcome} for the runs that were live."""
    rows = await pool.fetch(queries.live_runs, run_ids, thread_id, statuses, visible.filter)
    live = [r["run_id"] for r in rows]
    if not live:
        return {}
    outcomes = await queue.cancel(pool, live, action)
    ended = [run_id for run_id, outcome in outcomes.items() if outcome != "cancelling"]
    if ended:
        await pool.execute(queries.announce_run_ends, ended)
    return outcomes


async def delete_temporary_thread(pool: Queryable, thread_id: UUID) -> bool:
    return bool(await pool.fetchval(queries.delete_temporary_thread, thread_id))


async def last_event_seq(pool: Queryable, run_id: UUID) -> int:
    return int(await pool.fetchval(queries.last_event_seq, run_id))
