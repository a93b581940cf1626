-- Counts and sums per status, kept by triggers in the same transaction as
-- every change, so that GET /stats reads four rows instead of scanning the
-- table, and is exact right after any change. SQLite has one writer at a
-- time, so one row per status is enough.
create table commandes_stats (
    status      text    not null primary key,
    order_count integer not null,
    total_cents integer not null
);

insert into commandes_stats (status, order_count, total_cents)
select s.status,
       (select count(*) from commandes c where c.status = s.status),
       (select coalesce(sum(total_cents), 0) from commandes c where c.status = s.status)
from (select 'pending' as status union all select 'processing'
      union all select 'completed' union all select 'cancelled') s;

create trigger commandes_stats_insert after insert on commandes
begin
    update commandes_stats
    set order_count = order_count + 1, total_cents = total_cents + new.total_cents
    where status = new.status;
end;

create trigger commandes_stats_delete after delete on commandes
begin
    update commandes_stats
    set order_count = order_count - 1, total_cents = total_cents - old.total_cents
    where status = old.status;
end;

create trigger commandes_stats_update after update of status, total_cents on commandes
begin
    update commandes_stats
    set order_count = order_count - 1, total_cents = total_cents - old.total_cents
    where status = old.status;
    update commandes_stats
    set order_count = order_count + 1, total_cents = total_cents + new.total_cents
    where status = new.status;
end;
