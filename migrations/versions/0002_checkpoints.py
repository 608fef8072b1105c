"""LangGraph checkpoint tables, and the lease assertion that fences their writes.

Revision ID: 0002_checkpoints
Revises: 0001_queue_core
Create Date: 2026-11-21

The checkpoint schema belongs to langgraph-checkpoint-postgres: this revision
runs that package's own migration statements 0..SAVER_MIGRATIONS-1 (and
records them in its ``checkpoint_migrations`` table, so the saver's
``setup()`` finds nothing left to do). A later saver release that adds a
statement needs a new revision here: tests/execution/test_saver.py fails until
one exists, and also if any statement applied here changed upstream.
"""

from __future__ import annotations

from alembic import op

revision = "0002_checkpoints"
down_revision = "0001_queue_core"
branch_labels = None
depends_on = None

# How many of BasePostgresSaver.MIGRATIONS this revision applies, and their
# fingerprint (sha256 of the statements joined by NUL) when it was written.
SAVER_MIGRATIONS = 10
SAVER_MIGRATIONS_SHA256 = "98d38ed91d4a57a2fb066323f26f2902efcb01f483e09f3ff2be31304a799d35"

ASSERT_LEASE = """
-- The fence for every write a worker makes inside a run's transaction:
-- checkpoints, checkpoint writes, stream events, final status. It locks the
-- run row FOR SHARE until commit, so a sweep or cancel (which update the
-- row) waits for the transaction instead of slipping in; a lock writes no
-- new row version, unlike an UPDATE. Raises SQLSTATE PGQ01 when the lease
-- is gone: the whole transaction, and everything pipelined into it, rolls
-- back, so the fence costs no extra round trip.
CREATE FUNCTION pgqueue_assert_lease(p_run_id uuid, p_attempt integer, p_worker_id text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM runs
    WHERE run_id = p_run_id AND attempt = p_attempt AND worker_id = p_worker_id
      AND status = 'running'
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost: run % attempt % is no longer held by worker %',
            p_run_id, p_attempt, p_worker_id
            USING ERRCODE = 'PGQ01';
    END IF;
END
$$;
"""


FENCE_TRIGGER = """
-- The fence without an extra statement: a run's own connection names its
-- lease in the session setting pgqueue.lease ('run_id:attempt:worker_id');
-- every statement that writes checkpoint tables on that connection first
-- asserts the lease, inside the statement's own transaction. Connections
-- that set nothing (tools, other writers) are not fenced.
CREATE FUNCTION pgqueue_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    lease text := current_setting('pgqueue.lease', true);
    run_part text;
    attempt_part text;
BEGIN
    IF lease IS NOT NULL AND lease <> '' THEN
        run_part := split_part(lease, ':', 1);
        attempt_part := split_part(lease, ':', 2);
        PERFORM pgqueue_assert_lease(
            run_part::uuid, attempt_part::integer,
            substr(lease, length(run_part) + length(attempt_part) + 3));
    END IF;
    RETURN NULL;
END
$$;
"""


def saver_migrations() -> list[str]:
    from langgraph.checkpoint.postgres.base import BasePostgresSaver

    return list(BasePostgresSaver.MIGRATIONS[:SAVER_MIGRATIONS])


def _execute(statement: str) -> None:
    # Straight to the driver, with no parameters: the statements carry '%'
    # (plpgsql RAISE) and '::' that SQLAlchemy or psycopg would otherwise
    # read as placeholders.
    op.get_bind().connection.driver_connection.execute(statement)


def upgrade() -> None:
    _execute(ASSERT_LEASE)
    # The saver creates its indexes CONCURRENTLY, which cannot run inside a
    # transaction block.
    with op.get_context().autocommit_block():
        for version, statement in enumerate(saver_migrations()):
            _execute(statement)
            _execute(
                f"INSERT INTO checkpoint_migrations (v) VALUES ({int(version)}) ON CONFLICT DO NOTHING"
            )
    _execute(FENCE_TRIGGER)
    for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"):
        _execute(
            f"CREATE TRIGGER pgqueue_fence BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION pgqueue_fence()"
        )


def downgrade() -> None:
    _execute(
        "DROP TABLE IF EXISTS checkpoint_writes, checkpoint_blobs, checkpoints, checkpoint_migrations"
    )
    _execute("DROP FUNCTION IF EXISTS pgqueue_fence()")
    _execute("DROP FUNCTION IF EXISTS pgqueue_assert_lease(uuid, integer, text)")
