//! `GET /stats/timeseries`: the orders created per day, week or month,
//! checked against figures computed here from the orders loaded, with
//! filters, partial ranges, defaults and bad parameters.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeDelta, Timelike, Utc};
use commandes::domain::{Actor, Amount, HistoricalOrder, NewOrder, OrderRecord, Status};
use commandes::storage::{ExportFilter, ImportBatch, ImportOptions, ImportRow, OnConflict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::support::{count_rows, error_fields, json, open_store, problem, Backend, TestApp};

/// 240 orders from 2025-12-20 to about 2026-03-10, with every status, three
/// customers and uneven amounts and times (some at midnight exactly).
fn orders() -> Vec<HistoricalOrder> {
    let start: DateTime<Utc> = "2025-12-20T00:00:00Z".parse().unwrap();
    (0..240u32)
        .map(|i| {
            let minutes = if i % 17 == 0 {
                i64::from(i / 3) * 1440 // midnight exactly
            } else {
                i64::from(i) * 487 + i64::from(i * i % 613)
            };
            let created_at = start + TimeDelta::minutes(minutes);
            HistoricalOrder {
                order: NewOrder {
                    order_id: format!("TS-{i:03}"),
                    customer_id: format!("C{}", i % 3 + 1),
                    status: Status::ALL[(i as usize * 7 / 3) % 4],
                    total_amount: Amount::from_cents(i64::from(i * 9_173 % 250_000)).unwrap(),
                },
                created_at,
                updated_at: created_at,
            }
        })
        .collect()
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The buckets this test expects, computed without the service's code.
fn expected(
    orders: &[HistoricalOrder],
    interval: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    keep: impl Fn(&HistoricalOrder) -> bool,
) -> Value {
    let first_day = |d: NaiveDate| match interval {
        "day" => d,
        "week" => d - Days::new(d.weekday().num_days_from_monday().into()),
        _ => NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap(),
    };
    let next = |d: NaiveDate| match interval {
        "day" => d + Days::new(1),
        "week" => d + Days::new(7),
        _ => d + Months::new(1),
    };
    let mut starts = vec![first_day(from.date_naive())];
    while next(*starts.last().unwrap())
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        < to
    {
        starts.push(next(*starts.last().unwrap()));
    }
    let buckets: Vec<Value> = starts
        .iter()
        .map(|start| {
            let mut counts = [0i64; 4];
            let mut sums = [0i64; 4];
            for o in orders.iter().filter(|o| {
                o.created_at >= from
                    && o.created_at < to
                    && first_day(o.created_at.date_naive()) == *start
                    && keep(o)
            }) {
                let i = Status::ALL
                    .iter()
                    .position(|s| *s == o.order.status)
                    .unwrap();
                counts[i] += 1;
                sums[i] += o.order.total_amount.cents();
            }
            json!({
                "start": format!("{start}T00:00:00Z"),
                "total_orders": counts.iter().sum::<i64>(),
                "total_amount": money(sums.iter().sum()),
                "by_status": {"pending": counts[0], "processing": counts[1],
                              "completed": counts[2], "cancelled": counts[3]},
                "amount_by_status": {"pending": money(sums[0]), "processing": money(sums[1]),
                                     "completed": money(sums[2]), "cancelled": money(sums[3])},
            })
        })
        .collect();
    Value::Array(buckets)
}

async fn series(app: &TestApp, query: &str) -> Value {
    json(app.get(&format!("/stats/timeseries?{query}")).await, 200).await
}

async fn figures_are_exact_per_day_week_and_month(app: TestApp) {
    let orders = orders();
    let store = open_store(&app).await;
    store.insert_historical(&orders).await.unwrap();
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let all = |_: &HistoricalOrder| true;
    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        &str,
        &str,
        &str,
        Box<dyn Fn(&HistoricalOrder) -> bool>,
    )> = vec![
        (
            "day",
            "2025-12-20T00:00:00Z",
            "2026-03-12T00:00:00Z",
            "",
            Box::new(all),
        ),
        (
            "week",
            "2025-12-20T00:00:00Z",
            "2026-03-12T00:00:00Z",
            "",
            Box::new(all),
        ),
        (
            "month",
            "2025-12-01T00:00:00Z",
            "2026-04-01T00:00:00Z",
            "",
            Box::new(all),
        ),
        // Partial first and last buckets: only the orders inside count.
        (
            "week",
            "2026-01-07T13:30:00Z",
            "2026-02-11T06:00:00Z",
            "",
            Box::new(all),
        ),
        (
            "month",
            "2026-01-01T00:00:00Z",
            "2026-03-01T00:00:00Z",
            "&status=completed",
            Box::new(|o: &HistoricalOrder| o.order.status == Status::Completed),
        ),
        (
            "day",
            "2026-02-01T00:00:00Z",
            "2026-02-15T00:00:00Z",
            "&customer_id=C2&status=pending",
            Box::new(|o: &HistoricalOrder| {
                o.order.customer_id == "C2" && o.order.status == Status::Pending
            }),
        ),
    ];
    for (interval, from, to, filters, keep) in cases {
        let query = format!(
            "interval={interval}&from={}&to={}{filters}",
            crate::support::enc(from),
            crate::support::enc(to)
        );
        let body = series(&app, &query).await;
        assert_eq!(body["interval"], interval);
        let want = expected(&orders, interval, t(from), t(to), keep);
        assert_eq!(body["buckets"], want, "{query}");
    }
    // The loaded orders are all there, once.
    let months = series(&app, "interval=month&from=2025-12-01&to=2026-04-01").await;
    let total: i64 = months["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["total_orders"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 240);
    // A date means its midnight UTC, `to` exclusive: January is 31 days.
    let january = series(&app, "from=2026-01-01&to=2026-02-01").await;
    assert_eq!(january["from"], "2026-01-01T00:00:00Z");
    assert_eq!(january["to"], "2026-02-01T00:00:00Z");
    assert_eq!(january["buckets"].as_array().unwrap().len(), 31);
    // Orders made through the API count in today's bucket at once.
    let before = store.stats(&Actor::system()).await.unwrap();
    app.create("TS-NOW", "C9", "12.34", "pending").await;
    let today = series(&app, "").await;
    let buckets = today["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 30);
    let last = buckets.last().unwrap();
    assert_eq!(
        last["start"],
        format!("{}T00:00:00Z", Utc::now().date_naive())
    );
    assert_eq!(last["total_orders"], 1);
    assert_eq!(last["amount_by_status"]["pending"], "12.34");
    assert_eq!(before.total_orders(), 240);
}

async fn defaults_and_bad_parameters(app: TestApp) {
    let body = series(&app, "").await;
    assert_eq!(body["interval"], "day");
    let today = Utc::now().date_naive();
    assert_eq!(body["to"], format!("{}T00:00:00Z", today + Days::new(1)));
    assert_eq!(body["from"], format!("{}T00:00:00Z", today - Days::new(29)));
    let weeks = series(&app, "interval=week").await;
    assert_eq!(weeks["buckets"].as_array().unwrap().len(), 30);
    assert!(weeks["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["total_orders"] == 0 && b["amount_by_status"]["cancelled"] == "0.00"));
    for (query, fields) in [
        ("interval=hour", vec!["interval"]),
        ("from=yesterday&to=", vec!["from", "to"]),
        ("from=2026-02-01&to=2026-02-01", vec!["from"]),
        ("from=2026-03-01&to=2026-02-01", vec!["from"]),
        ("from=2026-01-01&to=2028-09-28", vec!["interval"]),
        ("status=lost&limit=3", vec!["limit", "status"]),
        ("interval=day&interval=week", vec!["interval"]),
        ("customer_id=%01", vec!["customer_id"]),
    ] {
        let r = app.get(&format!("/stats/timeseries?{query}")).await;
        let body = problem(r, 422).await;
        assert_eq!(error_fields(&body), fields, "{query}: {body}");
    }
    let r = app
        .get("/stats/timeseries?from=2026-01-01&to=2028-09-28")
        .await;
    let body = problem(r, 422).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("more than 1000 buckets"),
        "{body}"
    );
    // 1000 buckets are fine.
    let most = series(&app, "from=2026-01-01&to=2028-09-27").await;
    assert_eq!(most["buckets"].as_array().unwrap().len(), 1000);
}

/// Differences between the per-day figures the database keeps (migration
/// 0009) and a plain `GROUP BY` over the orders, as one count (0 when they
/// agree; days whose orders were all deleted may keep a row of zeros).
async fn kept_figures_mismatches(app: &TestApp) -> i64 {
    let sql = match app.backend {
        Backend::Sqlite => {
            "select count(*) from (
                select day, status, sum(order_count) as n, sum(total_cents) as a
                from commandes_daily group by 1, 2 having n <> 0 or a <> 0) k
             full join (
                select substr(created_at, 1, 10) as day, status, count(*) as n,
                       sum(total_cents) as a
                from commandes group by 1, 2) g
             on k.day = g.day and k.status = g.status
             where k.n is not g.n or k.a is not g.a"
        }
        _ => {
            "select count(*) from (
                select day, status, sum(order_count) as n, sum(total_amount) as a
                from commandes_daily group by 1, 2
                having sum(order_count) <> 0 or sum(total_amount) <> 0) k
             full join (
                select (created_at at time zone 'UTC')::date as day, status, count(*) as n,
                       sum(total_amount) as a
                from commandes group by 1, 2) g
             on k.day = g.day and k.status = g.status
             where k.n is distinct from g.n or k.a is distinct from g.a"
        }
    };
    count_rows(app, sql).await
}

/// How many indexes and triggers `commandes` has.
async fn schema_objects(app: &TestApp) -> i64 {
    let sql = match app.backend {
        Backend::Sqlite => "select count(*) from sqlite_master where tbl_name = 'commandes'",
        _ => {
            "select (select count(*) from pg_indexes where tablename = 'commandes')
                  + (select count(*) from pg_trigger
                     where tgrelid = 'commandes'::regclass and not tgisinternal)"
        }
    };
    count_rows(app, sql).await
}

/// Statuses whose `/stats` counters differ from a plain `GROUP BY`.
async fn counter_mismatches(app: &TestApp) -> i64 {
    let sql = match app.backend {
        Backend::Sqlite => {
            "select count(*) from commandes_stats k
             left join (select status, count(*) as n, sum(total_cents) as a
                        from commandes group by 1) g on g.status = k.status
             where k.order_count <> coalesce(g.n, 0) or k.total_cents <> coalesce(g.a, 0)"
        }
        _ => {
            "select count(*) from (
                select status, sum(order_count) as n, sum(total_amount) as a
                from commandes_stats group by 1) k
             left join (select status, count(*) as n, sum(total_amount) as a
                        from commandes group by 1) g on g.status = k.status
             where k.n <> coalesce(g.n, 0) or k.a <> coalesce(g.a, 0)"
        }
    };
    count_rows(app, sql).await
}

/// Every order now in the database, as the expected figures take them.
async fn all_orders(app: &TestApp) -> Vec<HistoricalOrder> {
    let store = open_store(app).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let filter = ExportFilter::default();
    let exporting = store.export(&filter, tx);
    let mut orders = Vec::new();
    let collecting =
        async {
            while let Some(batch) = rx.recv().await {
                orders.extend(batch.into_iter().map(|o: commandes::domain::Order| {
                    HistoricalOrder {
                        order: NewOrder {
                            order_id: o.order_id,
                            customer_id: o.customer_id,
                            status: o.status,
                            total_amount: o.total_amount,
                        },
                        created_at: o.created_at,
                        updated_at: o.updated_at,
                    }
                }));
            }
        };
    let (exported, ()) = tokio::join!(exporting, collecting);
    exported.expect("export");
    orders
}

/// The kept per-day figures stay equal to a plain `GROUP BY` through a
/// seeded random mix of creates, transitions, amount edits and deletes
/// (on old days and today), an import that moves orders to other days, and
/// more changes after it; and the series built from them (whole days from
/// the figures, partial edge days from the orders) is exact.
async fn kept_figures_follow_every_change(app: TestApp) {
    let seed = std::env::var("TIMESERIES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    println!("timeseries: seed {seed} (TIMESERIES_SEED={seed} replays the choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let store = open_store(&app).await;
    store.insert_historical(&orders()[..120]).await.unwrap();
    assert_eq!(kept_figures_mismatches(&app).await, 0, "after the load");

    let mut ids: Vec<i64> = app
        .list("/commandes?limit=1000")
        .await
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    let changes = async |rng: &mut StdRng, ids: &mut Vec<i64>, round: u32| {
        for step in 0..80 {
            let amount = money(rng.random_range(0..500_000));
            match rng.random_range(0..10) {
                0..=1 => {
                    let status = Status::ALL[rng.random_range(0..4)].as_str();
                    let o = app
                        .create(&format!("MIX-{round}-{step}"), "MIXER", &amount, status)
                        .await;
                    ids.push(o["id"].as_i64().unwrap());
                }
                2..=4 => {
                    let id = ids[rng.random_range(0..ids.len())];
                    let status = Status::ALL[rng.random_range(0..4)].as_str();
                    let r = app
                        .put(&format!("/commandes/{id}/status"), &json!(status))
                        .await;
                    assert!([200, 409].contains(&r.status().as_u16()), "{id} → {status}");
                }
                5..=7 => {
                    let id = ids[rng.random_range(0..ids.len())];
                    let body = if rng.random_bool(0.5) {
                        json!({"total_amount": amount})
                    } else {
                        json!({"total_amount": amount,
                               "status": Status::ALL[rng.random_range(0..4)].as_str()})
                    };
                    let r = app.put(&format!("/commandes/{id}"), &body).await;
                    assert!([200, 409].contains(&r.status().as_u16()), "{id}: {body}");
                }
                _ => {
                    let id = ids.swap_remove(rng.random_range(0..ids.len()));
                    assert_eq!(app.delete(&format!("/commandes/{id}")).await.status(), 204);
                }
            }
        }
    };
    changes(&mut rng, &mut ids, 1).await;
    assert_eq!(kept_figures_mismatches(&app).await, 0, "after the changes");

    // An import that updates orders (moving some to other days, other
    // statuses and amounts) and adds new ones on old days.
    let existing = all_orders(&app).await;
    let start: DateTime<Utc> = "2025-12-20T00:00:00Z".parse().unwrap();
    let mut rows = Vec::new();
    for (line, o) in existing.iter().take(40).enumerate() {
        let moved = start + TimeDelta::minutes(rng.random_range(0..60 * 24 * 80));
        rows.push(row(line, o.order.order_id.clone(), moved, &mut rng));
    }
    for i in 0..40 {
        let at = start + TimeDelta::minutes(rng.random_range(0..60 * 24 * 80));
        rows.push(row(40 + i, format!("IMP-{i}"), at, &mut rng));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(ImportBatch::Rows(rows)).await.unwrap();
    tx.send(ImportBatch::Commit).await.unwrap();
    let options = ImportOptions {
        on_conflict: OnConflict::Update,
        max_problems: 10,
        now: Utc::now(),
    };
    let outcome = store.import(rx, &options).await.expect("import");
    assert!(outcome.committed, "{:?}", outcome.problems);
    assert_eq!((outcome.updated, outcome.inserted), (40, 40));
    assert_eq!(kept_figures_mismatches(&app).await, 0, "after the import");

    // A large import, which SQLite counts once at the end instead of row by
    // row (`storage/sqlite/bulk.rs`), moving orders as well as adding them.
    let existing = all_orders(&app).await;
    let mut rows = Vec::new();
    for (line, o) in existing.iter().skip(10).take(30).enumerate() {
        let moved = start + TimeDelta::minutes(rng.random_range(0..60 * 24 * 80));
        rows.push(row(line, o.order.order_id.clone(), moved, &mut rng));
    }
    for i in 0..12_000 {
        let at = start - TimeDelta::minutes(rng.random_range(0..60 * 24 * 400));
        rows.push(row(30 + i, format!("BIG-{i}"), at, &mut rng));
    }
    let schema_before = schema_objects(&app).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(ImportBatch::Rows(rows)).await.unwrap();
    tx.send(ImportBatch::Commit).await.unwrap();
    let outcome = store.import(rx, &options).await.expect("large import");
    // SQLite set its triggers and plain indexes aside for it: all back.
    assert_eq!(schema_objects(&app).await, schema_before);
    assert!(outcome.committed, "{:?}", outcome.problems);
    assert_eq!((outcome.updated, outcome.inserted), (30, 12_000));
    assert_eq!(
        kept_figures_mismatches(&app).await,
        0,
        "after a large import"
    );
    assert_eq!(counter_mismatches(&app).await, 0, "after a large import");
    ids = app
        .list("/commandes?limit=1000")
        .await
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    changes(&mut rng, &mut ids, 2).await;
    assert_eq!(kept_figures_mismatches(&app).await, 0, "after more changes");

    // The answers, against figures computed here from every order.
    let orders = all_orders(&app).await;
    let today = Utc::now().date_naive();
    let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let end = format!("{}T00:00:00Z", today + Days::new(1));
    let partial = format!("{today}T{:02}:17:00.5Z", Utc::now().hour());
    for (interval, from, to, status) in [
        ("day", "2025-12-01T00:00:00Z", end.as_str(), None),
        (
            "week",
            "2025-12-20T07:13:00Z",
            "2026-02-11T06:00:00.000001Z",
            None,
        ),
        ("day", "2025-12-31T23:00:00Z", "2026-01-01T01:00:00Z", None),
        (
            "day",
            "2025-12-01T00:00:00Z",
            end.as_str(),
            Some(Status::Cancelled),
        ),
        ("month", "2025-12-15T12:00:00Z", partial.as_str(), None),
        (
            "month",
            "2025-12-15T12:00:00Z",
            partial.as_str(),
            Some(Status::Pending),
        ),
    ] {
        let query = format!(
            "interval={interval}&from={}&to={}{}",
            crate::support::enc(from),
            crate::support::enc(to),
            status.map_or(String::new(), |s| format!("&status={}", s.as_str()))
        );
        let body = series(&app, &query).await;
        let want = expected(&orders, interval, t(from), t(to), |o| {
            status.is_none_or(|s| o.order.status == s)
        });
        assert_eq!(body["buckets"], want, "{query} (seed {seed})");
    }
}

/// An import row (a new order, or a change of `order_id`'s) created at `at`.
fn row(line: usize, order_id: String, at: DateTime<Utc>, rng: &mut StdRng) -> ImportRow {
    ImportRow {
        file: 0,
        line: line as u64 + 1,
        record: OrderRecord {
            id: None,
            order: NewOrder {
                order_id,
                customer_id: "IMPORTER".into(),
                status: Status::ALL[rng.random_range(0..4)],
                total_amount: Amount::from_cents(rng.random_range(0..1_000_000)).unwrap(),
            },
            created_at: Some(at),
            updated_at: Some(at),
        },
    }
}

crate::both_backends!(
    figures_are_exact_per_day_week_and_month,
    defaults_and_bad_parameters,
    kept_figures_follow_every_change,
);
