-- Idempotency keys of POST /commandes: the first request's outcome, kept
-- for a while so that a retry with the same key replays it.
--
-- `scope` is the caller (a digest of its token), so two callers never see
-- each other's keys. `fingerprint` identifies the request body: the same key
-- with another body is refused. The created order is kept as it was then
-- (a snapshot), since the replay must give the original answer even if the
-- order has changed since.
create table if not exists commandes_idempotency_keys (
    scope        text          not null,
    key          text          not null,
    fingerprint  text          not null,
    order_pk     bigint        not null,
    order_id     varchar(50)   not null,
    customer_id  varchar(50)   not null,
    status       varchar(20)   not null,
    total_amount numeric(10,2) not null,
    created_at   timestamptz   not null,
    updated_at   timestamptz   not null,
    expires_at   timestamptz   not null,
    primary key (scope, key)
);

-- The clean-up deletes by expiry.
create index if not exists commandes_idempotency_keys_expires on commandes_idempotency_keys (expires_at);
