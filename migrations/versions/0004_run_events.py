"""Stream events: a run's chunks, kept in order for live streams and replay.

Revision ID: 0004_run_events
Revises: 0003_cancel
Create Date: 2026-11-21

``seq`` is a monotonic per-run sequence (1, 2, 3, ... across attempts): the
SSE event id, so a client reconnecting with Last-Event-ID resumes exactly
after what it saw, whichever server process it reaches. Writes are fenced
like checkpoints; each batch is announced by NOTIFY on ``pgqueue_events``
with a small payload ("run_id:last_seq"); readers fetch the rows.
"""

from __future__ import annotations

from alembic import op

revision = "0004_run_events"
down_revision = "0003_cancel"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE run_events (
            run_id     uuid NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            seq        bigint NOT NULL,
            attempt    integer NOT NULL,
            event      text NOT NULL,
            data       jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (run_id, seq)
        );
        -- Fenced like the checkpoint tables (pgqueue_fence, revision 0002).
        CREATE TRIGGER pgqueue_fence BEFORE INSERT OR UPDATE OR DELETE ON run_events
            FOR EACH STATEMENT EXECUTE FUNCTION pgqueue_fence();
        -- The pruner finds old events through their run's ended_at.
        CREATE INDEX runs_ended_at_idx ON runs (ended_at) WHERE ended_at IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS run_events; DROP INDEX IF EXISTS runs_ended_at_idx;")
