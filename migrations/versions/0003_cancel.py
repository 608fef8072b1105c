"""Cancelling runs: interrupt (keep checkpoints) or rollback (delete them and the run).

Revision ID: 0003_cancel
Revises: 0002_checkpoints
Create Date: 2026-11-21

A pending run is cancelled at once. A running one gets ``cancel_action`` set
and a NOTIFY on ``pgqueue_cancel`` (payload: "run_id:action") that reaches the
worker holding it within milliseconds, whichever process asked; that worker
stops the run and finishes the cancel, fenced. If the holder is dead, the
sweep requeues the run as usual and the next worker to claim it sees
``cancel_action`` and finishes the cancel without running anything.
"""

from __future__ import annotations

from alembic import op

revision = "0003_cancel"
down_revision = "0002_checkpoints"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE runs ADD COLUMN cancel_action text
    CONSTRAINT runs_cancel_action_check CHECK (cancel_action IN ('interrupt', 'rollback'));

-- The checkpoints (and their pending writes) that one run wrote on its thread;
-- the executor stamps each checkpoint's metadata with the run id.
CREATE FUNCTION pgqueue_delete_run_checkpoints(p_thread_id uuid, p_run_id uuid)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM checkpoint_writes w USING checkpoints c
    WHERE c.thread_id = p_thread_id::text AND c.metadata->>'run_id' = p_run_id::text
      AND w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns
      AND w.checkpoint_id = c.checkpoint_id;
    DELETE FROM checkpoints
    WHERE thread_id = p_thread_id::text AND metadata->>'run_id' = p_run_id::text;
$$;

-- Rollback by the worker that holds the run: fenced like every other write.
CREATE FUNCTION pgqueue_rollback_run(p_run_id uuid, p_attempt integer, p_worker_id text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_thread uuid;
BEGIN
    PERFORM pgqueue_assert_lease(p_run_id, p_attempt, p_worker_id);
    -- Fenced once, with the run row locked until commit: the deletes below
    -- (and the cascade to run_events once the run is gone) must not re-check
    -- a lease on a run this very transaction removes. Transaction-local.
    PERFORM set_config('pgqueue.lease', '', true);
    SELECT thread_id INTO v_thread FROM runs WHERE run_id = p_run_id;
    -- Checkpoints first: their fence checks the run, which must still exist.
    PERFORM pgqueue_delete_run_checkpoints(v_thread, p_run_id);
    DELETE FROM runs WHERE run_id = p_run_id;
    PERFORM pgqueue_settle_thread(v_thread, 'rolled_back', NULL);
END
$$;

-- Returns each run it found still live with what happened to it:
-- 'interrupted' / 'deleted' (was pending: done now), or 'cancelling' (was
-- running: its worker has been told).
CREATE FUNCTION pgqueue_cancel_runs(p_run_ids uuid[], p_action text)
RETURNS TABLE (run_id uuid, outcome text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    rec record;
BEGIN
    IF p_action NOT IN ('interrupt', 'rollback') THEN
        RAISE EXCEPTION 'cancel action must be interrupt or rollback, not %', p_action
            USING ERRCODE = '22023';
    END IF;
    FOR rec IN
        SELECT r.run_id, r.thread_id, r.status FROM runs r
        WHERE r.run_id = ANY (p_run_ids) AND r.status IN ('pending', 'running')
        ORDER BY r.seq
        FOR UPDATE
    LOOP
        run_id := rec.run_id;
        IF rec.status = 'running' THEN
            UPDATE runs SET cancel_action = p_action, updated_at = now() WHERE runs.run_id = rec.run_id;
            PERFORM pg_notify('pgqueue_cancel', rec.run_id::text || ':' || p_action);
            outcome := 'cancelling';
        ELSIF p_action = 'rollback' THEN
            DELETE FROM runs WHERE runs.run_id = rec.run_id;
            PERFORM pgqueue_delete_run_checkpoints(rec.thread_id, rec.run_id);
            PERFORM pgqueue_settle_thread(rec.thread_id, 'rolled_back', NULL);
            outcome := 'deleted';
        ELSE
            UPDATE runs SET status = 'interrupted', cancel_action = p_action,
                            ended_at = now(), updated_at = now()
            WHERE runs.run_id = rec.run_id;
            -- Never started: the thread has nothing to resume from this run.
            PERFORM pgqueue_settle_thread(rec.thread_id, 'cancelled', NULL);
            outcome := 'interrupted';
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
"""


def _execute(statement: str) -> None:
    op.get_bind().connection.driver_connection.execute(statement)


def upgrade() -> None:
    _execute(UPGRADE)


def downgrade() -> None:
    _execute(
        """
        DROP FUNCTION IF EXISTS pgqueue_cancel_runs(uuid[], text);
        DROP FUNCTION IF EXISTS pgqueue_rollback_run(uuid, integer, text);
        DROP FUNCTION IF EXISTS pgqueue_delete_run_checkpoints(uuid, uuid);
        ALTER TABLE runs DROP COLUMN IF EXISTS cancel_action;
        """
    )
