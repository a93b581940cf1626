-- Close the service's tables to Supabase's public roles.
--
-- On Supabase, the Data API (PostgREST) serves the `public` schema as `anon`
-- (anyone holding the project's public key) and `authenticated` (any
-- signed-in user), and a project grants both every privilege on each new
-- table. Left so, anyone with the anon key could read and change every order
-- directly, around this service and its checks.
--
-- Two locks, each enough on its own:
--
-- - row level security on every table, with no policy: a role other than
--   the table's owner sees no row and changes none. It is not forced, so the
--   owner (the role the service connects as: `postgres` on Supabase) is not
--   bound by it; superusers and `bypassrls` roles never are.
-- - every privilege of `anon` and `authenticated` revoked on the tables,
--   their sequences and the trigger function, where those roles exist (on a
--   PostgreSQL without them there is nothing to revoke).
--
-- The rule for every later migration: a migration that creates a table
-- enables row level security on it and revokes from `anon` and
-- `authenticated` as below (the project's default privileges grant them
-- everything on a new table). tests/api/supabase_roles.rs fails for any
-- table of the schema left open.
do $$
declare
    tables text[] := array[
        'commandes', 'commandes_idempotency_keys', 'commandes_stats',
        'commandes_events', 'commandes_event_sequencer', 'commandes_event_relay',
        'commandes_schema_migrations'
    ];
    -- Already quoted and qualified as needed (regclass text); the id
    -- sequence of an adopted table keeps its original name.
    sequences text[] := array[
        pg_get_serial_sequence('commandes', 'id'),
        pg_get_serial_sequence('commandes_events', 'insertion_id')
    ];
    t text;
    r text;
    s text;
begin
    foreach t in array tables loop
        execute format('alter table %I enable row level security', t);
    end loop;
    foreach r in array array['anon', 'authenticated'] loop
        continue when not exists (select 1 from pg_roles where rolname = r);
        foreach t in array tables loop
            execute format('revoke all on table %I from %I', t, r);
        end loop;
        foreach s in array sequences loop
            execute format('revoke all on sequence %s from %I', s, r);
        end loop;
        execute format('revoke all on function commandes_stats_track() from %I', r);
    end loop;
end
$$;
