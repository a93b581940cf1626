//! The behavioural suite: every test runs against SQLite and PostgreSQL,
//! over real HTTP, through the same code the binary runs.

mod support;

mod smoke;
