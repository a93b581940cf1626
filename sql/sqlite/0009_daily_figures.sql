-- Orders created per UTC day and status (count and amount), kept by
-- triggers in the same transaction as every change, as commandes_stats is
-- (0003), so that GET /stats/timeseries reads four rows per day instead of
-- grouping every order of the range. SQLite has one writer at a time, so
-- one row per day and status is enough. `day` is the first ten characters
-- of `created_at` (stored as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC).
--
-- Rows are never removed by the triggers: a day whose orders were all
-- deleted keeps zeros, which the reader adds like any other row.
create table commandes_daily (
    day         text    not null,
    status      text    not null,
    order_count integer not null,
    total_cents integer not null,
    primary key (day, status)
) without rowid;

-- Start from the rows already there (an existing database).
insert into commandes_daily (day, status, order_count, total_cents)
select substr(created_at, 1, 10), status, count(*), sum(total_cents)
from commandes
group by 1, 2;

create trigger commandes_daily_insert after insert on commandes
begin
    insert into commandes_daily (day, status, order_count, total_cents)
    values (substr(new.created_at, 1, 10), new.status, 1, new.total_cents)
    on conflict (day, status) do update
        set order_count = order_count + 1, total_cents = total_cents + excluded.total_cents;
end;

create trigger commandes_daily_delete after delete on commandes
begin
    update commandes_daily
    set order_count = order_count - 1, total_cents = total_cents - old.total_cents
    where day = substr(old.created_at, 1, 10) and status = old.status;
end;

-- Same day and status (an amount edit): one update by the difference.
create trigger commandes_daily_update_amount after update of status, total_cents, created_at
on commandes
when old.status = new.status and substr(old.created_at, 1, 10) = substr(new.created_at, 1, 10)
begin
    update commandes_daily
    set total_cents = total_cents - old.total_cents + new.total_cents
    where day = substr(new.created_at, 1, 10) and status = new.status;
end;

-- Another status or day: out of the old figures, into the new ones.
create trigger commandes_daily_update_move after update of status, total_cents, created_at
on commandes
when old.status <> new.status or substr(old.created_at, 1, 10) <> substr(new.created_at, 1, 10)
begin
    update commandes_daily
    set order_count = order_count - 1, total_cents = total_cents - old.total_cents
    where day = substr(old.created_at, 1, 10) and status = old.status;
    insert into commandes_daily (day, status, order_count, total_cents)
    values (substr(new.created_at, 1, 10), new.status, 1, new.total_cents)
    on conflict (day, status) do update
        set order_count = order_count + 1, total_cents = total_cents + excluded.total_cents;
end;
