"""A thread's metadata names its graph: ``graph_id`` and ``assistant_id``.

Revision ID: 0008_thread_graph
Revises: 0007_assistant_versions
Create Date: 2026-12-07

From this revision every run submitted through the HTTP API merges its
graph and assistant into its thread's metadata, as the platform does:
clients list a graph's threads with ``threads.search(metadata={"graph_id":
...})``, and a thread's state (and a copy's, which has no runs) is read with
the graph its metadata names. Threads made before it get the same keys from
their newest run, where they do not have them already.
"""

from __future__ import annotations

from alembic import op

revision = "0008_thread_graph"
down_revision = "0007_assistant_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keys a thread has already (graph_id from threads.create) are kept:
    # the newest run's come first, and || lets the thread's own win.
    op.execute(
        """
        UPDATE threads t
        SET metadata = jsonb_strip_nulls(jsonb_build_object(
                'graph_id', r.kwargs ->> 'graph_id',
                'assistant_id', r.assistant_id::text)) || t.metadata
        FROM (SELECT DISTINCT ON (thread_id) thread_id, kwargs, assistant_id
              FROM runs WHERE thread_id IS NOT NULL
              ORDER BY thread_id, seq DESC) r
        WHERE r.thread_id = t.thread_id
          AND NOT (t.metadata ? 'graph_id' AND t.metadata ? 'assistant_id')
        """
    )


def downgrade() -> None:
    # The keys are data, which older revisions read as any other metadata.
    pass
