//! The behavioural suite: every test runs against SQLite and PostgreSQL,
//! over real HTTP, through the same code the binary runs.

mod process;
mod support;

mod auth;
mod backup;
mod cli;
mod client;
mod concurrency;
mod conformance;
mod create;
mod dashboard;
mod delete;
mod docs;
mod docs_examples;
mod durability;
mod errors;
mod events;
mod hardening;
mod healthcheck;
mod hostile;
mod jwt;
mod lists;
mod logs;
mod manifests;
mod observability;
mod outage;
mod ownership;
mod paging;
mod pooler;
mod read;
// The relay and traces tests talk to the brokers with their clients, which
// a build without those features does not have.
#[cfg(all(feature = "nats", feature = "amqp"))]
mod relay;
mod scale_out;
mod secrets;
mod smoke;
mod standin;
mod statement_cache;
mod stats;
mod status;
mod stream;
mod supabase_roles;
mod timeseries;
mod tls;
#[cfg(all(feature = "nats", feature = "amqp", feature = "otel"))]
mod traces;
mod transfer;
mod update;
mod upgrade;
mod validation;
