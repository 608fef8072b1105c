-- What /metrics reads from the database at each scrape (pgqueue/observe):
-- read from the rows, not counted in memory, so that every process reports
-- the same numbers and a scrape of any one of them is the whole truth.

-- name: observe_runs_by_status
-- How many runs are in each status (statuses with none are absent).
SELECT status, count(*) AS runs FROM runs GROUP BY status;

-- name: observe_queue
-- Pending runs ready and delayed; how long the ready ones have waited
-- (seconds since created, due, or handed back: max and median); live
-- workers, their slots (summed concurrency) and the runs they hold; and
-- running runs whose lease ran out, not swept yet.
WITH pending AS (
    SELECT not_before <= now() AS ready,
           extract(epoch FROM now() - greatest(created_at, not_before))::float8 AS waited
    FROM runs WHERE status = 'pending'
), live AS (
    SELECT concurrency, running FROM pgqueue_workers WHERE alive
)
SELECT
    (SELECT count(*) FROM pending WHERE ready) AS ready,
    (SELECT count(*) FROM pending WHERE NOT ready) AS delayed,
    (SELECT coalesce(max(waited), 0) FROM pending WHERE ready) AS wait_max,
    (SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY waited), 0)
     FROM pending WHERE ready) AS wait_median,
    (SELECT count(*) FROM live) AS workers,
    (SELECT coalesce(sum(concurrency), 0)::bigint FROM live) AS slots,
    (SELECT coalesce(sum(running), 0)::bigint FROM live) AS busy,
    (SELECT count(*) FROM pgqueue_stale_runs) AS stale;
