"""How a run's end is written: fenced, in one transaction on its connection.

The executor decides how a run ended (success / interrupted / error /
timeout, or a user's cancel); this module writes it. Every write here goes
through the saver's ``transaction`` on the run's own connection, so the
checkpoints and events the run still holds commit first, in the same
transaction and round trip, and a worker that lost its lease writes neither
them nor the outcome (``complete_runs`` is fenced by its own WHERE, the
checkpoint and event tables by their trigger).

Each writer calls ``finishing()`` first: from there on the worker does not
cancel the run's task (not for a cancel request, a hurried shutdown, or a
heartbeat that no longer finds the lease once this write committed).
"""

from __future__ import annotations

from typing import Any

from pgqueue.core.handler import finishing
from pgqueue.core.queue import ClaimedRun
from pgqueue.db import psycopg_sql
from pgqueue.db.encoding import jsonb
from pgqueue.db.sql import queries
from pgqueue.execution.events import EventWriter
from pgqueue.execution.saver import FencedPostgresSaver


async def requested_cancel(saver: FencedPostgresSaver, run: ClaimedRun) -> str | None:
    """The run's ``cancel_action`` (interrupt / rollback), None if no user
    asked to cancel it: tells a user's cancel from a shutdown or a lost
    lease, which cancel the task the same way."""
    row = await saver.read(queries.get_cancel_action, run.run_id)
    return None if row is None else row["cancel_action"]


async def roll_back(saver: FencedPostgresSaver, run: ClaimedRun) -> None:
    """A cancel with rollback: delete the run and the checkpoints it wrote."""
    lease = run.lease
    finishing()
    await saver.stop_flushing()
    saver.discard_deferred()  # the rollback deletes the run's checkpoints
    async with saver.transaction("rollback") as conn:
        await psycopg_sql.execute(conn, queries.commit_durably)
        cur = await psycopg_sql.execute(
            conn, queries.rollback_run, lease.run_id, lease.attempt, lease.worker_id
        )
        await cur.fetchall()


async def write(
    saver: FencedPostgresSaver,
    run: ClaimedRun,
    status: str,
    output: Any,
    error: dict[str, Any] | None,
    state: Any = None,
    events: EventWriter | None = None,
) -> bool:
    """The run's final status, output or error, and its thread's state
    (``state``: the graph's last StateSnapshot, if any). False: the lease
    was lost, and nothing was written."""
    lease = run.lease
    # The checkpoints and events still buffered commit with the status:
    # one transaction (a short run writes no other of its own).
    finishing()  # a heartbeat racing this commit must not cancel us
    batch = await events.take() if events is not None else None
    await saver.stop_flushing()
    # record_thread_state_after_run's: run, attempt, status, values,
    # interrupts, and whether the graph stopped with work left.
    thread_state = (
        lease.run_id,
        lease.attempt,
        status,
        None if state is None else jsonb(state.values),
        jsonb(interrupts_by_task(state)),
        state is not None and bool(state.next),
    )
    # One round trip. complete_runs is fenced by its own WHERE (run,
    # attempt, worker, running): no row back means the lease was lost;
    # the thread's state follows only if it was written.
    async with saver.transaction("outcome") as conn:
        await psycopg_sql.execute(conn, queries.commit_durably)
        if batch is not None:
            await psycopg_sql.execute(conn, queries.insert_events, *batch)
        cur = await psycopg_sql.execute(
            conn,
            queries.complete_runs,
            lease.worker_id,
            [run.run_id],
            [run.attempt],
            [status],
            [None if output is None else jsonb(output)],
            [None if error is None else jsonb(error)],
            [None],
        )
        await psycopg_sql.execute(conn, queries.record_thread_state_after_run, *thread_state)
        rows = await cur.fetchall()
    return bool(rows)


def interrupts_by_task(state: Any) -> dict[str, list[dict[str, Any]]]:
    """The thread's pending interrupts as the platform shows them:
    {task_id: [{"value", "id"}]}."""
    if state is None:
        return {}
    return {
        task.id: [{"value": i.value, "id": i.id} for i in task.interrupts]
        for task in state.tasks
        if task.interrupts
    }
