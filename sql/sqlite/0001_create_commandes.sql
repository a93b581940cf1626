-- The orders table, SQLite dialect.
--
-- Amounts are integer cents (SQLite has no exact decimal type); times are
-- RFC 3339 text in UTC with exactly six fractional digits and a `Z`, so
-- that text order is time order. AUTOINCREMENT keeps ids from ever being
-- reused after a delete.
create table commandes (
    id          integer primary key autoincrement,
    order_id    text    not null unique,
    customer_id text    not null,
    status      text    not null default 'pending'
                check (status in ('pending', 'processing', 'completed', 'cancelled')),
    total_cents integer not null check (total_cents between 0 and 9999999999),
    created_at  text    not null,
    updated_at  text    not null
);

-- The list endpoints filter by customer or status and sort by creation
-- time by default.
create index commandes_customer_created on commandes (customer_id, created_at, id);
create index commandes_status_created on commandes (status, created_at, id);
create index commandes_created on commandes (created_at, id);
