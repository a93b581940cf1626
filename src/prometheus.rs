//! The process-wide Prometheus recorder, the names of what the HTTP layer
//! records, and the description of every metric. The store's own figures
//! are named in [`crate::storage::metered`]; `GET /metrics` (in the API,
//! and on the optional metrics listener) renders them all, followed by the
//! [`crate::process_metrics`].

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests served, by method, route template and status.
pub const HTTP_REQUESTS: &str = "commandes_http_requests_total";
/// Request latency, by method, route template and status.
pub const HTTP_SECONDS: &str = "commandes_http_request_duration_seconds";
/// Requests being served now.
pub const HTTP_IN_FLIGHT: &str = "commandes_http_requests_in_flight";
/// Client connections open now.
pub const HTTP_CONNECTIONS: &str = "commandes_http_connections_open";
/// Open database connections, by state (`idle`, `in_use`): the two add up
/// to the connections open.
pub const DB_POOL: &str = "commandes_db_pool_connections";
/// The most connections the pool opens.
pub const DB_POOL_MAX: &str = "commandes_db_pool_max_connections";
/// Requests waiting for a database connection (SQLite: queued for its
/// threads).
pub const DB_POOL_WAITING: &str = "commandes_db_pool_waiting_requests";
/// When the last good backup began (Unix seconds): every commit
/// acknowledged before is in it.
pub const BACKUP_LAST_SUCCESS: &str = "commandes_backup_last_success_timestamp_seconds";
/// The size of the last good backup, in bytes.
pub const BACKUP_LAST_SIZE: &str = "commandes_backup_last_size_bytes";
/// Backups that failed (scheduled or asked for), the bucket's copy included.
pub const BACKUP_FAILURES: &str = "commandes_backup_failures_total";
/// Always 1, labelled with the version and the git revision.
pub const BUILD_INFO: &str = "commandes_build_info";

/// Latency buckets, in seconds: fine below a millisecond (local SQLite),
/// coarse up to the timeouts.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The recorder, installed on first use. Every app in the process (tests
/// run several) shares it, as a real process has one.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("the bucket list is not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; the handle
        // then renders nothing, which is better than refusing to start.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// Folds the latency samples recorded since the last call into their
/// buckets. The exporter keeps raw samples until then, so without this a
/// process that is never scraped would grow by every request it serves.
pub async fn upkeep(every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        handle().run_upkeep();
    }
}

fn describe() {
    use crate::storage::metered::{
        EVENTS_UNSEQUENCED, EVENTS_WRITTEN, ORDERS_CREATED, QUERY_SECONDS, STATUS_CHANGES,
    };
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests served, by method, route template and status."
    );
    describe_histogram!(
        HTTP_SECONDS,
        Unit::Seconds,
        "HTTP request latency, by method, route template and status."
    );
    describe_gauge!(HTTP_IN_FLIGHT, "HTTP requests being served now.");
    describe_gauge!(
        HTTP_CONNECTIONS,
        "Client connections open now (at most server.max_connections)."
    );
    describe_gauge!(
        DB_POOL,
        "Open database connections, by state: idle or in_use (they add up to the open connections)."
    );
    describe_gauge!(DB_POOL_MAX, "The most database connections the pool opens.");
    describe_gauge!(
        DB_POOL_WAITING,
        "Requests waiting for a database connection (SQLite: queued for its reader and writer threads)."
    );
    describe_histogram!(
        QUERY_SECONDS,
        Unit::Seconds,
        "Store operation latency, by operation and outcome."
    );
    describe_counter!(ORDERS_CREATED, "Orders created, by status.");
    describe_counter!(
        EVENTS_WRITTEN,
        "Order events written with their changes, by type."
    );
    describe_gauge!(
        EVENTS_UNSEQUENCED,
        "Order events committed or being written, not numbered for the feed yet."
    );
    describe_counter!(
        STATUS_CHANGES,
        "Order status changes, by from and to status."
    );
    crate::relay::describe_metrics();
    describe_gauge!(
        BACKUP_LAST_SUCCESS,
        Unit::Seconds,
        "When the last good (verified) backup began, in Unix seconds."
    );
    describe_gauge!(
        BACKUP_LAST_SIZE,
        Unit::Bytes,
        "The size of the last good backup, in bytes."
    );
    describe_counter!(
        BACKUP_FAILURES,
        "Backups that failed (the snapshot, its check, or its copy in the bucket)."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version and the git revision are labels."
    );
    metrics::gauge!(
        BUILD_INFO,
        "version" => crate::build_info::VERSION,
        "revision" => crate::build_info::REVISION
    )
    .set(1.0);
}
