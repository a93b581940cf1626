//! The OTLP/HTTP exporter: protobuf over the reqwest client the service
//! already has (no gRPC stack, no second HTTP client), and the tracer
//! provider that batches spans for it.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::TelemetrySettings;

/// Longest wait for the collector, per batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest collector answer read (it is an empty message when all is well).
const MAX_ANSWER: usize = 64 * 1024;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Sends the exporter's requests on the service's tokio runtime. The
/// batch processor calls it from a thread of its own and waits there for
/// the answer, so the request is spawned onto the runtime rather than run
/// in the caller's executor (reqwest needs tokio's reactor).
#[derive(Debug, Clone)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let mut answer = client.execute(request).await?;
            let mut builder = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            let mut body = Vec::new();
            while let Some(chunk) = answer.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err("the collector's answer is too large".into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, HttpError>(builder.body(Bytes::from(body))?)
        });
        sent.await?
    }
}

/// Starts the exporter and its batch processor; the tracer of this crate.
pub(super) fn tracer(settings: &TelemetrySettings) -> anyhow::Result<SdkTracer> {
    let mut client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none());
    if settings.otlp_endpoint.starts_with("https://") {
        // An https collector is checked against the platform's roots
        // (the client has none built in).
        for cert in rustls_native_certs::load_native_certs().certs {
            if let Ok(cert) = reqwest::Certificate::from_der(cert.as_ref()) {
                client = client.add_root_certificate(cert);
            }
        }
    }
    let client = client.build().context("the OTLP client")?;
    let http = OnRuntime {
        client,
        runtime: tokio::runtime::Handle::try_current().context("the OTLP exporter needs tokio")?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.traces_url())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .context("the OTLP exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(settings.service_name.clone())
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    crate::build_info::VERSION,
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("commandes");
    let _ = PROVIDER.set(provider);
    Ok(tracer)
}

/// Flushes and stops the provider (blocking: the batch thread sends).
pub(super) fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}
