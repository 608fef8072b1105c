-- Crons: schedules the HTTP API stores and the scheduler fires. A tick
-- fires at most once across processes because the scheduler claims due rows
-- FOR UPDATE SKIP LOCKED and moves next_run_at on in the same transaction
-- that submits the run.
-- Every statement a request reaches takes the Auth's filter as a jsonb
-- parameter (pgqueue_auth_match, migration 0010; NULL: every row) on the
-- cron's own metadata, so a cron it hides answers exactly as a missing one.
-- Searches test for NULL first: the function is plpgsql (never inlined),
-- so without an Auth no row pays for a call.

-- name: insert_cron
-- Stores a new cron and returns it; $10 is the user its runs run as.
-- A thread cron ($3 not NULL) is stored only if its thread exists and the
-- request's threads.create_run filter $11 lets it see the thread: no row
-- back otherwise, answered as a missing thread.
INSERT INTO crons (cron_id, assistant_id, thread_id, schedule, payload, metadata, user_id,
                   end_time, next_run_at, auth_user)
SELECT $1, $2, $3::uuid, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10::jsonb
WHERE $3::uuid IS NULL
   OR EXISTS (SELECT 1 FROM threads t
              WHERE t.thread_id = $3::uuid AND pgqueue_auth_match(t.metadata, $11::jsonb))
RETURNING cron_id, assistant_id, thread_id, schedule, payload, metadata, user_id, end_time,
          next_run_at, created_at, updated_at;

-- name: lock_cron
-- Cron $1, if the Auth's filter $2 lets the request see it, locked for an update.
-- PATCH waits here for a scheduler pass that holds the row, so an edit
-- never interleaves with a tick.
SELECT cron_id, assistant_id, thread_id, schedule, payload, metadata, user_id, end_time,
       next_run_at, created_at, updated_at
FROM crons WHERE cron_id = $1 AND pgqueue_auth_match(metadata, $2::jsonb)
FOR UPDATE;

-- name: update_cron
-- Writes cron $1's new schedule, payload, metadata, end and next tick.
-- internal: runs after lock_cron, which applied the filter, in the same
-- transaction (the row is locked in between).
UPDATE crons
SET schedule = $2, payload = $3::jsonb, metadata = $4::jsonb, end_time = $5, next_run_at = $6,
    updated_at = now()
WHERE cron_id = $1
RETURNING cron_id, assistant_id, thread_id, schedule, payload, metadata, user_id, end_time,
          next_run_at, created_at, updated_at;

-- name: delete_cron
-- Deletes cron $1 if the Auth's filter $2 lets the request see it.
-- The scheduler ends crons with it too, passing NULL (every row).
DELETE FROM crons WHERE cron_id = $1 AND pgqueue_auth_match(metadata, $2::jsonb)
RETURNING cron_id;

-- name: search_crons
-- A page of crons matching the filters, sorted.
-- Filters are skipped when NULL. Sorting by a column the client names
-- without formatting SQL: one CASE per column type and direction; the
-- branches that do not apply are NULL for every row and so do not reorder.
-- $4 (enabled) reads the payload: the table has no column for it. $9: the
-- Auth's filter (hidden crons are neither listed nor counted).
SELECT cron_id, assistant_id, thread_id, schedule, payload, metadata, user_id, end_time,
       next_run_at, created_at, updated_at
FROM crons
WHERE ($1::uuid IS NULL OR assistant_id = $1)
  AND ($2::uuid IS NULL OR thread_id = $2)
  AND ($3::jsonb IS NULL OR metadata @> $3::jsonb)
  AND ($4::boolean IS NULL OR coalesce((payload->>'enabled')::boolean, true) = $4)
  AND ($9::jsonb IS NULL OR pgqueue_auth_match(metadata, $9::jsonb))
ORDER BY
  CASE WHEN $6::text = 'asc' THEN
    CASE $5::text WHEN 'created_at' THEN created_at WHEN 'updated_at' THEN updated_at
                  WHEN 'next_run_date' THEN next_run_at WHEN 'end_time' THEN end_time END
  END ASC,
  CASE WHEN $6::text = 'desc' THEN
    CASE $5::text WHEN 'created_at' THEN created_at WHEN 'updated_at' THEN updated_at
                  WHEN 'next_run_date' THEN next_run_at WHEN 'end_time' THEN end_time END
  END DESC,
  CASE WHEN $6::text = 'asc' THEN
    CASE $5::text WHEN 'cron_id' THEN cron_id WHEN 'assistant_id' THEN assistant_id
                  WHEN 'thread_id' THEN thread_id END
  END ASC,
  CASE WHEN $6::text = 'desc' THEN
    CASE $5::text WHEN 'cron_id' THEN cron_id WHEN 'assistant_id' THEN assistant_id
                  WHEN 'thread_id' THEN thread_id END
  END DESC,
  cron_id
LIMIT $7 OFFSET $8;

-- name: count_crons
-- How many crons match search_crons' filters $1-$3, under the Auth's filter $4.
SELECT count(*) FROM crons
WHERE ($1::uuid IS NULL OR assistant_id = $1)
  AND ($2::uuid IS NULL OR thread_id = $2)
  AND ($3::jsonb IS NULL OR metadata @> $3::jsonb)
  AND ($4::jsonb IS NULL OR pgqueue_auth_match(metadata, $4::jsonb));

-- name: claim_due_crons
-- Locks up to $1 crons that are due, earliest first, skipping locked ones.
-- The scheduler's only scan (crons_next_run_at_idx). Rows another process
-- is firing are skipped, not waited for; "now" is the database's, so every
-- process computes the next tick from the same clock.
-- internal: the scheduler's; no request reaches it.
SELECT cron_id, assistant_id, thread_id, schedule, payload, end_time, next_run_at, auth_user,
       now() AS now
FROM crons
WHERE next_run_at <= now()
ORDER BY next_run_at
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: advance_cron
-- Moves cron $1's next tick to $2.
-- internal: the scheduler's, on a row claim_due_crons locked.
UPDATE crons SET next_run_at = $2 WHERE cron_id = $1;

-- name: tag_thread
-- Merges tag $2 into thread $1's metadata.
-- A stateless cron's thread says which cron made it, and a temporary thread
-- (on_completion=delete) that it is one, so any process can clean it up once
-- its run ends, even if the one that made it is gone.
-- internal: tags only a thread its caller just made in the same transaction
-- (a stateless cron's tick, a stateless run), never one a request names.
UPDATE threads SET metadata = metadata || $2::jsonb WHERE thread_id = $1;

-- name: list_ended_temporary_threads
-- Up to $2 temporary threads (tagged $1) whose runs ended $3+ seconds ago.
-- Tagged by a stateless cron or a stateless run, with no live run left (a
-- containment match served by threads_metadata_idx).
-- internal: the scheduler's cleanup; no request reaches it.
SELECT t.thread_id FROM threads t
WHERE t.metadata @> $1::jsonb
  AND t.status <> 'busy'
  AND NOT EXISTS (SELECT 1 FROM runs r
                  WHERE r.thread_id = t.thread_id
                    AND (r.status IN ('pending', 'running')
                         OR r.ended_at > now() - make_interval(secs => $3::float8)))
LIMIT $2;
