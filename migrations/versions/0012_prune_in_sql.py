"""Pruning in SQL: each kind of the pruner's batches is a function, and
``pgqueue_prune()`` a procedure that runs a whole pass, committing after
every batch, so a pg_cron job can prune as one can sweep.

Revision ID: 0012_prune_in_sql
Revises: 0011_thread_ttl
Create Date: 2026-12-07

The Python pruner (pgqueue/maintenance/pruner.py) calls the same functions,
one batch per call, so both ways delete the same rows in the same short
transactions and take the same turn (``pgqueue_prune_turn()``): any number
of processes and a cron job can prune, and one deletes at a time. Threads
whose TTL strategy is ``keep_latest`` are cut by langgraph's own
``aprune`` in server processes, not here.

Expand only: new functions, a procedure and a table. Workers and servers of
0011 keep running against it (they send their own batch statements).
"""

from __future__ import annotations

from alembic import op

revision = "0012_prune_in_sql"
down_revision = "0011_thread_ttl"
branch_labels = None
depends_on = None

UPGRADE = """
-- Where a pruning round that spans passes goes on ('checkpoint_garbage':
-- the last thread id looked at), shared by every process and the cron job.
CREATE TABLE pgqueue_prune_cursors (
    name  text PRIMARY KEY,
    after text
);

-- Each function below deletes one batch and is the whole of its
-- transaction's work (the caller commits next). Each returns mine (false:
-- another session holds the pruning turn, and nothing was deleted), what
-- it deleted, and where the next batch starts (reached): the rows a batch
-- deletes stay in the indexes as dead entries until vacuum, and a batch
-- that scanned from the start again would walk all of them (a
-- million-run history took 1-3 s per batch that way, bench/retention.py).

-- Up to p_limit events of runs that ended more than p_age ago, in run_id
-- order from run p_after on (NULL: the first).
CREATE FUNCTION pgqueue_prune_events(
    p_age interval, p_limit integer, p_after uuid,
    OUT mine boolean, OUT deleted bigint, OUT reached uuid)
LANGUAGE plpgsql AS $$
BEGIN
    mine := pgqueue_prune_turn();
    deleted := 0;
    IF NOT mine THEN
        RETURN;
    END IF;
    WITH old AS (
        SELECT e2.run_id, e2.seq FROM run_events e2
        JOIN runs r ON r.run_id = e2.run_id
        WHERE r.ended_at < now() - p_age
          AND e2.run_id >= coalesce(p_after, '00000000-0000-0000-0000-000000000000')
          AND r.run_id >= coalesce(p_after, '00000000-0000-0000-0000-000000000000')
        ORDER BY e2.run_id, e2.seq
        LIMIT p_limit
    ), gone AS (
        DELETE FROM run_events e USING old WHERE e.run_id = old.run_id AND e.seq = old.seq
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone), (SELECT old.run_id FROM old ORDER BY old.run_id DESC LIMIT 1)
    INTO deleted, reached;
END
$$;

-- Up to p_limit runs that ended more than p_age ago, oldest first from end
-- time p_after on, with their events (ON DELETE CASCADE). Never deleted,
-- whatever its age: a thread's newest run (what the thread's status, its
-- join and the SDK's thread views read), nor a run that has not ended. A
-- run another session holds (a cancel being written) waits for a later pass.
CREATE FUNCTION pgqueue_prune_runs(
    p_age interval, p_limit integer, p_after timestamptz,
    OUT mine boolean, OUT deleted bigint, OUT reached timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    mine := pgqueue_prune_turn();
    deleted := 0;
    IF NOT mine THEN
        RETURN;
    END IF;
    WITH doomed AS (
        SELECT o.run_id, o.ended_at FROM runs o
        WHERE o.ended_at < now() - p_age
          AND o.ended_at >= coalesce(p_after, '-infinity')
          AND o.status NOT IN ('pending', 'running')
          AND (o.thread_id IS NULL OR EXISTS (
              SELECT FROM runs n WHERE n.thread_id = o.thread_id AND n.seq > o.seq))
        ORDER BY o.ended_at
        LIMIT p_limit
        FOR UPDATE OF o SKIP LOCKED
    ), gone AS (
        DELETE FROM runs r USING doomed WHERE r.run_id = doomed.run_id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone), (SELECT max(doomed.ended_at) FROM doomed)
    INTO deleted, reached;
END
$$;

-- Up to p_limit threads whose TTL (strategy delete) has run out, oldest
-- expiry first from p_after on, with their runs, crons and events (by
-- cascade) and their checkpoints, blobs and writes; deleted: their ids.
-- Only threads with no live run: a submit marks its thread busy under the
-- row lock taken here, so none starts on a thread while it goes, and one
-- that came first renewed the TTL.
CREATE FUNCTION pgqueue_prune_expired_threads(
    p_limit integer, p_after timestamptz,
    OUT mine boolean, OUT deleted text[], OUT reached timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    mine := pgqueue_prune_turn();
    deleted := '{}';
    IF NOT mine THEN
        RETURN;
    END IF;
    WITH doomed AS (
        SELECT x.thread_id, x.expires_at FROM pgqueue_expired_threads x
        WHERE x.ttl_strategy = 'delete' AND x.expires_at >= coalesce(p_after, '-infinity')
        ORDER BY x.expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM threads t USING doomed WHERE t.thread_id = doomed.thread_id
        RETURNING t.thread_id::text AS thread_id
    )
    SELECT array(SELECT gone.thread_id FROM gone), (SELECT max(doomed.expires_at) FROM doomed)
    INTO deleted, reached;
    DELETE FROM checkpoint_writes WHERE thread_id = ANY(deleted);
    DELETE FROM checkpoint_blobs WHERE thread_id = ANY(deleted);
    DELETE FROM checkpoints WHERE thread_id = ANY(deleted);
END
$$;

-- Of the next p_threads threads with checkpoint blobs or writes, after the
-- 'checkpoint_garbage' cursor, those no live run uses: deletes their blobs
-- no remaining checkpoint names in its channel_versions, and their writes
-- whose checkpoint is gone. A cancel with rollback deletes a run's
-- checkpoints and writes but leaves their blobs
-- (pgqueue_delete_run_checkpoints); langgraph never deletes one. A thread a
-- run is writing is skipped: its blobs may be committed before the
-- checkpoint naming them. threads: how many were looked at; fewer than
-- p_threads means the round is done, and the next starts from the first.
CREATE FUNCTION pgqueue_prune_checkpoint_garbage(
    p_threads integer, OUT mine boolean, OUT deleted bigint, OUT threads integer)
LANGUAGE plpgsql AS $$
DECLARE
    after_thread text;
    last_thread text;
BEGIN
    mine := pgqueue_prune_turn();
    deleted := 0;
    threads := 0;
    IF NOT mine THEN
        RETURN;
    END IF;
    SELECT c.after INTO after_thread FROM pgqueue_prune_cursors c
    WHERE c.name = 'checkpoint_garbage';
    WITH scope AS (
        SELECT candidates.thread_id FROM (
            (SELECT DISTINCT b.thread_id FROM checkpoint_blobs b
             WHERE b.thread_id > coalesce(after_thread, '') ORDER BY b.thread_id LIMIT p_threads)
            UNION
            (SELECT DISTINCT w.thread_id FROM checkpoint_writes w
             WHERE w.thread_id > coalesce(after_thread, '') ORDER BY w.thread_id LIMIT p_threads)
        ) candidates
        ORDER BY candidates.thread_id
        LIMIT p_threads
    ), quiet AS (
        SELECT s.thread_id FROM scope s
        WHERE NOT EXISTS (
            SELECT FROM runs r
            WHERE r.thread_id::text = s.thread_id AND r.status IN ('pending', 'running'))
    ), blobs AS (
        DELETE FROM checkpoint_blobs b USING quiet q
        WHERE b.thread_id = q.thread_id
          AND NOT EXISTS (
              SELECT FROM checkpoints c
              WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
                AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)
        RETURNING 1
    ), writes AS (
        DELETE FROM checkpoint_writes w USING quiet q
        WHERE w.thread_id = q.thread_id
          AND NOT EXISTS (
              SELECT FROM checkpoints c
              WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
                AND c.checkpoint_id = w.checkpoint_id)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM blobs) + (SELECT count(*) FROM writes),
           (SELECT count(*) FROM scope), (SELECT max(scope.thread_id) FROM scope)
    INTO deleted, threads, last_thread;
    INSERT INTO pgqueue_prune_cursors (name, after)
    VALUES ('checkpoint_garbage', CASE WHEN threads < p_threads THEN NULL ELSE last_thread END)
    ON CONFLICT (name) DO UPDATE SET after = EXCLUDED.after;
END
$$;

-- The pause between two batches of a procedure's pass: at least p_floor
-- seconds and p_ratio times the last batch's own time (since p_started;
-- NULL: no batch yet, no pause). Returns when the next batch starts.
CREATE FUNCTION pgqueue_prune_pause(
    p_started timestamptz, p_floor double precision, p_ratio double precision)
RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN
    IF p_started IS NOT NULL THEN
        PERFORM pg_sleep(greatest(
            p_floor, p_ratio * extract(epoch FROM clock_timestamp() - p_started)));
    END IF;
    RETURN clock_timestamp();
END
$$;

-- A whole pass, with PrunerConfig's defaults: events, runs, expired
-- threads (strategy delete), then up to garbage_batches batches of
-- checkpoint garbage. Each batch commits before the next, and the pauses
-- between them (pgqueue_prune_pause) keep the backend busy at most 1 / (1 +
-- pause_ratio) of the pass, so the workers' claims keep their pace. It ends
-- at once where another session holds the pruning turn. CALL it outside a
-- transaction block (as pg_cron does), or its first COMMIT fails.
CREATE PROCEDURE pgqueue_prune(
    event_retention interval DEFAULT '1 hour',
    run_retention interval DEFAULT '30 days',
    batch_size integer DEFAULT 10000,
    run_batch_size integer DEFAULT 1000,
    thread_batch_size integer DEFAULT 100,
    garbage_threads integer DEFAULT 100,
    garbage_batches integer DEFAULT 10,
    pause_ratio double precision DEFAULT 2,
    batch_pause double precision DEFAULT 0.05)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    started timestamptz;
    after_run uuid;
    after_end timestamptz;
    after_expiry timestamptz;
BEGIN
    LOOP
        started := pgqueue_prune_pause(started, batch_pause, pause_ratio);
        SELECT * INTO r FROM pgqueue_prune_events(event_retention, batch_size, after_run);
        COMMIT;
        IF NOT r.mine THEN
            RETURN;
        END IF;
        EXIT WHEN r.deleted < batch_size;
        after_run := coalesce(r.reached, after_run);
    END LOOP;
    LOOP
        started := pgqueue_prune_pause(started, batch_pause, pause_ratio);
        SELECT * INTO r FROM pgqueue_prune_runs(run_retention, run_batch_size, after_end);
        COMMIT;
        IF NOT r.mine THEN
            RETURN;
        END IF;
        EXIT WHEN r.deleted < run_batch_size;
        after_end := coalesce(r.reached, after_end);
    END LOOP;
    LOOP
        started := pgqueue_prune_pause(started, batch_pause, pause_ratio);
        SELECT * INTO r FROM pgqueue_prune_expired_threads(thread_batch_size, after_expiry);
        COMMIT;
        IF NOT r.mine THEN
            RETURN;
        END IF;
        EXIT WHEN cardinality(r.deleted) < thread_batch_size;
        after_expiry := coalesce(r.reached, after_expiry);
    END LOOP;
    FOR i IN 1 .. garbage_batches LOOP
        started := pgqueue_prune_pause(started, batch_pause, pause_ratio);
        SELECT * INTO r FROM pgqueue_prune_checkpoint_garbage(garbage_threads);
        COMMIT;
        EXIT WHEN NOT r.mine OR r.threads < garbage_threads;
    END LOOP;
END
$$;
"""

DOWNGRADE = """
DROP PROCEDURE pgqueue_prune(interval, interval, integer, integer, integer, integer, integer,
                             double precision, double precision);
DROP FUNCTION pgqueue_prune_pause(timestamptz, double precision, double precision);
DROP FUNCTION pgqueue_prune_checkpoint_garbage(integer);
DROP FUNCTION pgqueue_prune_expired_threads(integer, timestamptz);
DROP FUNCTION pgqueue_prune_runs(interval, integer, timestamptz);
DROP FUNCTION pgqueue_prune_events(interval, integer, uuid);
DROP TABLE pgqueue_prune_cursors;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
