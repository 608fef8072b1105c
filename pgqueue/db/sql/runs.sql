-- Runs as the HTTP API sees them: lookups, listings, deletion, and the
-- cleanup of temporary (stateless) threads. Submitting, claiming and
-- finishing runs are in queries.sql.

-- name: get_assistant_for_run
-- The assistant a run executes: its graph and the defaults the run inherits.
SELECT assistant_id, graph_id, config, context FROM assistants WHERE assistant_id = $1;

-- name: get_thread_run
SELECT run_id, thread_id, assistant_id, status, metadata, multitask_strategy, kwargs,
       output, error, created_at, updated_at, started_at, ended_at, attempt
FROM runs WHERE run_id = $1 AND thread_id = $2;

-- name: list_thread_runs
-- A thread's runs, newest first; $2 filters by status when not NULL.
SELECT run_id, thread_id, assistant_id, status, metadata, multitask_strategy, kwargs,
       created_at, updated_at
FROM runs
WHERE thread_id = $1 AND ($2::text IS NULL OR status = $2)
ORDER BY seq DESC
LIMIT $3 OFFSET $4;

-- name: thread_exists
SELECT EXISTS (SELECT 1 FROM threads WHERE thread_id = $1);

-- name: delete_finished_run
-- Deletes a run that is no longer live; returns its status either way so
-- the caller can tell "unknown" (no row) from "still live" (not deleted).
WITH target AS (
    SELECT run_id, status FROM runs WHERE run_id = $1 AND thread_id = $2
), deleted AS (
    DELETE FROM runs r USING target
    WHERE r.run_id = target.run_id AND target.status NOT IN ('pending', 'running')
    RETURNING r.run_id
)
SELECT target.status, (SELECT count(*) FROM deleted) AS deleted FROM target;

-- name: live_runs
-- Live runs among $1 (or all live runs of thread $2, or of every thread
-- when both are NULL) with a status among $3: what /runs/cancel stops.
SELECT run_id FROM runs
WHERE status IN ('pending', 'running')
  AND ($1::uuid[] IS NULL OR run_id = ANY($1::uuid[]))
  AND ($2::uuid IS NULL OR thread_id = $2)
  AND ($3::text[] IS NULL OR status = ANY($3::text[]))
ORDER BY seq;

-- name: announce_run_ends
-- Wakes followers of runs that ended outside a worker (a pending run
-- cancelled): the same NOTIFY a worker's final write sends.
SELECT pg_notify('pgqueue_events', r::text || ':end') FROM unnest($1::uuid[]) AS r;

-- name: delete_temporary_thread
-- on_completion=delete: a stateless run's thread goes once no run on it is
-- live, with its runs (FK cascade), their events, and its checkpoints
-- (keyed by thread id as text).
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

-- name: last_event_seq
-- Where a stream joined without Last-Event-ID starts: after what exists.
SELECT coalesce(max(seq), 0) FROM run_events WHERE run_id = $1;

-- name: get_run_result
-- What a joiner needs, in one read: still live, or how it ended.
SELECT status, output, error FROM runs WHERE run_id = $1 AND thread_id = $2;
