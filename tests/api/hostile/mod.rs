//! Hostile clients: what an unauthenticated or read-only caller could do to
//! exhaust the service, tried for real over sockets on 127.0.0.1, each
//! flood bounded in count and time. Each test states the bounds it asserts:
//! the service's resident memory stays bounded (read from
//! `/proc/PID/status` of the real binary) and a legitimate request answers
//! within 1–2 s while or right after the flood runs (normally a few
//! milliseconds).
//!
//! - [`edge`]: at the connection: 50 KB method names (metric labels, log
//!   lines), HTTP/2 stream floods, slowloris heads and bodies, more
//!   connections than allowed.
//! - [`limits`]: behind it: readiness probe floods, read-queue overflow,
//!   pool waits, deep `skip`, long-poll waiters, statements past the
//!   deadline.

mod edge;
mod limits;
