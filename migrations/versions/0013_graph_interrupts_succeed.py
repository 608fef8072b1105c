"""A run that a graph's interrupt() ended reads as the platform reads it:
'success', on an 'interrupted' thread. Until 32bc76e (before 0010) the
executor ended such runs 'interrupted'; since, a run is 'interrupted' only
when a cancel interrupted it, and such a run has its cancel_action set
(0003's pgqueue_cancel_run writes it with the cancel). Rows written before
kept the old meaning, so a client listing an old thread's runs took a
graph's question for a user's cancel.

Revision ID: 0013_graph_interrupts_succeed
Revises: 0012_prune_in_sql
Create Date: 2026-12-07

A data fix, no schema change: safe with every process that runs against
0010 and later (none of them ends a run 'interrupted' without a cancel).
Downgrading keeps the rows as they are: the older code reads a successful
run on an interrupted thread as the newer does.
"""

from __future__ import annotations

from alembic import op

revision = "0013_graph_interrupts_succeed"
down_revision = "0012_prune_in_sql"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE runs SET status = 'success' WHERE status = 'interrupted' AND cancel_action IS NULL"
    )


def downgrade() -> None:
    pass
