-- The queue core on the runs table: submit, claim, finish, hand back,
-- cancel and look up runs (pgqueue/core, pgqueue/worker, and the final
-- write a LangGraph run makes on its own connection in pgqueue/execution).
-- Workers and the sweep are in workers.sql; the HTTP API's reads of runs in
-- runs.sql.

-- name: submit_runs
-- Inserts a batch of pending runs in order, marking their threads busy and
-- merging $12 (per run) into their metadata, the newest run's last.
-- The runs' seq follows the given order. Missing threads are created (busy)
-- when $10 is true, with the first run's metadata under $12's (as on the
-- platform: an owner an Auth stamps on the run lands on its new thread).
-- $11 is the multitask strategy the runs were submitted with. $9 says
-- whether to wake workers: pg_notify folds duplicates within a transaction
-- and is delivered only if the transaction commits, so a rolled-back
-- submit wakes nobody. $13: an authorization filter the runs' existing
-- threads must pass (NULL: none); if one does not, nothing is written and
-- no row comes back, in this one statement (no read before it).
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::jsonb[],
                         $6::integer[], $7::integer[], $8::double precision[], $12::jsonb[])
        WITH ORDINALITY
        AS i(run_id, thread_id, assistant_id, kwargs, metadata, priority, max_attempts, delay,
             thread_metadata, ord)
), per_thread AS (
    -- One row per thread (an UPDATE ... FROM with several would apply one
    -- at random): the batch's metadata for it merged in order, so for a
    -- key given twice the last run's value wins.
    SELECT i.thread_id,
           coalesce(jsonb_object_agg(kv.key, kv.value ORDER BY i.ord)
                        FILTER (WHERE kv.key IS NOT NULL), '{}') AS thread_metadata,
           (array_agg(i.metadata ORDER BY i.ord))[1] AS run_metadata
    FROM input i LEFT JOIN LATERAL jsonb_each(i.thread_metadata) kv ON true
    WHERE i.thread_id IS NOT NULL
    GROUP BY i.thread_id
), hidden AS (
    SELECT 1 FROM threads t JOIN per_thread p ON p.thread_id = t.thread_id
    WHERE $13::jsonb IS NOT NULL AND NOT pgqueue_auth_match(t.metadata, $13::jsonb)
    LIMIT 1
), busy AS (
    -- Threads that exist already (this statement's snapshot)...
    UPDATE threads t
    SET status = 'busy', updated_at = now(), metadata = t.metadata || p.thread_metadata
    FROM per_thread p
    WHERE t.thread_id = p.thread_id AND NOT EXISTS (SELECT 1 FROM hidden)
), created AS (
    -- ...and those that don't, created busy. The runs' foreign key is
    -- checked at the end of the statement, when these rows exist.
    INSERT INTO threads (thread_id, status, metadata)
    SELECT thread_id, 'busy',
           CASE WHEN jsonb_typeof(run_metadata) = 'object' THEN run_metadata ELSE '{}' END
               || thread_metadata
    FROM per_thread WHERE $10::boolean AND NOT EXISTS (SELECT 1 FROM hidden)
    ON CONFLICT (thread_id) DO NOTHING
), inserted AS (
    INSERT INTO runs (run_id, thread_id, assistant_id, kwargs, metadata, priority, max_attempts,
                      not_before, multitask_strategy)
    SELECT run_id, thread_id, assistant_id, kwargs, metadata, priority, max_attempts,
           now() + make_interval(secs => delay), $11::text
    FROM input
    WHERE NOT EXISTS (SELECT 1 FROM hidden)
    ORDER BY ord
    RETURNING run_id, seq, created_at, not_before
)
SELECT inserted.run_id, inserted.seq, inserted.created_at, inserted.not_before
FROM inserted, (SELECT CASE WHEN $9::boolean THEN pg_notify('pgqueue_runs', '') END) AS wake
ORDER BY inserted.seq;

-- name: lock_threads
-- Locks threads $1 in id order: serializes submits with a multitask strategy.
-- visible: whether each passes authorization filter $2 (NULL: none), so a
-- submit looks at no other thread's runs before refusing it.
SELECT thread_id, ($2::jsonb IS NULL OR pgqueue_auth_match(metadata, $2::jsonb)) AS visible
FROM threads WHERE thread_id = ANY($1::uuid[]) ORDER BY thread_id FOR UPDATE;

-- name: active_runs_on_threads
-- The pending and running runs on threads $1, oldest first.
SELECT run_id, thread_id FROM runs
WHERE thread_id = ANY($1::uuid[]) AND status IN ('pending', 'running')
ORDER BY seq;

-- name: claim_runs
-- Claims up to $2 ready runs for worker $1, highest priority then oldest.
-- Workers run this with synchronous_commit off (no fsync wait on the
-- submit-to-start path): a claim lost in a server crash leaves the run
-- pending, and the fence on worker_id keeps the forgotten holder out.
-- A run whose thread has a running run, or an older pending one, is not
-- ready: runs on a thread execute one at a time, in order. (The unique
-- index runs_one_running_per_thread backs this up against races.)
-- waited: seconds the run was ready (since created, due or handed back).
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
          runs.releases, runs.kwargs, runs.metadata, runs.seq, runs.cancel_action,
          extract(epoch FROM now() - greatest(runs.created_at, runs.not_before))::float8 AS waited;

-- name: next_due_at
-- When the earliest delayed pending run becomes ready, and the database's now.
-- An idle worker sleeps until then instead of a whole poll interval.
SELECT min(not_before) AS due_at, now() AS db_now
FROM runs
WHERE status = 'pending' AND not_before > now();

-- name: complete_runs
-- Fenced final writes for a batch of worker $1's runs (pgqueue_complete_runs).
-- Fenced by the function's own WHERE (run, attempt, worker, running): a run
-- missing from the result had lost its lease. Used by the batched completer
-- (asyncpg) and by a LangGraph run's final transaction on its own psycopg
-- connection.
SELECT run_id, status
FROM pgqueue_complete_runs($1::text, $2::uuid[], $3::integer[], $4::text[], $5::jsonb[],
                           $6::jsonb[], $7::double precision[]);

-- name: release_runs
-- Hands worker $1's runs back at graceful shutdown: pending again at once.
-- The attempt is not counted against max_attempts; fenced like every other
-- final write.
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

-- name: cancel_runs
-- Cancels runs $1 with action $2 (interrupt or rollback); one outcome per run.
SELECT run_id, outcome FROM pgqueue_cancel_runs($1::uuid[], $2::text);

-- name: get_cancel_action
-- The cancel action requested for run $1 (NULL: none).
SELECT cancel_action FROM runs WHERE run_id = $1;

-- name: rollback_run
-- Deletes run $1 at attempt $2 of worker $3 and the checkpoints it wrote.
-- Fenced: raises PGQ01 when the lease is gone.
SELECT pgqueue_rollback_run($1, $2, $3);

-- name: get_run
-- Every column of run $1.
SELECT run_id, seq, thread_id, assistant_id, status, attempt, max_attempts, releases, priority,
       not_before, worker_id, heartbeat_at, multitask_strategy, cancel_action, kwargs, metadata,
       output, error, created_at, updated_at, started_at, ended_at
FROM runs
WHERE run_id = $1;

-- name: get_run_status
-- The status of run $1.
SELECT status FROM runs WHERE run_id = $1;

-- name: count_live_runs
-- How many of runs $1 are still pending or running.
SELECT count(*) FROM runs WHERE run_id = ANY($1::uuid[]) AND status IN ('pending', 'running');

-- name: queue_depth
-- Runs per status, with how many pending ones are ready and how many delayed.
SELECT status, runs, ready, delayed FROM pgqueue_queue_depth ORDER BY status;
