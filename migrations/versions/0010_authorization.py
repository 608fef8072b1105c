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

It is IMMUTABLE and not STRICT on purpose: a NULL filter means "no
filter". Searches use ``pgqueue_auth_match_indexed(metadata, filter)``,
the same answer with a containment test first that the GIN index on
metadata serves. Measured on 100,000 threads of 100 owners, counting one
owner's: 290-320 ms with the plpgsql check on every row, 17-28 ms with the
index first. A filter made only of $or/$and has no containment to index:
every row is checked (1.2-1.3 s per 100,000 rows for a two-way $or).
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
    i integer;
    found boolean;
BEGIN
    IF filter IS NULL THEN
        RETURN true;
    END IF;
    FOR k, v IN SELECT key, value FROM jsonb_each(filter) LOOP
        -- Index loops, not SELECTs over jsonb_array_elements: no query
        -- per group.
        IF k = '$or' THEN
            found := false;
            FOR i IN 0 .. jsonb_array_length(v) - 1 LOOP
                IF pgqueue_auth_match(metadata, v -> i) THEN
                    found := true;
                    EXIT;
                END IF;
            END LOOP;
            IF NOT found THEN
                RETURN false;
            END IF;
        ELSIF k = '$and' THEN
            FOR i IN 0 .. jsonb_array_length(v) - 1 LOOP
                IF NOT pgqueue_auth_match(metadata, v -> i) THEN
                    RETURN false;
                END IF;
            END LOOP;
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

# What every row a filter accepts must contain: its top-level exact values
# and $contains members, as one jsonb document (the rest, $and/$or, adds
# nothing). A necessary condition, not a sufficient one: equality is
# checked by pgqueue_auth_match. Given a known filter, the planner calls it
# once, at planning.
CONTAINMENT = r"""
CREATE FUNCTION pgqueue_auth_containment(filter jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    found jsonb := '{}'::jsonb;
    k text;
    v jsonb;
BEGIN
    FOR k, v IN SELECT key, value FROM jsonb_each(filter) LOOP
        CONTINUE WHEN left(k, 1) = '$';
        found := found || jsonb_build_object(k, CASE
            WHEN jsonb_typeof(v) <> 'object' THEN v
            WHEN v ? '$eq' THEN v -> '$eq'
            WHEN jsonb_typeof(v -> '$contains') = 'array' THEN v -> '$contains'
            ELSE jsonb_build_array(v -> '$contains') END);
    END LOOP;
    RETURN found;
END
$$
"""

# For searches: a SQL function, so the planner inlines it into the query
# that calls it, and with the filter known, pgqueue_auth_containment(filter)
# folds into a constant that "metadata @> constant" looks up in the GIN
# index on metadata (threads_metadata_idx, assistants_metadata_idx) before
# the exact check. Only searches use it: a lookup by id has its own index,
# and the inlined form's plan depends on the filter (a custom plan per
# execution) where the plain function's need not. (Whether that costs
# anything per run could not be told apart from this machine's drift: see
# BENCHMARKS.md, "The cost of authorization".)
INDEXED = r"""
CREATE FUNCTION pgqueue_auth_match_indexed(metadata jsonb, filter jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT filter IS NULL
    OR (metadata @> pgqueue_auth_containment(filter) AND pgqueue_auth_match(metadata, filter))
$$
"""


def upgrade() -> None:
    op.execute(MATCH)
    op.execute(CONTAINMENT)
    op.execute(INDEXED)
    op.execute(
        "COMMENT ON FUNCTION pgqueue_auth_match(jsonb, jsonb) IS "
        "'Whether metadata passes an authorization filter (NULL: no filter); see migration 0010'"
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION pgqueue_auth_match_indexed(jsonb, jsonb)")
    op.execute("DROP FUNCTION pgqueue_auth_containment(jsonb)")
    op.execute("DROP FUNCTION pgqueue_auth_match(jsonb, jsonb)")
