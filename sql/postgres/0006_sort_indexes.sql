-- Indexes for the two list sorts that had none: `total_amount` and
-- `updated_at`, each with the `id` tie-breaker.
--
-- `sort=total_amount` is `order by total_amount, id` (either direction: a
-- b-tree is scanned backwards for `desc, desc`) and a keyset page adds the
-- row comparison `(total_amount, id) > ($1, $2)` (or `<`), which is an
-- index range on the same columns; so one index per sort serves the first
-- page, every `cursor` page and a bounded `skip` without sorting the table.
--
-- Plain `create index`: migrations run inside a transaction, where
-- `create index concurrently` is not allowed. On a large adopted table the
-- build holds off writes to `commandes` while it runs; to avoid that, build
-- them beforehand with `create index concurrently` under these names, and
-- `if not exists` then leaves them as they are.
create index if not exists commandes_total on commandes (total_amount, id);
create index if not exists commandes_updated on commandes (updated_at, id);
