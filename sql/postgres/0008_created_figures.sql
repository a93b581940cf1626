-- A covering index for GET /stats/timeseries: the orders created in a
-- range, counted and summed per day and status, can be read by an
-- index-only scan (no visit of each row for its status and amount).
--
-- Plain `create index` (migrations run in a transaction): on a large
-- adopted table, build it beforehand with `create index concurrently`
-- under this name, and `if not exists` leaves it as it is.
create index if not exists commandes_created_figures
    on commandes (created_at, status, total_amount);
