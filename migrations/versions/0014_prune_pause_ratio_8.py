"""``CALL pgqueue_prune()`` pauses eight times each batch's own time after
it, not twice, as the in-process pruner has since 722a9e9
(``PrunerConfig.pause_ratio``): a claim that meets a running batch shares
the CPU with it, and at 2 the claim p99 during a million-run pass was
1.3-2.0x the idle table's (BENCHMARKS.md, "Retention under load"). Until
this revision only the job ``pgqueue prune --install-cron`` writes passed
8; a hand-written CALL got 2.

Revision ID: 0014_prune_pause_ratio_8
Revises: 0013_graph_interrupts_succeed
Create Date: 2026-12-07

Only the parameter's default changes, so the procedure is re-created from
its own definition in the database (``pg_get_functiondef``) with that one
default replaced, rather than from a second copy of 0012's body. Safe with
every process of 0012 and later: no process calls the procedure itself. A
pg_cron job that an older ``pgqueue prune --install-cron`` wrote names no
ratio, and prunes more gently from this revision on.
"""

from __future__ import annotations

from alembic import op

revision = "0014_prune_pause_ratio_8"
down_revision = "0013_graph_interrupts_succeed"
branch_labels = None
depends_on = None

PROCEDURE = (
    "pgqueue_prune(interval, interval, integer, integer, integer, integer, integer, "
    "double precision, double precision)"
)


def _set_default(old: str, new: str) -> str:
    # pg_get_functiondef writes the default as 'DEFAULT 2' (the literal the
    # CREATE gave); a definition that does not read so is not 0012's, and
    # the migration stops rather than guess.
    return f"""
DO $$
DECLARE
    definition text := pg_get_functiondef('{PROCEDURE}'::regprocedure);
    changed text := replace(definition, 'pause_ratio double precision DEFAULT {old},',
                                        'pause_ratio double precision DEFAULT {new},');
BEGIN
    IF changed = definition THEN
        RAISE EXCEPTION 'pgqueue_prune: no pause_ratio default of {old} to change';
    END IF;
    EXECUTE changed;
END
$$;
"""


def upgrade() -> None:
    op.execute(_set_default("2", "8"))


def downgrade() -> None:
    op.execute(_set_default("8", "2"))
