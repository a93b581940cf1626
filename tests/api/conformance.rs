//! The store conformance story: what every backend of
//! [`commandes::storage::Store`] must do, told once and run against each
//! backend through `&dyn Store` (no HTTP in between). A third backend
//! passes this story before anything else; the HTTP tests then check the
//! API built on top.
//!
//! The story follows one shop's orders: migrations, creation with and
//! without idempotency keys, reads with and without a customer scope,
//! lists, updates under `If-Match`, the transition rule, deletion, the
//! event feed and histories, figures, key and event purges, the relay's
//! lease, export and import, and closing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use commandes::domain::event::EventKind;
use commandes::domain::timeseries::{DayFigures, Interval, SeriesQuery};
use commandes::domain::{
    Actor, Amount, HistoricalOrder, IdempotencyKey, ListFilter, NewOrder, OrderPatch, OrderRecord,
    Precondition, Status,
};
use commandes::storage::{
    self, Conflict, ExportFilter, ImportBatch, ImportOptions, ImportOutcome, ImportRow, OnConflict,
    Store, StoreError, StoreOptions,
};

use crate::support::TestDatabase;

fn new_order(order_id: &str, customer_id: &str, cents: i64) -> NewOrder {
    NewOrder {
        order_id: order_id.into(),
        customer_id: customer_id.into(),
        status: Status::Pending,
        total_amount: Amount::from_cents(cents).expect("a valid amount"),
    }
}

/// A caller restricted to one customer's orders.
fn customer(id: &str) -> Actor {
    Actor {
        who: format!("jwt:{id}"),
        request_id: String::new(),
        traceparent: None,
        owner: Some(id.into()),
    }
}

fn kinds(events: &[commandes::domain::event::Event]) -> Vec<EventKind> {
    events.iter().map(|e| e.event.kind).collect()
}

/// Sequences committed events where the backend numbers them after commit
/// (PostgreSQL), as the server's background job does.
async fn numbered(store: &dyn Store) {
    store.sequence_events().await.expect("sequence events");
}

/// Sends `rows` to an import that refuses taken order_ids; its outcome.
async fn import(store: &dyn Store, rows: Vec<ImportBatch>) -> ImportOutcome {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let sending = tokio::spawn(async move {
        for r in rows {
            let _ = tx.send(r).await;
        }
    });
    let options = ImportOptions {
        on_conflict: OnConflict::Fail,
        max_problems: 10,
        now: Utc::now(),
    };
    let outcome = store.import(rx, &options).await.expect("import");
    sending.await.unwrap();
    outcome
}

/// The whole story, against one store on an empty database.
async fn story(store: Arc<dyn Store>) {
    let store: &dyn Store = store.as_ref();
    let system = Actor::system();

    // Migrations: a new database goes to the latest version; a second run
    // does nothing; the probe's query agrees.
    let first = store.migrate().await.expect("migrate");
    assert_eq!(first.from, 0, "a new database starts at version 0");
    assert!(first.to > 0);
    let again = store.migrate().await.expect("migrate again");
    assert_eq!((again.from, again.to), (first.to, first.to));
    let state = store.schema_state().await.unwrap();
    assert_eq!(state.version, first.to);
    assert_eq!(state.compatible_from, first.compatible_from);
    assert_eq!(state.verdict(store.backend().history()), Ok(()));
    let info = store.info().await.unwrap();
    assert_eq!((info.schema, info.order_count), (state, 0));
    assert_eq!(info.backend, store.backend());

    // Creating: ids are assigned, the order comes back as stored, and a
    // taken order_id is a conflict that writes nothing.
    let a = store
        .create(&new_order("A-1", "alice", 1050), None, &system)
        .await
        .expect("create A-1");
    assert!(!a.replayed);
    let a = a.order;
    assert!(a.id > 0);
    assert_eq!(
        (a.order_id.as_str(), a.status, a.total_amount.cents()),
        ("A-1", Status::Pending, 1050)
    );
    assert_eq!(a.created_at, a.updated_at);
    match store
        .create(&new_order("A-1", "bob", 1), None, &system)
        .await
    {
        Err(StoreError::Conflict(Conflict::DuplicateOrderId(id))) => assert_eq!(id, "A-1"),
        other => panic!("a taken order_id must be a conflict, got {other:?}"),
    }

    // An idempotency key: the repeat replays the first outcome; the same
    // key with another order is refused; another caller's key is its own.
    let b_order = new_order("B-1", "bob", 2000);
    let key = IdempotencyKey::new("token:t1", "k-1", &b_order, Duration::from_secs(60)).unwrap();
    let b = store.create(&b_order, Some(&key), &system).await.unwrap();
    let replay = store.create(&b_order, Some(&key), &system).await.unwrap();
    assert!(replay.replayed && !b.replayed);
    assert_eq!(replay.order, b.order);
    let b = b.order;
    let other = new_order("B-2", "bob", 2000);
    let reused = IdempotencyKey::new("token:t1", "k-1", &other, Duration::from_secs(60)).unwrap();
    assert!(matches!(
        store.create(&other, Some(&reused), &system).await,
        Err(StoreError::IdempotencyMismatch)
    ));
    let elsewhere =
        IdempotencyKey::new("token:t2", "k-1", &other, Duration::from_secs(60)).unwrap();
    let c = store
        .create(&other, Some(&elsewhere), &system)
        .await
        .unwrap();
    assert!(!c.replayed);
    let c = c.order;

    // A customer-scoped caller creates only for itself.
    assert!(matches!(
        store
            .create(&new_order("X-1", "bob", 1), None, &customer("alice"))
            .await,
        Err(StoreError::Forbidden(_))
    ));

    // Reading: by id and by order_id; another customer's order does not
    // exist for a scoped caller.
    assert_eq!(store.get(a.id, &system).await.unwrap(), a);
    assert_eq!(store.get_by_order_id("B-1", &system).await.unwrap(), b);
    assert_eq!(store.get(a.id, &customer("alice")).await.unwrap(), a);
    assert!(matches!(
        store.get(b.id, &customer("alice")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get_by_order_id("B-1", &customer("alice")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get(i64::MAX, &system).await,
        Err(StoreError::NotFound)
    ));

    // Lists: filters, the default order (newest first), and scoping.
    let all = store.list(&ListFilter::default(), &system).await.unwrap();
    assert_eq!(
        all.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![c.id, b.id, a.id]
    );
    let bobs = ListFilter {
        customer_id: Some("bob".into()),
        min_amount: Amount::from_cents(1500),
        ..ListFilter::default()
    };
    assert_eq!(store.list(&bobs, &system).await.unwrap().len(), 2);
    let mine = store
        .list(&ListFilter::default(), &customer("alice"))
        .await
        .unwrap();
    assert_eq!(mine, vec![a.clone()]);
    let page = ListFilter {
        limit: 1,
        skip: 1,
        ..ListFilter::default()
    };
    assert_eq!(
        store.list(&page, &system).await.unwrap()[0].id,
        b.id,
        "skip and limit page through the same order"
    );

    // Updating: a stale If-Match fails and returns the order as it is; a
    // patch that changes nothing writes nothing; the transition rule is
    // the domain's; moving an order to another customer needs the right.
    let stale = Precondition::Tags(vec!["\"not-the-etag\"".into()]);
    match store
        .set_status(a.id, Status::Processing, Some(&stale), &system)
        .await
    {
        Err(StoreError::PreconditionFailed(now)) => assert_eq!(*now, a),
        other => panic!("a stale If-Match must fail, got {other:?}"),
    }
    let same = store
        .update(
            a.id,
            &OrderPatch {
                customer_id: Some("alice".into()),
                ..OrderPatch::default()
            },
            None,
            &system,
        )
        .await
        .unwrap();
    assert!(same.previous.is_none(), "a no-op has no previous state");
    assert_eq!(same.order, a);
    let fresh = Precondition::Tags(vec![a.etag()]);
    let moved = store
        .set_status(a.id, Status::Processing, Some(&fresh), &customer("alice"))
        .await
        .unwrap();
    assert_eq!(moved.previous.as_ref(), Some(&a));
    assert_eq!(moved.order.status, Status::Processing);
    assert!(moved.order.updated_at >= a.updated_at);
    let a = moved.order;
    match store.set_status(a.id, Status::Pending, None, &system).await {
        Err(StoreError::Conflict(Conflict::Transition { from, to })) => {
            assert_eq!((from, to), (Status::Processing, Status::Pending))
        }
        other => panic!("processing → pending must be refused, got {other:?}"),
    }
    assert!(matches!(
        store
            .update(
                a.id,
                &OrderPatch {
                    customer_id: Some("bob".into()),
                    ..OrderPatch::default()
                },
                None,
                &customer("alice"),
            )
            .await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        store
            .update(
                a.id,
                &OrderPatch {
                    order_id: Some("B-1".into()),
                    ..OrderPatch::default()
                },
                None,
                &system,
            )
            .await,
        Err(StoreError::Conflict(Conflict::DuplicateOrderId(_)))
    ));
    assert_eq!(
        store.get(a.id, &system).await.unwrap(),
        a,
        "a refused change leaves the order as it was"
    );

    // Deleting: under If-Match, scoped, and then gone.
    assert!(matches!(
        store.delete(b.id, None, &customer("alice")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete(b.id, Some(&stale), &system).await,
        Err(StoreError::PreconditionFailed(_))
    ));
    store
        .delete(b.id, Some(&Precondition::Any), &system)
        .await
        .unwrap();
    assert!(matches!(
        store.get(b.id, &system).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete(b.id, None, &system).await,
        Err(StoreError::NotFound)
    ));

    // Events: every committed change once, in commit order, numbered
    // upwards; histories per order, also after a deletion, scoped.
    numbered(store).await;
    let events = store.events_after(0, 100).await.unwrap();
    assert_eq!(
        kinds(&events),
        vec![
            EventKind::Created,
            EventKind::Created,
            EventKind::Created,
            EventKind::StatusChanged,
            EventKind::Deleted,
        ]
    );
    assert!(events.windows(2).all(|w| w[0].sequence < w[1].sequence));
    let last = events.last().unwrap().sequence;
    assert_eq!(store.last_event_sequence().await.unwrap(), last);
    assert_eq!(
        store.events_after(events[1].sequence, 2).await.unwrap(),
        events[2..4].to_vec(),
        "after and limit page through the feed"
    );
    let history = store.history(b.id, 0, 10, &system).await.unwrap();
    assert_eq!(
        kinds(&history),
        vec![EventKind::Created, EventKind::Deleted]
    );
    assert!(matches!(
        store.history(b.id, 0, 10, &customer("alice")).await,
        Err(StoreError::NotFound)
    ));
    let alices = store
        .history(a.id, 0, 10, &customer("alice"))
        .await
        .unwrap();
    assert_eq!(
        kinds(&alices),
        vec![EventKind::Created, EventKind::StatusChanged]
    );

    // Figures over what the caller may see.
    let stats = store.stats(&system).await.unwrap();
    assert_eq!(stats.counts, [1, 1, 0, 0], "pending B-2, processing A-1");
    assert_eq!(stats.sums, [2000, 1050, 0, 0]);
    let alice_stats = store.stats(&customer("alice")).await.unwrap();
    assert_eq!(alice_stats.counts, [0, 1, 0, 0]);

    // Purges: keys that expired go (and the key can be used again); events
    // older than a time go, never above a relay's position.
    assert!(
        store
            .purge_expired_keys(Utc::now() + TimeDelta::hours(1))
            .await
            .unwrap()
            >= 2
    );
    let d = store
        .create(&new_order("B-3", "bob", 5), Some(&key), &system)
        .await
        .expect("a purged key is free again");
    assert!(!d.replayed, "the purged key's outcome is not replayed");
    let d = d.order;
    let future = Utc::now() + TimeDelta::hours(1);
    let kept_above = events[1].sequence;
    let gone = store
        .purge_events(future, Some(kept_above), 100)
        .await
        .unwrap();
    assert_eq!(gone, 2, "only the events up to the relay's position go");
    assert_eq!(
        store.events_after(0, 100).await.unwrap()[0].sequence,
        events[2].sequence
    );

    // The relay's lease: one holder at a time, a position that only moves
    // up, released on shutdown.
    let ttl = Duration::from_secs(30);
    assert_eq!(store.relay_position("r").await.unwrap(), None);
    assert_eq!(store.relay_claim("r", "one", ttl).await.unwrap(), Some(0));
    assert_eq!(store.relay_claim("r", "two", ttl).await.unwrap(), None);
    assert!(store.relay_advance("r", "one", last, ttl).await.unwrap());
    assert!(store.relay_advance("r", "one", 1, ttl).await.unwrap());
    assert_eq!(store.relay_position("r").await.unwrap(), Some(last));
    assert!(!store
        .relay_advance("r", "two", last + 5, ttl)
        .await
        .unwrap());
    store.relay_release("r", "one").await.unwrap();
    assert_eq!(
        store.relay_claim("r", "two", ttl).await.unwrap(),
        Some(last)
    );

    // Historical orders keep their own times; export sends every order
    // from one snapshot by ascending id; import stages and writes all or
    // nothing.
    let then = Utc::now() - TimeDelta::days(400);
    let old = HistoricalOrder {
        order: NewOrder {
            status: Status::Completed,
            ..new_order("H-1", "carol", 999)
        },
        created_at: then,
        updated_at: then,
    };
    assert_eq!(store.insert_historical(&[old]).await.unwrap(), 1);
    let h = store.get_by_order_id("H-1", &system).await.unwrap();
    assert_eq!(
        (h.created_at.timestamp(), h.status),
        (then.timestamp(), Status::Completed)
    );

    // Orders per day of creation and status, over [from, to), scoped like
    // every read; days without orders are left out.
    let t = h.created_at;
    let series = |from, to, status, customer_id: Option<&str>| SeriesQuery {
        interval: Interval::Day,
        from,
        to,
        status,
        customer_id: customer_id.map(str::to_string),
    };
    let h1 = vec![DayFigures {
        day: t.date_naive(),
        status: Status::Completed,
        count: 1,
        cents: 999,
    }];
    let around = series(t - TimeDelta::days(2), t + TimeDelta::days(2), None, None);
    assert_eq!(store.daily_figures(&around, &system).await.unwrap(), h1);
    assert_eq!(
        store
            .daily_figures(&around, &customer("carol"))
            .await
            .unwrap(),
        h1
    );
    assert!(store
        .daily_figures(&around, &customer("alice"))
        .await
        .unwrap()
        .is_empty());
    for (status, customer_id, want) in [
        (Some(Status::Completed), None, &h1),
        (Some(Status::Pending), None, &vec![]),
        (None, Some("carol"), &h1),
        (None, Some("bob"), &vec![]),
    ] {
        let q = series(around.from, around.to, status, customer_id);
        assert_eq!(&store.daily_figures(&q, &system).await.unwrap(), want);
    }
    // `to` is exclusive, `from` inclusive.
    let before = series(t - TimeDelta::days(1), t, None, None);
    assert!(store
        .daily_figures(&before, &system)
        .await
        .unwrap()
        .is_empty());
    let from_t = series(t, t + TimeDelta::microseconds(1), None, None);
    assert_eq!(store.daily_figures(&from_t, &system).await.unwrap(), h1);
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let sent = store.export(&ExportFilter::default(), tx).await.unwrap();
    let mut exported = Vec::new();
    while let Some(batch) = rx.recv().await {
        exported.extend(batch);
    }
    assert_eq!(sent, 4);
    assert_eq!(
        exported.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![a.id, c.id, d.id, h.id]
    );
    let row = |line: u64, order: NewOrder| ImportRow {
        file: 0,
        line,
        record: OrderRecord {
            id: None,
            order,
            created_at: None,
            updated_at: None,
        },
    };
    let refused = import(
        store,
        vec![
            ImportBatch::Rows(vec![
                row(1, new_order("I-1", "dave", 100)),
                row(2, new_order("A-1", "dave", 100)),
            ]),
            ImportBatch::Commit,
        ],
    )
    .await;
    assert!(!refused.committed);
    assert_eq!(
        refused.problems.iter().map(|p| p.at).collect::<Vec<_>>(),
        vec![Some((0, 2))],
        "the taken order_id is named by its line"
    );
    assert!(matches!(
        store.get_by_order_id("I-1", &system).await,
        Err(StoreError::NotFound)
    ));
    let aborted = import(
        store,
        vec![
            ImportBatch::Rows(vec![row(1, new_order("I-1", "dave", 100))]),
            ImportBatch::Abort,
        ],
    )
    .await;
    assert!(!aborted.committed);
    assert!(store.get_by_order_id("I-1", &system).await.is_err());
    let imported = import(
        store,
        vec![
            ImportBatch::Rows(vec![row(1, new_order("I-1", "dave", 100))]),
            ImportBatch::Commit,
        ],
    )
    .await;
    assert!(imported.committed && imported.problems.is_empty());
    assert_eq!(imported.inserted, 1);
    assert_eq!(
        store
            .get_by_order_id("I-1", &system)
            .await
            .unwrap()
            .customer_id,
        "dave"
    );

    // Closing: the store answers no more.
    store.close().await;
    assert!(matches!(
        store.get(a.id, &system).await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_follows_the_story() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("story.db").display());
    let store = storage::open(&url.parse().unwrap(), &StoreOptions::default())
        .await
        .unwrap();
    story(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_follows_the_story() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store = storage::open(&db.url.parse().unwrap(), &StoreOptions::default())
        .await
        .unwrap();
    story(store).await;
}
