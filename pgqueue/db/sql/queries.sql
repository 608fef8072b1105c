-- Every statement pgqueue runs at runtime, one named block each.
-- Loaded by pgqueue/sql/__init__.py; referenced as queries.NAME.
-- Schema, indexes and the SQL functions called here live in migrations/.

-- name: submit_runs
-- Inserts a batch of pending runs (in the given order: seq follows it),
-- creating missing threads when $10 is true and marking them busy, in one
-- statement. $11 is the multitask strategy the runs were submitted with. $9 says whether to wake workers: pg_notify folds duplicates
-- within a transaction and is delivered only if the transaction commits,
-- so a rolled-back submit wakes nobody.
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::jsonb[],
                         $6::integer[], $7::integer[], $8::double precision[])
        WITH ORDINALITY
        AS i(run_id, thread_id, assistant_id, kwargs, metadata, priority, max_attempts, delay, ord)
), busy AS (
    -- Threads that exist already (this statement's snapshot)...
    UPDATE threads SET status = 'busy', updated_at = now()
    WHERE thread_id IN (SELECT thread_id FROM input WHERE thread_id IS NOT NULL)
), created AS (
    -- ...and those that don't, created busy. The runs' foreign key is
    -- checked at the end of the statement, when these rows exist.
    INSERT INTO threads (thread_id, status)
    SELECT DISTINCT thread_id, 'busy' FROM input WHERE thread_id IS NOT NULL AND $10::boolean
    ON CONFLICT (thread_id) DO NOTHING
), inserted AS (
    INSERT INTO runs (run_id, thread_id, assistant_id, kwargs, metadata, priority, max_attempts,
                      not_before, multitask_strategy)
    SELECT run_id, thread_id, assistant_id, kwargs, metadata, priority, max_attempts,
           now() + make_interval(secs => delay), $11::text
    FROM input
    ORDER BY ord
    RETURNING run_id, seq, created_at, not_before
)
SELECT inserted.run_id, inserted.seq, inserted.created_at, inserted.not_before
FROM inserted, (SELECT CASE WHEN $9::boolean THEN pg_notify('pgqueue_runs', '') END) AS wake
ORDER BY inserted.seq;

-- name: claim_runs
-- Claims up to $2 ready runs for worker $1, highest priority then oldest.
-- Workers run this with synchronous_commit off (no fsync wait on the
-- submit-to-start path): a claim lost in a server crash leaves the run
-- pending, and the fence on worker_id keeps the forgotten holder out.
-- A run whose thread has a running run, or an older pending one, is not
-- ready: runs on a thread execute one at a time, in order. (The unique
-- index runs_one_running_per_thread backs this up against races.)
WITH candidates AS (
    SELECT r.run_id
    FROM runs r
    WHERE r.status = 'pending'
      AND r.not_before <= now()
      AND (r.thread_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM runs p
            WHERE p.thread_id = r.thread_id
              AND p.status IN ('pending', 'running')
              AND (p.status = 'running' OR p.seq < r.seq)))
    ORDER BY r.priority DESC, r.seq
    LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
)
UPDATE runs SET
    status = 'running',
    attempt = runs.attempt + 1,
    worker_id = $1,
    heartbeat_at = now(),
    started_at = now(),
    updated_at = now()
FROM candidates
WHERE runs.run_id = candidates.run_id
RETURNING runs.run_id, runs.thread_id, runs.assistant_id, runs.attempt, runs.max_attempts,
          runs.releases, runs.kwargs, runs.metadata, runs.seq, runs.cancel_action;

-- name: next_due_at
-- When the earliest delayed pending run becomes ready: an idle worker
-- sleeps until then instead of a whole poll interval.
SELECT min(not_before) AS due_at, now() AS db_now
FROM runs
WHERE status = 'pending' AND not_before > now();

-- name: complete_runs
-- Fenced final writes for a batch (see pgqueue_complete_runs in migrations).
SELECT run_id, status
FROM pgqueue_complete_runs($1::text, $2::uuid[], $3::integer[], $4::text[], $5::jsonb[], $6::jsonb[],
                           $7::double precision[]);

-- name: release_runs
-- Hands runs back (graceful shutdown): pending again at once, the attempt
-- not counted against max_attempts, fenced like every other final write.
WITH released AS (
    UPDATE runs SET
        status = 'pending',
        releases = runs.releases + 1,
        worker_id = NULL,
        heartbeat_at = NULL,
        not_before = now(),
        updated_at = now()
    FROM unnest($2::uuid[], $3::integer[]) AS h(run_id, attempt)
    WHERE runs.run_id = h.run_id AND runs.attempt = h.attempt AND runs.status = 'running'
      AND runs.worker_id = $1
    RETURNING runs.run_id
)
SELECT released.run_id
FROM released, (SELECT pg_notify('pgqueue_runs', '')) AS wake;

-- name: heartbeat
-- Renews the lease of each run the worker still holds and its own liveness
-- row. Returns the runs renewed: a held run missing from the result was
-- taken away (swept, cancelled) and its execution must stop.
WITH alive AS (
    INSERT INTO workers (worker_id, host, pid, concurrency)
    VALUES ($1, $4, $5, $6)
    ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()
)
UPDATE runs SET heartbeat_at = now()
FROM unnest($2::uuid[], $3::integer[]) AS h(run_id, attempt)
WHERE runs.run_id = h.run_id AND runs.attempt = h.attempt AND runs.status = 'running'
  AND runs.worker_id = $1
RETURNING runs.run_id, runs.attempt;

-- name: register_worker
INSERT INTO workers (worker_id, host, pid, concurrency)
VALUES ($1, $2, $3, $4)
ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now();

-- name: unregister_worker
DELETE FROM workers WHERE worker_id = $1;

-- name: sweep
SELECT requeued, failed, workers_removed FROM pgqueue_sweep($1::interval);

-- name: get_run
SELECT run_id, seq, thread_id, assistant_id, status, attempt, max_attempts, releases, priority,
       not_before, worker_id, heartbeat_at, multitask_strategy, cancel_action, kwargs, metadata,
       output, error, created_at, updated_at, started_at, ended_at
FROM runs
WHERE run_id = $1;

-- name: install_sweep_cron
-- pg_cron 1.4 schedules per minute; the job calls the same sweep function.
SELECT cron.schedule('pgqueue-sweep', $1::text,
                     format('SELECT * FROM pgqueue_sweep(%L::interval)', $2::text));

-- name: uninstall_sweep_cron
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'pgqueue-sweep';

-- name: create_pg_cron
CREATE EXTENSION IF NOT EXISTS pg_cron;

-- name: has_pg_cron
SELECT to_regclass('cron.job') IS NOT NULL;

-- name: count_live_runs
SELECT count(*) FROM runs WHERE run_id = ANY($1::uuid[]) AND status IN ('pending', 'running');

-- name: queue_depth
SELECT status, runs, ready, delayed FROM pgqueue_queue_depth ORDER BY status;

-- name: complete_runs_psycopg
-- psycopg (placeholders %s): complete_runs on a run's checkpointer
-- connection; fenced by its own WHERE (run, attempt, worker, running).
SELECT run_id, status
FROM pgqueue_complete_runs(%s, %s::uuid[], %s::integer[], %s::text[], %s::jsonb[], %s::jsonb[],
                           %s::double precision[]);

-- name: upsert_system_assistants
-- One assistant per graph in langgraph.json, id derived from the graph id
-- (a trigger records its one version).
INSERT INTO assistants (assistant_id, graph_id, name, metadata)
SELECT a, g, g, '{"created_by": "system"}'::jsonb
FROM unnest($1::uuid[], $2::text[]) AS t(a, g)
ON CONFLICT (assistant_id) DO NOTHING;

-- name: cancel_runs
SELECT run_id, outcome FROM pgqueue_cancel_runs($1::uuid[], $2::text);

-- name: lock_threads
-- Serializes submits with a multitask strategy against each other.
SELECT thread_id FROM threads WHERE thread_id = ANY($1::uuid[]) ORDER BY thread_id FOR UPDATE;

-- name: active_runs_on_threads
SELECT run_id, thread_id FROM runs
WHERE thread_id = ANY($1::uuid[]) AND status IN ('pending', 'running')
ORDER BY seq;

-- name: cancel_action_psycopg
-- psycopg (placeholders %s).
SELECT cancel_action FROM runs WHERE run_id = %s;

-- name: rollback_run_psycopg
-- psycopg (placeholders %s): fenced; raises PGQ01 when the lease is gone.
SELECT pgqueue_rollback_run(%s, %s, %s);

-- name: rollback_run
-- Fenced: raises PGQ01 when the lease is gone.
SELECT pgqueue_rollback_run($1, $2, $3);

-- name: last_event_seq_psycopg
-- psycopg (placeholders %s): where a (resumed) run's event numbering goes on.
SELECT coalesce(max(seq), 0) AS seq FROM run_events WHERE run_id = %s;

-- name: insert_events_psycopg
-- psycopg (placeholders %s): a batch of a run's events, written in one go,
-- fenced by the table's pgqueue_fence trigger, announced with a small
-- payload; readers fetch the rows.
WITH inserted AS (
    INSERT INTO run_events (run_id, seq, attempt, event, data)
    SELECT %(run_id)s, s, %(attempt)s, e, d
    FROM unnest(%(seqs)s::bigint[], %(events)s::text[], %(datas)s::jsonb[]) AS t(s, e, d)
    RETURNING seq
)
SELECT pg_notify('pgqueue_events', %(run_id)s::text || ':' || max(seq)) FROM inserted;

-- name: read_events
-- A run's events after a sequence number, in order.
SELECT seq, attempt, event, data FROM run_events
WHERE run_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3;

-- name: prune_events
-- Events of runs that ended more than $1 ago, a batch at a time.
DELETE FROM run_events e
USING (
    SELECT e2.run_id, e2.seq FROM run_events e2
    JOIN runs r ON r.run_id = e2.run_id
    WHERE r.ended_at < now() - $1::interval
    LIMIT $2
) old
WHERE e.run_id = old.run_id AND e.seq = old.seq;

-- name: set_lease_psycopg
-- psycopg (placeholders %s): names this connection's lease for the
-- pgqueue_fence trigger on the checkpoint and event tables (session-wide;
-- the connection serves this one run attempt and is then closed).
SELECT set_config('pgqueue.lease', %s, false);

-- name: record_thread_state_psycopg
-- psycopg (named placeholders). Pipelined after complete_runs_psycopg, in
-- the same transaction: the thread's latest values and interrupts, written
-- only if that final write happened (the run now has this status at this
-- attempt: the fence), and a NOTIFY that the run ended, for joiners and
-- streams in any process. NULL values keep the thread's previous ones.
WITH settled AS (
    UPDATE threads t SET
        state_values = coalesce(%(values)s::jsonb, t.state_values),
        interrupts = %(interrupts)s::jsonb,
        state_updated_at = now()
    FROM runs r
    WHERE r.run_id = %(run_id)s AND r.attempt = %(attempt)s AND r.status = %(status)s
      AND t.thread_id = r.thread_id
    RETURNING t.thread_id
)
SELECT pg_notify('pgqueue_events', %(run_id)s::text || ':end');

-- name: get_run_status
SELECT status FROM runs WHERE run_id = $1;

-- name: ping
-- Readiness: the database answers.
SELECT 1;

-- name: bind_run_psycopg
-- psycopg (placeholders %s): a pooled connection taken for one run attempt:
-- its lease (for the pgqueue_fence trigger) and whether its checkpoint and
-- event commits wait for the WAL flush. Durability 'sync' waits; 'async'
-- and 'exit' do not (as LangGraph's own 'async' may lose the last
-- checkpoint): the run's final status always waits (commit_durably_psycopg),
-- and that flush makes every earlier commit on the connection durable too.
SELECT set_config('pgqueue.lease', %s, false), set_config('synchronous_commit', %s, false);

-- name: commit_durably_psycopg
-- psycopg: first statement of a pipelined transaction that must survive a
-- database crash once it commits (a run's final status).
SELECT set_config('synchronous_commit', 'on', true);
