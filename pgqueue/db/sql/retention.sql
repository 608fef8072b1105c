-- What the pruner (pgqueue/maintenance/pruner.py) deletes, a batch per
-- statement: each is its own short transaction, so no lock is held for
-- long and vacuum can reclaim what went. Each batch first takes the
-- pruning turn (pgqueue_prune_turn(), migration 0011: a transaction-level
-- advisory lock, and no wait for the WAL flush at commit): any number of
-- processes run the pruner, one deletes at a time, and the others' passes
-- end at once ("mine" false) instead of contending for the same rows.
--
-- Each batch also returns a cursor, where the next one starts: the rows a
-- batch deletes stay in the indexes as dead entries until vacuum, and a
-- batch that scanned from the start again would walk all of them (a
-- million-run history took 1-3 s per batch that way, bench/retention.py).

-- name: prune_events
-- Deletes up to $2 events of runs that ended more than $1 ago, in run_id
-- order from run $3 on (NULL: the first); cursor: the last run reached.
WITH turn AS (
    SELECT pgqueue_prune_turn() AS mine
), old AS (
    SELECT e2.run_id, e2.seq FROM run_events e2
    JOIN runs r ON r.run_id = e2.run_id
    WHERE r.ended_at < now() - $1::interval AND (SELECT mine FROM turn)
      AND e2.run_id >= coalesce($3::uuid, '00000000-0000-0000-0000-000000000000')
      AND r.run_id >= coalesce($3::uuid, '00000000-0000-0000-0000-000000000000')
    ORDER BY e2.run_id, e2.seq
    LIMIT $2
), deleted AS (
    DELETE FROM run_events e USING old WHERE e.run_id = old.run_id AND e.seq = old.seq
    RETURNING 1
)
SELECT (SELECT mine FROM turn) AS mine, (SELECT count(*) FROM deleted) AS deleted,
       (SELECT run_id FROM old ORDER BY run_id DESC LIMIT 1) AS cursor;

-- name: prune_runs
-- Deletes up to $2 runs that ended more than $1 ago, oldest first from end
-- time $3 on (NULL: the first), with their events (ON DELETE CASCADE);
-- cursor: the latest end deleted. Never deleted, whatever its age: a
-- thread's newest run (what the thread's status, its join and the SDK's
-- thread views read); nor a run that has not ended. A run another session
-- holds (a cancel being written, say) is skipped until the next pass.
WITH turn AS (
    SELECT pgqueue_prune_turn() AS mine
), doomed AS (
    SELECT o.run_id, o.ended_at FROM runs o
    WHERE o.ended_at < now() - $1::interval
      AND o.ended_at >= coalesce($3::timestamptz, '-infinity')
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
SELECT (SELECT mine FROM turn) AS mine, (SELECT count(*) FROM deleted) AS deleted,
       (SELECT max(ended_at) FROM doomed) AS cursor;

-- name: delete_expired_threads
-- Deletes up to $1 threads whose TTL (strategy delete) has run out, oldest
-- expiry first from $2 on (NULL: the first), with their runs, crons and
-- events by cascade; the caller deletes their checkpoints next, in the
-- same transaction (delete_thread_checkpoints). cursor: the latest expiry
-- deleted. Only threads with no live run: a submit marks its thread busy
-- under the row lock taken here, so none starts on a thread while it goes,
-- and one that came first renewed the TTL.
WITH turn AS (
    SELECT pgqueue_prune_turn() AS mine
), doomed AS (
    SELECT x.thread_id, x.expires_at FROM pgqueue_expired_threads x
    WHERE x.ttl_strategy = 'delete'
      AND x.expires_at >= coalesce($2::timestamptz, '-infinity')
      AND (SELECT mine FROM turn)
    ORDER BY x.expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM threads t USING doomed WHERE t.thread_id = doomed.thread_id
    RETURNING t.thread_id::text AS thread_id
)
SELECT (SELECT mine FROM turn) AS mine, array(SELECT thread_id FROM deleted) AS deleted,
       (SELECT max(expires_at) FROM doomed) AS cursor;

-- name: expired_keep_latest_threads
-- Up to $1 threads whose TTL (strategy keep_latest) has run out and that no
-- live run uses: the caller prunes their checkpoints to the latest, then
-- marks them done (pruned_keep_latest).
WITH turn AS (
    SELECT pgqueue_prune_turn() AS mine
)
SELECT (SELECT mine FROM turn) AS mine, array(
    SELECT x.thread_id::text FROM pgqueue_expired_threads x
    WHERE x.ttl_strategy = 'keep_latest' AND (SELECT mine FROM turn)
    ORDER BY x.expires_at
    LIMIT $1
) AS expired;

-- name: pruned_keep_latest
-- Threads $1 (text ids) kept only their latest checkpoints: no expiry until
-- they are used again (the expiry trigger sets it anew when updated_at
-- moves). Those used meanwhile kept their new expiry.
UPDATE threads SET expires_at = NULL
WHERE thread_id = ANY($1::uuid[]) AND expires_at < now();

-- name: prune_checkpoint_garbage
-- Of the next $1 threads with checkpoint blobs or writes after thread $2
-- (text, NULL: the first), those no live run uses: deletes their blobs no
-- remaining checkpoint names in its channel_versions, and their writes
-- whose checkpoint is gone. A cancel with rollback deletes a run's
-- checkpoints and writes but leaves their blobs (pgqueue_delete_run_
-- checkpoints); langgraph never deletes one. A thread a run is writing is
-- skipped: its blobs may be committed before the checkpoint naming them.
-- cursor: the last thread looked at (NULL once past the last one).
WITH turn AS (
    SELECT pgqueue_prune_turn() AS mine
), scope AS (
    SELECT thread_id FROM (
        (SELECT DISTINCT thread_id FROM checkpoint_blobs
         WHERE thread_id > coalesce($2, '') ORDER BY thread_id LIMIT $1)
        UNION
        (SELECT DISTINCT thread_id FROM checkpoint_writes
         WHERE thread_id > coalesce($2, '') ORDER BY thread_id LIMIT $1)
    ) candidates
    WHERE (SELECT mine FROM turn)
    ORDER BY thread_id
    LIMIT $1
), quiet AS (
    SELECT s.thread_id FROM scope s
    WHERE NOT EXISTS (
        SELECT FROM runs r
        WHERE r.thread_id::text = s.thread_id AND r.status IN ('pending', 'running'))
), blobs AS (
    DELETE FROM checkpoint_blobs b USING quiet q
    WHERE b.thread_id = q.thread_id
      AND NOT EXISTS (
          SELECT FROM checkpoints c
          WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
            AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)
    RETURNING 1
), writes AS (
    DELETE FROM checkpoint_writes w USING quiet q
    WHERE w.thread_id = q.thread_id
      AND NOT EXISTS (
          SELECT FROM checkpoints c
          WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
            AND c.checkpoint_id = w.checkpoint_id)
    RETURNING 1
)
SELECT (SELECT mine FROM turn) AS mine,
       (SELECT count(*) FROM blobs) + (SELECT count(*) FROM writes) AS deleted,
       (SELECT count(*) FROM scope) AS threads,
       (SELECT max(thread_id) FROM scope) AS cursor;
