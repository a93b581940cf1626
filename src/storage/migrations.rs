//! The schema history of each dialect, embedded in the binary, and the
//! rule that says which builds may serve a database.
//!
//! An applied file is never edited: a change is a new file, added here.
//! Each backend applies the list in order inside a transaction and records
//! every version, with its `compatible_from`, in
//! `commandes_schema_migrations`.
//!
//! A build knows the versions up to [`latest`] of its history. An older
//! build cannot know what a later migration did, so each migration declares
//! `compatible_from`: the oldest schema version whose builds still work
//! correctly once it is applied. The database keeps the declarations of
//! every migration applied to it, so an old build reads there whether a
//! newer schema still accepts it ([`SchemaState::verdict`]). Migrations are
//! written expand-then-contract (docs/contributing.md): an expand-only
//! step keeps the previous step's value, so the previous release keeps
//! serving during a rolling upgrade or after a rollback; a contract step
//! (dropping or renaming what older builds use, or making them write rows
//! the new schema would miss) raises it.
//!
//! The values of the first eight were decided afterwards, from what each
//! did: 2 (idempotency keys) is honoured only by builds that know it, so a
//! retry reaching an older build would create a second order; 3 (stats
//! counters) is kept by triggers whoever writes; 4 (events) is written by
//! the application next to each change, so an older build would change
//! orders without their events; 5 to 8 only add a table, indexes and
//! privileges that builds of version 4 do not depend on. 9 (per-day
//! figures) is kept by triggers, but a PostgreSQL import switches the
//! triggers off and recounts what it knows: an older build's import would
//! leave the per-day figures short, so it declares 9 (no build before this
//! rule reads it anyway). 10 (the events' `traceparent`) is a nullable
//! column older builds leave empty.

use std::fmt;

/// One step of a schema history.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    /// The oldest schema version whose builds still work with this step
    /// applied (at most `version`; never below the previous step's).
    pub compatible_from: i64,
    pub sql: &'static str,
}

/// The SQLite history (`sql/sqlite/`).
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        compatible_from: 1,
        name: "create_commandes",
        sql: include_str!("../../sql/sqlite/0001_create_commandes.sql"),
    },
    Migration {
        version: 2,
        compatible_from: 2,
        name: "create_idempotency_keys",
        sql: include_str!("../../sql/sqlite/0002_create_idempotency_keys.sql"),
    },
    Migration {
        version: 3,
        compatible_from: 2,
        name: "create_stats_counters",
        sql: include_str!("../../sql/sqlite/0003_create_stats_counters.sql"),
    },
    Migration {
        version: 4,
        compatible_from: 4,
        name: "events",
        sql: include_str!("../../sql/sqlite/0004_events.sql"),
    },
    Migration {
        version: 5,
        compatible_from: 4,
        name: "event_relay",
        sql: include_str!("../../sql/sqlite/0005_event_relay.sql"),
    },
    Migration {
        version: 6,
        compatible_from: 4,
        name: "sort_indexes",
        sql: include_str!("../../sql/sqlite/0006_sort_indexes.sql"),
    },
    Migration {
        version: 7,
        compatible_from: 4,
        name: "close_public_roles",
        sql: include_str!("../../sql/sqlite/0007_close_public_roles.sql"),
    },
    Migration {
        version: 8,
        compatible_from: 4,
        name: "created_figures",
        sql: include_str!("../../sql/sqlite/0008_created_figures.sql"),
    },
    Migration {
        version: 9,
        compatible_from: 9,
        name: "daily_figures",
        sql: include_str!("../../sql/sqlite/0009_daily_figures.sql"),
    },
    Migration {
        version: 10,
        compatible_from: 9,
        name: "event_traceparent",
        sql: include_str!("../../sql/sqlite/0010_event_traceparent.sql"),
    },
];

/// The PostgreSQL history (`sql/postgres/`).
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        compatible_from: 1,
        name: "create_commandes",
        sql: include_str!("../../sql/postgres/0001_create_commandes.sql"),
    },
    Migration {
        version: 2,
        compatible_from: 2,
        name: "create_idempotency_keys",
        sql: include_str!("../../sql/postgres/0002_create_idempotency_keys.sql"),
    },
    Migration {
        version: 3,
        compatible_from: 2,
        name: "create_stats_counters",
        sql: include_str!("../../sql/postgres/0003_create_stats_counters.sql"),
    },
    Migration {
        version: 4,
        compatible_from: 4,
        name: "events",
        sql: include_str!("../../sql/postgres/0004_events.sql"),
    },
    Migration {
        version: 5,
        compatible_from: 4,
        name: "event_relay",
        sql: include_str!("../../sql/postgres/0005_event_relay.sql"),
    },
    Migration {
        version: 6,
        compatible_from: 4,
        name: "sort_indexes",
        sql: include_str!("../../sql/postgres/0006_sort_indexes.sql"),
    },
    Migration {
        version: 7,
        compatible_from: 4,
        name: "close_public_roles",
        sql: include_str!("../../sql/postgres/0007_close_public_roles.sql"),
    },
    Migration {
        version: 8,
        compatible_from: 4,
        name: "created_figures",
        sql: include_str!("../../sql/postgres/0008_created_figures.sql"),
    },
    Migration {
        version: 9,
        compatible_from: 9,
        name: "daily_figures",
        sql: include_str!("../../sql/postgres/0009_daily_figures.sql"),
    },
    Migration {
        version: 10,
        compatible_from: 9,
        name: "event_traceparent",
        sql: include_str!("../../sql/postgres/0010_event_traceparent.sql"),
    },
];

/// The version a fully migrated database has.
pub fn latest(history: &[Migration]) -> i64 {
    history.last().map_or(0, |m| m.version)
}

/// What a database says about its schema: its version, and the oldest
/// schema version whose builds may serve it (the highest
/// `compatible_from` recorded). Both are read from the few rows of the
/// version table, so asking costs the same whatever the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaState {
    /// 0: not migrated.
    pub version: i64,
    pub compatible_from: i64,
}

/// Why a build may not serve a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The database is behind this build: `migrate` brings it forward.
    Behind { version: i64, build: i64 },
    /// A later migration declared that builds of this version no longer
    /// work with it (a contract step).
    TooNew {
        version: i64,
        compatible_from: i64,
        build: i64,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Behind { version, build } => write!(
                f,
                "schema version {version} is older than this build's {build}: run `commandes migrate`"
            ),
            Mismatch::TooNew {
                version,
                compatible_from,
                build,
            } => write!(
                f,
                "schema version {version} accepts builds of schema version {compatible_from} or later; this build is at {build}"
            ),
        }
    }
}

impl SchemaState {
    /// Whether a build that knows `history` may serve this database: the
    /// one place the compatibility rule is decided (readiness, `check`,
    /// `migrate` and `serve` all ask here).
    pub fn verdict(&self, history: &[Migration]) -> Result<(), Mismatch> {
        let build = latest(history);
        if self.version < build {
            Err(Mismatch::Behind {
                version: self.version,
                build,
            })
        } else if self.compatible_from > build {
            Err(Mismatch::TooNew {
                version: self.version,
                compatible_from: self.compatible_from,
                build,
            })
        } else {
            Ok(())
        }
    }
}

/// The declared `compatible_from` of `version`, when this build knows it.
pub fn declared_compatible_from(history: &[Migration], version: i64) -> Option<i64> {
    history
        .iter()
        .find(|m| m.version == version)
        .map(|m| m.compatible_from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runners apply every version above the database's, in order:
    /// versions must increase, from one, and both dialects have the same.
    #[test]
    fn versions_increase_from_one_alike_in_both_dialects() {
        for history in [SQLITE, POSTGRES] {
            assert_eq!(history[0].version, 1);
            for pair in history.windows(2) {
                assert!(pair[0].version < pair[1].version, "{}", pair[1].name);
            }
        }
        let versions = |h: &[Migration]| h.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
    }

    #[test]
    fn compatibility_is_declared_the_same_way_in_both_dialects() {
        for (s, p) in SQLITE.iter().zip(POSTGRES) {
            assert_eq!(s.compatible_from, p.compatible_from, "{}", s.name);
        }
        for history in [SQLITE, POSTGRES] {
            let mut previous = 1;
            for m in history {
                assert!(
                    (previous..=m.version).contains(&m.compatible_from),
                    "{}: compatible_from {} must lie between the previous step's {previous} and its own version",
                    m.name,
                    m.compatible_from
                );
                previous = m.compatible_from;
            }
        }
    }

    fn state(version: i64, compatible_from: i64) -> SchemaState {
        SchemaState {
            version,
            compatible_from,
        }
    }

    #[test]
    fn a_build_serves_its_own_schema_and_newer_compatible_ones() {
        let build = latest(SQLITE);
        let own = declared_compatible_from(SQLITE, build).unwrap();
        assert_eq!(state(build, own).verdict(SQLITE), Ok(()));
        assert_eq!(state(build + 3, build).verdict(SQLITE), Ok(()));
        assert_eq!(
            state(build + 3, build + 1).verdict(SQLITE),
            Err(Mismatch::TooNew {
                version: build + 3,
                compatible_from: build + 1,
                build
            })
        );
        assert_eq!(
            state(build - 1, 1).verdict(SQLITE),
            Err(Mismatch::Behind {
                version: build - 1,
                build
            })
        );
        assert!(state(0, 0).verdict(SQLITE).is_err());
    }
}
