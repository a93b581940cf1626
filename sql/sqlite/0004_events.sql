-- The order events (the outbox): written by the same transaction as the
-- change they describe, so an event exists exactly when its change was
-- committed.
--
-- SQLite has one writer at a time, and it commits in the order it writes,
-- so the sequence can be given at insert: AUTOINCREMENT hands out numbers
-- above every one ever used (pruned rows included), and a reader that has
-- seen a committed number has seen every smaller one that will ever be
-- committed. Numbers taken by a rolled-back write were never visible.
--
-- `customer_id` is the order's customer after the change (for who may see
-- a history once the order is gone); `data` is the CloudEvents `data`
-- object as JSON text, without `sequence` (added when read). Times are
-- RFC 3339 text like the orders', so text order is time order.
create table commandes_events (
    sequence    integer primary key autoincrement,
    event_id    text    not null unique,
    type        text    not null,
    time        text    not null,
    order_ref   integer not null,
    order_id    text    not null,
    customer_id text    not null,
    data        text    not null
);

-- An order's history.
create index commandes_events_order on commandes_events (order_ref, sequence);
-- Retention prunes by age.
create index commandes_events_time on commandes_events (time);
