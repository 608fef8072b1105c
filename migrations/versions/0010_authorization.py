"""Authorization filters, evaluated in SQL.

Revision ID: 0010_authorization
Revises: 0009_cron_user
Create Date: 2026-12-07

An Auth's ``@auth.on`` handlers answer a request with a metadata filter
(``{"owner": "user-a"}``, ``{"members": {"$contains": "user-a"}}``,
``{"$or": [...]}``). Every resource query takes that filter as one jsonb
parameter and keeps only the rows ``pgqueue_auth_match(metadata, filter)``
accepts; a NULL filter accepts every row. The server validates a filter's
shape before sending it, so this function only has to evaluate it:

- ``{"key": value}`` and ``{"key": {"$eq": value}}``: the value at ``key``
  equals ``value`` (jsonb equality: type and value);
- ``{"key": {"$contains": x}}``: the value at ``key`` is an array that
  contains ``x`` (a scalar) or every element of ``x`` (an array);
- ``{"$and": [f, ...]}`` / ``{"$or": [f, ...]}``: all / any of the filters;
- several keys: all of them.

It is IMMUTABLE and STRICT-free on purpose: a NULL filter means "no filter".
"""

from __future__ import annotations

from alembic import op

revision = "0010_authorization"
down_revision = "0009_cron_user"
branch_labels = None
depends_on = None

MATCH = r"""
CREATE FUNCTION pgqueue_auth_match(metadata jsonb, filter jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    k text;
    v jsonb;
    arg jsonb;
BEGIN
    IF filter IS NULL THEN
        RETURN true;
    END IF;
    FOR k, v IN SELECT key, value FROM jsonb_each(filter) LOOP
        IF k = '$or' THEN
            IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v) AS g(f)
                           WHERE pgqueue_auth_match(metadata, g.f)) THEN
                RETURN false;
            END IF;
        ELSIF k = '$and' THEN
            IF EXISTS (SELECT 1 FROM jsonb_array_elements(v) AS g(f)
                       WHERE NOT pgqueue_auth_match(metadata, g.f)) THEN
                RETURN false;
            END IF;
        ELSIF jsonb_typeof(v) = 'object' AND v ? '$contains' THEN
            arg := v -> '$contains';
            IF jsonb_typeof(arg) <> 'array' THEN
                arg := jsonb_build_array(arg);
            END IF;
            IF coalesce(jsonb_typeof(metadata -> k), '') <> 'array'
               OR NOT (metadata -> k) @> arg THEN
                RETURN false;
            END IF;
        ELSIF jsonb_typeof(v) = 'object' AND v ? '$eq' THEN
            IF (metadata -> k) IS DISTINCT FROM (v -> '$eq') THEN
                RETURN false;
            END IF;
        ELSIF (metadata -> k) IS DISTINCT FROM v THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$
"""


def upgrade() -> None:
    op.execute(MATCH)
    op.execute(
        "COMMENT ON FUNCTION pgqueue_auth_match(jsonb, jsonb) IS "
        "'Whether metadata passes an authorization filter (NULL: no filter); see migration 0010'"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION pgqueue_auth_match(jsonb, jsonb)")
