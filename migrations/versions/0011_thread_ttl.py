"""Thread TTLs: a thread expires its TTL after its last update, and the
pruner then deletes it or keeps only its latest checkpoint.

Revision ID: 0011_thread_ttl
Revises: 0010_authorization
Create Date: 2026-12-07

A thread's TTL is a strategy (``delete`` | ``keep_latest``) and minutes,
given on create or update, or langgraph.json's ``checkpointer.ttl`` default
for a thread created without one. ``expires_at`` is the thread's
``updated_at`` plus its TTL, kept by a trigger on every insert and update
that moves either (a run, a state update or a metadata patch renews it), so
a thread in use does not expire, and the pruner finds expired threads in an
index. The default lives in ``pgqueue_defaults`` (written by the server at
start from langgraph.json), so every way a thread is created (the API, a run
on a new thread, a copy) gets it from the same trigger.

Expand only: new nullable columns, a new table and a trigger that fills
them. Workers and servers of 0010 keep running against it.
"""

from __future__ import annotations

from alembic import op

revision = "0011_thread_ttl"
down_revision = "0010_authorization"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE threads
    ADD COLUMN ttl_strategy text CHECK (ttl_strategy IN ('delete', 'keep_latest')),
    ADD COLUMN ttl_minutes double precision CHECK (ttl_minutes > 0),
    ADD COLUMN expires_at timestamptz,
    ADD CONSTRAINT threads_ttl_whole CHECK ((ttl_strategy IS NULL) = (ttl_minutes IS NULL));

CREATE INDEX threads_expires_at_idx ON threads (expires_at) WHERE expires_at IS NOT NULL;

-- Deployment-wide defaults the database applies itself. 'thread_ttl':
-- {"strategy": ..., "default_ttl": minutes}, from langgraph.json.
CREATE TABLE pgqueue_defaults (
    name  text PRIMARY KEY,
    value jsonb NOT NULL
);

CREATE FUNCTION pgqueue_thread_expiry() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    fallback jsonb;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.ttl_minutes IS NULL THEN
        SELECT value INTO fallback FROM pgqueue_defaults WHERE name = 'thread_ttl';
        IF fallback IS NOT NULL THEN
            NEW.ttl_strategy := fallback->>'strategy';
            NEW.ttl_minutes := (fallback->>'default_ttl')::double precision;
        END IF;
    END IF;
    -- NULL without a TTL. Untouched otherwise: the pruner clears it once a
    -- keep_latest thread is pruned, until the thread is used again.
    IF TG_OP = 'INSERT' OR NEW.updated_at IS DISTINCT FROM OLD.updated_at
            OR NEW.ttl_minutes IS DISTINCT FROM OLD.ttl_minutes
            OR NEW.ttl_strategy IS DISTINCT FROM OLD.ttl_strategy THEN
        NEW.expires_at := NEW.updated_at + make_interval(secs => NEW.ttl_minutes * 60);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER pgqueue_thread_expiry BEFORE INSERT ON threads
    FOR EACH ROW EXECUTE FUNCTION pgqueue_thread_expiry();
-- Every run updates its thread twice (submit, settle): a thread without a
-- TTL, the usual one, does not call the function for it.
CREATE TRIGGER pgqueue_thread_expiry_renewed BEFORE UPDATE ON threads
    FOR EACH ROW WHEN (OLD.ttl_minutes IS NOT NULL OR NEW.ttl_minutes IS NOT NULL)
    EXECUTE FUNCTION pgqueue_thread_expiry();

-- The pruner's turn, which each of its batches takes first (retention.sql):
-- true if no other session's batch holds it; the lock goes at commit. A
-- batch commits without waiting for the WAL flush: one a crash loses is
-- deleted again by the next pass, and the workers' commits do not queue
-- behind the WAL of its deletes.
CREATE FUNCTION pgqueue_prune_turn() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN pg_try_advisory_xact_lock(hashtextextended('pgqueue.prune', 0));
END
$$;

-- Whether a run of thread p_thread_id is pending or running (a function,
-- not a subquery in the view below: the view stays over one relation, which
-- PostgreSQL 15 and 16 print alike, and which FOR UPDATE can lock).
CREATE FUNCTION pgqueue_thread_has_live_run(p_thread_id uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT FROM runs
        WHERE thread_id = p_thread_id AND status IN ('pending', 'running'))
$$;

-- Threads whose TTL has run out and that no live run uses: what the pruner
-- takes next (and what an operator can look at).
CREATE VIEW pgqueue_expired_threads AS
SELECT thread_id, ttl_strategy, ttl_minutes, expires_at
FROM threads
WHERE expires_at < now() AND status <> 'busy' AND NOT pgqueue_thread_has_live_run(thread_id);
"""

DOWNGRADE = """
DROP VIEW pgqueue_expired_threads;
DROP FUNCTION pgqueue_thread_has_live_run(uuid);
DROP FUNCTION pgqueue_prune_turn();
DROP TRIGGER pgqueue_thread_expiry_renewed ON threads;
DROP TRIGGER pgqueue_thread_expiry ON threads;
DROP FUNCTION pgqueue_thread_expiry();
DROP TABLE pgqueue_defaults;
DROP INDEX threads_expires_at_idx;
ALTER TABLE threads
    DROP CONSTRAINT threads_ttl_whole,
    DROP COLUMN expires_at,
    DROP COLUMN ttl_minutes,
    DROP COLUMN ttl_strategy;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
