-- Assistants as the HTTP API reads and writes them (pgqueue/resources/assistants.py),
-- and the one per graph the server creates at start.
-- jsonb arrives and leaves as JSON text: the pools register no codec.
-- Search filters are all optional: a NULL parameter matches every row.
-- Every statement a request reaches takes the Auth's filter as a jsonb
-- parameter (pgqueue_auth_match, migration 0010; NULL: every row), so an
-- assistant it hides answers exactly as a missing one.
-- Searches test for NULL first: the function is plpgsql (never inlined),
-- so without an Auth no row pays for a call.

-- name: upsert_system_assistants
-- Creates the assistant of each graph in langgraph.json ($1 ids, $2 graph ids).
-- The id is derived from the graph id; existing ones stay as they are. A
-- trigger records the version (migration 0007).
-- internal: server startup, before any request; no user's filter applies.
INSERT INTO assistants (assistant_id, graph_id, name, metadata)
SELECT a, g, g, '{"created_by": "system"}'::jsonb
FROM unnest($1::uuid[], $2::text[]) AS t(a, g)
ON CONFLICT (assistant_id) DO NOTHING;

-- name: create_assistant
-- Creates an assistant; no row back when the id is taken.
-- The caller then decides between 409 and returning the existing assistant
-- (if_exists=do_nothing). A trigger records version 1 (migration 0007).
-- internal: an insert reads no existing row (the route asked assistants.create
-- first); an existing one is read back through get_assistant, with the filter.
INSERT INTO assistants (assistant_id, graph_id, name, description, config, context, metadata)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb)
ON CONFLICT (assistant_id) DO NOTHING
RETURNING assistant_id, graph_id, name, description, config, context, metadata, version,
          created_at, updated_at;

-- name: get_assistant
-- Assistant $1 as the API shows it, if filter $2 lets the request see it.
SELECT assistant_id, graph_id, name, description, config, context, metadata, version,
       created_at, updated_at
FROM assistants WHERE assistant_id = $1 AND pgqueue_auth_match(metadata, $2::jsonb);

-- name: update_assistant
-- Applies a PATCH to assistant $1 as a new version, which a trigger records.
-- What is NULL stays; metadata merges; every update is a new version, numbered after the highest so far (last_version, read from the
-- locked row, so concurrent updates never share a number), which a trigger
-- records. $8: the filter; a hidden assistant is left alone (no row back).
UPDATE assistants SET
    graph_id = coalesce($2, graph_id),
    config = coalesce($3::jsonb, config),
    context = coalesce($4::jsonb, context),
    metadata = metadata || coalesce($5::jsonb, '{}'::jsonb),
    name = coalesce($6, name),
    description = coalesce($7, description),
    version = last_version + 1,
    last_version = last_version + 1,
    updated_at = now()
WHERE assistant_id = $1 AND pgqueue_auth_match(metadata, $8::jsonb)
RETURNING assistant_id, graph_id, name, description, config, context, metadata, version,
          created_at, updated_at;

-- name: list_assistant_versions
-- Assistant $1's versions, newest first, if filter $5 lets the request see it.
-- $2 metadata containment (NULL: any), $3 limit, $4 offset. The filter
-- reads the assistant's current metadata, not each version's: who may see
-- an assistant may see its history.
SELECT v.assistant_id, v.version, v.graph_id, v.name, v.description, v.config, v.context,
       v.metadata, v.created_at
FROM assistant_versions v
WHERE v.assistant_id = $1 AND ($2::jsonb IS NULL OR v.metadata @> $2::jsonb)
  AND EXISTS (SELECT 1 FROM assistants a
              WHERE a.assistant_id = $1 AND pgqueue_auth_match(a.metadata, $5::jsonb))
ORDER BY v.version DESC
LIMIT $3 OFFSET $4;

-- name: set_latest_assistant_version
-- Makes version $2 assistant $1's current one again.
-- The assistant becomes that version again (last_version stays: the next
-- update still gets a new number). No row: no such assistant or version,
-- or filter $3 hides the assistant (its current metadata decides).
UPDATE assistants a SET
    graph_id = v.graph_id,
    name = v.name,
    description = v.description,
    config = v.config,
    context = v.context,
    metadata = v.metadata,
    version = v.version,
    updated_at = now()
FROM assistant_versions v
WHERE a.assistant_id = $1 AND v.assistant_id = $1 AND v.version = $2
  AND pgqueue_auth_match(a.metadata, $3::jsonb)
RETURNING a.assistant_id, a.graph_id, a.name, a.description, a.config, a.context, a.metadata,
          a.version, a.created_at, a.updated_at;

-- name: delete_assistant
-- Deletes assistant $1 if filter $2 lets the request see it (versions cascade).
DELETE FROM assistants WHERE assistant_id = $1 AND pgqueue_auth_match(metadata, $2::jsonb)
RETURNING assistant_id;

-- name: list_assistant_threads
-- The threads assistant $1 worked on, for delete_threads=true.
-- Those with a run of it, and those whose metadata names it (the
-- platform's convention).
-- Containment, not ->>, so the metadata index serves it. $2: the request's
-- threads.delete filter, on the threads' own metadata: a thread it hides is
-- not deleted along with the assistant.
SELECT t.thread_id FROM threads t
WHERE t.metadata @> jsonb_build_object('assistant_id', $1::uuid::text)
  AND pgqueue_auth_match(t.metadata, $2::jsonb)
UNION
SELECT t.thread_id FROM threads t
WHERE t.thread_id IN (SELECT r.thread_id FROM runs r WHERE r.assistant_id = $1::uuid)
  AND pgqueue_auth_match(t.metadata, $2::jsonb);

-- name: search_assistants
-- A page of assistants matching the filters, sorted, with the total count.
-- $1 metadata containment, $2 graph id, $3 name substring (case-insensitive),
-- $4 the Auth's filter (hidden assistants are neither listed nor counted;
-- last of the filters, as pages.search_page passes them), $5 sort column,
-- $6 'asc' | 'desc', $7 limit, $8 offset. The sort is chosen
-- by CASE so the statement stays one fixed text; timestamps and text sort
-- in separate expressions to keep their own types. total: rows matching
-- the filters, for X-Pagination-Total.
SELECT assistant_id, graph_id, name, description, config, context, metadata, version,
       created_at, updated_at, count(*) OVER () AS total
FROM assistants
WHERE ($1::jsonb IS NULL OR metadata @> $1::jsonb)
  AND ($2::text IS NULL OR graph_id = $2)
  AND ($3::text IS NULL OR strpos(lower(name), lower($3)) > 0)
  AND ($4::jsonb IS NULL OR pgqueue_auth_match_indexed(metadata, $4::jsonb))
ORDER BY
    CASE WHEN $6 = 'asc' THEN CASE $5 WHEN 'created_at' THEN created_at
                                      WHEN 'updated_at' THEN updated_at END END ASC,
    CASE WHEN $6 = 'desc' THEN CASE $5 WHEN 'created_at' THEN created_at
                                       WHEN 'updated_at' THEN updated_at END END DESC,
    CASE WHEN $6 = 'asc' THEN CASE $5 WHEN 'assistant_id' THEN assistant_id::text
                                      WHEN 'graph_id' THEN graph_id
                                      WHEN 'name' THEN name END END ASC,
    CASE WHEN $6 = 'desc' THEN CASE $5 WHEN 'assistant_id' THEN assistant_id::text
                                       WHEN 'graph_id' THEN graph_id
                                       WHEN 'name' THEN name END END DESC,
    assistant_id
LIMIT $7 OFFSET $8;

-- name: count_assistants
-- How many assistants match search_assistants' filters $1-$3, under the Auth's $4.
SELECT count(*) FROM assistants
WHERE ($1::jsonb IS NULL OR metadata @> $1::jsonb)
  AND ($2::text IS NULL OR graph_id = $2)
  AND ($3::text IS NULL OR strpos(lower(name), lower($3)) > 0)
  AND ($4::jsonb IS NULL OR pgqueue_auth_match_indexed(metadata, $4::jsonb));
