"""Assistant versions: every version an assistant had, so that
``GET/POST /assistants/{id}/versions`` lists them and ``POST
/assistants/{id}/latest`` can go back to one.

Revision ID: 0007_assistant_versions
Revises: 0006_lease_20s
Create Date: 2026-11-22

``assistants`` keeps the version in use (``version``) and the highest one
given so far (``last_version``): an update makes ``last_version + 1``, also
after going back to an older version, and two concurrent updates of one
assistant get different numbers (both are computed from the locked row).
Each assistant's current state becomes its first recorded version; from
then on triggers record every new one (an insert, or an update that gives
a new number), whichever statement makes it.
"""

from __future__ import annotations

from alembic import op

revision = "0007_assistant_versions"
down_revision = "0006_lease_20s"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE assistant_versions (
            assistant_id uuid NOT NULL REFERENCES assistants ON DELETE CASCADE,
            version      integer NOT NULL,
            graph_id     text NOT NULL,
            name         text NOT NULL,
            description  text,
            config       jsonb NOT NULL,
            context      jsonb NOT NULL,
            metadata     jsonb NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (assistant_id, version)
        );
        ALTER TABLE assistants ADD COLUMN last_version integer;
        UPDATE assistants SET last_version = version;
        ALTER TABLE assistants ALTER COLUMN last_version SET NOT NULL,
                               ALTER COLUMN last_version SET DEFAULT 1;
        INSERT INTO assistant_versions
            (assistant_id, version, graph_id, name, description, config, context, metadata,
             created_at)
        SELECT assistant_id, version, graph_id, name, description, config, context, metadata,
               updated_at
        FROM assistants;

        CREATE FUNCTION pgqueue_record_assistant_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO assistant_versions
                (assistant_id, version, graph_id, name, description, config, context,
                 metadata, created_at)
            VALUES (NEW.assistant_id, NEW.version, NEW.graph_id, NEW.name, NEW.description,
                    NEW.config, NEW.context, NEW.metadata, NEW.updated_at);
            RETURN NULL;
        END
        $$;
        CREATE TRIGGER assistants_first_version AFTER INSERT ON assistants
            FOR EACH ROW EXECUTE FUNCTION pgqueue_record_assistant_version();
        -- Not set_latest, which goes back to a recorded version.
        CREATE TRIGGER assistants_new_version AFTER UPDATE ON assistants
            FOR EACH ROW WHEN (NEW.last_version <> OLD.last_version)
            EXECUTE FUNCTION pgqueue_record_assistant_version();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER assistants_new_version ON assistants;
        DROP TRIGGER assistants_first_version ON assistants;
        DROP FUNCTION pgqueue_record_assistant_version();
        DROP TABLE assistant_versions;
        ALTER TABLE assistants DROP COLUMN last_version;
        """
    )
