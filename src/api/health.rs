//! `GET /` and the probes: unauthenticated, and they ignore query strings.

use std::sync::Arc;
use std::time::Duration;

use super::json::JsonOut;
use poem_openapi::{ApiResponse, OpenApi};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::schema::{ProbeStatus, ServiceInfo};
use super::ApiTags;
use crate::build_info;
use crate::storage::{Store, StoreError};

/// How long the readiness probe waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a readiness answer is reused.
const READY_FOR: Duration = Duration::from_secs(1);

/// Service information and health probes.
pub struct HealthApi {
    pub store: Arc<dyn Store>,
    pub readiness: Readiness,
}

/// The last readiness answer and when it was made. The probe is
/// unauthenticated, so a flood of probes must not become a flood of
/// database calls: an answer is reused for [`READY_FOR`], and the lock
/// makes one probe at a time ask the database while the others wait for
/// its answer (a single flight). So probes cost at most about one database
/// call, and one connection, per second, however many there are.
#[derive(Default)]
pub struct Readiness(Mutex<Option<(Instant, Result<(), String>)>>);

impl Readiness {
    /// Ready, or why not.
    async fn check(&self, store: &dyn Store) -> Result<(), String> {
        let Ok(mut last) = tokio::time::timeout(READY_TIMEOUT, self.0.lock()).await else {
            return Err("the database did not answer in time".into());
        };
        if let Some((at, answer)) = &*last {
            if at.elapsed() < READY_FOR {
                return answer.clone();
            }
        }
        let answer = ask(store).await;
        *last = Some((Instant::now(), answer.clone()));
        answer
    }
}

/// Asks the database for its schema version and the builds it accepts
/// (one small statement over the version table, whatever the data), and
/// whether this build is one of them.
async fn ask(store: &dyn Store) -> Result<(), String> {
    let state = match tokio::time::timeout(READY_TIMEOUT, store.schema_state()).await {
        Err(_) => return Err("the database did not answer in time".into()),
        Ok(Err(StoreError::Overloaded(_))) => return Err("the database is busy".into()),
        Ok(Err(_)) => return Err("the database cannot be reached".into()),
        Ok(Ok(state)) => state,
    };
    state
        .verdict(store.backend().history())
        .map_err(|mismatch| mismatch.to_string())
}

#[derive(ApiResponse)]
pub enum InfoResponse {
    /// The service is up.
    #[oai(status = 200)]
    Ok(JsonOut<ServiceInfo>),
}

#[derive(ApiResponse)]
pub enum ProbeResponse {
    /// Ready (or alive).
    #[oai(status = 200)]
    Ok(JsonOut<ProbeStatus>),
    /// Not ready; `reason` says why.
    #[oai(status = 503)]
    Unavailable(JsonOut<ProbeStatus>),
}

fn ok() -> ProbeResponse {
    ProbeResponse::Ok(JsonOut(ProbeStatus {
        status: "ok".into(),
        reason: None,
    }))
}

#[OpenApi(tag = "ApiTags::Service")]
impl HealthApi {
    /// Service information
    ///
    /// Name, version and git revision, storage backend and where the docs
    /// are. No token needed.
    #[oai(path = "/", method = "get", operation_id = "service_info")]
    async fn info(&self) -> InfoResponse {
        InfoResponse::Ok(JsonOut(ServiceInfo {
            service: "commandes".into(),
            version: build_info::VERSION.into(),
            revision: build_info::REVISION.into(),
            status: "ok".into(),
            storage: self.store.backend().as_str().into(),
            docs: "/docs".into(),
        }))
    }

    /// Liveness probe
    ///
    /// The process is up. Does no I/O.
    #[oai(path = "/health/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> ProbeResponse {
        ok()
    }

    /// Readiness probe
    ///
    /// The database answers within two seconds and its schema is one this
    /// build may serve: its own version, or a later one whose migrations
    /// all declare that they still accept this build (written
    /// expand-then-contract, so old and new replicas serve side by side
    /// during a rolling upgrade). 503 with the reason otherwise. The
    /// answer is reused for a second (a recovery shows up within about a
    /// second), so probes cost at most about one database call a second.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self) -> ProbeResponse {
        match self.readiness.check(self.store.as_ref()).await {
            Ok(()) => ok(),
            Err(reason) => ProbeResponse::Unavailable(JsonOut(ProbeStatus {
                status: "unavailable".into(),
                reason: Some(reason),
            })),
        }
    }
}
