"""HTTP API state: thread values, crons, and LangGraph's key-value store.

Revision ID: 0005_http_api
Revises: 0004_run_events
Create Date: 2026-11-21

- ``threads.state_values``: the thread's latest values as of its last run or
  state update, so thread reads and searches need no checkpoint decoding.
- ``crons``: schedules stored in PostgreSQL; ``next_run_at`` is claimed with
  ``FOR UPDATE SKIP LOCKED``, so each tick fires once across processes.
- ``store``: langgraph's ``PostgresStore`` schema, applied from that
  package's own statements (pinned by count and fingerprint, as the
  checkpoint tables are in 0002) so its ``setup()`` finds nothing to do.
"""

from __future__ import annotations

from alembic import op

revision = "0005_http_api"
down_revision = "0004_run_events"
branch_labels = None
depends_on = None

STORE_MIGRATIONS = 4
STORE_MIGRATIONS_SHA256 = "e28bd11ad44ee17e20b63ca41dff8ead4c4f38d2c0dbbdaabeb077777c847145"

SCHEMA = """
ALTER TABLE threads
    ADD COLUMN state_values jsonb,
    ADD COLUMN state_updated_at timestamptz;

CREATE TABLE crons (
    cron_id      uuid PRIMARY KEY,
    assistant_id uuid NOT NULL,
    -- NULL: each tick runs on a new thread (a stateless cron).
    thread_id    uuid REFERENCES threads (thread_id) ON DELETE CASCADE,
    schedule     text NOT NULL,
    -- The run to create at each tick: input, config, context, ...
    payload      jsonb NOT NULL DEFAULT '{}',
    metadata     jsonb NOT NULL DEFAULT '{}',
    user_id      text,
    end_time     timestamptz,
    next_run_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- The scheduler's only scan: what is due.
CREATE INDEX crons_next_run_at_idx ON crons (next_run_at);
CREATE INDEX crons_thread_idx ON crons (thread_id) WHERE thread_id IS NOT NULL;
"""


def store_migrations() -> list[str]:
    from langgraph.store.postgres.base import MIGRATIONS

    return list(MIGRATIONS[:STORE_MIGRATIONS])


def _execute(statement: str) -> None:
    op.get_bind().connection.driver_connection.execute(statement)


def upgrade() -> None:
    _execute(SCHEMA)
    _execute("CREATE TABLE IF NOT EXISTS store_migrations (v integer PRIMARY KEY)")
    # One of the store's indexes is built CONCURRENTLY: outside a transaction.
    with op.get_context().autocommit_block():
        for version, statement in enumerate(store_migrations()):
            _execute(statement)
            _execute(
                f"INSERT INTO store_migrations (v) VALUES ({int(version)}) ON CONFLICT DO NOTHING"
            )


def downgrade() -> None:
    _execute("DROP TABLE IF EXISTS store, store_migrations")
    _execute("DROP TABLE IF EXISTS crons")
    _execute("ALTER TABLE threads DROP COLUMN state_values, DROP COLUMN state_updated_at")
