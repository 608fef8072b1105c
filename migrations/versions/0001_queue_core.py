"""Queue core: assistants, threads, runs, workers; sweep and completion functions; views.

Revision ID: 0001_queue_core
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0001_queue_core"
down_revision = None
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE assistants (
    assistant_id uuid PRIMARY KEY,
    graph_id     text NOT NULL,
    name         text NOT NULL DEFAULT '',
    description  text,
    config       jsonb NOT NULL DEFAULT '{}',
    context      jsonb NOT NULL DEFAULT '{}',
    metadata     jsonb NOT NULL DEFAULT '{}',
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assistants_graph_id_idx ON assistants (graph_id);
CREATE INDEX assistants_metadata_idx ON assistants USING gin (metadata jsonb_path_ops);

CREATE TABLE threads (
    thread_id  uuid PRIMARY KEY,
    status     text NOT NULL DEFAULT 'idle'
               CONSTRAINT threads_status_check
               CHECK (status IN ('idle', 'busy', 'interrupted', 'error')),
    metadata   jsonb NOT NULL DEFAULT '{}',
    config     jsonb NOT NULL DEFAULT '{}',
    interrupts jsonb NOT NULL DEFAULT '{}',
    error      jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threads_metadata_idx ON threads USING gin (metadata jsonb_path_ops);

-- Rewritten every heartbeat: fillfactor leaves room for HOT updates.
CREATE TABLE workers (
    worker_id    text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    concurrency  integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);

-- Heartbeats rewrite running rows every few seconds. They stay HOT (no new
-- index entries, no bloat) because no index covers heartbeat_at and the
-- fillfactor leaves free space on each page.
CREATE TABLE runs (
    run_id       uuid PRIMARY KEY,
    -- FIFO order within a thread and across the queue; created_at can tie.
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    thread_id    uuid REFERENCES threads (thread_id) ON DELETE CASCADE,
    assistant_id uuid,
    status       text NOT NULL DEFAULT 'pending'
                 CONSTRAINT runs_status_check
                 CHECK (status IN ('pending', 'running', 'success', 'error', 'timeout', 'interrupted')),
    -- attempt is also the lease's fencing token: every write a worker makes
    -- for a run is conditioned on (run_id, attempt, status = 'running').
    attempt      integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3 CONSTRAINT runs_max_attempts_check CHECK (max_attempts >= 1),
    -- Claims handed back at shutdown: they bump attempt (the token must only
    -- grow) but do not count against max_attempts.
    releases     integer NOT NULL DEFAULT 0,
    priority     integer NOT NULL DEFAULT 0,
    not_before   timestamptz NOT NULL DEFAULT now(),
    worker_id    text,
    heartbeat_at timestamptz,
    multitask_strategy text,
    kwargs       jsonb NOT NULL DEFAULT '{}',
    metadata     jsonb NOT NULL DEFAULT '{}',
    output       jsonb,
    error        jsonb,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at   timestamptz,
    ended_at     timestamptz
) WITH (fillfactor = 70);

-- The claim scans only this: it stays small however many finished rows pile up.
CREATE INDEX runs_pending_idx ON runs (priority DESC, seq) WHERE status = 'pending';
-- Per-thread FIFO check and "is the thread busy" look only at live runs.
CREATE INDEX runs_thread_active_idx ON runs (thread_id, seq) WHERE status IN ('pending', 'running');
-- The database itself refuses a second running run on a thread (invariant 4),
-- whatever races the claim query might meet.
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
-- The sweeper and the views scan only running rows. Keyed on run_id, not
-- worker_id: final writes, heartbeats and releases join a batch of run ids
-- to runs, and an index on worker_id tempts the planner into walking every
-- run a worker holds once per batch row (O(held x batch)) instead of one
-- key lookup per row.
CREATE INDEX runs_running_idx ON runs (run_id) WHERE status = 'running';
-- Thread history. Claims and completions are not HOT (status is in index
-- predicates), so every index here costs each of them an insert: keep the
-- list short and partial where it can be. Runs are listed per thread; their
-- metadata is filtered within a thread, without an index of its own.
CREATE INDEX runs_thread_idx ON runs (thread_id, seq) WHERE thread_id IS NOT NULL;
"""

FUNCTIONS = r"""
-- The lease window used when a caller gives none: pg_cron, the views, psql.
-- Override per database: ALTER DATABASE db SET pgqueue.lease_timeout = '20s'.
CREATE FUNCTION pgqueue_lease_timeout() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('pgqueue.lease_timeout', true), '')::interval,
                    interval '30 seconds')
$$;

-- Thread status after one of its runs changed state. Locks the thread row
-- first so that the "any live run left?" check runs on a fresh snapshot taken
-- after any concurrent submit on the thread has committed or waited.
CREATE FUNCTION pgqueue_settle_thread(p_thread_id uuid, p_outcome text, p_error jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_thread_id IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM threads WHERE thread_id = p_thread_id FOR UPDATE;
    UPDATE threads SET
        status = CASE
            WHEN EXISTS (SELECT 1 FROM runs
                         WHERE thread_id = p_thread_id AND status IN ('pending', 'running'))
                THEN 'busy'
            WHEN p_outcome IN ('error', 'timeout') THEN 'error'
            WHEN p_outcome = 'interrupted' THEN 'interrupted'
            ELSE 'idle'
        END,
        error = CASE WHEN p_outcome IN ('error', 'timeout') THEN p_error ELSE NULL END,
        updated_at = now()
    WHERE thread_id = p_thread_id;
END
$$;

-- Does a failed attempt go back to pending? Only an 'error' with a retry
-- delay, while attempts remain (releases at shutdown do not count).
CREATE FUNCTION pgqueue_retries(p_status text, p_retry_delay double precision,
                                p_attempt integer, p_releases integer, p_max_attempts integer)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_status = 'error' AND p_retry_delay IS NOT NULL AND p_attempt - p_releases < p_max_attempts
$$;

-- Final writes for a batch of runs, fenced by (run_id, attempt, worker_id,
-- running). worker_id joins the fence because claims commit asynchronously:
-- a server crash can forget a claim, and then the same attempt number may be
-- handed out again, but never to the same worker id (unique per process).
-- An 'error' with a retry delay goes back to pending (not_before = now() +
-- delay) while attempts remain. Returns only the runs whose lease was still
-- held: a missing run_id means the caller lost its lease and wrote nothing.
-- One UPDATE, no separate row locks: its WHERE is the fence, and READ
-- COMMITTED re-checks it against any concurrent change to a row.
CREATE FUNCTION pgqueue_complete_runs(
    p_worker_id text, p_run_ids uuid[], p_attempts integer[], p_statuses text[],
    p_outputs jsonb[], p_errors jsonb[], p_retry_delays double precision[])
RETURNS TABLE (run_id uuid, status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    rec record;
    retried boolean := false;
BEGIN
    FOR rec IN
        UPDATE runs r SET
            status = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                          THEN 'pending' ELSE i.status END,
            output = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                          THEN r.output ELSE i.output END,
            error = i.error,
            not_before = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                              THEN now() + make_interval(secs => i.retry_delay) ELSE r.not_before END,
            worker_id = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                             THEN NULL ELSE r.worker_id END,
            heartbeat_at = NULL,
            ended_at = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                            THEN NULL ELSE now() END,
            updated_at = now()
        FROM unnest(p_run_ids, p_attempts, p_statuses, p_outputs, p_errors, p_retry_delays)
            AS i(run_id, attempt, status, output, error, retry_delay)
        WHERE r.run_id = i.run_id AND r.attempt = i.attempt
          AND r.worker_id = p_worker_id AND r.status = 'running'
        RETURNING r.run_id, r.status, r.thread_id, r.error
    LOOP
        IF rec.status = 'pending' THEN
            retried := true;
        ELSIF rec.thread_id IS NOT NULL THEN
            PERFORM pgqueue_settle_thread(rec.thread_id, rec.status, rec.error);
        END IF;
        run_id := rec.run_id;
        status := rec.status;
        RETURN NEXT;
    END LOOP;
    IF retried THEN
        -- A retried run may be due sooner than idle workers' next poll.
        PERFORM pg_notify('pgqueue_runs', '');
    END IF;
END
$$;

-- Put back runs whose worker stopped heartbeating (killed, frozen, cut off),
-- fail those that used up their attempts, drop dead workers, wake the others.
-- Safe to call from any number of places at once: only one sweeps.
CREATE FUNCTION pgqueue_sweep(p_stale_after interval DEFAULT NULL)
RETURNS TABLE (requeued integer, failed integer, workers_removed integer)
LANGUAGE plpgsql AS $$
DECLARE
    stale_after interval := coalesce(p_stale_after, pgqueue_lease_timeout());
    rec record;
    n_requeued integer := 0;
    n_failed integer := 0;
    n_workers integer := 0;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('pgqueue.sweep', 0)) THEN
        RETURN QUERY SELECT 0, 0, 0;
        RETURN;
    END IF;

    FOR rec IN
        WITH stale AS (
            SELECT r.run_id FROM runs r
            WHERE r.status = 'running' AND r.heartbeat_at < now() - stale_after
            ORDER BY r.run_id
            FOR UPDATE SKIP LOCKED
        )
        UPDATE runs r SET
            status = CASE WHEN r.attempt - r.releases >= r.max_attempts THEN 'error' ELSE 'pending' END,
            error = CASE WHEN r.attempt - r.releases >= r.max_attempts
                THEN jsonb_build_object(
                    'error', 'MaxAttemptsExceeded',
                    'message', format(
                        'Run %s was attempted %s times (max_attempts %s) and its worker stopped '
                        'heartbeating each time (last worker %s, silent for over %s). Likely causes: '
                        'the worker process was killed (out of memory, SIGKILL), its host restarted, '
                        'or the run blocks its worker for longer than the lease.',
                        r.run_id, r.attempt - r.releases, r.max_attempts,
                        coalesce(r.worker_id, 'unknown'), stale_after))
                ELSE r.error END,
            ended_at = CASE WHEN r.attempt - r.releases >= r.max_attempts THEN now() END,
            worker_id = CASE WHEN r.attempt - r.releases >= r.max_attempts THEN r.worker_id END,
            heartbeat_at = NULL,
            not_before = now(),
            updated_at = now()
        FROM stale
        WHERE r.run_id = stale.run_id
        RETURNING r.status, r.thread_id, r.error
    LOOP
        IF rec.status = 'error' THEN
            n_failed := n_failed + 1;
            PERFORM pgqueue_settle_thread(rec.thread_id, 'error', rec.error);
        ELSE
            n_requeued := n_requeued + 1;
        END IF;
    END LOOP;

    DELETE FROM workers WHERE heartbeat_at < now() - stale_after;
    GET DIAGNOSTICS n_workers = ROW_COUNT;

    IF n_requeued > 0 THEN
        PERFORM pg_notify('pgqueue_runs', '');
    END IF;
    RETURN QUERY SELECT n_requeued, n_failed, n_workers;
END
$$;
"""

VIEWS = """
-- How deep is the queue? One row per status.
CREATE VIEW pgqueue_queue_depth AS
SELECT status,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'pending' AND not_before <= now()) AS ready,
       count(*) FILTER (WHERE status = 'pending' AND not_before > now()) AS delayed,
       min(created_at) AS oldest_created_at,
       max(now() - created_at) FILTER (WHERE status = 'pending') AS oldest_pending_age
FROM runs
GROUP BY status;

-- Running runs, most silent first; stale = the sweeper will take it back.
CREATE VIEW pgqueue_running_runs AS
SELECT run_id, thread_id, worker_id, attempt, max_attempts, started_at, heartbeat_at,
       now() - heartbeat_at AS heartbeat_age,
       heartbeat_at < now() - pgqueue_lease_timeout() AS stale
FROM runs
WHERE status = 'running';

CREATE VIEW pgqueue_stale_runs AS
SELECT * FROM pgqueue_running_runs WHERE stale;

-- Workers and the runs they hold.
CREATE VIEW pgqueue_workers AS
SELECT w.worker_id, w.host, w.pid, w.concurrency, w.started_at, w.heartbeat_at,
       now() - w.heartbeat_at AS heartbeat_age,
       w.heartbeat_at >= now() - pgqueue_lease_timeout() AS alive,
       count(r.run_id) AS running,
       coalesce(array_agg(r.run_id ORDER BY r.seq) FILTER (WHERE r.run_id IS NOT NULL), '{}') AS run_ids
FROM workers w
LEFT JOIN runs r ON r.worker_id = w.worker_id AND r.status = 'running'
GROUP BY w.worker_id;

-- Per-thread run history (filter on thread_id, order by seq).
CREATE VIEW pgqueue_thread_runs AS
SELECT r.thread_id, r.seq, r.run_id, r.status, r.attempt, r.worker_id,
       r.created_at, r.started_at, r.ended_at,
       r.ended_at - r.started_at AS duration,
       r.error ->> 'error' AS error_type,
       r.error ->> 'message' AS error_message
FROM runs r
WHERE r.thread_id IS NOT NULL;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(FUNCTIONS)
    op.execute(VIEWS)


def downgrade() -> None:
    op.execute(
        """
        DROP VIEW IF EXISTS pgqueue_thread_runs, pgqueue_workers, pgqueue_stale_runs,
            pgqueue_running_runs, pgqueue_queue_depth;
        DROP FUNCTION IF EXISTS pgqueue_sweep(interval);
        DROP FUNCTION IF EXISTS pgqueue_complete_runs(text, uuid[], integer[], text[], jsonb[], jsonb[], double precision[]);
        DROP FUNCTION IF EXISTS pgqueue_retries(text, double precision, integer, integer, integer);
        DROP FUNCTION IF EXISTS pgqueue_settle_thread(uuid, text, jsonb);
        DROP FUNCTION IF EXISTS pgqueue_lease_timeout();
        DROP TABLE IF EXISTS runs, workers, threads, assistants;
        """
    )
