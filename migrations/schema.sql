-- The schema pgqueue's migrations build, as one file: generated, do not edit.
-- For reading: the migrations (migrations/versions/) build the database.
-- Regenerate after changing a migration, on any PostgreSQL server:
--     python -m pgqueue.db.schema --scratch postgresql://HOST/postgres > migrations/schema.sql
-- tests/db/test_schema.py fails when this file and the migrations disagree.
-- Revision: 0014_prune_pause_ratio_8

-- Tables, with their indexes and triggers -----------------------------------

CREATE TABLE alembic_version (
    version_num character varying(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE assistant_versions (
    assistant_id uuid NOT NULL,
    version integer NOT NULL,
    graph_id text NOT NULL,
    name text NOT NULL,
    description text,
    config jsonb NOT NULL,
    context jsonb NOT NULL,
    metadata jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT assistant_versions_pkey PRIMARY KEY (assistant_id, version),
    CONSTRAINT assistant_versions_assistant_id_fkey FOREIGN KEY (assistant_id) REFERENCES assistants(assistant_id) ON DELETE CASCADE
);

CREATE TABLE assistants (
    assistant_id uuid NOT NULL,
    graph_id text NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    description text,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    context jsonb DEFAULT '{}'::jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    version integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    last_version integer DEFAULT 1 NOT NULL,
    CONSTRAINT assistants_pkey PRIMARY KEY (assistant_id)
);
CREATE INDEX assistants_graph_id_idx ON public.assistants USING btree (graph_id);
CREATE INDEX assistants_metadata_idx ON public.assistants USING gin (metadata jsonb_path_ops);
CREATE TRIGGER assistants_first_version AFTER INSERT ON assistants FOR EACH ROW EXECUTE FUNCTION pgqueue_record_assistant_version();
CREATE TRIGGER assistants_new_version AFTER UPDATE ON assistants FOR EACH ROW WHEN (new.last_version <> old.last_version) EXECUTE FUNCTION pgqueue_record_assistant_version();

CREATE TABLE checkpoint_blobs (
    thread_id text NOT NULL,
    checkpoint_ns text DEFAULT ''::text NOT NULL,
    channel text NOT NULL,
    version text NOT NULL,
    type text NOT NULL,
    blob bytea,
    CONSTRAINT checkpoint_blobs_pkey PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);
CREATE INDEX checkpoint_blobs_thread_id_idx ON public.checkpoint_blobs USING btree (thread_id);
CREATE TRIGGER pgqueue_fence BEFORE INSERT OR DELETE OR UPDATE ON checkpoint_blobs FOR EACH STATEMENT EXECUTE FUNCTION pgqueue_fence();

CREATE TABLE checkpoint_migrations (
    v integer NOT NULL,
    CONSTRAINT checkpoint_migrations_pkey PRIMARY KEY (v)
);

CREATE TABLE checkpoint_writes (
    thread_id text NOT NULL,
    checkpoint_ns text DEFAULT ''::text NOT NULL,
    checkpoint_id text NOT NULL,
    task_id text NOT NULL,
    idx integer NOT NULL,
    channel text NOT NULL,
    type text,
    blob bytea NOT NULL,
    task_path text DEFAULT ''::text NOT NULL,
    CONSTRAINT checkpoint_writes_pkey PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
CREATE INDEX checkpoint_writes_thread_id_idx ON public.checkpoint_writes USING btree (thread_id);
CREATE TRIGGER pgqueue_fence BEFORE INSERT OR DELETE OR UPDATE ON checkpoint_writes FOR EACH STATEMENT EXECUTE FUNCTION pgqueue_fence();

CREATE TABLE checkpoints (
    thread_id text NOT NULL,
    checkpoint_ns text DEFAULT ''::text NOT NULL,
    checkpoint_id text NOT NULL,
    parent_checkpoint_id text,
    type text,
    checkpoint jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    CONSTRAINT checkpoints_pkey PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX checkpoints_thread_id_idx ON public.checkpoints USING btree (thread_id);
CREATE TRIGGER pgqueue_fence BEFORE INSERT OR DELETE OR UPDATE ON checkpoints FOR EACH STATEMENT EXECUTE FUNCTION pgqueue_fence();

CREATE TABLE crons (
    cron_id uuid NOT NULL,
    assistant_id uuid NOT NULL,
    thread_id uuid,
    schedule text NOT NULL,
    payload jsonb DEFAULT '{}'::jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    user_id text,
    end_time timestamp with time zone,
    next_run_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    auth_user jsonb,
    CONSTRAINT crons_pkey PRIMARY KEY (cron_id),
    CONSTRAINT crons_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES threads(thread_id) ON DELETE CASCADE
);
CREATE INDEX crons_next_run_at_idx ON public.crons USING btree (next_run_at);
CREATE INDEX crons_thread_idx ON public.crons USING btree (thread_id) WHERE (thread_id IS NOT NULL);

CREATE TABLE pgqueue_defaults (
    name text NOT NULL,
    value jsonb NOT NULL,
    CONSTRAINT pgqueue_defaults_pkey PRIMARY KEY (name)
);

CREATE TABLE pgqueue_prune_cursors (
    name text NOT NULL,
    after text,
    CONSTRAINT pgqueue_prune_cursors_pkey PRIMARY KEY (name)
);

CREATE TABLE run_events (
    run_id uuid NOT NULL,
    seq bigint NOT NULL,
    attempt integer NOT NULL,
    event text NOT NULL,
    data jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT run_events_pkey PRIMARY KEY (run_id, seq),
    CONSTRAINT run_events_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs(run_id) ON DELETE CASCADE
);
CREATE TRIGGER pgqueue_fence BEFORE INSERT OR DELETE OR UPDATE ON run_events FOR EACH STATEMENT EXECUTE FUNCTION pgqueue_fence();

CREATE TABLE runs (
    run_id uuid NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    thread_id uuid,
    assistant_id uuid,
    status text DEFAULT 'pending'::text NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    max_attempts integer DEFAULT 3 NOT NULL,
    releases integer DEFAULT 0 NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    not_before timestamp with time zone DEFAULT now() NOT NULL,
    worker_id text,
    heartbeat_at timestamp with time zone,
    multitask_strategy text,
    kwargs jsonb DEFAULT '{}'::jsonb NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    output jsonb,
    error jsonb,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    updated_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    started_at timestamp with time zone,
    ended_at timestamp with time zone,
    cancel_action text,
    CONSTRAINT runs_pkey PRIMARY KEY (run_id),
    CONSTRAINT runs_cancel_action_check CHECK (cancel_action = ANY (ARRAY['interrupt'::text, 'rollback'::text])),
    CONSTRAINT runs_max_attempts_check CHECK (max_attempts >= 1),
    CONSTRAINT runs_status_check CHECK (status = ANY (ARRAY['pending'::text, 'running'::text, 'success'::text, 'error'::text, 'timeout'::text, 'interrupted'::text])),
    CONSTRAINT runs_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES threads(thread_id) ON DELETE CASCADE
) WITH (fillfactor=70);
CREATE INDEX runs_ended_at_idx ON public.runs USING btree (ended_at) WHERE (ended_at IS NOT NULL);
CREATE UNIQUE INDEX runs_one_running_per_thread ON public.runs USING btree (thread_id) WHERE (status = 'running'::text);
CREATE INDEX runs_pending_idx ON public.runs USING btree (priority DESC, seq) WHERE (status = 'pending'::text);
CREATE INDEX runs_running_idx ON public.runs USING btree (run_id) WHERE (status = 'running'::text);
CREATE INDEX runs_thread_active_idx ON public.runs USING btree (thread_id, seq) WHERE (status = ANY (ARRAY['pending'::text, 'running'::text]));
CREATE INDEX runs_thread_idx ON public.runs USING btree (thread_id, seq) WHERE (thread_id IS NOT NULL);

CREATE TABLE store (
    prefix text NOT NULL,
    key text NOT NULL,
    value jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP,
    expires_at timestamp with time zone,
    ttl_minutes integer,
    CONSTRAINT store_pkey PRIMARY KEY (prefix, key)
);
CREATE INDEX idx_store_expires_at ON public.store USING btree (expires_at) WHERE (expires_at IS NOT NULL);
CREATE INDEX store_prefix_idx ON public.store USING btree (prefix text_pattern_ops);

CREATE TABLE store_migrations (
    v integer NOT NULL,
    CONSTRAINT store_migrations_pkey PRIMARY KEY (v)
);

CREATE TABLE threads (
    thread_id uuid NOT NULL,
    status text DEFAULT 'idle'::text NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    config jsonb DEFAULT '{}'::jsonb NOT NULL,
    interrupts jsonb DEFAULT '{}'::jsonb NOT NULL,
    error jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    state_values jsonb,
    state_updated_at timestamp with time zone,
    ttl_strategy text,
    ttl_minutes double precision,
    expires_at timestamp with time zone,
    CONSTRAINT threads_pkey PRIMARY KEY (thread_id),
    CONSTRAINT threads_status_check CHECK (status = ANY (ARRAY['idle'::text, 'busy'::text, 'interrupted'::text, 'error'::text])),
    CONSTRAINT threads_ttl_minutes_check CHECK (ttl_minutes > 0::double precision),
    CONSTRAINT threads_ttl_strategy_check CHECK (ttl_strategy = ANY (ARRAY['delete'::text, 'keep_latest'::text])),
    CONSTRAINT threads_ttl_whole CHECK ((ttl_strategy IS NULL) = (ttl_minutes IS NULL))
);
CREATE INDEX threads_expires_at_idx ON public.threads USING btree (expires_at) WHERE (expires_at IS NOT NULL);
CREATE INDEX threads_metadata_idx ON public.threads USING gin (metadata jsonb_path_ops);
CREATE TRIGGER pgqueue_thread_expiry BEFORE INSERT ON threads FOR EACH ROW EXECUTE FUNCTION pgqueue_thread_expiry();
CREATE TRIGGER pgqueue_thread_expiry_renewed BEFORE UPDATE ON threads FOR EACH ROW WHEN (old.ttl_minutes IS NOT NULL OR new.ttl_minutes IS NOT NULL) EXECUTE FUNCTION pgqueue_thread_expiry();

CREATE TABLE workers (
    worker_id text NOT NULL,
    host text NOT NULL,
    pid integer NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT workers_pkey PRIMARY KEY (worker_id)
) WITH (fillfactor=50);

-- Views ---------------------------------------------------------------------

CREATE VIEW pgqueue_expired_threads AS
 SELECT thread_id,
    ttl_strategy,
    ttl_minutes,
    expires_at
   FROM threads
  WHERE expires_at < now() AND status <> 'busy'::text AND NOT pgqueue_thread_has_live_run(thread_id);

CREATE VIEW pgqueue_queue_depth AS
 SELECT status,
    count(*) AS runs,
    count(*) FILTER (WHERE status = 'pending'::text AND not_before <= now()) AS ready,
    count(*) FILTER (WHERE status = 'pending'::text AND not_before > now()) AS delayed,
    min(created_at) AS oldest_created_at,
    max(now() - created_at) FILTER (WHERE status = 'pending'::text) AS oldest_pending_age
   FROM runs
  GROUP BY status;

CREATE VIEW pgqueue_running_runs AS
 SELECT run_id,
    thread_id,
    worker_id,
    attempt,
    max_attempts,
    started_at,
    heartbeat_at,
    now() - heartbeat_at AS heartbeat_age,
    heartbeat_at < (now() - pgqueue_lease_timeout()) AS stale
   FROM runs
  WHERE status = 'running'::text;

CREATE VIEW pgqueue_stale_runs AS
 SELECT run_id,
    thread_id,
    worker_id,
    attempt,
    max_attempts,
    started_at,
    heartbeat_at,
    heartbeat_age,
    stale
   FROM pgqueue_running_runs
  WHERE stale;

CREATE VIEW pgqueue_thread_runs AS
 SELECT thread_id,
    seq,
    run_id,
    status,
    attempt,
    worker_id,
    created_at,
    started_at,
    ended_at,
    ended_at - started_at AS duration,
    error ->> 'error'::text AS error_type,
    error ->> 'message'::text AS error_message
   FROM runs r
  WHERE thread_id IS NOT NULL;

CREATE VIEW pgqueue_workers AS
 SELECT w.worker_id,
    w.host,
    w.pid,
    w.concurrency,
    w.started_at,
    w.heartbeat_at,
    now() - w.heartbeat_at AS heartbeat_age,
    w.heartbeat_at >= (now() - pgqueue_lease_timeout()) AS alive,
    count(r.run_id) AS running,
    COALESCE(array_agg(r.run_id ORDER BY r.seq) FILTER (WHERE r.run_id IS NOT NULL), '{}'::uuid[]) AS run_ids
   FROM workers w
     LEFT JOIN runs r ON r.worker_id = w.worker_id AND r.status = 'running'::text
  GROUP BY w.worker_id;

-- Functions -----------------------------------------------------------------

CREATE OR REPLACE FUNCTION public.pgqueue_assert_lease(p_run_id uuid, p_attempt integer, p_worker_id text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM 1 FROM runs
    WHERE run_id = p_run_id AND attempt = p_attempt AND worker_id = p_worker_id
      AND status = 'running'
    FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost: run % attempt % is no longer held by worker %',
            p_run_id, p_attempt, p_worker_id
            USING ERRCODE = 'PGQ01';
    END IF;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_auth_containment(filter jsonb)
 RETURNS jsonb
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_auth_match(metadata jsonb, filter jsonb)
 RETURNS boolean
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
AS $function$
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
$function$;
COMMENT ON FUNCTION pgqueue_auth_match(metadata jsonb, filter jsonb) IS 'Whether metadata passes an authorization filter (NULL: no filter); see migration 0010';

CREATE OR REPLACE FUNCTION public.pgqueue_auth_match_indexed(metadata jsonb, filter jsonb)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
SELECT filter IS NULL
    OR (metadata @> pgqueue_auth_containment(filter) AND pgqueue_auth_match(metadata, filter))
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_cancel_runs(p_run_ids uuid[], p_action text)
 RETURNS TABLE(run_id uuid, outcome text)
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    rec record;
BEGIN
    IF p_action NOT IN ('interrupt', 'rollback') THEN
        RAISE EXCEPTION 'cancel action must be interrupt or rollback, not %', p_action
            USING ERRCODE = '22023';
    END IF;
    FOR rec IN
        SELECT r.run_id, r.thread_id, r.status FROM runs r
        WHERE r.run_id = ANY (p_run_ids) AND r.status IN ('pending', 'running')
        ORDER BY r.seq
        FOR UPDATE
    LOOP
        run_id := rec.run_id;
        IF rec.status = 'running' THEN
            UPDATE runs SET cancel_action = p_action, updated_at = now() WHERE runs.run_id = rec.run_id;
            PERFORM pg_notify('pgqueue_cancel', rec.run_id::text || ':' || p_action);
            outcome := 'cancelling';
        ELSIF p_action = 'rollback' THEN
            DELETE FROM runs WHERE runs.run_id = rec.run_id;
            PERFORM pgqueue_delete_run_checkpoints(rec.thread_id, rec.run_id);
            PERFORM pgqueue_settle_thread(rec.thread_id, 'rolled_back', NULL);
            outcome := 'deleted';
        ELSE
            UPDATE runs SET status = 'interrupted', cancel_action = p_action,
                            ended_at = now(), updated_at = now()
            WHERE runs.run_id = rec.run_id;
            -- Never started: the thread has nothing to resume from this run.
            PERFORM pgqueue_settle_thread(rec.thread_id, 'cancelled', NULL);
            outcome := 'interrupted';
        END IF;
        RETURN NEXT;
    END LOOP;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_complete_runs(p_worker_id text, p_run_ids uuid[], p_attempts integer[], p_statuses text[], p_outputs jsonb[], p_errors jsonb[], p_retry_delays double precision[])
 RETURNS TABLE(run_id uuid, status text)
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    rec record;
    retried boolean := false;
BEGIN
    FOR rec IN
        UPDATE runs r SET
            status = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                          THEN 'pending' ELSE i.status END,
            output = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                          THEN r.output ELSE i.output END,
            error = i.error,
            not_before = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                              THEN now() + make_interval(secs => i.retry_delay) ELSE r.not_before END,
            worker_id = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                             THEN NULL ELSE r.worker_id END,
            heartbeat_at = NULL,
            ended_at = CASE WHEN pgqueue_retries(i.status, i.retry_delay, r.attempt, r.releases, r.max_attempts)
                            THEN NULL ELSE now() END,
            updated_at = now()
        FROM unnest(p_run_ids, p_attempts, p_statuses, p_outputs, p_errors, p_retry_delays)
            AS i(run_id, attempt, status, output, error, retry_delay)
        WHERE r.run_id = i.run_id AND r.attempt = i.attempt
          AND r.worker_id = p_worker_id AND r.status = 'running'
        RETURNING r.run_id, r.status, r.thread_id, r.error
    LOOP
        IF rec.status = 'pending' THEN
            retried := true;
        ELSIF rec.thread_id IS NOT NULL THEN
            PERFORM pgqueue_settle_thread(rec.thread_id, rec.status, rec.error);
        END IF;
        run_id := rec.run_id;
        status := rec.status;
        RETURN NEXT;
    END LOOP;
    IF retried THEN
        -- A retried run may be due sooner than idle workers' next poll.
        PERFORM pg_notify('pgqueue_runs', '');
    END IF;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_delete_run_checkpoints(p_thread_id uuid, p_run_id uuid)
 RETURNS void
 LANGUAGE sql
AS $function$
    DELETE FROM checkpoint_writes w USING checkpoints c
    WHERE c.thread_id = p_thread_id::text AND c.metadata->>'run_id' = p_run_id::text
      AND w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns
      AND w.checkpoint_id = c.checkpoint_id;
    DELETE FROM checkpoints
    WHERE thread_id = p_thread_id::text AND metadata->>'run_id' = p_run_id::text;
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_fence()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    lease text := current_setting('pgqueue.lease', true);
    run_part text;
    attempt_part text;
BEGIN
    IF lease IS NOT NULL AND lease <> '' THEN
        run_part := split_part(lease, ':', 1);
        attempt_part := split_part(lease, ':', 2);
        PERFORM pgqueue_assert_lease(
            run_part::uuid, attempt_part::integer,
            substr(lease, length(run_part) + length(attempt_part) + 3));
    END IF;
    RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_lease_timeout()
 RETURNS interval
 LANGUAGE sql
 STABLE
AS $function$
    SELECT coalesce(nullif(current_setting('pgqueue.lease_timeout', true), '')::interval,
                    interval '20 seconds')
$function$;

CREATE OR REPLACE PROCEDURE public.pgqueue_prune(IN event_retention interval DEFAULT '01:00:00'::interval, IN run_retention interval DEFAULT '30 days'::interval, IN batch_size integer DEFAULT 10000, IN run_batch_size integer DEFAULT 1000, IN thread_batch_size integer DEFAULT 100, IN garbage_threads integer DEFAULT 100, IN garbage_batches integer DEFAULT 10, IN pause_ratio double precision DEFAULT 8, IN batch_pause double precision DEFAULT 0.05)
 LANGUAGE plpgsql
AS $procedure$
DECLARE
    r record;
    started timestamptz;
    after_run uuid;
    after_end timestamptz;
    after_expiry timestamptz;
BEGIN
    LOOP
        started := pgqueue_prune_pause(started, batch_pause, pause_ratio);
        SELECT * INTO r FROM pgqueue_prune_events(event_retention, batch_size, after_run);
        COMMIT;
        IF NOT r.mine THEN
            RETURN;
        END IF;
        EXIT WHEN r.deleted < batch_size;
        after_run := coalesce(r.reached, after_run);
    END LOOP;
    LOOP
        started := pgqueue_prune_pause(started, batch_pause, pause_ratio);
        SELECT * INTO r FROM pgqueue_prune_runs(run_retention, run_batch_size, after_end);
        COMMIT;
        IF NOT r.mine THEN
            RETURN;
        END IF;
        EXIT WHEN r.deleted < run_batch_size;
        after_end := coalesce(r.reached, after_end);
    END LOOP;
    LOOP
        started := pgqueue_prune_pause(started, batch_pause, pause_ratio);
        SELECT * INTO r FROM pgqueue_prune_expired_threads(thread_batch_size, after_expiry);
        COMMIT;
        IF NOT r.mine THEN
            RETURN;
        END IF;
        EXIT WHEN cardinality(r.deleted) < thread_batch_size;
        after_expiry := coalesce(r.reached, after_expiry);
    END LOOP;
    FOR i IN 1 .. garbage_batches LOOP
        started := pgqueue_prune_pause(started, batch_pause, pause_ratio);
        SELECT * INTO r FROM pgqueue_prune_checkpoint_garbage(garbage_threads);
        COMMIT;
        EXIT WHEN NOT r.mine OR r.threads < garbage_threads;
    END LOOP;
END
$procedure$;

CREATE OR REPLACE FUNCTION public.pgqueue_prune_checkpoint_garbage(p_threads integer, OUT mine boolean, OUT deleted bigint, OUT threads integer)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
DECLARE
    after_thread text;
    last_thread text;
BEGIN
    mine := pgqueue_prune_turn();
    deleted := 0;
    threads := 0;
    IF NOT mine THEN
        RETURN;
    END IF;
    SELECT c.after INTO after_thread FROM pgqueue_prune_cursors c
    WHERE c.name = 'checkpoint_garbage';
    WITH scope AS (
        SELECT candidates.thread_id FROM (
            (SELECT DISTINCT b.thread_id FROM checkpoint_blobs b
             WHERE b.thread_id > coalesce(after_thread, '') ORDER BY b.thread_id LIMIT p_threads)
            UNION
            (SELECT DISTINCT w.thread_id FROM checkpoint_writes w
             WHERE w.thread_id > coalesce(after_thread, '') ORDER BY w.thread_id LIMIT p_threads)
        ) candidates
        ORDER BY candidates.thread_id
        LIMIT p_threads
    ), quiet AS (
        SELECT s.thread_id FROM scope s
        WHERE NOT EXISTS (
            SELECT FROM runs r
            WHERE r.thread_id::text = s.thread_id AND r.status IN ('pending', 'running'))
    ), blobs AS (
        DELETE FROM checkpoint_blobs b USING quiet q
        WHERE b.thread_id = q.thread_id
          AND NOT EXISTS (
              SELECT FROM checkpoints c
              WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
                AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)
        RETURNING 1
    ), writes AS (
        DELETE FROM checkpoint_writes w USING quiet q
        WHERE w.thread_id = q.thread_id
          AND NOT EXISTS (
              SELECT FROM checkpoints c
              WHERE c.thread_id = w.thread_id AND c.checkpoint_ns = w.checkpoint_ns
                AND c.checkpoint_id = w.checkpoint_id)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM blobs) + (SELECT count(*) FROM writes),
           (SELECT count(*) FROM scope), (SELECT max(scope.thread_id) FROM scope)
    INTO deleted, threads, last_thread;
    INSERT INTO pgqueue_prune_cursors (name, after)
    VALUES ('checkpoint_garbage', CASE WHEN threads < p_threads THEN NULL ELSE last_thread END)
    ON CONFLICT (name) DO UPDATE SET after = EXCLUDED.after;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_prune_events(p_age interval, p_limit integer, p_after uuid, OUT mine boolean, OUT deleted bigint, OUT reached uuid)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
BEGIN
    mine := pgqueue_prune_turn();
    deleted := 0;
    IF NOT mine THEN
        RETURN;
    END IF;
    WITH old AS (
        SELECT e2.run_id, e2.seq FROM run_events e2
        JOIN runs r ON r.run_id = e2.run_id
        WHERE r.ended_at < now() - p_age
          AND e2.run_id >= coalesce(p_after, '00000000-0000-0000-0000-000000000000')
          AND r.run_id >= coalesce(p_after, '00000000-0000-0000-0000-000000000000')
        ORDER BY e2.run_id, e2.seq
        LIMIT p_limit
    ), gone AS (
        DELETE FROM run_events e USING old WHERE e.run_id = old.run_id AND e.seq = old.seq
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone), (SELECT old.run_id FROM old ORDER BY old.run_id DESC LIMIT 1)
    INTO deleted, reached;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_prune_expired_threads(p_limit integer, p_after timestamp with time zone, OUT mine boolean, OUT deleted text[], OUT reached timestamp with time zone)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
BEGIN
    mine := pgqueue_prune_turn();
    deleted := '{}';
    IF NOT mine THEN
        RETURN;
    END IF;
    WITH doomed AS (
        SELECT x.thread_id, x.expires_at FROM pgqueue_expired_threads x
        WHERE x.ttl_strategy = 'delete' AND x.expires_at >= coalesce(p_after, '-infinity')
        ORDER BY x.expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM threads t USING doomed WHERE t.thread_id = doomed.thread_id
        RETURNING t.thread_id::text AS thread_id
    )
    SELECT array(SELECT gone.thread_id FROM gone), (SELECT max(doomed.expires_at) FROM doomed)
    INTO deleted, reached;
    DELETE FROM checkpoint_writes WHERE thread_id = ANY(deleted);
    DELETE FROM checkpoint_blobs WHERE thread_id = ANY(deleted);
    DELETE FROM checkpoints WHERE thread_id = ANY(deleted);
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_prune_pause(p_started timestamp with time zone, p_floor double precision, p_ratio double precision)
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF p_started IS NOT NULL THEN
        PERFORM pg_sleep(greatest(
            p_floor, p_ratio * extract(epoch FROM clock_timestamp() - p_started)));
    END IF;
    RETURN clock_timestamp();
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_prune_runs(p_age interval, p_limit integer, p_after timestamp with time zone, OUT mine boolean, OUT deleted bigint, OUT reached timestamp with time zone)
 RETURNS record
 LANGUAGE plpgsql
AS $function$
BEGIN
    mine := pgqueue_prune_turn();
    deleted := 0;
    IF NOT mine THEN
        RETURN;
    END IF;
    WITH doomed AS (
        SELECT o.run_id, o.ended_at FROM runs o
        WHERE o.ended_at < now() - p_age
          AND o.ended_at >= coalesce(p_after, '-infinity')
          AND o.status NOT IN ('pending', 'running')
          AND (o.thread_id IS NULL OR EXISTS (
              SELECT FROM runs n WHERE n.thread_id = o.thread_id AND n.seq > o.seq))
        ORDER BY o.ended_at
        LIMIT p_limit
        FOR UPDATE OF o SKIP LOCKED
    ), gone AS (
        DELETE FROM runs r USING doomed WHERE r.run_id = doomed.run_id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone), (SELECT max(doomed.ended_at) FROM doomed)
    INTO deleted, reached;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_prune_turn()
 RETURNS boolean
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN pg_try_advisory_xact_lock(hashtextextended('pgqueue.prune', 0));
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_record_assistant_version()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
        BEGIN
            INSERT INTO assistant_versions
                (assistant_id, version, graph_id, name, description, config, context,
                 metadata, created_at)
            VALUES (NEW.assistant_id, NEW.version, NEW.graph_id, NEW.name, NEW.description,
                    NEW.config, NEW.context, NEW.metadata, NEW.updated_at);
            RETURN NULL;
        END
        $function$;

CREATE OR REPLACE FUNCTION public.pgqueue_retries(p_status text, p_retry_delay double precision, p_attempt integer, p_releases integer, p_max_attempts integer)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
AS $function$
    SELECT p_status = 'error' AND p_retry_delay IS NOT NULL AND p_attempt - p_releases < p_max_attempts
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_rollback_run(p_run_id uuid, p_attempt integer, p_worker_id text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_thread uuid;
BEGIN
    PERFORM pgqueue_assert_lease(p_run_id, p_attempt, p_worker_id);
    -- Fenced once, with the run row locked until commit: the deletes below
    -- (and the cascade to run_events once the run is gone) must not re-check
    -- a lease on a run this very transaction removes. Transaction-local.
    PERFORM set_config('pgqueue.lease', '', true);
    SELECT thread_id INTO v_thread FROM runs WHERE run_id = p_run_id;
    -- Checkpoints first: their fence checks the run, which must still exist.
    PERFORM pgqueue_delete_run_checkpoints(v_thread, p_run_id);
    DELETE FROM runs WHERE run_id = p_run_id;
    PERFORM pgqueue_settle_thread(v_thread, 'rolled_back', NULL);
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_settle_thread(p_thread_id uuid, p_outcome text, p_error jsonb)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF p_thread_id IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM threads WHERE thread_id = p_thread_id FOR UPDATE;
    UPDATE threads SET
        status = CASE
            WHEN EXISTS (SELECT 1 FROM runs
                         WHERE thread_id = p_thread_id AND status IN ('pending', 'running'))
                THEN 'busy'
            WHEN p_outcome IN ('error', 'timeout') THEN 'error'
            WHEN p_outcome = 'interrupted' THEN 'interrupted'
            ELSE 'idle'
        END,
        error = CASE WHEN p_outcome IN ('error', 'timeout') THEN p_error ELSE NULL END,
        updated_at = now()
    WHERE thread_id = p_thread_id;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_sweep(p_stale_after interval DEFAULT NULL::interval)
 RETURNS TABLE(requeued integer, failed integer, workers_removed integer)
 LANGUAGE plpgsql
AS $function$
DECLARE
    stale_after interval := coalesce(p_stale_after, pgqueue_lease_timeout());
    rec record;
    n_requeued integer := 0;
    n_failed integer := 0;
    n_workers integer := 0;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('pgqueue.sweep', 0)) THEN
        RETURN QUERY SELECT 0, 0, 0;
        RETURN;
    END IF;

    FOR rec IN
        WITH stale AS (
            SELECT r.run_id FROM runs r
            WHERE r.status = 'running' AND r.heartbeat_at < now() - stale_after
            ORDER BY r.run_id
            FOR UPDATE SKIP LOCKED
        )
        UPDATE runs r SET
            status = CASE WHEN r.attempt - r.releases >= r.max_attempts THEN 'error' ELSE 'pending' END,
            error = CASE WHEN r.attempt - r.releases >= r.max_attempts
                THEN jsonb_build_object(
                    'error', 'MaxAttemptsExceeded',
                    'message', format(
                        'Run %s was attempted %s times (max_attempts %s) and its worker stopped '
                        'heartbeating each time (last worker %s, silent for over %s). Likely causes: '
                        'the worker process was killed (out of memory, SIGKILL), its host restarted, '
                        'or the run blocks its worker for longer than the lease.',
                        r.run_id, r.attempt - r.releases, r.max_attempts,
                        coalesce(r.worker_id, 'unknown'), stale_after))
                ELSE r.error END,
            ended_at = CASE WHEN r.attempt - r.releases >= r.max_attempts THEN now() END,
            worker_id = CASE WHEN r.attempt - r.releases >= r.max_attempts THEN r.worker_id END,
            heartbeat_at = NULL,
            not_before = now(),
            updated_at = now()
        FROM stale
        WHERE r.run_id = stale.run_id
        RETURNING r.status, r.thread_id, r.error
    LOOP
        IF rec.status = 'error' THEN
            n_failed := n_failed + 1;
            PERFORM pgqueue_settle_thread(rec.thread_id, 'error', rec.error);
        ELSE
            n_requeued := n_requeued + 1;
        END IF;
    END LOOP;

    DELETE FROM workers WHERE heartbeat_at < now() - stale_after;
    GET DIAGNOSTICS n_workers = ROW_COUNT;

    IF n_requeued > 0 THEN
        PERFORM pg_notify('pgqueue_runs', '');
    END IF;
    RETURN QUERY SELECT n_requeued, n_failed, n_workers;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_thread_expiry()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    fallback jsonb;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.ttl_minutes IS NULL THEN
        SELECT value INTO fallback FROM pgqueue_defaults WHERE name = 'thread_ttl';
        IF fallback IS NOT NULL THEN
            NEW.ttl_strategy := fallback->>'strategy';
            NEW.ttl_minutes := (fallback->>'default_ttl')::double precision;
        END IF;
    END IF;
    -- NULL without a TTL. Untouched otherwise: the pruner clears it once a
    -- keep_latest thread is pruned, until the thread is used again.
    IF TG_OP = 'INSERT' OR NEW.updated_at IS DISTINCT FROM OLD.updated_at
            OR NEW.ttl_minutes IS DISTINCT FROM OLD.ttl_minutes
            OR NEW.ttl_strategy IS DISTINCT FROM OLD.ttl_strategy THEN
        NEW.expires_at := NEW.updated_at + make_interval(secs => NEW.ttl_minutes * 60);
    END IF;
    RETURN NEW;
END
$function$;

CREATE OR REPLACE FUNCTION public.pgqueue_thread_has_live_run(p_thread_id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
    SELECT EXISTS (
        SELECT FROM runs
        WHERE thread_id = p_thread_id AND status IN ('pending', 'running'))
$function$;
