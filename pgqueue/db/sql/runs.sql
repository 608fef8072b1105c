-- Runs as the HTTP API sees them: lookups, listings, deletion, and the
-- cleanup of temporary (stateless) threads. Submitting, claiming and
-- finishing runs are in queue.sql.

-- name: get_assistant_for_run
-- The assistant a run executes: its graph and the defaults the run inherits.
-- $2: the filter (assistants.read) a user-made assistant must pass; the
-- caller skips this for the graphs' own assistants, as the platform does.
SELECT assistant_id, graph_id, config, context FROM assistants
WHERE assistant_id = $1 AND ($2::jsonb IS NULL OR pgqueue_auth_match(metadata, $2::jsonb));

-- name: get_thread_run
-- Run $1 of thread $2 as the API shows it, if filter $3 lets the request
-- see the thread (runs are authorized as their threads).
SELECT run_id, thread_id, assistant_id, status, metadata, multitask_strategy, kwargs,
       output, error, created_at, updated_at, started_at, ended_at, attempt
FROM runs
WHERE run_id = $1 AND thread_id = $2
  AND ($3::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                     WHERE t.thread_id = $2
                                       AND pgqueue_auth_match(t.metadata, $3::jsonb)));

-- name: list_thread_runs
-- A page of thread $1's runs, newest first; $2 filters by status when not NULL.
-- $5: the filter the thread must pass.
SELECT run_id, thread_id, assistant_id, status, metadata, multitask_strategy, kwargs,
       created_at, updated_at
FROM runs
WHERE thread_id = $1 AND ($2::text IS NULL OR status = $2)
  AND ($5::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                     WHERE t.thread_id = $1
                                       AND pgqueue_auth_match(t.metadata, $5::jsonb)))
ORDER BY seq DESC
LIMIT $3 OFFSET $4;

-- name: thread_exists
-- Whether thread $1 exists and filter $2 lets the request see it.
SELECT EXISTS (SELECT 1 FROM threads
               WHERE thread_id = $1
                 AND ($2::jsonb IS NULL OR pgqueue_auth_match(metadata, $2::jsonb)));

-- name: delete_finished_run
-- Deletes run $1 of thread $2 unless it is live; returns its status either way.
-- So the caller can tell "unknown" (no row) from "still live" (not deleted).
-- $3: the filter the thread must pass.
WITH target AS (
    SELECT run_id, status FROM runs
    WHERE run_id = $1 AND thread_id = $2
      AND ($3::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                         WHERE t.thread_id = $2
                                           AND pgqueue_auth_match(t.metadata, $3::jsonb)))
), deleted AS (
    DELETE FROM runs r USING target
    WHERE r.run_id = target.run_id AND target.status NOT IN ('pending', 'running')
    RETURNING r.run_id
)
SELECT target.status, (SELECT count(*) FROM deleted) AS deleted FROM target;

-- name: live_runs
-- The live runs /runs/cancel stops, oldest first.
-- Those among $1 (or all of thread $2's, or of every thread when both are
-- NULL) with a status among $3, on threads filter $4 lets the request see.
SELECT run_id FROM runs
WHERE status IN ('pending', 'running')
  AND ($1::uuid[] IS NULL OR run_id = ANY($1::uuid[]))
  AND ($2::uuid IS NULL OR thread_id = $2)
  AND ($3::text[] IS NULL OR status = ANY($3::text[]))
  AND ($4::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                     WHERE t.thread_id = runs.thread_id
                                       AND pgqueue_auth_match(t.metadata, $4::jsonb)))
ORDER BY seq;

-- name: announce_run_ends
-- Wakes followers of runs $1, which ended outside a worker (pending, cancelled).
-- The same NOTIFY a worker's final write sends.
-- internal: $1 are runs live_runs (filtered) found and cancel ended.
SELECT pg_notify('pgqueue_events', r::text || ':end') FROM unnest($1::uuid[]) AS r;

-- name: delete_temporary_thread
-- Deletes temporary thread $1 and its checkpoints once no run on it is live.
-- on_completion=delete: a stateless run's thread goes with its runs (FK
-- cascade), their events, and its checkpoints (keyed by thread id as text).
-- internal: the process that created the temporary thread, or the
-- scheduler's cleanup; never a client's id.
WITH thread AS (
    DELETE FROM threads t
    WHERE t.thread_id = $1
      AND NOT EXISTS (SELECT 1 FROM runs r
                      WHERE r.thread_id = t.thread_id AND r.status IN ('pending', 'running'))
    RETURNING t.thread_id
), writes AS (
    DELETE FROM checkpoint_writes WHERE thread_id = $1::text AND EXISTS (SELECT 1 FROM thread)
), blobs AS (
    DELETE FROM checkpoint_blobs WHERE thread_id = $1::text AND EXISTS (SELECT 1 FROM thread)
), checkpoints AS (
    DELETE FROM checkpoints WHERE thread_id = $1::text AND EXISTS (SELECT 1 FROM thread)
)
SELECT count(*) AS deleted FROM thread;

-- name: get_run_result
-- What a joiner needs, in one read: still live, or how it ended. A run
-- cancelled before it started has no output of its own: the platform
-- answers its thread's values then. $3: the filter the thread must pass.
SELECT r.status,
       CASE WHEN r.output IS NULL AND r.status = 'interrupted' THEN t.state_values
            ELSE r.output END AS output,
       r.error
FROM runs r LEFT JOIN threads t ON t.thread_id = r.thread_id
WHERE r.run_id = $1 AND r.thread_id = $2
  AND ($3::jsonb IS NULL OR pgqueue_auth_match(t.metadata, $3::jsonb));
