-- The W3C traceparent of the request that made each event's change (the
-- CloudEvents distributed-tracing extension), so a consumer of the event
-- continues that trace. Null for events written outside a traced request
-- and for every event written before this version.
--
-- Expand-only: a new nullable column without a default, which PostgreSQL
-- adds without rewriting the table. A binary of the previous version names
-- its columns in every insert and select, so it keeps working on this
-- schema (its events simply carry no traceparent).
alter table commandes_events add column if not exists traceparent text;
