-- pgqueue's runtime role: all that `pgqueue server` and `pgqueue worker` need.
-- Run it in pgqueue's database as the role that owns the tables (the one
-- that runs `pgqueue migrate`), after migrating; put your role's name for
-- pgqueue_app. Create the role first:
--     CREATE ROLE pgqueue_app LOGIN PASSWORD '...';
-- The role gets DML only: it cannot create, alter, drop or truncate a table,
-- so it cannot migrate either. tests/db/test_least_privilege.py runs this file.

-- PUBLIC may connect by default, but a hardened server revokes that.
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgqueue_app', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO pgqueue_app;
-- Every table and view.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO pgqueue_app;
-- alembic_version: read only. Server and worker check the revision at start;
-- moving it is the owner's, so the role cannot apply even a migration that
-- only changes rows.
REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM pgqueue_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO pgqueue_app;
-- pgqueue_sweep(), pgqueue_cancel_runs(), pgqueue_assert_lease()...: PUBLIC
-- may execute functions by default, but a hardened server revokes that.
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO pgqueue_app;

-- What later migrations create (run by the same owner) gets the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO pgqueue_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO pgqueue_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT EXECUTE ON FUNCTIONS TO pgqueue_app;
