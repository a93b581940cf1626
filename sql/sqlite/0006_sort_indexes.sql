-- Indexes for the two list sorts that had none: `total_amount` and
-- `updated_at`, each with the `id` tie-breaker.
--
-- `sort=total_amount` is `order by total_cents, id` (either direction,
-- SQLite walks an index backwards) and a keyset page adds
-- `(total_cents, id) > (?, ?)` (or `<`), a range on the same index; so one
-- index per sort serves the first page, every `cursor` page and a bounded
-- `skip` without sorting the table. Without them each such request was a
-- full scan and sort.
create index commandes_total on commandes (total_cents, id);
create index commandes_updated on commandes (updated_at, id);
