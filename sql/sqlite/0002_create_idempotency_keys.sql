-- Idempotency keys of POST /commandes: the first request's outcome, kept
-- for a while so that a retry with the same key replays it.
--
-- `scope` is the caller (a digest of its token), so two callers never see
-- each other's keys. `fingerprint` identifies the request body: the same key
-- with another body is refused. The created order is kept as it was then
-- (a snapshot), since the replay must give the original answer even if the
-- order has changed since.
create table commandes_idempotency_keys (
    scope        text    not null,
    key          text    not null,
    fingerprint  text    not null,
    order_pk     integer not null,
    order_id     text    not null,
    customer_id  text    not null,
    status       text    not null,
    total_cents  integer not null,
    created_at   text    not null,
    updated_at   text    not null,
    expires_at   text    not null,
    primary key (scope, key)
);

-- The clean-up deletes by expiry.
create index commandes_idempotency_keys_expires on commandes_idempotency_keys (expires_at);
