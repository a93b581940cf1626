//! The schema history of each dialect, embedded in the binary.
//!
//! An applied file is never edited: a change is a new file, added here.
//! Each backend applies the list in order inside a transaction and records
//! every version in `commandes_schema_migrations`.

/// One step of a schema history.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The SQLite history (`sql/sqlite/`).
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "create_commandes",
        sql: include_str!("../../sql/sqlite/0001_create_commandes.sql"),
    },
    Migration {
        version: 2,
        name: "create_idempotency_keys",
        sql: include_str!("../../sql/sqlite/0002_create_idempotency_keys.sql"),
    },
    Migration {
        version: 3,
        name: "create_stats_counters",
        sql: include_str!("../../sql/sqlite/0003_create_stats_counters.sql"),
    },
    Migration {
        version: 4,
        name: "events",
        sql: include_str!("../../sql/sqlite/0004_events.sql"),
    },
    Migration {
        version: 5,
        name: "event_relay",
        sql: include_str!("../../sql/sqlite/0005_event_relay.sql"),
    },
    Migration {
        version: 6,
        name: "sort_indexes",
        sql: include_str!("../../sql/sqlite/0006_sort_indexes.sql"),
    },
    Migration {
        version: 7,
        name: "close_public_roles",
        sql: include_str!("../../sql/sqlite/0007_close_public_roles.sql"),
    },
    Migration {
        version: 8,
        name: "created_figures",
        sql: include_str!("../../sql/sqlite/0008_created_figures.sql"),
    }, // 0009 and 0010 are taken by work on other branches.
    Migration {
        version: 11,
        name: "event_traceparent",
        sql: include_str!("../../sql/sqlite/0011_event_traceparent.sql"),
    },
    Migration {
        version: 9,
        name: "daily_figures",
        sql: include_str!("../../sql/sqlite/0009_daily_figures.sql"),
    },
];

/// The PostgreSQL history (`sql/postgres/`).
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "create_commandes",
        sql: include_str!("../../sql/postgres/0001_create_commandes.sql"),
    },
    Migration {
        version: 2,
        name: "create_idempotency_keys",
        sql: include_str!("../../sql/postgres/0002_create_idempotency_keys.sql"),
    },
    Migration {
        version: 3,
        name: "create_stats_counters",
        sql: include_str!("../../sql/postgres/0003_create_stats_counters.sql"),
    },
    Migration {
        version: 4,
        name: "events",
        sql: include_str!("../../sql/postgres/0004_events.sql"),
    },
    Migration {
        version: 5,
        name: "event_relay",
        sql: include_str!("../../sql/postgres/0005_event_relay.sql"),
    },
    Migration {
        version: 6,
        name: "sort_indexes",
        sql: include_str!("../../sql/postgres/0006_sort_indexes.sql"),
    },
    Migration {
        version: 7,
        name: "close_public_roles",
        sql: include_str!("../../sql/postgres/0007_close_public_roles.sql"),
    },
    Migration {
        version: 8,
        name: "created_figures",
        sql: include_str!("../../sql/postgres/0008_created_figures.sql"),
    }, // 0009 and 0010 are taken by work on other branches.
    Migration {
        version: 11,
        name: "event_traceparent",
        sql: include_str!("../../sql/postgres/0011_event_traceparent.sql"),
    },
    Migration {
        version: 9,
        name: "daily_figures",
        sql: include_str!("../../sql/postgres/0009_daily_figures.sql"),
    },
];

/// The version a fully migrated database has.
pub fn latest(history: &[Migration]) -> i64 {
    history.last().map_or(0, |m| m.version)
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
}
