"""Default lease window 20 s (was 30 s), so a killed worker's run resumes
elsewhere within 15-25 s with the default 5 s heartbeat and 5 s sweep.

Revision ID: 0006_lease_20s
Revises: 0005_http_api
Create Date: 2026-11-21

bench/recovery.py measured 28.0-32.2 s (median 30.1) from SIGKILL to resume
with the 30 s window: the window, minus the last heartbeat's age (0-5 s),
plus the wait for the next sweep (0-5 s). A per-database setting still wins:
ALTER DATABASE db SET pgqueue.lease_timeout = '30s'.
"""

from __future__ import annotations

from alembic import op

revision = "0006_lease_20s"
down_revision = "0005_http_api"
branch_labels = None
depends_on = None

LEASE_TIMEOUT = """
CREATE OR REPLACE FUNCTION pgqueue_lease_timeout() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('pgqueue.lease_timeout', true), '')::interval,
                    interval '{seconds} seconds')
$$;
"""


def upgrade() -> None:
    op.execute(LEASE_TIMEOUT.format(seconds=20))


def downgrade() -> None:
    op.execute(LEASE_TIMEOUT.format(seconds=30))
