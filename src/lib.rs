//! `commandes`: the orders microservice of a small e-commerce system.
//!
//! One binary serves the HTTP contract (`/commandes` and friends, with its
//! OpenAPI document and docs UI) on either of two stores: a SQLite file for
//! zero-setup demos, or PostgreSQL/Supabase in production.
//!
//! # Layout
//!
//! - [`domain`]: orders, amounts, statuses and their rules; parsing of
//!   untrusted input. No I/O.
//! - [`storage`]: the [`storage::Store`] trait and its two backends, each
//!   owning its SQL and migrations.
//! - [`api`]: the poem-openapi operations, request extraction, auth, the
//!   docs pages, and [`api::error::ApiError`], the one mapping from failures
//!   to RFC 9457 problem responses.
//! - Leaves that every layer may use: [`build_info`] (the version and
//!   git revision of this build), [`error_chain`] (an error and its
//!   causes on one line), [`request_id`] (the id of the request being
//!   served), [`trace_context`] (the W3C `traceparent` the request hands
//!   on to its events), [`log_text`] (outside text bounded for a log line), [`hex`],
//!   [`secret`] (the type of every secret setting, and the one function
//!   that hides the credentials of a URL), [`access`] (permissions, and the
//!   checked JWT secret and JWKS URL that the settings and the API share),
//!   [`features`] (the optional parts of the binary, and the check that a
//!   setting does not ask for one it was built without).
//! - [`config`], [`cli`], [`app`]: settings, subcommands, and the server's
//!   start-up and shutdown. The binary's `main.rs` only parses the command
//!   line, loads the settings, starts the log and runs a subcommand.
//! - Around the server: [`server`] (the accept loop and the limits on
//!   connections), [`jobs`] (the background jobs: expired idempotency
//!   keys, event numbering and retention), [`logging`] (the tracing
//!   subscriber and its filter), [`log_json`] (flat JSON log lines),
//!   [`telemetry`] (OpenTelemetry spans over OTLP, when an endpoint is
//!   set), [`prometheus`] (the metrics recorder and the metric names),
//!   [`process_metrics`] (the `process_*` figures, read from `/proc`),
//!   [`metrics_server`] (the optional listener that serves only the
//!   metrics).
//! - [`transfer`]: `import`, `export`, `copy` and `generate`: streaming
//!   file formats, progress and reports around the stores' bulk methods.
//! - [`backup`]: consistent snapshots of the SQLite file while it is
//!   served, verification, rotation, a bucket copy, and restore; and
//!   [`backup::Backups`], the procedure that the server's schedule
//!   ([`jobs`]), `commandes backup` and `/admin/backups` share.
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod app;
pub mod backup;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error_chain;
pub mod features;
pub mod hex;
pub mod jobs;
pub mod log_json;
pub mod log_text;
pub mod logging;
pub mod metrics_server;
pub mod process_metrics;
pub mod prometheus;
pub mod relay;
pub mod request_id;
pub mod secret;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod trace_context;
pub mod transfer;
