-- Threads as the HTTP API reads and writes them (pgqueue/resources/threads.py,
-- thread_state.py), the state a run's end leaves on its thread, and the
-- checkpoint rows that go with a thread (copy, delete). Checkpoint tables
-- key threads by their id as text. jsonb travels as JSON text.

-- name: create_thread
-- Creates thread $1 with metadata $2 and TTL $3 strategy, $4 minutes (NULL:
-- the default, if any; see migration 0011); no row back when the id is
-- taken. The caller answers 409, or the existing thread with
-- if_exists=do_nothing.
-- internal: an insert; the route asked threads.create first (its handler
-- stamps the metadata), and an existing thread is read back through
-- get_thread with that filter.
INSERT INTO threads (thread_id, metadata, ttl_strategy, ttl_minutes)
VALUES ($1, $2::jsonb, $3, $4)
ON CONFLICT (thread_id) DO NOTHING
RETURNING thread_id, created_at, updated_at, state_updated_at, metadata, status, config,
          state_values, interrupts, error;

-- name: get_thread
-- Thread $1 as the API shows it, if filter $2 lets the request see it,
-- with its TTL (shown on request: ?include=ttl).
SELECT thread_id, created_at, updated_at, state_updated_at, metadata, status, config,
       state_values, interrupts, error, ttl_strategy, ttl_minutes, expires_at
FROM threads WHERE thread_id = $1 AND ($2::jsonb IS NULL OR pgqueue_auth_match(metadata, $2::jsonb));

-- name: update_thread_metadata
-- Merges $2 into thread $1's metadata (a PATCH), if filter $3 allows, and
-- sets its TTL to $4 strategy, $5 minutes if given. PATCH merges: keys
-- given replace theirs, others stay. The TTL runs from now either way.
UPDATE threads SET metadata = metadata || $2::jsonb, updated_at = now(),
    ttl_strategy = coalesce($4, ttl_strategy), ttl_minutes = coalesce($5, ttl_minutes)
WHERE thread_id = $1 AND ($3::jsonb IS NULL OR pgqueue_auth_match(metadata, $3::jsonb))
RETURNING thread_id, created_at, updated_at, state_updated_at, metadata, status, config,
          state_values, interrupts, error;

-- name: visible_threads
-- Those of threads $1 that filter $2 lets the request see (to delete them).
-- No lock: deleting locks runs before threads (the order workers lock
-- in); the statements that follow in the transaction take the ids.
SELECT thread_id FROM threads
WHERE thread_id = ANY($1::uuid[]) AND ($2::jsonb IS NULL OR pgqueue_auth_match(metadata, $2::jsonb));

-- name: lock_thread_live_runs
-- Locks the live runs of threads $1 before they are deleted, stopping them.
-- internal: $1 comes from visible_threads, in the same transaction.
-- Before deleting threads: lock their live runs (runs before threads, the
-- order workers lock in), which also holds off their checkpoint writes (the
-- fence takes the run row FOR SHARE), and tell the workers of running ones
-- to stop (delivered at commit, when the rows are gone).
SELECT run_id, status,
       CASE WHEN status = 'running'
            THEN pg_notify('pgqueue_cancel', run_id::text || ':interrupt') END AS told
FROM runs
WHERE thread_id = ANY($1::uuid[]) AND status IN ('pending', 'running')
ORDER BY run_id
FOR UPDATE;

-- name: delete_threads
-- Deletes threads $1; their runs (and the runs' events) go by cascade.
-- internal: $1 comes from visible_threads, in the same transaction.
DELETE FROM threads WHERE thread_id = ANY($1::uuid[]) RETURNING thread_id;

-- name: delete_thread_checkpoints
-- Deletes the checkpoints, blobs and writes of threads $1.
-- $1 text[]: thread ids as the checkpoint tables store them.
-- internal: the ids delete_threads just deleted.
WITH writes AS (
    DELETE FROM checkpoint_writes WHERE thread_id = ANY($1::text[])
), blobs AS (
    DELETE FROM checkpoint_blobs WHERE thread_id = ANY($1::text[])
)
DELETE FROM checkpoints WHERE thread_id = ANY($1::text[]);

-- name: search_threads
-- A page of threads matching the filters, sorted, with the total count.
-- $1 metadata containment, $2 values containment, $3 ids, $4 status,
-- $5 the authorization filter, $6 sort column, $7 'asc' | 'desc', $8 limit,
-- $9 offset; NULL filters match all. Sorted by CASE so the text stays
-- fixed; timestamps and text sort in separate expressions to keep their
-- types. total counts every match. The authorization filter goes through
-- pgqueue_auth_match_indexed: an owner's threads are found in the metadata
-- index, not by checking every thread.
SELECT thread_id, created_at, updated_at, state_updated_at, metadata, status, config,
       state_values, interrupts, error, count(*) OVER () AS total
FROM threads
WHERE ($1::jsonb IS NULL OR metadata @> $1::jsonb)
  AND ($2::jsonb IS NULL OR state_values @> $2::jsonb)
  AND ($3::uuid[] IS NULL OR thread_id = ANY($3::uuid[]))
  AND ($4::text IS NULL OR status = $4)
  AND ($5::jsonb IS NULL OR pgqueue_auth_match_indexed(metadata, $5::jsonb))
ORDER BY
    CASE WHEN $7 = 'asc' THEN CASE $6 WHEN 'created_at' THEN created_at
                                      WHEN 'updated_at' THEN updated_at
                                      WHEN 'state_updated_at' THEN state_updated_at END END
        ASC NULLS FIRST,
    CASE WHEN $7 = 'desc' THEN CASE $6 WHEN 'created_at' THEN created_at
                                       WHEN 'updated_at' THEN updated_at
                                       WHEN 'state_updated_at' THEN state_updated_at END END
        DESC NULLS LAST,
    CASE WHEN $7 = 'asc' THEN CASE $6 WHEN 'thread_id' THEN thread_id::text
                                      WHEN 'status' THEN status END END ASC,
    CASE WHEN $7 = 'desc' THEN CASE $6 WHEN 'thread_id' THEN thread_id::text
                                       WHEN 'status' THEN status END END DESC,
    thread_id
LIMIT $8 OFFSET $9;

-- name: count_threads
-- How many threads match search_threads' filters $1-$5.
SELECT count(*) FROM threads
WHERE ($1::jsonb IS NULL OR metadata @> $1::jsonb)
  AND ($2::jsonb IS NULL OR state_values @> $2::jsonb)
  AND ($3::uuid[] IS NULL OR thread_id = ANY($3::uuid[]))
  AND ($4::text IS NULL OR status = $4)
  AND ($5::jsonb IS NULL OR pgqueue_auth_match_indexed(metadata, $5::jsonb));

-- name: copy_thread
-- Copies thread $1 to a new thread $2: metadata, config, values, checkpoints.
-- One statement, so one snapshot: a run writing on $1 meanwhile is copied
-- either before or after a checkpoint, never half of one. The copy has no
-- runs, so it is not busy. $3: the filter the source must pass; the
-- copy keeps the source's metadata (and so its owner).
WITH source AS (
    SELECT * FROM threads WHERE thread_id = $1::uuid AND ($3::jsonb IS NULL OR pgqueue_auth_match(metadata, $3::jsonb))
), copied AS (
    INSERT INTO threads (thread_id, status, metadata, config, interrupts, error,
                         state_values, state_updated_at)
    SELECT $2::uuid, CASE WHEN status = 'busy' THEN 'idle' ELSE status END, metadata, config,
           interrupts, error, state_values, state_updated_at
    FROM source
    RETURNING thread_id, created_at, updated_at, state_updated_at, metadata, status, config,
              state_values, interrupts, error
), checkpoints_copied AS (
    INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                             type, checkpoint, metadata)
    SELECT $2::uuid::text, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
           metadata
    FROM checkpoints WHERE thread_id = $1::uuid::text AND EXISTS (SELECT 1 FROM source)
), blobs_copied AS (
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT $2::uuid::text, checkpoint_ns, channel, version, type, blob
    FROM checkpoint_blobs WHERE thread_id = $1::uuid::text AND EXISTS (SELECT 1 FROM source)
), writes_copied AS (
    INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
                                   channel, type, blob, task_path)
    SELECT $2::uuid::text, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, task_path
    FROM checkpoint_writes WHERE thread_id = $1::uuid::text AND EXISTS (SELECT 1 FROM source)
)
SELECT * FROM copied;

-- name: get_thread_graph
-- The graphs thread $1's state may be read with, and whether a run is live.
-- Its metadata names them: graph_id (which every run on it writes, and
-- threads.create(graph_id=...) sets), else its assistant's graph. The
-- assistant's id comes back too: a graph's system assistant has no row.
-- $2: the filter the thread must pass.
SELECT t.thread_id,
       ARRAY[t.metadata ->> 'graph_id', ma.graph_id] AS graph_ids,
       t.metadata ->> 'assistant_id' AS assistant_id,
       EXISTS (SELECT 1 FROM runs l
               WHERE l.thread_id = t.thread_id AND l.status IN ('pending', 'running')) AS busy
FROM threads t
-- A key lookup (not a cast of every assistant id): metadata is free-form,
-- so only a UUID-shaped value is cast, and the CASE keeps others from it.
LEFT JOIN assistants ma ON ma.assistant_id = CASE
    WHEN t.metadata ->> 'assistant_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    THEN (t.metadata ->> 'assistant_id')::uuid END
WHERE t.thread_id = $1 AND ($2::jsonb IS NULL OR pgqueue_auth_match(t.metadata, $2::jsonb));

-- name: record_thread_state
-- Records thread $1's state after an update from the API.
-- Its values, interrupts and status ($4: interrupted or idle) as of its
-- new latest checkpoint.
-- internal: after get_thread_graph (filtered) in the same transaction.
UPDATE threads SET
    state_values = $2::jsonb,
    interrupts = $3::jsonb,
    status = $4,
    error = NULL,
    state_updated_at = now(),
    updated_at = now()
WHERE thread_id = $1
RETURNING thread_id;

-- name: record_thread_state_after_run
-- Records run $1's end on its thread (if attempt $2 ended with status $3).
-- Pipelined after complete_runs, in the same transaction, on the run's own
-- connection: the thread's latest values ($4) and interrupts ($5), written
-- only if that final write happened (the run now has this status at this
-- attempt: the fence), and a NOTIFY that the run ended, for joiners and
-- streams in any process. NULL values keep the thread's previous ones.
-- $6: the graph stopped with work left (an interrupt): a run that did so
-- succeeded, as on the platform, and its thread, once idle, is interrupted.
-- internal: a worker's final write, fenced by the run's lease.
WITH settled AS (
    UPDATE threads t SET
        state_values = coalesce($4::jsonb, t.state_values),
        interrupts = $5::jsonb,
        status = CASE WHEN t.status = 'idle' AND $6::boolean THEN 'interrupted' ELSE t.status END,
        state_updated_at = now()
    FROM runs r
    WHERE r.run_id = $1 AND r.attempt = $2 AND r.status = $3
      AND t.thread_id = r.thread_id
    RETURNING t.thread_id
)
SELECT pg_notify('pgqueue_events', $1::text || ':end');

-- name: set_thread_ttl_default
-- The TTL the database gives threads created without one (migration 0011's
-- trigger): $1 {"strategy", "default_ttl"} from langgraph.json, or NULL for
-- none. Written by every process that loads langgraph.json at start.
-- internal: a process's own start-up, no request.
WITH cleared AS (
    DELETE FROM pgqueue_defaults WHERE name = 'thread_ttl' AND $1::jsonb IS NULL
)
INSERT INTO pgqueue_defaults (name, value)
SELECT 'thread_ttl', $1::jsonb WHERE $1::jsonb IS NOT NULL
ON CONFLICT (name) DO UPDATE SET value = excluded.value;
