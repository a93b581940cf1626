-- Where each broker relay is, and who may run it.
--
-- `position` is the sequence number of the last event the broker confirmed;
-- it only moves forward, and only for the lease holder. The lease is taken
-- and renewed with one conditional upsert; `lease_until` is in milliseconds
-- since the Unix epoch (the processes sharing a SQLite file share a clock).
create table commandes_event_relay (
    name        text    primary key,
    position    integer not null default 0,
    holder      text,
    lease_until integer not null default 0
);
