-- The read-only role of Grafana's PostgreSQL datasource (grafana/provisioning/datasources/datasources.yml:
-- user grafana_reader, database patrol, password $PATROL_GRAFANA_DB_PASSWORD).
--
-- Grafana reads only the dashboard views (v_open_incidents, v_street_performance, and any later v_*),
-- never the tables: `incidents` and `reporters` hold the reporters' names and phones (nor other views, such as
-- `incident_reporters`, which shows them). A view runs with its owner's
-- rights, so SELECT on the views is all the role needs. The views are created later, by `patrol migrate`,
-- so an event trigger grants each v_* view to the role as it is created (or re-created).
--
-- Run by psql (the postgres image runs docker-entrypoint-initdb.d/*.sql so, once, on an empty data
-- directory) as a superuser, in the database the platform uses. Idempotent: safe to run again.
-- The password comes from the environment: PATROL_GRAFANA_DB_PASSWORD (psql 15 or newer for \getenv).

\set ON_ERROR_STOP on
\getenv grafana_password PATROL_GRAFANA_DB_PASSWORD
\if :{?grafana_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'PATROL_GRAFANA_DB_PASSWORD is not set: refusing to create grafana_reader without a password'; END $$;
\endif

SELECT 'CREATE ROLE grafana_reader' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader')
\gexec
ALTER ROLE grafana_reader WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOINHERIT
    CONNECTION LIMIT 10 PASSWORD :'grafana_password';
ALTER ROLE grafana_reader SET default_transaction_read_only = on;
ALTER ROLE grafana_reader SET statement_timeout = '30s';

GRANT CONNECT ON DATABASE :"DBNAME" TO grafana_reader;
GRANT USAGE ON SCHEMA public TO grafana_reader;

CREATE OR REPLACE FUNCTION public.grant_dashboard_views_to_grafana_reader() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    created record;
BEGIN
    FOR created IN
        SELECT object_identity FROM pg_event_trigger_ddl_commands()
        WHERE object_type IN ('view', 'materialized view') AND schema_name = 'public'
    LOOP
        IF created.object_identity LIKE 'public.v\_%' THEN
            EXECUTE format('GRANT SELECT ON %s TO grafana_reader', created.object_identity);
        END IF;
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS grafana_reader_dashboard_views;
CREATE EVENT TRIGGER grafana_reader_dashboard_views ON ddl_command_end
    WHEN TAG IN ('CREATE VIEW', 'CREATE MATERIALIZED VIEW')
    EXECUTE FUNCTION public.grant_dashboard_views_to_grafana_reader();

-- views that already exist (the script run again on a migrated database)
SELECT format('GRANT SELECT ON %I.%I TO grafana_reader', schemaname, viewname)
FROM pg_views WHERE schemaname = 'public' AND viewname LIKE 'v\_%'
\gexec
