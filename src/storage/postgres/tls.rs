//! TLS to PostgreSQL: the libpq `sslmode` and `sslrootcert` URL parameters,
//! which tokio-postgres does not read, and a rustls connector.
//!
//! Users copy libpq-style URLs (`?sslmode=verify-full&sslrootcert=…`), which
//! tokio-postgres refuses, so this module takes those parameters out of the
//! URL, decides whether to use TLS, and hands the rest to
//! [`tokio_postgres::Config`].
//!
//! The rules:
//!
//! - `disable`: plaintext.
//! - `require`, `verify-ca`, `verify-full`: TLS, and rustls always checks
//!   both the certificate chain and the host name, so all three behave like
//!   libpq's `verify-full` (stricter than libpq's `require` and `verify-ca`,
//!   which accept any certificate or any host name).
//! - `allow`, `prefer`: read as `require`. libpq may fall back to plaintext
//!   with these, silently, which an attacker on the path can force; this
//!   service never falls back on its own: say `disable` to get plaintext.
//! - No `sslmode`: `disable` when every host is local (`localhost`, a
//!   loopback address, a Unix socket) and no CA file is set; `require`
//!   otherwise. Traffic that leaves the machine is encrypted unless the URL
//!   says otherwise; a database on the same machine (tests, a sidecar
//!   pooler) works as before.
//! - Unix sockets have no TLS (PostgreSQL offers none there): a URL whose
//!   hosts are all sockets is plaintext whatever it says, as with libpq.
//!
//! Trusted roots: the CA file (`sslrootcert` in the URL, else
//! `database.ca_file` / `COMMANDES_DATABASE_CA_FILE`), PEM, one or several
//! certificates, and then only those, as libpq does: a CA file narrows trust
//! to that CA (Supabase: its "Supabase Root 2021 CA"). Without one, or with
//! `sslrootcert=system`, the platform's roots (`/etc/ssl/certs`, or
//! `SSL_CERT_FILE`). Client certificates (`sslcert`, `sslkey`) and
//! revocation lists are not implemented and refused rather than ignored.
//!
//! Handshake failures are reworded so that a start-up error says which of
//! the usual causes it is (unknown CA, wrong host name, expired), in one
//! line.
//!
//! It lives under `postgres/` because only that backend speaks TLS (SQLite
//! is a local file). It is public so that the integration tests connect
//! with [`prepare`], reading a URL's TLS parameters as the service does.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, RootCertStore};
use tokio_postgres::config::{Host, SslMode as DriverSslMode};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::Socket;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The `sslmode` values of libpq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = SetupError;

    fn from_str(s: &str) -> Result<SslMode, SetupError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(SetupError::SslMode(other.to_string())),
        })
    }
}

/// Why the connection cannot be set up. None of these carries the URL, so
/// none can leak its password.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    #[error(
        "sslmode must be disable, allow, prefer, require, verify-ca or verify-full, not {0:?}"
    )]
    SslMode(String),
    #[error(
        "the database URL parameter {0} is not supported (client certificates and revocation \
         lists are not implemented): remove it"
    )]
    Unsupported(String),
    #[error("cannot use the database CA file {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    #[error(
        "no trusted root certificates found on this system ({0}): install ca-certificates, or \
         give the database's CA with sslrootcert or COMMANDES_DATABASE_CA_FILE"
    )]
    NoPlatformRoots(String),
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The PEM certificates in this file, and no others.
    CaFile(PathBuf),
    /// The platform's store.
    Platform,
}

/// What the URL and the settings ask for, decided but not yet loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Plaintext { why: &'static str },
    Tls { mode: &'static str, roots: Roots },
}

/// The connection, ready for a pool: the driver's config (its `ssl_mode`
/// set) and the connector when TLS is on.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub tls: Option<Connector>,
    /// A line for the logs: `TLS (verify-full, CA file …)` or `plaintext (…)`.
    pub summary: String,
    /// `pgbouncer=true` was in the URL (Prisma's way of saying a
    /// transaction pooler is in the way; not passed on to the server).
    pub pgbouncer: bool,
}

/// Takes the libpq TLS parameters out of `url`, decides, loads the roots.
/// `ca_file` is the `database.ca_file` setting; `sslrootcert` wins over it.
pub fn prepare(url: &str, ca_file: Option<&Path>) -> Result<Target, SetupError> {
    let (rest, params) = split_params(url)?;
    let mut config = tokio_postgres::Config::from_str(&rest)
        .map_err(|e| SetupError::Url(crate::error_chain::error_chain(&e)))?;
    let plan = decide(&params, config.get_hosts(), config.get_hostaddrs(), ca_file);
    let (tls, summary) = match &plan {
        Plan::Plaintext { why } => {
            config.ssl_mode(DriverSslMode::Disable);
            (None, format!("plaintext ({why})"))
        }
        Plan::Tls { mode, roots } => {
            // `Require`, never `Prefer`: a server that answers "no TLS" is
            // an error, not a reason to go on in plaintext.
            config.ssl_mode(DriverSslMode::Require);
            let connector = Connector::new(roots)?;
            let summary = format!("TLS ({mode}, trusting {})", connector.trust);
            (Some(connector), summary)
        }
    };
    Ok(Target {
        config,
        tls,
        summary,
        pgbouncer: params.pgbouncer,
    })
}

/// The libpq TLS parameters found in a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<String>,
    /// `pgbouncer=true` (or `1`): see [`Target::pgbouncer`].
    pub pgbouncer: bool,
}

/// Parameters that ask for something this module does not do.
const UNSUPPORTED: &[&str] = &["sslcert", "sslkey", "sslpassword", "sslcrl", "sslcrldir"];

/// Splits `url` into the URL without the libpq TLS parameters (every other
/// parameter kept as written) and those parameters. The query starts at
/// the first `?` after the credentials, as tokio-postgres reads it; a later
/// parameter wins over an earlier one, as in libpq.
pub fn split_params(url: &str) -> Result<(String, Params), SetupError> {
    let after_credentials = url.find('@').map_or(0, |at| at + 1);
    let Some(q) = url[after_credentials..]
        .find('?')
        .map(|q| q + after_credentials)
    else {
        return Ok((url.to_string(), Params::default()));
    };
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| SetupError::Url("a parameter is not valid UTF-8".into()))
    };
    let mut params = Params::default();
    let mut kept = Vec::new();
    for pair in url[q + 1..].split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key)?.as_str() {
            "sslmode" => params.sslmode = Some(decode(value)?.parse()?),
            "sslrootcert" => {
                let value = decode(value)?;
                params.sslrootcert = (!value.is_empty()).then_some(value);
            }
            "pgbouncer" => params.pgbouncer = matches!(decode(value)?.as_str(), "true" | "1"),
            key if UNSUPPORTED.contains(&key) => return Err(SetupError::Unsupported(key.into())),
            _ => kept.push(pair),
        }
    }
    let mut rest = url[..q].to_string();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok((rest, params))
}

/// Whether a host is on this machine.
fn is_local(host: &Host) -> bool {
    match host {
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }
}

/// Applies the rules of the module documentation.
pub fn decide(
    params: &Params,
    hosts: &[Host],
    hostaddrs: &[IpAddr],
    ca_file: Option<&Path>,
) -> Plan {
    #[cfg(unix)]
    if !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_))) {
        return Plan::Plaintext {
            why: "Unix socket: PostgreSQL has no TLS there",
        };
    }
    let roots = match params.sslrootcert.as_deref() {
        Some("system") => Some(Roots::Platform),
        Some(path) => Some(Roots::CaFile(path.into())),
        None => ca_file.map(|p| Roots::CaFile(p.into())),
    };
    let mode = match params.sslmode {
        Some(SslMode::Disable) => {
            return Plan::Plaintext {
                why: "sslmode=disable",
            }
        }
        Some(SslMode::Allow) => "allow, read as require",
        Some(SslMode::Prefer) => "prefer, read as require",
        Some(SslMode::Require) => "require",
        Some(SslMode::VerifyCa) => "verify-ca",
        Some(SslMode::VerifyFull) => "verify-full",
        None => {
            // The hosts the driver will connect to: `host`, else `hostaddr`.
            let local = if hosts.is_empty() {
                hostaddrs.iter().all(|ip| ip.is_loopback())
            } else {
                hosts.iter().all(is_local)
            };
            if local && roots.is_none() {
                return Plan::Plaintext {
                    why: "no sslmode and a local host",
                };
            }
            if local {
                "no sslmode, a CA file is set: require"
            } else {
                "no sslmode, a remote host: require"
            }
        }
    };
    Plan::Tls {
        mode,
        roots: roots.unwrap_or(Roots::Platform),
    }
}

/// Reads the PEM certificates of a CA file into a root store.
fn load_ca_file(path: &Path) -> Result<RootCertStore, SetupError> {
    let fail = |reason: String| SetupError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| fail(format!("not valid PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| fail(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail(
            "it holds no certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(roots)
}

/// The platform's roots.
fn load_platform_roots() -> Result<RootCertStore, SetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(SetupError::NoPlatformRoots(if why.is_empty() {
            "the store is empty".into()
        } else {
            why
        }));
    }
    Ok(roots)
}

/// tokio-postgres-rustls's connector, with handshake errors reworded.
#[derive(Clone)]
pub struct Connector {
    inner: MakeRustlsConnect,
    /// What is trusted, for messages: `the CA file …` or `the system's root CAs`.
    trust: Arc<str>,
}

impl Connector {
    /// Loads the roots (the file is read now, so a bad one fails at start).
    pub fn new(roots: &Roots) -> Result<Connector, SetupError> {
        let (store, trust) = match roots {
            Roots::CaFile(path) => (
                load_ca_file(path)?,
                format!("the CA file {}", path.display()),
            ),
            Roots::Platform => (load_platform_roots()?, "the system's root CAs".to_string()),
        };
        // The provider is given, not taken from the process default, so no
        // other crate's choice of provider can change or break this.
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
        Ok(Connector {
            inner: MakeRustlsConnect::new(config),
            trust: trust.into(),
        })
    }
}

// Only for the driver's own sockets: that is all a pool makes, and it keeps
// the types concrete.
impl MakeTlsConnect<Socket> for Connector {
    type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = Explained;
    type Error = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Explained, Self::Error> {
        Ok(Explained {
            inner: MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, host)?,
            host: host.to_string(),
            trust: self.trust.clone(),
        })
    }
}

/// One handshake whose failure says what went wrong in plain words.
pub struct Explained {
    inner: <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect,
    host: String,
    trust: Arc<str>,
}

type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;

impl TlsConnect<Socket> for Explained {
    type Stream = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let handshake = self.inner.connect(stream);
        let (host, trust) = (self.host, self.trust);
        Box::pin(async move { handshake.await.map_err(|e| explain(e, &host, &trust)) })
    }
}

/// Rewords the certificate failures people meet: a CA that is not trusted,
/// a certificate for another name, an expired one.
fn explain(e: io::Error, host: &str, trust: &str) -> io::Error {
    let Some(rustls::Error::InvalidCertificate(cert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e;
    };
    let text = match cert {
        CertificateError::UnknownIssuer => format!(
            "the server's certificate is not signed by a CA trusted here ({trust}); give its CA \
             with sslrootcert in the URL or COMMANDES_DATABASE_CA_FILE"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("the server's certificate is not valid for the host name {host:?} ({cert})")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the server's certificate has expired ({cert})")
        }
        other => format!("the server's certificate was refused ({other})"),
    };
    io::Error::new(io::ErrorKind::InvalidData, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(url: &str) -> (Params, tokio_postgres::Config) {
        let (rest, params) = split_params(url).unwrap();
        (params, rest.parse().unwrap())
    }

    fn plan(url: &str, ca_file: Option<&str>) -> Plan {
        let (params, config) = hosts(url);
        decide(
            &params,
            config.get_hosts(),
            config.get_hostaddrs(),
            ca_file.map(Path::new),
        )
    }

    fn tls(mode: &'static str, roots: Roots) -> Plan {
        Plan::Tls { mode, roots }
    }

    #[test]
    fn the_libpq_parameters_are_taken_out_and_the_rest_kept() {
        let (rest, params) = split_params(
            "postgres://u:p%3Fw@h:5432/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%3Fw@h:5432/db?application_name=x&connect_timeout=3"
        );
        assert_eq!(params.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(params.sslrootcert.as_deref(), Some("/etc/ca.pem"));

        let (rest, params) = split_params("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(params.sslmode, Some(SslMode::Require));

        // A `?` in the password is not the start of the query.
        let (rest, params) = split_params("postgres://u:a?b@h/db").unwrap();
        assert_eq!(rest, "postgres://u:a?b@h/db");
        assert_eq!(params, Params::default());

        // The last one wins, as in libpq.
        let (_, params) = split_params("postgres://h/db?sslmode=disable&sslmode=require").unwrap();
        assert_eq!(params.sslmode, Some(SslMode::Require));

        // Prisma's pooler flag is read, and not passed on to the driver
        // (which refuses parameters it does not know).
        let (rest, params) = split_params("postgres://h:6543/db?pgbouncer=true&x=1").unwrap();
        assert_eq!(rest, "postgres://h:6543/db?x=1");
        assert!(params.pgbouncer);
    }

    #[test]
    fn unknown_modes_and_client_certificates_are_refused_without_the_password() {
        let e = split_params("postgres://u:hunter2@h/db?sslmode=verify").unwrap_err();
        assert!(e.to_string().contains("\"verify\""), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        for param in ["sslcert", "sslkey", "sslcrl"] {
            let e = split_params(&format!("postgres://u:hunter2@h/db?{param}=/x")).unwrap_err();
            assert!(e.to_string().contains(param), "{e}");
            assert!(!e.to_string().contains("hunter2"));
        }
        let e = prepare("postgres://u:hunter2@h:notaport/db", None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("invalid PostgreSQL URL"), "{e}");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn without_sslmode_local_hosts_are_plaintext_and_remote_ones_require_tls() {
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@127.0.0.2,localhost/db",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
        ] {
            assert!(matches!(plan(url, None), Plan::Plaintext { .. }), "{url}");
        }
        for url in [
            "postgres://u@db.example.com/db",
            "postgres://u@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
            "postgres://u@10.0.0.5/db",
            "postgres://u@localhost,db.example.com/db",
        ] {
            assert_eq!(
                plan(url, None),
                tls("no sslmode, a remote host: require", Roots::Platform),
                "{url}"
            );
        }
        // A CA file means TLS, even on this machine.
        assert_eq!(
            plan("postgres://u@localhost/db", Some("/ca.pem")),
            tls(
                "no sslmode, a CA file is set: require",
                Roots::CaFile("/ca.pem".into())
            )
        );
    }

    #[test]
    fn prefer_and_allow_never_fall_back_and_disable_is_plaintext() {
        assert_eq!(
            plan("postgres://u@localhost/db?sslmode=prefer", None),
            tls("prefer, read as require", Roots::Platform)
        );
        assert_eq!(
            plan("postgres://u@db.example.com/db?sslmode=allow", None),
            tls("allow, read as require", Roots::Platform)
        );
        assert_eq!(
            plan(
                "postgres://u@db.example.com/db?sslmode=disable",
                Some("/ca.pem")
            ),
            Plan::Plaintext {
                why: "sslmode=disable"
            }
        );
        // Sockets have no TLS, whatever the URL says.
        assert!(matches!(
            plan("postgres://u@%2Ftmp/db?sslmode=verify-full", None),
            Plan::Plaintext { .. }
        ));
    }

    #[test]
    fn sslrootcert_wins_over_the_setting_and_system_means_the_platform() {
        assert_eq!(
            plan(
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=/url.pem",
                Some("/setting.pem")
            ),
            tls("verify-full", Roots::CaFile("/url.pem".into()))
        );
        assert_eq!(
            plan("postgres://u@h/db?sslmode=verify-ca", Some("/setting.pem")),
            tls("verify-ca", Roots::CaFile("/setting.pem".into()))
        );
        assert_eq!(
            plan(
                "postgres://u@h/db?sslmode=require&sslrootcert=system",
                Some("/setting.pem")
            ),
            tls("require", Roots::Platform)
        );
    }

    #[test]
    fn a_bad_ca_file_is_a_one_line_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for path in [&missing, &garbage, &broken] {
            let url = format!(
                "postgres://u:hunter2@db.example.com/db?sslrootcert={}",
                path.display()
            );
            let e = prepare(&url, None).err().expect("refused").to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn plaintext_and_tls_set_the_drivers_mode() {
        let t = prepare("postgres://u@127.0.0.1/db", None).unwrap();
        assert!(t.tls.is_none());
        assert_eq!(t.config.get_ssl_mode(), DriverSslMode::Disable);
        assert!(t.summary.starts_with("plaintext"), "{}", t.summary);
    }
}
