-- What an operator asks of the queue from the command line (pgqueue runs,
-- pgqueue stats; pgqueue/resources/admin.py and bulk.py): list, show,
-- retry and count runs across every thread. An operator is not an HTTP
-- request and no Auth applies: nothing here takes an authorization filter.
--
-- The run filters share their parameters, in this order: $1 statuses
-- (text[]), $2 thread id, $3 assistant id, $4 graph id, $5 created before,
-- $6 created after (each NULL: no condition).

-- name: database_now
-- The database's clock: ages (--older-than) count from it, not the caller's.
SELECT now();

-- name: list_runs
-- A page of runs matching the filters $1-$6, newest first, at most $7.
SELECT run_id, thread_id, assistant_id, kwargs->>'graph_id' AS graph_id, status, attempt,
       max_attempts, releases, worker_id, created_at, started_at, ended_at,
       error->>'error' AS error_type, error->>'message' AS error_message
FROM runs
WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))
  AND ($2::uuid IS NULL OR thread_id = $2::uuid)
  AND ($3::uuid IS NULL OR assistant_id = $3::uuid)
  AND ($4::text IS NULL OR kwargs->>'graph_id' = $4::text)
  AND ($5::timestamptz IS NULL OR created_at < $5::timestamptz)
  AND ($6::timestamptz IS NULL OR created_at > $6::timestamptz)
ORDER BY created_at DESC, seq DESC
LIMIT $7;

-- name: find_run_ids
-- The ids of every run matching the filters $1-$6, in queue order (seq).
-- $7: skip runs whose cancel was already asked for (they stay running
-- until their worker stops them).
SELECT run_id
FROM runs
WHERE ($1::text[] IS NULL OR status = ANY($1::text[]))
  AND ($2::uuid IS NULL OR thread_id = $2::uuid)
  AND ($3::uuid IS NULL OR assistant_id = $3::uuid)
  AND ($4::text IS NULL OR kwargs->>'graph_id' = $4::text)
  AND ($5::timestamptz IS NULL OR created_at < $5::timestamptz)
  AND ($6::timestamptz IS NULL OR created_at > $6::timestamptz)
  AND NOT ($7::boolean AND cancel_action IS NOT NULL)
ORDER BY seq;

-- name: run_statuses
-- The status of each of runs $1 that exists.
SELECT run_id, status FROM runs WHERE run_id = ANY($1::uuid[]);

-- name: show_run
-- Run $1 with what an operator asks about it: its worker, how many stream
-- events and checkpoints it wrote.
SELECT r.run_id, r.seq, r.thread_id, r.assistant_id, r.kwargs->>'graph_id' AS graph_id,
       r.status, r.attempt, r.max_attempts, r.releases, r.priority, r.multitask_strategy,
       r.cancel_action, r.worker_id, w.host AS worker_host, w.pid AS worker_pid,
       r.heartbeat_at, r.not_before, r.created_at, r.updated_at, r.started_at, r.ended_at,
       r.metadata, r.error, r.output,
       (SELECT count(*) FROM run_events e WHERE e.run_id = r.run_id) AS events,
       (SELECT count(*) FROM checkpoints c
        WHERE c.thread_id = r.thread_id::text AND c.metadata->>'run_id' = r.run_id::text)
           AS checkpoints
FROM runs r LEFT JOIN workers w ON w.worker_id = r.worker_id
WHERE r.run_id = $1;

-- name: lock_retryable_runs
-- Locks those of runs $1 that a retry may put back (ended in error, timeout
-- or interrupted), in queue order; what changed since they were chosen is
-- left out.
SELECT run_id, thread_id
FROM runs
WHERE run_id = ANY($1::uuid[]) AND status IN ('error', 'timeout', 'interrupted')
ORDER BY seq
FOR UPDATE;

-- name: retry_runs
-- Puts runs $1 (locked by lock_retryable_runs) back to pending, ready now.
-- A new seq, as a submit gets: each goes behind the runs already waiting on
-- its thread (seq = DEFAULT takes the identity's next value; the caller
-- passes at most one run per thread, so their order is the order of calls).
-- The attempt count is kept; max_attempts grows when the runs used it up,
-- so one more attempt is allowed (attempts handed back at shutdown, the
-- releases, never counted). The last error stays until the run ends again;
-- a cancel asked for earlier is forgotten, or the claim would finish it.
UPDATE runs SET
    status = 'pending',
    seq = DEFAULT,
    max_attempts = greatest(max_attempts, attempt - releases + 1),
    not_before = now(),
    worker_id = NULL,
    heartbeat_at = NULL,
    cancel_action = NULL,
    output = NULL,
    ended_at = NULL,
    updated_at = now()
WHERE run_id = ANY($1::uuid[]);

-- name: wake_retried_runs
-- Marks threads $1 busy, as a submit does, and wakes idle workers with the
-- submit's NOTIFY (delivered when the retry's transaction commits).
WITH busy AS (
    UPDATE threads SET status = 'busy', updated_at = now()
    WHERE thread_id = ANY($1::uuid[])
)
SELECT pg_notify('pgqueue_runs', '');

-- name: stats_runs
-- Runs per status (pgqueue_queue_depth), with ready and delayed pending
-- runs and the age of the oldest pending one.
SELECT status, runs, ready, delayed, oldest_pending_age
FROM pgqueue_queue_depth ORDER BY status;

-- name: stats_workers
-- Registered workers (pgqueue_workers): alive, slots, runs held.
SELECT worker_id, host, pid, alive, concurrency, running, heartbeat_age
FROM pgqueue_workers ORDER BY started_at;

-- name: stats_stale
-- How many running runs have a heartbeat older than the lease window.
SELECT count(*) FROM pgqueue_stale_runs;

-- name: stats_recent
-- Runs that ended in the last 5 minutes and the last hour, and how many of
-- those failed (error or timeout).
SELECT count(*) FILTER (WHERE ended_at > now() - interval '5 minutes') AS ended_5m,
       count(*) FILTER (WHERE ended_at > now() - interval '5 minutes'
                          AND status IN ('error', 'timeout')) AS failed_5m,
       count(*) AS ended_1h,
       count(*) FILTER (WHERE status IN ('error', 'timeout')) AS failed_1h
FROM runs
WHERE ended_at > now() - interval '1 hour';
