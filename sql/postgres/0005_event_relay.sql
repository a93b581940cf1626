-- Where each broker relay is, and who may run it.
--
-- `position` is the sequence number of the last event the broker confirmed;
-- it only moves forward, and only for the lease holder. The lease is taken
-- and renewed with one conditional upsert (no session lock, no advisory
-- lock), so it works through a transaction pooler: a replica may relay while
-- `lease_until` (the database's clock) is in the future and `holder` is its
-- own name; when the holder dies, the lease simply expires.
create table if not exists commandes_event_relay (
    name        text        primary key,
    position    bigint      not null default 0,
    holder      text,
    lease_until timestamptz not null default '-infinity'
);
