-- The order events (the outbox): written by the same statement or
-- transaction as the change they describe, so an event exists exactly when
-- its change was committed.
--
-- Sequence numbers cannot be given at insert: values drawn from a sequence
-- are handed out before commit, so a transaction that drew N-1 may commit
-- after one that drew N, and a reader that saw N would skip it. So an event
-- is inserted with `sequence` null, and a sequencer (one at a time, under an
-- advisory lock, in a short transaction of its own) numbers the committed
-- unnumbered events in insertion order, continuing from the counter below.
-- It only ever sees committed rows and numbers above everything numbered
-- before, so a reader that has seen N never later finds a new event <= N.
-- Writers never wait for it.
--
-- `insertion_id` orders the events of one order as they happened (changes
-- of an order are serialised by its row lock). `customer_id` is the order's
-- customer after the change, for who may see a history once the order is
-- gone. `data` is the CloudEvents `data` object, without `sequence`.
create table if not exists commandes_events (
    insertion_id bigint generated always as identity primary key,
    sequence     bigint,
    event_id     uuid        not null unique,
    type         text        not null,
    time         timestamptz not null,
    order_ref    bigint      not null,
    order_id     varchar(50) not null,
    customer_id  varchar(50) not null,
    data         jsonb       not null
);

-- The feed reads by sequence.
create unique index if not exists commandes_events_sequence on commandes_events (sequence);
-- The sequencer finds its work here; the index only holds the few rows
-- not numbered yet, so looking costs next to nothing when there are none.
create index if not exists commandes_events_unsequenced on commandes_events (insertion_id)
    where sequence is null;
-- An order's history.
create index if not exists commandes_events_order on commandes_events (order_ref, insertion_id);
-- Retention prunes by age.
create index if not exists commandes_events_time on commandes_events (time);

-- The last sequence number given: a counter that survives the pruning of
-- every event (a max() over the table would not), and moves only inside
-- the sequencer's transaction, so a failed run gives nothing away.
create table if not exists commandes_event_sequencer (
    id            smallint primary key check (id = 1),
    last_sequence bigint not null
);
insert into commandes_event_sequencer (id, last_sequence) values (1, 0)
    on conflict (id) do nothing;

-- The counter row and the unsequenced rows are rewritten often: let
-- PostgreSQL update them in place and vacuum them early.
alter table commandes_event_sequencer set (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 500
);
