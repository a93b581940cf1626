-- A covering index for GET /stats/timeseries: the orders created in a
-- range, counted and summed per day and status, are read from the index
-- alone (no lookup of each row for its status and amount).
create index commandes_created_figures on commandes (created_at, status, total_cents);
