-- What the pruner (pgqueue/maintenance/pruner.py) deletes, a batch per
-- statement: each is its own short transaction, so no lock is held for
-- long and vacuum can reclaim what went. The batches are SQL functions
-- (migration 0012) that the pg_cron job's procedure, pgqueue_prune(),
-- calls too. Each batch first takes the pruning turn (pgqueue_prune_turn(),
-- migration 0011: a transaction-level advisory lock, and no wait for the
-- WAL flush at commit): any number of processes run the pruner, one
-- deletes at a time, and the others' passes end at once ("mine" false)
-- instead of contending for the same rows. Each batch also returns a
-- cursor, where the next one starts (why: migration 0012).

-- name: prune_events
-- Deletes up to $2 events of runs that ended more than $1 ago, in run_id
-- order from run $3 on (NULL: the first); cursor: the last run reached.
SELECT mine, deleted, reached AS cursor FROM pgqueue_prune_events($1::interval, $2, $3::uuid);

-- name: prune_runs
-- Deletes up to $2 runs that ended more than $1 ago, oldest first from end
-- time $3 on (NULL: the first), with their events; each thread's newest
-- run and runs that have not ended stay. cursor: the latest end deleted.
SELECT mine, deleted, reached AS cursor
FROM pgqueue_prune_runs($1::interval, $2, $3::timestamptz);

-- name: delete_expired_threads
-- Deletes up to $1 threads whose TTL (strategy delete) has run out and no
-- live run uses, oldest expiry first from $2 on (NULL: the first), with
-- their runs, crons, events and checkpoints. deleted: their ids (text);
-- cursor: the latest expiry deleted.
SELECT mine, deleted, reached AS cursor FROM pgqueue_prune_expired_threads($1, $2::timestamptz);

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
-- The next $1 threads with checkpoint blobs or writes (from where the last
-- batch of any process stopped): deletes the blobs and writes no remaining
-- checkpoint needs, on those no live run uses. threads: how many were
-- looked at; fewer than $1: the round is done.
SELECT mine, deleted, threads FROM pgqueue_prune_checkpoint_garbage($1);

-- name: install_prune_cron
-- Schedules the pruner's pass as pg_cron job pgqueue-prune: schedule $1,
-- finished runs kept $2 (an interval's text), pause ratio $3 (PrunerConfig's;
-- the procedure's own default is the same since migration 0014, and
-- test_prune_procedure holds the two together). The procedure commits
-- after each batch, so the job is no long transaction.
SELECT cron.schedule('pgqueue-prune', $1::text,
                     format('CALL pgqueue_prune(run_retention => %L::interval, pause_ratio => %L)',
                            $2::text, $3::double precision));
