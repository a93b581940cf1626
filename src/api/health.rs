//! `GET /` and the probes: unauthenticated, and they ignore query strings.

use std::sync::Arc;
use std::time::Duration;

use super::json::JsonOut;
use poem_openapi::{ApiResponse, OpenApi};

use super::schema::{ProbeStatus, ServiceInfo};
use super::ApiTags;
use crate::storage::{migrations, Store};

/// How long the readiness probe waits for the database.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Service information and health probes.
pub struct HealthApi {
    pub store: Arc<dyn Store>,
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
    /// Name, version, storage backend and where the docs are. No token needed.
    #[oai(path = "/", method = "get", operation_id = "service_info")]
    async fn info(&self) -> InfoResponse {
        InfoResponse::Ok(JsonOut(ServiceInfo {
            service: "commandes".into(),
            version: env!("CARGO_PKG_VERSION").into(),
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
    /// The database answers within two seconds and its schema is at the
    /// version this build expects; 503 with the reason otherwise.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self) -> ProbeResponse {
        let reason = match tokio::time::timeout(READY_TIMEOUT, self.store.info()).await {
            Err(_) => "the database did not answer in time".to_string(),
            Ok(Err(_)) => "the database cannot be reached".to_string(),
            Ok(Ok(info)) => {
                let expected = match info.backend {
                    crate::storage::Backend::Sqlite => migrations::latest(migrations::SQLITE),
                    crate::storage::Backend::Postgres => migrations::latest(migrations::POSTGRES),
                };
                if info.schema_version == expected {
                    return ok();
                }
                format!(
                    "schema version {} (expected {expected})",
                    info.schema_version
                )
            }
        };
        ProbeResponse::Unavailable(JsonOut(ProbeStatus {
            status: "unavailable".into(),
            reason: Some(reason),
        }))
    }
}
