-- Settings on a connection rather than rows: the lease a run's psycopg
-- connection writes under (read by the pgqueue_fence trigger on the
-- checkpoint and event tables) and how durably it commits; and the
-- readiness probe.

-- name: set_lease
-- Names this connection's lease ('run_id:attempt:worker_id') for pgqueue_fence.
-- Session-wide, on a connection that serves this one run attempt alone
-- (FencedPostgresSaver.for_run); each transaction names it again anyway.
SELECT set_config('pgqueue.lease', $1, false);

-- name: bind_transaction
-- The first statement of each of a run's transactions: names its lease $1
-- (checked by pgqueue_fence) and synchronous_commit $2, for this transaction
-- only, as the connection may serve another run next.
-- Durability 'sync' waits for the WAL flush at each checkpoint and event
-- commit; 'async' and 'exit' do not (as LangGraph's own 'async' may lose the
-- last checkpoint): the run's final status always waits (commit_durably),
-- and that flush makes every earlier commit durable too (the WAL is one).
SELECT set_config('pgqueue.lease', $1, true), set_config('synchronous_commit', $2, true);

-- name: commit_durably
-- Makes the current transaction wait for the WAL flush at commit.
-- The first statement of a pipelined transaction that must survive a
-- database crash once it commits (a run's final status).
SELECT set_config('synchronous_commit', 'on', true);

-- name: ping
-- Readiness: the database answers.
SELECT 1;
