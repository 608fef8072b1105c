"""A cron remembers who created it: its runs run as that user.

Revision ID: 0009_cron_user
Revises: 0008_thread_graph
Create Date: 2026-12-07

With an Auth configured, a run's graph sees the requesting user in its
configurable (``langgraph_auth_user``...). A cron's ticks have no request:
``auth_user`` keeps the user who created the cron (as the authenticate
handler returned it), and each tick's run carries it. ``user_id`` (already
there) is its identity, which the API shows.
"""

from __future__ import annotations

from alembic import op

revision = "0009_cron_user"
down_revision = "0008_thread_graph"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE crons ADD COLUMN auth_user jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE crons DROP COLUMN auth_user")
