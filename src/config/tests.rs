use std::collections::HashMap;

use super::*;
use crate::access::{JwksUrl, JwtSecret};
use crate::relay::BrokerUrl;

/// An environment holding only `pairs`.
pub(super) fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn the_shipped_config_file_equals_the_defaults() {
    let s = Settings::load(
        Some(Path::new("config.toml")),
        env(&[]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(s, Settings::default());
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let s = Settings::load(
        Some(Path::new("config.toml")),
        env(&[
            ("DATABASE_URL", "sqlite://a.db"),
            ("COMMANDES_DATABASE_URL", "sqlite://b.db"),
            (
                "COMMANDES_API_TOKENS",
                " token-one-0123456, ,token-two-0123456 ",
            ),
            ("COMMANDES_PORT", "9000"),
        ]),
        &Overrides {
            port: Some(9100),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(s.database.url, DatabaseUrl::parse("sqlite://b.db").unwrap());
    assert_eq!(s.auth.tokens, ["token-one-0123456", "token-two-0123456"]);
    assert_eq!(s.server.port, 9100);
}

#[test]
fn event_settings_come_from_the_environment() {
    let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
    let s = load(&[
        ("COMMANDES_EVENTS_RETENTION_DAYS", "7"),
        ("COMMANDES_EVENTS_SOURCE", " /shop/commandes "),
    ])
    .unwrap();
    assert_eq!(s.events.retention_days, 7);
    assert_eq!(s.events.source, "/shop/commandes");
    assert_eq!(Settings::default().events.retention_days, 30);
    assert!(load(&[("COMMANDES_EVENTS_RETENTION_DAYS", "a month")]).is_err());
    assert!(load(&[("COMMANDES_EVENTS_SOURCE", " ")]).is_err());
}

#[test]
fn the_relay_url_comes_from_the_environment_and_is_checked() {
    let load = |url: &str| {
        Settings::load(
            None,
            env(&[("COMMANDES_EVENTS_RELAY_URL", url)]),
            &Overrides::default(),
        )
    };
    let s = load(" amqp://u:secret@h:5672/%2f ").unwrap();
    assert_eq!(
        s.events.relay_url.as_ref().map(BrokerUrl::expose),
        Some("amqp://u:secret@h:5672/%2f")
    );
    assert!(s.redacted().contains("events_relay=amqp://u:***@h"));
    assert!(!s.redacted().contains("u:secret"));
    assert!(load("kafka://h:9092").is_err());
    assert!(Settings::default().redacted().contains("events_relay=off"));
    let mut s = Settings::default();
    s.events.relay_url = Some(BrokerUrl::parse("nats://h:4222").unwrap());
    s.events.relay_timeout_ms = 6000;
    assert!(
        s.validate().is_err(),
        "a timeout longer than a third of the lease"
    );
}

#[test]
fn the_database_ca_file_comes_from_the_environment() {
    let s = Settings::load(
        None,
        env(&[("COMMANDES_DATABASE_CA_FILE", " /etc/commandes/ca.pem ")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(s.database.ca_file, "/etc/commandes/ca.pem");
    assert_eq!(
        crate::app::store_options(&s).ca_file,
        Some("/etc/commandes/ca.pem".into())
    );
    assert_eq!(
        crate::app::store_options(&Settings::default()).ca_file,
        None
    );
}

#[test]
fn the_auth_settings_come_from_the_environment() {
    let s = Settings::load(
        None,
        env(&[
            (
                "COMMANDES_READ_TOKENS",
                "reader-one-012345, reader-two-012345",
            ),
            (
                "COMMANDES_JWT_SECRET",
                " super-secret-jwt-token-with-at-least-32-characters ",
            ),
            (
                "COMMANDES_JWKS_URL",
                "https://ref.supabase.co/auth/v1/.well-known/jwks.json",
            ),
            ("COMMANDES_JWT_ISSUER", "https://ref.supabase.co/auth/v1"),
            ("COMMANDES_JWT_AUDIENCE", "authenticated"),
            ("COMMANDES_CUSTOMER_CLAIM", "sub"),
            ("COMMANDES_JWT_CLOCK_SKEW_SECS", "10"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        s.auth.read_tokens,
        ["reader-one-012345", "reader-two-012345"]
    );
    assert_eq!(
        s.auth.jwt_secret.as_ref().map(JwtSecret::expose),
        Some("super-secret-jwt-token-with-at-least-32-characters")
    );
    assert_eq!(s.auth.jwt_issuer, "https://ref.supabase.co/auth/v1");
    assert_eq!(s.auth.customer_claim, "sub");
    assert_eq!(s.auth.clock_skew_secs, 10);
    assert!(!s.auth.nothing_configured());
    assert!(Settings::default().auth.nothing_configured());
    assert_eq!(Settings::default().auth.jwt_audience, "authenticated");
}

#[test]
fn bad_auth_settings_are_errors() {
    let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
    assert!(load(&[("COMMANDES_JWT_SECRET", "short")]).is_err());
    assert!(load(&[
        ("COMMANDES_JWKS_URL", "https://x/jwks.json"),
        ("COMMANDES_JWKS_FILE", "/etc/jwks.json")
    ])
    .is_err());
    assert!(load(&[("COMMANDES_JWKS_URL", "ftp://x/jwks.json")]).is_err());
    assert!(load(&[("COMMANDES_JWKS_URL", "http://ref.supabase.co/jwks.json")]).is_err());
    assert!(load(&[("COMMANDES_JWKS_URL", "http://127.0.0.1:9999/jwks.json")]).is_ok());
    assert!(load(&[
        (
            "COMMANDES_API_TOKENS",
            "token-a-0123456789,token-b-0123456789"
        ),
        ("COMMANDES_READ_TOKENS", "token-b-0123456789")
    ])
    .is_err());
}

#[test]
fn short_tokens_are_refused_without_being_shown() {
    let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
    for var in [
        "COMMANDES_API_TOKENS",
        "COMMANDES_READ_TOKENS",
        "COMMANDES_METRICS_TOKEN",
    ] {
        let e = load(&[(var, "change-me")]).unwrap_err().to_string();
        assert!(e.contains("at least 16 characters"), "{var}: {e}");
        assert!(!e.contains("change-me"), "{var}: {e}");
        assert!(load(&[(var, "0123456789abcdef")]).is_ok(), "{var}");
    }
    let e = load(&[("COMMANDES_API_TOKENS", "0123456789abcdef,tiny")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.tokens"), "{e}");
}

#[test]
fn the_pooler_settings_come_from_the_environment() {
    let s = Settings::load(
        None,
        env(&[
            (
                "COMMANDES_DATABASE_URL",
                "postgres://u:pw@pooler:6543/postgres",
            ),
            (
                "COMMANDES_MIGRATION_DATABASE_URL",
                " postgres://u:secret@direct:5432/postgres ",
            ),
            ("COMMANDES_STATEMENT_TIMEOUT_SECS", "3"),
            ("COMMANDES_STARTUP_TIMEOUT_SECS", "0"),
        ]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        s.database.migration_url.as_ref().map(DatabaseUrl::expose),
        Some("postgres://u:secret@direct:5432/postgres".to_string())
    );
    assert_eq!(s.database.statement_timeout_secs, 3);
    assert_eq!(s.database.startup_timeout_secs, 0);
    assert!(!s.redacted().contains("u:secret"), "{}", s.redacted());
    let o = crate::app::store_options(&s);
    assert_eq!(o.statement_timeout, Some(std::time::Duration::from_secs(3)));
    assert_eq!(o.startup_timeout, std::time::Duration::ZERO);
    // A migration URL with SQLite makes no sense.
    assert!(Settings::load(
        None,
        env(&[("COMMANDES_MIGRATION_DATABASE_URL", "postgres://u@h/db")]),
        &Overrides::default()
    )
    .is_err());
}

#[test]
fn the_connection_limits_come_from_the_environment() {
    let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
    let s = load(&[
        ("COMMANDES_IDLE_TIMEOUT_SECS", "30"),
        ("COMMANDES_HEADER_TIMEOUT_SECS", "5"),
        ("COMMANDES_BODY_TIMEOUT_SECS", "20"),
        ("COMMANDES_MAX_CONNECTIONS", "200"),
        ("COMMANDES_HTTP2_MAX_STREAMS", "16"),
    ])
    .unwrap();
    assert_eq!(
        (
            s.server.idle_timeout_secs,
            s.server.header_timeout_secs,
            s.server.body_timeout_secs,
            s.server.max_connections,
            s.server.http2_max_streams
        ),
        (30, 5, 20, 200, 16)
    );
    for name in [
        "COMMANDES_IDLE_TIMEOUT_SECS",
        "COMMANDES_HEADER_TIMEOUT_SECS",
        "COMMANDES_BODY_TIMEOUT_SECS",
        "COMMANDES_MAX_CONNECTIONS",
        "COMMANDES_HTTP2_MAX_STREAMS",
    ] {
        assert!(load(&[(name, "0")]).is_err(), "{name}=0");
        assert!(load(&[(name, "many")]).is_err(), "{name}=many");
    }
}

#[test]
fn the_metrics_address_is_an_ip_and_a_port_or_nothing() {
    let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
    assert_eq!(load(&[]).unwrap().server.metrics_address(), None);
    let s = load(&[("COMMANDES_METRICS_ADDRESS", "0.0.0.0:9464")]).unwrap();
    assert_eq!(
        s.server.metrics_address(),
        Some("0.0.0.0:9464".parse().unwrap())
    );
    assert!(s.redacted().contains("metrics_address=\"0.0.0.0:9464\""));
    for bad in ["localhost:9464", "9464", "0.0.0.0", "[::1]"] {
        let e = format!(
            "{:#}",
            load(&[("COMMANDES_METRICS_ADDRESS", bad)]).unwrap_err()
        );
        assert!(
            e.contains("server.metrics_address must be IP:PORT"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn bad_values_are_errors() {
    let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
    assert!(load(&[("COMMANDES_PORT", "eighty")]).is_err());
    assert!(load(&[("COMMANDES_DATABASE_URL", "mysql://x")]).is_err());
    assert!(Settings::load(
        Some(Path::new("/nonexistent.toml")),
        env(&[]),
        &Overrides::default()
    )
    .is_err());
}

#[test]
fn secrets_are_not_in_the_redacted_line_or_debug() {
    let mut s = Settings::default();
    s.database.url =
        DatabaseUrl::parse("postgres://u:db-pass-1@h/db?password=db-pass-2&sslmode=require")
            .unwrap();
    s.database.migration_url = DatabaseUrl::parse("postgres://u:mig-pass-3@h:5432/db").ok();
    s.events.relay_url = BrokerUrl::parse("nats://nats-token-4@h:4222").ok();
    s.auth.tokens = vec!["api-token-5-0123456789".into()];
    s.auth.read_tokens = vec!["read-token-6-0123456789".into()];
    s.auth.jwt_secret = JwtSecret::new("jwt-secret-7-0123456789-0123456789").ok();
    s.auth.jwks_url = JwksUrl::parse("https://h/jwks.json?apikey=jwks-key-8").ok();
    s.metrics.token = "metrics-token-9-0123456789".into();
    let line = s.redacted();
    let debug = format!("{s:?} {s:#?}");
    let secrets = [
        "db-pass-1",
        "db-pass-2",
        "mig-pass-3",
        "nats-token-4",
        "api-token-5",
        "read-token-6",
        "jwt-secret-7",
        "jwks-key-8",
        "metrics-token-9",
    ];
    for secret in secrets {
        assert!(!line.contains(secret), "{secret} in {line}");
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    // What is not secret is still there to read.
    assert!(
        line.contains("database=postgres://u:***@h/db?password=***&sslmode=require"),
        "{line}"
    );
    assert!(line.contains("events_relay=nats://***@h:4222"), "{line}");
    let mut s = Settings::default();
    s.events.relay_url = BrokerUrl::parse("amqp://guest:amqp-pass-10@h:5672/%2f").ok();
    let line = format!("{} {s:?}", s.redacted());
    assert!(!line.contains("amqp-pass-10"), "{line}");
}

/// A binary built without a broker client or the JWKS client refuses the
/// settings that need it, naming the setting and the Cargo feature, never
/// the URL (it may hold credentials). Checked here against the set of a
/// `--no-default-features` build, so the default build's tests cover it.
#[test]
fn a_setting_needing_a_part_left_out_of_the_build_is_refused() {
    use crate::features::Features;
    let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
    let cases = [
        (
            "COMMANDES_EVENTS_RELAY_URL",
            "nats://nats-secret@h:4222",
            "events.relay_url needs the NATS relay",
            "--features nats",
        ),
        (
            "COMMANDES_EVENTS_RELAY_URL",
            "amqp://u:amqp-secret@h:5672/%2f",
            "events.relay_url needs the RabbitMQ relay",
            "--features amqp",
        ),
        (
            "COMMANDES_JWKS_URL",
            "https://h/jwks.json?apikey=jwks-secret",
            "auth.jwks_url needs the JWKS client",
            "--features jwks",
        ),
    ];
    for (name, value, refusal, how) in cases {
        // This (default) build has every part: the settings load.
        let s = load(&[(name, value)]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        s.check_features(Features::BUILT).unwrap();
        let e = s.check_features(Features::NONE).unwrap_err().to_string();
        assert!(e.starts_with(refusal), "{e}");
        assert!(e.contains(how), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }
    // What needs no optional part loads in any build.
    let s = load(&[("COMMANDES_JWKS_FILE", "keys.json")]).unwrap();
    s.check_features(Features::NONE).unwrap();
    Settings::default().check_features(Features::NONE).unwrap();
}
