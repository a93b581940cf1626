//! The environment layer, walked over every key of the shipped
//! `config.toml`: generic names, aliases, `_FILE`, precedence, bad values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

use super::env::{generic_name, keys, names, ALIASES, PREFIX, SECRET_KEYS};
use super::tests::env;
use super::*;

const CONFIG_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");

fn load(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
    Settings::load(
        Some(Path::new(CONFIG_TOML)),
        env(pairs),
        &Overrides::default(),
    )
}

/// The error of loading with `pairs`, as it is printed.
fn error(pairs: &[(&str, &str)]) -> String {
    format!("{:#}", load(pairs).unwrap_err())
}

/// Every `section.key` of the shipped `config.toml`.
fn shipped_keys() -> BTreeSet<String> {
    let sections: Dict = Figment::from(Toml::file_exact(CONFIG_TOML))
        .extract()
        .unwrap();
    let mut keys = BTreeSet::new();
    for (section, fields) in sections {
        let Value::Dict(_, fields) = fields else {
            panic!("[{section}] is not a table");
        };
        keys.extend(fields.into_keys().map(|k| format!("{section}.{k}")));
    }
    keys
}

/// `key`'s value in loaded settings, as JSON text (secrets exposed: this
/// is how the settings are written back for figment).
fn value_of(s: &Settings, key: &str) -> String {
    let json = serde_json::to_value(s).unwrap();
    let pointer = format!("/{}", key.replace('.', "/"));
    serde_json::to_string(json.pointer(&pointer).expect(key)).unwrap()
}

/// A value each key can take that differs from its default, with the
/// variables it needs besides (a migration URL needs a PostgreSQL URL).
/// Keys not listed take one from the kind of their default, so a new key
/// needs a line here only when that does not suit it.
fn sample(key: &str, default: &Value) -> (String, Vec<(&'static str, &'static str)>) {
    let fixed = match key {
        "database.url" => "postgres://walk:pw@h/db",
        "database.migration_url" => {
            return (
                "postgres://walk:pw@direct/db".into(),
                vec![("COMMANDES_DATABASE__URL", "postgres://u@pooler/db")],
            )
        }
        "server.metrics_address" => "127.0.0.1:9464",
        "database.sqlite_synchronous" => "normal",
        "database.statement_cache" => "off",
        "database.demo_data" => "always",
        "auth.tokens" => "walk-token-0123456789,walk-token-9876543210",
        "auth.read_tokens" => "walk-reader-0123456789",
        "auth.jwt_secret" => "walk-jwt-secret-0123456789-0123456789",
        "auth.jwks_url" => "https://walk.example/jwks.json?apikey=walk-key",
        "auth.authenticated_scopes" => "read",
        "auth.anon_scopes" => "read,write",
        "log.format" => "json",
        "metrics.token" => "walk-metrics-0123456789",
        "events.relay_url" => "nats://walk-token@h:4222",
        "backup.interval" => "6h",
        "telemetry.otlp_endpoint" => "http://walk-collector:4318",
        "backup.bucket" => {
            return (
                "walk-bucket".into(),
                vec![
                    ("COMMANDES_BACKUP__ENDPOINT", "https://s3.walk.example"),
                    ("COMMANDES_BACKUP__ACCESS_KEY_ID", "walk-key-id"),
                    ("COMMANDES_BACKUP__SECRET_ACCESS_KEY", "walk-secret-key"),
                ],
            )
        }
        _ => "",
    };
    if !fixed.is_empty() {
        return (fixed.into(), Vec::new());
    }
    let generic = match default {
        Value::Num(_, n) => (n.to_u128().expect("an unsigned default") + 1).to_string(),
        Value::Bool(_, b) => (!b).to_string(),
        Value::Array(..) => "walk-a,walk-b".into(),
        _ => format!("walk-{}", key.replace('.', "-")),
    };
    (generic, Vec::new())
}

/// What `text` loads as, in JSON text, for a key whose default is `default`.
fn expected(text: &str, default: &Value) -> String {
    match default {
        Value::Num(..) | Value::Bool(..) => text.to_string(),
        Value::Array(..) => serde_json::to_string(&text.split(',').collect::<Vec<_>>()).unwrap(),
        _ => serde_json::to_string(text).unwrap(),
    }
}

#[test]
fn config_toml_lists_every_key_of_the_settings() {
    let settings: BTreeSet<String> = keys().into_iter().map(|(k, _)| k).collect();
    assert_eq!(shipped_keys(), settings);
}

/// Every key of the shipped file, set alone through its generic name,
/// changes exactly that setting; a secret does the same from `_FILE`. A
/// key added without environment support fails here.
#[test]
fn every_key_can_be_set_from_the_environment() {
    let defaults: BTreeMap<String, Value> = keys().into_iter().collect();
    let dir = tempfile::tempdir().unwrap();
    let shipped = load(&[]).unwrap();
    for key in shipped_keys() {
        let default = &defaults[&key];
        let (text, needs) = sample(&key, default);
        let name = generic_name(&key);
        let mut pairs: Vec<(&str, &str)> = needs.clone();
        pairs.push((&name, &text));
        let s = load(&pairs).unwrap_or_else(|e| panic!("{name}={text:?}: {e:#}"));
        assert_eq!(value_of(&s, &key), expected(&text, default), "{name}");
        assert_ne!(value_of(&s, &key), value_of(&shipped, &key), "{name}");
        // A secret is not in the settings' Debug; any other text is.
        let debug = format!("{s:?}");
        if SECRET_KEYS.contains(&key.as_str()) {
            assert!(!debug.contains(&text), "{key} in {debug}");
            let file = dir.path().join(key.replace('.', "-"));
            std::fs::write(&file, format!("{text}\n")).unwrap();
            let file_name = format!("{name}_FILE");
            let path = file.display().to_string();
            let mut pairs = needs.clone();
            pairs.push((&file_name, &path));
            let s = load(&pairs).unwrap_or_else(|e| panic!("{file_name}: {e:#}"));
            assert_eq!(value_of(&s, &key), expected(&text, default), "{file_name}");
        } else if matches!(default, Value::String(..)) {
            // (An enum prints as its variant: `Always` for `always`.)
            let debug = debug.to_lowercase();
            assert!(debug.contains(&text), "{key} is not in {debug}");
        }
    }
}

/// The names in the brackets of `config.toml`'s comment above each key.
fn documented_aliases() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(CONFIG_TOML).unwrap();
    let mut section = String::new();
    let mut comment = String::new();
    let mut documented = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix('#') {
            comment.push(' ');
            comment.push_str(c);
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_string();
        } else if let Some((key, _)) = line.split_once('=') {
            let mut names = BTreeSet::new();
            for bracket in comment.split('[').skip(1) {
                let inside = bracket.split(']').next().unwrap_or_default();
                names.extend(
                    inside
                        .split(|c: char| {
                            !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                        })
                        .filter(|w| w.contains('_') && w.len() > 3)
                        .map(String::from),
                );
            }
            documented.insert(format!("{section}.{}", key.trim()), names);
        }
        comment.clear();
    }
    documented
}

/// Every name documented in `config.toml` works, and is an alias of the
/// key it documents; every alias is documented.
#[test]
fn the_documented_names_are_the_aliases_and_work() {
    let documented = documented_aliases();
    let defaults: BTreeMap<String, Value> = keys().into_iter().collect();
    let shipped = load(&[]).unwrap();
    for (key, names) in &documented {
        let aliases: BTreeSet<String> = ALIASES
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, names)| names.iter().map(|n| n.to_string()))
            .collect();
        assert_eq!(names, &aliases, "the names documented for {key}");
        for name in names {
            let (text, needs) = sample(key, &defaults[key]);
            let mut pairs = needs.clone();
            pairs.push((name, &text));
            let s = load(&pairs).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(value_of(&s, key), expected(&text, &defaults[key]), "{name}");
            assert_ne!(value_of(&s, key), value_of(&shipped, key), "{name}");
        }
    }
    for (key, _) in ALIASES {
        assert!(documented.contains_key(*key), "{key} is not a key");
    }
}

#[test]
fn no_two_keys_share_a_name() {
    let mut seen = BTreeMap::new();
    for (key, _) in keys() {
        let secret = SECRET_KEYS.contains(&key.as_str());
        for name in names(&key) {
            let files = secret.then(|| format!("{name}_FILE"));
            for n in std::iter::once(name.clone()).chain(files) {
                if let Some(other) = seen.insert(n.clone(), key.clone()) {
                    panic!("{n} names both {other} and {key}");
                }
            }
        }
        assert!(names(&key)[0].starts_with(PREFIX));
    }
    for key in SECRET_KEYS {
        assert!(seen.values().any(|k| k == key), "{key} is not a key");
    }
}

#[test]
fn the_generic_name_wins_over_an_alias_and_flags_win_over_both() {
    let s = load(&[
        ("COMMANDES_SERVER__PORT", "9001"),
        ("COMMANDES_PORT", "9002"),
    ])
    .unwrap();
    assert_eq!(s.server.port, 9001);
    let s = load(&[
        ("DATABASE_URL", "sqlite://a.db"),
        ("COMMANDES_DATABASE_URL", "sqlite://b.db"),
    ])
    .unwrap();
    assert_eq!(s.database.url.expose(), "sqlite://b.db");
    let s = load(&[
        ("DATABASE_URL", "sqlite://a.db"),
        ("COMMANDES_DATABASE_URL", "sqlite://b.db"),
        ("COMMANDES_DATABASE__URL", "sqlite://c.db"),
    ])
    .unwrap();
    assert_eq!(s.database.url.expose(), "sqlite://c.db");
    // A secret from a file under the generic name beats the alias too.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("url");
    std::fs::write(&file, "sqlite://d.db\n").unwrap();
    let path = file.display().to_string();
    let s = load(&[
        ("COMMANDES_DATABASE_URL", "sqlite://b.db"),
        ("COMMANDES_DATABASE__URL_FILE", &path),
    ])
    .unwrap();
    assert_eq!(s.database.url.expose(), "sqlite://d.db");
    let s = Settings::load(
        Some(Path::new(CONFIG_TOML)),
        env(&[("COMMANDES_SERVER__PORT", "9001")]),
        &Overrides {
            port: Some(9100),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert_eq!(s.server.port, 9100);
}

#[test]
fn the_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("commandes.toml");
    std::fs::write(&file, "[server]\nport = 7000\nhost = \"10.0.0.1\"\n").unwrap();
    let s = Settings::load(
        Some(&file),
        env(&[("COMMANDES_SERVER__PORT", "7001")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!((s.server.port, s.server.host.as_str()), (7001, "10.0.0.1"));
}

#[test]
fn secrets_come_from_files_and_a_file_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwt");
    let secret = "file-jwt-secret-0123456789-0123456789";
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let path = file.display().to_string();
    for name in ["COMMANDES_AUTH__JWT_SECRET", "COMMANDES_JWT_SECRET"] {
        let file_name = format!("{name}_FILE");
        let s = load(&[(&file_name, &path)]).unwrap();
        assert_eq!(s.auth.jwt_secret.as_ref().unwrap().expose(), secret);
        // Both the variable and its file: refused, naming both.
        let e = error(&[(name, secret), (&file_name, &path)]);
        assert!(e.contains(name) && e.contains(&file_name), "{e}");
        assert!(!e.contains(secret), "{e}");
    }
    // A file that cannot be read: the variable and the path, no content.
    let missing = dir.path().join("missing").display().to_string();
    let e = error(&[("COMMANDES_AUTH__JWT_SECRET_FILE", &missing)]);
    assert!(e.contains("COMMANDES_AUTH__JWT_SECRET_FILE"), "{e}");
    assert!(e.contains(&missing), "{e}");
    // A file whose secret is too short: the rule, not the content.
    std::fs::write(&file, "short-secret\n").unwrap();
    let e = error(&[("COMMANDES_JWT_SECRET_FILE", &path)]);
    assert!(e.contains("COMMANDES_JWT_SECRET_FILE"), "{e}");
    assert!(e.contains("at least 32 bytes"), "{e}");
    assert!(!e.contains("short-secret"), "{e}");
    // Only secrets are read from files.
    let s = load(&[("COMMANDES_SERVER__HOST_FILE", &path)]).unwrap();
    assert_eq!(s.server.host, "0.0.0.0");
}

#[test]
fn a_bad_value_names_the_variable_and_what_it_must_be() {
    for (name, value, wanted) in [
        ("COMMANDES_SERVER__PORT", "eighty", "must be a number"),
        ("COMMANDES_PORT", "eighty", "must be a number"),
        ("COMMANDES_SERVER__PORT", "70000", "u16"),
        (
            "COMMANDES_AUTH__ANONYMOUS_USERS_AS_AUTHENTICATED",
            "maybe",
            "must be true or false",
        ),
        ("COMMANDES_DATABASE__DEMO_DATA", "sometimes", "always"),
        ("COMMANDES_DATABASE__SQLITE_SYNCHRONOUS", "off", "normal"),
        ("COMMANDES_AUTH__ANON_SCOPES", "read,admin", "write"),
        (
            "COMMANDES_DATABASE__URL",
            "mysql://u:pw@h/db",
            "postgres://",
        ),
        ("COMMANDES_EVENTS__RELAY_URL", "kafka://u:pw@h", "nats://"),
        (
            "COMMANDES_AUTH__JWKS_URL",
            "http://h/?apikey=pw",
            "https://",
        ),
    ] {
        let e = error(&[(name, value)]);
        assert!(e.contains(name), "{name}={value}: {e}");
        assert!(e.contains(wanted), "{name}={value}: {e}");
    }
    // A secret's bad value is not repeated.
    for (name, value) in [
        ("COMMANDES_DATABASE__URL", "mysql://u:pw@h/db"),
        ("COMMANDES_EVENTS__RELAY_URL", "kafka://u:pw@h"),
        ("COMMANDES_AUTH__JWKS_URL", "http://h/?apikey=pw"),
    ] {
        assert!(!error(&[(name, value)]).contains("pw"), "{name}");
    }
    // The older values of COMMANDES_DEMO_DATA still work.
    for (value, wanted) in [("1", DemoData::Always), ("false", DemoData::Never)] {
        let s = load(&[("COMMANDES_DEMO_DATA", value)]).unwrap();
        assert_eq!(s.database.demo_data, wanted);
    }
}

/// A secret written in the file as the wrong type is not repeated either.
#[test]
fn a_secret_of_the_wrong_type_in_the_file_is_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("commandes.toml");
    std::fs::write(&file, "[auth]\ntokens = \"tok3n-0123456789abc\"\n").unwrap();
    let e = Settings::load(Some(&file), env(&[]), &Overrides::default()).unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("auth.tokens"), "{e}");
    assert!(!e.contains("tok3n"), "{e}");
}

/// The whole settings, every secret set, formatted with `{:?}` and
/// `{:#?}`: no secret shows.
#[test]
fn no_secret_shows_in_the_settings_debug() {
    let secrets: BTreeMap<&str, (&str, &[&str])> = [
        (
            "database.url",
            (
                "postgres://u:db-pass-1@h/db?password=db-pass-2&sslmode=require",
                &["db-pass-1", "db-pass-2"][..],
            ),
        ),
        (
            "database.migration_url",
            ("postgres://u:mig-pass-3@h:5432/db", &["mig-pass-3"]),
        ),
        (
            "events.relay_url",
            ("amqp://u:relay-pass-4@h:5672/%2f", &["relay-pass-4"]),
        ),
        (
            "auth.tokens",
            (
                "api-token-5-0123456789,api-token-6-0123456789",
                &["api-token-5", "api-token-6"],
            ),
        ),
        (
            "auth.read_tokens",
            ("read-token-7-0123456789", &["read-token-7"]),
        ),
        (
            "auth.jwt_secret",
            ("jwt-secret-8-0123456789-0123456789", &["jwt-secret-8"]),
        ),
        (
            "auth.jwks_url",
            ("https://h/jwks.json?apikey=jwks-key-9", &["jwks-key-9"]),
        ),
        (
            "metrics.token",
            ("metrics-token-10-0123456789", &["metrics-token-10"]),
        ),
        (
            "backup.secret_access_key",
            ("s3-secret-11-0123456789", &["s3-secret-11"]),
        ),
    ]
    .into_iter()
    .collect();
    let listed: BTreeSet<&str> = secrets.keys().copied().collect();
    assert_eq!(
        listed,
        SECRET_KEYS.iter().copied().collect(),
        "a value for every secret"
    );
    let names: Vec<String> = secrets.keys().map(|k| generic_name(k)).collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .zip(secrets.values())
        .map(|(name, (value, _))| (name.as_str(), *value))
        .collect();
    let s = load(&pairs).unwrap();
    let shown = format!("{s:?}\n{s:#?}\n{}", s.redacted());
    for (_, parts) in secrets.values() {
        for part in *parts {
            assert!(!shown.contains(part), "{part} in {shown}");
        }
    }
    // Every secret is set (the values were taken, not dropped).
    assert_eq!(s.auth.tokens.len(), 2);
    assert!(s.auth.jwt_secret.is_some() && s.auth.jwks_url.is_some());
    assert!(s.database.migration_url.is_some() && s.events.relay_url.is_some());
    assert!(!s.metrics.token.is_empty() && !s.auth.read_tokens.is_empty());
}
