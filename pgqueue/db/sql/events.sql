-- A run's stream events (the run_events table): written by the run's own
-- connection in batches (pgqueue/execution/events.py), read by streams, and
-- pruned after the run ended.

-- name: insert_events
-- Writes a batch of run $1's events for attempt $2, then announces the last seq.
-- $3: the batch as one JSON array of [seq, event, data] triples, built as
-- text by the writer (each data is already JSON): one parameter to send,
-- where three arrays had the driver adapt every element (14% of a
-- streaming server's samples). Fenced by the table's pgqueue_fence
-- trigger; the NOTIFY payload is small (run and seq), readers fetch the
-- rows.
WITH inserted AS (
    INSERT INTO run_events (run_id, seq, attempt, event, data)
    SELECT $1, (t.e ->> 0)::bigint, $2, t.e ->> 1, t.e -> 2
    FROM jsonb_array_elements($3::jsonb) AS t(e)
    RETURNING seq
)
SELECT pg_notify('pgqueue_events', $1::text || ':' || max(seq)) FROM inserted;

-- name: insert_events_fenced
-- insert_events on a connection of its own (asyncpg, one statement): the
-- lease of worker $4 is asserted first, in the statement itself (SQLSTATE
-- PGQ01 if lost), and holds the run's row until commit, as the fence
-- trigger's check does. The trigger fires before the statement and finds
-- no lease setting; the statement then names its lease transaction-locally
-- all the same, so the write is attributable like every other fenced one
-- (row triggers and audits read pgqueue.lease). Its commit waits for the
-- WAL flush or not ($5: synchronous_commit, read at commit), as the run's
-- other transactions do.
-- What a batch of events costs when no checkpoint waits to go with it:
-- about half the client CPU of a psycopg pipeline.
WITH lease AS (
    SELECT pgqueue_assert_lease($1, $2, $4),
           set_config('pgqueue.lease', $1::text || ':' || $2::text || ':' || $4, true),
           set_config('synchronous_commit', $5, true)
), inserted AS (
    INSERT INTO run_events (run_id, seq, attempt, event, data)
    SELECT $1, (t.e ->> 0)::bigint, $2, t.e ->> 1, t.e -> 2
    FROM jsonb_array_elements($3::jsonb) AS t(e)
    WHERE EXISTS (SELECT FROM lease)
    RETURNING seq
)
SELECT pg_notify('pgqueue_events', $1::text || ':' || max(seq)) FROM inserted;

-- name: last_event_seq
-- The highest event seq of run $1 (0: none yet).
-- Where a resumed attempt's numbering goes on, and where a stream joined
-- without Last-Event-ID starts.
SELECT coalesce(max(seq), 0) AS seq FROM run_events WHERE run_id = $1;

-- name: read_events
-- Up to $3 of run $1's events after seq $2, in order, each with the run's
-- status (no row: the run does not exist; a row with a NULL seq: no new
-- event). One snapshot: once the status is final, every event written
-- before or with it is in this read (or the next, past $3).
SELECT r.status, e.seq, e.event, e.data
FROM runs r
LEFT JOIN LATERAL (
    SELECT seq, event, data FROM run_events
    WHERE run_id = r.run_id AND seq > $2
    ORDER BY seq
    LIMIT $3
) e ON true
WHERE r.run_id = $1
ORDER BY e.seq;
