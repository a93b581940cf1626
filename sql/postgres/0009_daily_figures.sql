-- Orders created per UTC day and status (count and amount), kept by a
-- trigger in the same transaction as every change, as commandes_stats is
-- (0003), so that GET /stats/timeseries reads a few rows per day instead of
-- grouping every order of the range. A year of days is at most
-- 365 × 4 × 16 small rows, read by the primary key.
--
-- Each (day, status) is spread over 16 rows (the order's id modulo 16):
-- every new order lands on today's `pending` figures, and concurrent
-- writers of different orders would otherwise queue on that one row. A
-- change touches at most two rows (old figures, new figures) and only one
-- when the day and status stay (an amount edit); status changes only move
-- forward, so two changes never take those locks in opposite orders.
--
-- Rows are never removed by the trigger: a day whose orders were all
-- deleted keeps zeros, which the reader adds like any other row.
create table if not exists commandes_daily (
    day          date          not null,
    status       varchar(20)   not null,
    shard        smallint      not null,
    order_count  bigint        not null default 0,
    total_amount numeric(20,2) not null default 0,
    primary key (day, status, shard)
);

-- Today's rows are rewritten by every change: room on the page for HOT
-- updates, and vacuum after a few hundred dead rows (see 0003).
alter table commandes_daily set (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);

-- Start from the rows already there (a database adopted with its data).
insert into commandes_daily (day, status, shard, order_count, total_amount)
select (created_at at time zone 'UTC')::date, status, (id % 16)::smallint, count(*), sum(total_amount)
from commandes
group by 1, 2, 3
on conflict (day, status, shard) do update
    set order_count = excluded.order_count, total_amount = excluded.total_amount;

create or replace function commandes_daily_track() returns trigger
language plpgsql as $$
declare
    old_day date;
    new_day date;
begin
    -- A bulk import sets this for its own transaction and recounts once at
    -- the end (storage/postgres/bulk.rs), as for commandes_stats.
    if current_setting('commandes.bulk', true) = 'on' then
        return null;
    end if;
    if tg_op = 'UPDATE' then
        old_day := (old.created_at at time zone 'UTC')::date;
        new_day := (new.created_at at time zone 'UTC')::date;
        if old_day = new_day and old.status = new.status then
            -- Same figures row: one update by the difference.
            update commandes_daily
            set total_amount = total_amount - old.total_amount + new.total_amount
            where day = new_day and status = new.status and shard = new.id % 16;
            return null;
        end if;
    end if;
    if tg_op in ('UPDATE', 'DELETE') then
        update commandes_daily
        set order_count = order_count - 1, total_amount = total_amount - old.total_amount
        where day = (old.created_at at time zone 'UTC')::date
          and status = old.status and shard = old.id % 16;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        insert into commandes_daily as d (day, status, shard, order_count, total_amount)
        values ((new.created_at at time zone 'UTC')::date, new.status, new.id % 16, 1, new.total_amount)
        on conflict (day, status, shard) do update
            set order_count = d.order_count + 1, total_amount = d.total_amount + excluded.total_amount;
    end if;
    return null;
end
$$;

drop trigger if exists commandes_daily_track on commandes;
create trigger commandes_daily_track
    after insert or delete or update of status, total_amount, created_at on commandes
    for each row execute function commandes_daily_track();

-- Closed to Supabase's public roles, as every table (see 0007).
alter table commandes_daily enable row level security;
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated'] loop
        continue when not exists (select 1 from pg_roles where rolname = r);
        execute format('revoke all on table commandes_daily from %I', r);
        execute format('revoke all on function commandes_daily_track() from %I', r);
    end loop;
end
$$;
