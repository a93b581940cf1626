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

    #[test]
    fn versions_are_consecutive_from_one() {
        for history in [SQLITE, POSTGRES] {
            for (i, m) in history.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{}", m.name);
            }
        }
        assert_eq!(latest(SQLITE), latest(POSTGRES));
    }
}
