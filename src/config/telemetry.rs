//! `[telemetry]`: where OpenTelemetry traces go. Off unless an OTLP
//! endpoint is set.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Longest `telemetry.service_name` (it is sent with every batch of spans).
const MAX_SERVICE_NAME: usize = 128;

/// OpenTelemetry traces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP base URL of a collector (`http://127.0.0.1:4318`):
    /// spans are sent to `<endpoint>/v1/traces` as protobuf. Empty: no
    /// exporter at all (incoming `traceparent` headers still reach the
    /// events).
    pub otlp_endpoint: String,
    /// The `service.name` of the spans.
    pub service_name: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            otlp_endpoint: String::new(),
            service_name: "commandes".into(),
        }
    }
}

impl TelemetrySettings {
    /// Whether spans are exported.
    pub fn exports(&self) -> bool {
        !self.otlp_endpoint.is_empty()
    }

    /// Where spans are sent: the endpoint with `/v1/traces`, as the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT` is read.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.otlp_endpoint.trim_end_matches('/'))
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.exports() {
            // Said without the value: a collector URL may carry credentials.
            let Some((scheme, rest)) = self.otlp_endpoint.split_once("://") else {
                bail!("telemetry.otlp_endpoint must be an http:// or https:// URL");
            };
            if !matches!(scheme, "http" | "https") || rest.is_empty() {
                bail!("telemetry.otlp_endpoint must be an http:// or https:// URL");
            }
        }
        if self.service_name.is_empty()
            || self.service_name.len() > MAX_SERVICE_NAME
            || self.service_name.chars().any(char::is_control)
        {
            bail!("telemetry.service_name must be 1-{MAX_SERVICE_NAME} printable characters");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_base_url() {
        let mut t = TelemetrySettings::default();
        assert!(!t.exports());
        t.validate().unwrap();
        t.otlp_endpoint = "http://127.0.0.1:4318/".into();
        t.validate().unwrap();
        assert_eq!(t.traces_url(), "http://127.0.0.1:4318/v1/traces");
        for bad in ["127.0.0.1:4318", "grpc://x:4317", "http://"] {
            t.otlp_endpoint = bad.into();
            assert!(t.validate().is_err(), "{bad}");
        }
        t.otlp_endpoint = String::new();
        t.service_name = String::new();
        assert!(t.validate().is_err());
    }
}
