//! Applies the ordered migrations of `migrations/` (compiled into the binary)
//! to the key-value store, each once, recording each in the `meta` tree.
//! A migration is recorded only after it succeeded, and each is written so
//! that re-running it after a crash mid-way is harmless.

use crate::clock::now_ms;
use serde::{Deserialize, Serialize};

use super::kv::{trees, Kv, KvError};

#[path = "../../migrations/v0001_initial.rs"]
mod v0001_initial;
#[path = "../../migrations/v0002_command_log_by_vehicle.rs"]
mod v0002_command_log_by_vehicle;
#[path = "../../migrations/v0003_time_series.rs"]
mod v0003_time_series;
#[path = "../../migrations/v0004_series_in_wal.rs"]
mod v0004_series_in_wal;
#[path = "../../migrations/v0005_series_key_hash.rs"]
mod v0005_series_key_hash;

struct Migration {
    version: u32,
    name: &'static str,
    apply: fn(&Kv) -> Result<(), KvError>,
}

/// Every migration, oldest first; versions are consecutive from 1.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        apply: v0001_initial::apply,
    },
    Migration {
        version: 2,
        name: "command_log_by_vehicle",
        apply: v0002_command_log_by_vehicle::apply,
    },
    Migration {
        version: 3,
        name: "time_series",
        apply: v0003_time_series::apply,
    },
    Migration {
        version: 4,
        name: "series_in_wal",
        apply: v0004_series_in_wal::apply,
    },
    Migration {
        version: 5,
        name: "series_key_hash",
        apply: v0005_series_key_hash::apply,
    },
];

const RECORD_PREFIX: &[u8] = b"migration/";

#[derive(Serialize, Deserialize)]
struct Applied {
    version: u32,
    name: String,
    applied_at_ms: i64,
}

/// The newest schema version this binary knows.
pub(super) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The newest migration recorded in the store (0 for a new store).
pub(super) fn recorded_version(kv: &Kv) -> Result<u32, KvError> {
    let meta = kv.tree(trees::META)?;
    let newest = meta.newest_first::<Applied>(RECORD_PREFIX, 0, 1)?;
    Ok(newest.first().map_or(0, |(_, applied)| applied.version))
}

/// Applies the migrations after the recorded version, up to `target`;
/// returns the version the store is at afterwards.
pub(super) fn apply(kv: &Kv, target: u32) -> Result<u32, KvError> {
    let meta = kv.tree(trees::META)?;
    let recorded = recorded_version(kv)?;
    let mut current = recorded;
    let pending = MIGRATIONS
        .iter()
        .filter(|m| m.version > recorded && m.version <= target);
    for migration in pending {
        (migration.apply)(kv).map_err(|e| KvError::Migration {
            version: migration.version,
            name: migration.name,
            why: e.to_string(),
        })?;
        let record = Applied {
            version: migration.version,
            name: migration.name.to_string(),
            applied_at_ms: now_ms(),
        };
        meta.put(&record_key(migration.version), &record)?;
        kv.flush()?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied store migration"
        );
        current = migration.version;
    }
    Ok(current)
}

fn record_key(version: u32) -> Vec<u8> {
    // Zero-padded so that byte order is version order.
    format!("migration/{version:08}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "migration {}", m.name);
        }
    }

    #[test]
    fn each_migration_runs_once() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open_up_to(dir.path(), 1).unwrap();
        assert_eq!(recorded_version(&kv).unwrap(), 1);
        assert_eq!(apply(&kv, latest_version()).unwrap(), latest_version());
        let meta = kv.tree(trees::META).unwrap();
        assert_eq!(meta.count_prefix(RECORD_PREFIX).unwrap(), MIGRATIONS.len());
        assert_eq!(apply(&kv, latest_version()).unwrap(), latest_version());
        assert_eq!(meta.count_prefix(RECORD_PREFIX).unwrap(), MIGRATIONS.len());
    }
}
