-- What the pruner (pgqueue/maintenance/pruner.py) deletes, a batch per
-- statement: each is its own short transaction, so no lock is held for
-- long and vacuum can reclaim what went. Each batch first takes the
-- pruning turn (a transaction-level advisory lock): any number of
-- processes run the pruner, one deletes at a time, and the others' passes
-- end at once ("mine" false) instead of contending for the same rows.

-- name: prune_events
-- Deletes up to $2 events of runs that ended more than $1 ago.
WITH turn AS (
    SELECT pg_try_advisory_xact_lock(hashtextextended('pgqueue.prune', 0)) AS mine
), deleted AS (
    DELETE FROM run_events e
    USING (
        SELECT e2.run_id, e2.seq FROM run_events e2
        JOIN runs r ON r.run_id = e2.run_id
        WHERE r.ended_at < now() - $1::interval AND (SELECT mine FROM turn)
        LIMIT $2
    ) old
    WHERE e.run_id = old.run_id AND e.seq = old.seq
    RETURNING 1
)
SELECT (SELECT mine FROM turn) AS mine, (SELECT count(*) FROM deleted) AS deleted;

-- name: prune_runs
-- Deletes up to $2 runs that ended more than $1 ago, oldest first, with
-- their events (ON DELETE CASCADE). Never deleted, whatever its age: a
-- thread's newest run (what the thread's status, its join and the SDK's
-- thread views read); nor a run that has not ended. A run another session
-- holds (a cancel being written, say) is skipped until the next pass.
WITH turn AS (
    SELECT pg_try_advisory_xact_lock(hashtextextended('pgqueue.prune', 0)) AS mine
), doomed AS (
    SELECT o.run_id FROM runs o
    WHERE o.ended_at < now() - $1::interval
      AND o.status NOT IN ('pending', 'running')
      AND (o.thread_id IS NULL OR EXISTS (
          SELECT FROM runs n WHERE n.thread_id = o.thread_id AND n.seq > o.seq))
      AND (SELECT mine FROM turn)
    ORDER BY o.ended_at
    LIMIT $2
    FOR UPDATE OF o SKIP LOCKED
), deleted AS (
    DELETE FROM runs r USING doomed WHERE r.run_id = doomed.run_id
    RETURNING 1
)
SELECT (SELECT mine FROM turn) AS mine, (SELECT count(*) FROM deleted) AS deleted;
