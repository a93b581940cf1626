//! `healthcheck`: asks the server running beside it (same settings, same
//! host) whether it is ready, or with `--live` alive, and exits 0 or 1 with
//! a one-line reason. It is what the image's `HEALTHCHECK` and exec probes
//! run, so the image needs neither a shell nor curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use crate::config::Settings;
use crate::error_chain::error_chain;

/// The most of an answer that is read: a probe's body is a few dozen bytes,
/// and whatever else may answer on the port must not fill this process.
const MAX_BODY: usize = 4096;

/// The most of the server's reason that is repeated on the line.
const MAX_REASON: usize = 200;

/// Flags of `healthcheck`.
#[derive(Debug, Args, Clone)]
pub struct HealthcheckArgs {
    /// Ask whether the process is up (/health/live, no I/O) instead of
    /// whether it is ready (/health/ready: the database answers and its
    /// schema is right).
    #[arg(long)]
    pub live: bool,

    /// Give up after this many seconds, connecting included (1 to 60).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(1..=60)
    )]
    pub timeout: u64,
}

/// Asks the probe and says what it answered: on stdout when healthy, as the
/// error (one line on stderr, exit 1) when not.
pub(super) async fn healthcheck(settings: Settings, args: HealthcheckArgs) -> anyhow::Result<()> {
    let (path, healthy) = if args.live {
        ("/health/live", "alive")
    } else {
        ("/health/ready", "ready")
    };
    let url = format!(
        "http://{}{path}",
        local_authority(&settings.server.host, settings.server.port)
    );
    let timeout = Duration::from_secs(args.timeout);
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // The server is on this host: an HTTP_PROXY of the environment must
        // not send the question elsewhere.
        .no_proxy()
        .build()?;
    // Covers the body too, which reqwest's own timeout does per read.
    let answer = match tokio::time::timeout(timeout, ask(&client, &url)).await {
        Err(_) => Err(format!("no answer within {} s", args.timeout)),
        Ok(answer) => answer,
    };
    match answer {
        Ok((200, _)) => {
            println!("{healthy}: {url} answered 200");
            Ok(())
        }
        Ok((status, reason)) => match reason {
            Some(reason) => bail!("not {healthy}: {url} answered {status}: {reason}"),
            None => bail!("not {healthy}: {url} answered {status}"),
        },
        Err(why) => bail!("not {healthy}: {url}: {why}"),
    }
}

/// Where the server beside this process listens: its configured address,
/// or the loopback one when it listens on every interface.
fn local_authority(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => format!("{}:{port}", Ipv4Addr::LOCALHOST),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => format!("[{}]:{port}", Ipv6Addr::LOCALHOST),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// The status and, when the body says one, the probe's `reason`.
async fn ask(client: &reqwest::Client, url: &str) -> Result<(u16, Option<String>), String> {
    let mut response = client.get(url).send().await.map_err(|e| {
        if e.is_timeout() {
            "no answer in time".to_string()
        } else if e.is_connect() {
            // The innermost cause says it ("Connection refused (os error
            // 111)"); the layers above it only repeat that it was a connect.
            format!("cannot connect ({})", innermost(&e))
        } else {
            error_chain(&e)
        }
    })?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            // A body cut short still has its status.
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_BODY);
    Ok((status, reason(&body)))
}

/// The last of an error's causes.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// The `reason` of a probe's JSON body, on one line and bounded: it is
/// repeated on the line a container runtime keeps.
fn reason(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text: String = value
        .get("reason")?
        .as_str()?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interface_is_asked_on_the_loopback() {
        assert_eq!(local_authority("0.0.0.0", 8001), "127.0.0.1:8001");
        assert_eq!(local_authority("::", 8001), "[::1]:8001");
        assert_eq!(local_authority("10.1.2.3", 80), "10.1.2.3:80");
        assert_eq!(local_authority("fd00::1", 80), "[fd00::1]:80");
        assert_eq!(local_authority("localhost", 80), "localhost:80");
    }

    #[test]
    fn the_reason_is_one_bounded_line() {
        let body = br#"{"status":"unavailable","reason":"the database\ncannot be reached"}"#;
        assert_eq!(
            reason(body).as_deref(),
            Some("the database cannot be reached")
        );
        let long = format!(r#"{{"reason":"{}"}}"#, "x".repeat(1000));
        assert_eq!(reason(long.as_bytes()).unwrap().len(), MAX_REASON);
        assert_eq!(reason(b"<html>busy</html>"), None);
        assert_eq!(reason(br#"{"status":"ok"}"#), None);
    }
}
