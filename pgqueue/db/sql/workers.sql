-- Workers and their leases: liveness rows, heartbeats, and the sweep that
-- takes runs back from workers that stopped heartbeating, called in process
-- or by a pg_cron job (pgqueue/worker, pgqueue/maintenance).

-- name: register_worker
-- Records worker $1 (host, pid, concurrency) as alive.
INSERT INTO workers (worker_id, host, pid, concurrency)
VALUES ($1, $2, $3, $4)
ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now();

-- name: heartbeat
-- Renews worker $1's liveness row and the leases of the runs it still holds.
-- Returns the runs renewed: a held run missing from the result was taken
-- away (swept, cancelled) and its execution must stop.
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

-- name: unregister_worker
-- Removes worker $1's liveness row (a clean exit).
DELETE FROM workers WHERE worker_id = $1;

-- name: sweep
-- Requeues or fails runs whose heartbeat is older than $1; drops dead workers.
SELECT requeued, failed, workers_removed FROM pgqueue_sweep($1::interval);

-- name: has_pg_cron
-- Whether the pg_cron extension is installed in this database.
SELECT to_regclass('cron.job') IS NOT NULL;

-- name: create_pg_cron
-- Installs the pg_cron extension (needs it in shared_preload_libraries).
CREATE EXTENSION IF NOT EXISTS pg_cron;

-- name: install_sweep_cron
-- Schedules the sweep as pg_cron job pgqueue-sweep: schedule $1, window $2.
-- pg_cron 1.4 schedules per minute; the job calls the same sweep function.
SELECT cron.schedule('pgqueue-sweep', $1::text,
                     format('SELECT * FROM pgqueue_sweep(%L::interval)', $2::text));

-- name: uninstall_cron
-- Removes pg_cron job $1 (pgqueue-sweep or pgqueue-prune).
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1;
