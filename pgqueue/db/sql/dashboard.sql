-- What the read-only dashboard (/dashboard) shows: the queue over a recent
-- window, workers and what they hold, stale runs, failures, and one run's
-- timeline. Every statement is a read. Runs are authorized as their threads:
-- $n, the request's filter (threads.search), keeps a run when its thread
-- passes it (NULL: every run, those without a thread included).
-- Each statement reads only what an index reaches: live runs through the
-- pending/running partial indexes, ended ones through runs_ended_at_idx
-- bounded by the window, never the whole (ever-growing) runs table.

-- name: dashboard_without_jit
-- Switches JIT compilation off for the rest of the dashboard's transaction.
-- The filter's function makes the planner's estimates large enough for JIT,
-- whose compiling took two seconds where the statements take milliseconds.
-- internal: a setting, no data.
SELECT set_config('jit', 'off', true);

-- name: dashboard_series
-- Queue depth and runs ended per status, for $2 buckets of width $1 ending now.
-- Derived from the runs' own timestamps, so every process answers the same
-- series, history included, whichever one a poll reaches. A run counts as
-- pending from created_at to started_at (its latest claim: a retried run's
-- earlier attempts count as pending), running from started_at to ended_at.
-- Bucket -1 gathers every move before the window: the depth it starts at.
-- $3: the filter.
WITH bounds AS (
    SELECT date_bin($1::interval, now(), timestamptz '2000-01-01')
           + $1::interval * (1 - $2::int) AS t0
), relevant AS (
    SELECT r.status, r.created_at, r.started_at, r.ended_at
    FROM (
        SELECT status, created_at, started_at, ended_at, thread_id
        FROM runs, bounds WHERE ended_at >= bounds.t0
        UNION ALL
        SELECT status, created_at, started_at, ended_at, thread_id
        FROM runs WHERE status = 'pending'
        UNION ALL
        SELECT status, created_at, started_at, ended_at, thread_id
        FROM runs WHERE status = 'running'
    ) r
    WHERE $3::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                       WHERE t.thread_id = r.thread_id
                                         AND pgqueue_auth_match(t.metadata, $3::jsonb))
), moves AS (
    SELECT created_at AS at, 1 AS pending, 0 AS running, NULL::text AS ended FROM relevant
    UNION ALL
    SELECT coalesce(started_at, ended_at), -1, 0, NULL FROM relevant
    WHERE coalesce(started_at, ended_at) IS NOT NULL
    UNION ALL
    SELECT started_at, 0, 1, NULL FROM relevant WHERE started_at IS NOT NULL
    UNION ALL
    SELECT ended_at, 0, CASE WHEN started_at IS NULL THEN 0 ELSE -1 END, status
    FROM relevant WHERE ended_at IS NOT NULL
), bucketed AS (
    SELECT greatest(-1, floor(extract(epoch FROM m.at - b.t0)
                              / extract(epoch FROM $1::interval))::int) AS i,
           m.pending, m.running, m.ended
    FROM moves m, bounds b
), per_bucket AS (
    SELECT i,
           sum(pending) AS d_pending,
           sum(running) AS d_running,
           count(*) FILTER (WHERE pending = 1) AS created,
           count(*) FILTER (WHERE ended = 'success') AS success,
           count(*) FILTER (WHERE ended = 'error') AS error,
           count(*) FILTER (WHERE ended = 'timeout') AS timeout,
           count(*) FILTER (WHERE ended = 'interrupted') AS interrupted
    FROM bucketed GROUP BY i
), series AS (
    SELECT g.i,
           b.t0 + $1::interval * g.i AS bucket_start,
           sum(coalesce(p.d_pending, 0)) OVER w AS pending,
           sum(coalesce(p.d_running, 0)) OVER w AS running,
           coalesce(p.created, 0) AS created,
           coalesce(p.success, 0) AS success,
           coalesce(p.error, 0) AS error,
           coalesce(p.timeout, 0) AS timeout,
           coalesce(p.interrupted, 0) AS interrupted
    FROM bounds b
    CROSS JOIN generate_series(-1, $2::int - 1) AS g(i)
    LEFT JOIN per_bucket p ON p.i = g.i
    WINDOW w AS (ORDER BY g.i)
)
SELECT bucket_start, greatest(pending, 0)::int AS pending, greatest(running, 0)::int AS running,
       created::int, success::int, error::int, timeout::int, interrupted::int
FROM series WHERE i >= 0 ORDER BY i;

-- name: dashboard_live
-- Live runs now (pending ready and delayed, running, the oldest wait) and runs ended in the last minute.
-- $1: the filter.
SELECT count(*) FILTER (WHERE r.status = 'pending' AND r.not_before <= now())::int AS ready,
       count(*) FILTER (WHERE r.status = 'pending' AND r.not_before > now())::int AS delayed,
       count(*) FILTER (WHERE r.status = 'running')::int AS running,
       extract(epoch FROM max(now() - r.created_at)
                          FILTER (WHERE r.status = 'pending' AND r.not_before <= now()))::float8
           AS oldest_ready_seconds,
       (SELECT count(*)::int FROM runs e
        WHERE e.ended_at >= now() - interval '1 minute'
          AND ($1::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                            WHERE t.thread_id = e.thread_id
                                              AND pgqueue_auth_match(t.metadata, $1::jsonb))))
           AS ended_last_minute
FROM (
    SELECT status, not_before, created_at, thread_id FROM runs WHERE status = 'pending'
    UNION ALL
    SELECT status, not_before, created_at, thread_id FROM runs WHERE status = 'running'
) r
WHERE $1::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                   WHERE t.thread_id = r.thread_id
                                     AND pgqueue_auth_match(t.metadata, $1::jsonb));

-- name: dashboard_workers
-- Registered workers, alive or silent, oldest first (pgqueue_workers).
-- internal: worker processes are no user's resource; the runs they hold
-- come from dashboard_running, which takes the filter.
SELECT worker_id, host, pid, concurrency, started_at, heartbeat_at,
       extract(epoch FROM heartbeat_age)::float8 AS heartbeat_age_seconds, alive
FROM pgqueue_workers
ORDER BY started_at, worker_id;

-- name: dashboard_running
-- Up to $1 running runs with their lease's age, longest held first (pgqueue_running_runs).
-- $2: the filter.
SELECT rr.run_id, rr.thread_id, rr.worker_id, rr.attempt, rr.max_attempts, rr.started_at,
       extract(epoch FROM rr.heartbeat_age)::float8 AS lease_age_seconds,
       extract(epoch FROM now() - rr.started_at)::float8 AS held_seconds,
       rr.stale
FROM pgqueue_running_runs rr
WHERE $2::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                   WHERE t.thread_id = rr.thread_id
                                     AND pgqueue_auth_match(t.metadata, $2::jsonb))
ORDER BY rr.started_at, rr.run_id
LIMIT $1;

-- name: dashboard_stale
-- Up to $1 running runs whose lease ran out, most silent first (pgqueue_stale_runs).
-- The sweeper takes them back on its next pass. $2: the filter.
SELECT s.run_id, s.thread_id, s.worker_id, s.attempt, s.max_attempts,
       extract(epoch FROM s.heartbeat_age)::float8 AS lease_age_seconds
FROM pgqueue_stale_runs s
WHERE $2::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                   WHERE t.thread_id = s.thread_id
                                     AND pgqueue_auth_match(t.metadata, $2::jsonb))
ORDER BY s.heartbeat_age DESC, s.run_id
LIMIT $1;

-- name: dashboard_failures
-- Up to $1 runs that failed (error, timeout) in the last $2, newest first, with their error.
-- $3: the filter.
SELECT r.run_id, r.thread_id, r.kwargs ->> 'graph_id' AS graph_id, r.status, r.attempt,
       r.max_attempts, r.worker_id, r.ended_at,
       r.error ->> 'error' AS error_type, r.error ->> 'message' AS error_message
FROM runs r
WHERE r.ended_at >= now() - $2::interval AND r.status IN ('error', 'timeout')
  AND ($3::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                    WHERE t.thread_id = r.thread_id
                                      AND pgqueue_auth_match(t.metadata, $3::jsonb)))
ORDER BY r.ended_at DESC, r.run_id
LIMIT $1;

-- name: dashboard_recent_runs
-- Runs to pick a timeline from: up to $1 running, $1 pending (next first), $1 ended in the last $2.
-- $3: the filter.
(SELECT r.run_id, r.thread_id, r.kwargs ->> 'graph_id' AS graph_id, r.status, r.attempt,
        r.created_at, r.ended_at
 FROM runs r
 WHERE r.status = 'running'
   AND ($3::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                     WHERE t.thread_id = r.thread_id
                                       AND pgqueue_auth_match(t.metadata, $3::jsonb)))
 ORDER BY r.run_id LIMIT $1)
UNION ALL
(SELECT r.run_id, r.thread_id, r.kwargs ->> 'graph_id', r.status, r.attempt,
        r.created_at, r.ended_at
 FROM runs r
 WHERE r.status = 'pending'
   AND ($3::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                     WHERE t.thread_id = r.thread_id
                                       AND pgqueue_auth_match(t.metadata, $3::jsonb)))
 ORDER BY r.priority DESC, r.seq LIMIT $1)
UNION ALL
(SELECT r.run_id, r.thread_id, r.kwargs ->> 'graph_id', r.status, r.attempt,
        r.created_at, r.ended_at
 FROM runs r
 WHERE r.ended_at >= now() - $2::interval
   AND ($3::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                     WHERE t.thread_id = r.thread_id
                                       AND pgqueue_auth_match(t.metadata, $3::jsonb)))
 ORDER BY r.ended_at DESC, r.run_id LIMIT $1);

-- name: dashboard_run
-- Run $1 as its timeline starts: the current (last) attempt, its holder, its end.
-- The runs table keeps one attempt's worker: earlier holders are not recorded.
-- $2: the filter.
SELECT r.run_id, r.thread_id, r.assistant_id, r.kwargs ->> 'graph_id' AS graph_id, r.status,
       r.attempt, r.max_attempts, r.releases, r.worker_id, r.created_at, r.started_at,
       r.heartbeat_at, r.ended_at, r.not_before, r.cancel_action,
       r.error ->> 'error' AS error_type, r.error ->> 'message' AS error_message
FROM runs r
WHERE r.run_id = $1
  AND ($2::jsonb IS NULL OR EXISTS (SELECT 1 FROM threads t
                                    WHERE t.thread_id = r.thread_id
                                      AND pgqueue_auth_match(t.metadata, $2::jsonb)));

-- name: dashboard_run_events
-- Run $1's stream events per attempt (run_events.attempt: the attempt that wrote each).
-- internal: read after dashboard_run found the run through the filter.
SELECT attempt, count(*)::int AS events, min(seq) AS first_seq, max(seq) AS last_seq,
       min(created_at) AS first_at, max(created_at) AS last_at,
       array_agg(DISTINCT event ORDER BY event) AS kinds
FROM run_events
WHERE run_id = $1
GROUP BY attempt
ORDER BY attempt;

-- name: dashboard_run_checkpoints
-- Up to $3 checkpoints run $2 wrote on thread $1 (every namespace), oldest first, and their count.
-- LangGraph copies the run's config metadata into each checkpoint's: run_id
-- names the run, run_attempt the attempt that wrote it.
-- internal: read after dashboard_run found the run through the filter.
SELECT checkpoint_id, checkpoint_ns, parent_checkpoint_id,
       metadata ->> 'source' AS source, metadata ->> 'step' AS step,
       metadata ->> 'run_attempt' AS attempt, count(*) OVER ()::int AS total
FROM checkpoints
WHERE thread_id = $1::text AND metadata ->> 'run_id' = $2::text
ORDER BY checkpoint_id, checkpoint_ns
LIMIT $3;
