-- Settings on a connection rather than rows: the lease a run's psycopg
-- connection writes under (read by the pgqueue_fence trigger on the
-- checkpoint and event tables) and how durably it commits; and the
-- readiness probe.

-- name: set_lease
-- Names this connection's lease ('run_id:attempt:worker_id') for pgqueue_fence.
-- Session-wide: the connection serves this one run attempt, and the next
-- run on a pooled connection names its own before it writes.
SELECT set_config('pgqueue.lease', $1, false);

-- name: bind_run
-- Binds a pooled connection to one run attempt: lease $1, synchronous_commit $2.
-- Durability 'sync' waits for the WAL flush at each checkpoint and event
-- commit; 'async' and 'exit' do not (as LangGraph's own 'async' may lose the
-- last checkpoint): the run's final status always waits (commit_durably),
-- and that flush makes every earlier commit on the connection durable too.
SELECT set_config('pgqueue.lease', $1, false), set_config('synchronous_commit', $2, false);

-- name: commit_durably
-- Makes the current transaction wait for the WAL flush at commit.
-- The first statement of a pipelined transaction that must survive a
-- database crash once it commits (a run's final status).
SELECT set_config('synchronous_commit', 'on', true);

-- name: ping
-- Readiness: the database answers.
SELECT 1;
