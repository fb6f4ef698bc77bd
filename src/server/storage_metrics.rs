//! The time-series store's own metrics, under the names Prometheus uses for
//! its TSDB (so the same dashboards and alerts work), read at scrape time.

use std::sync::Arc;

use crate::metrics::{Collector, FamilySnapshot, Kind, SampleSnapshot};
use crate::storage::Storage;

/// Reads the store's counts on every scrape.
pub struct StorageCollector {
    storage: Arc<Storage>,
    replay_seconds: f64,
}

impl StorageCollector {
    /// A collector for `storage`, whose WAL replay took `replay_seconds` at start.
    pub fn new(storage: Arc<Storage>, replay_seconds: f64) -> StorageCollector {
        StorageCollector {
            storage,
            replay_seconds,
        }
    }
}

fn gauge(name: &str, help: &str, value: f64) -> FamilySnapshot {
    FamilySnapshot {
        name: name.to_string(),
        help: help.to_string(),
        kind: Kind::Gauge,
        samples: vec![SampleSnapshot {
            suffix: "",
            labels: Vec::new(),
            value,
        }],
    }
}

impl Collector for StorageCollector {
    fn collect(&self) -> Vec<FamilySnapshot> {
        let head = self.storage.head_stats();
        let blocks = self.storage.blocks();
        let mut families = vec![
            gauge(
                "prometheus_tsdb_head_series",
                "Series in the head.",
                head.series as f64,
            ),
            gauge(
                "prometheus_tsdb_head_chunks",
                "Chunks in the head, sealed and open.",
                head.chunks as f64,
            ),
            gauge(
                "fleetmon_tsdb_head_chunk_bytes",
                "Bytes of encoded samples held by the head's chunks.",
                head.chunk_bytes as f64,
            ),
            gauge(
                "fleetmon_tsdb_head_samples",
                "Samples held by the head.",
                head.samples as f64,
            ),
            gauge(
                "prometheus_tsdb_blocks_loaded",
                "Blocks open for queries.",
                blocks.len() as f64,
            ),
            gauge(
                "prometheus_tsdb_storage_blocks_bytes",
                "Bytes on disk of the open blocks.",
                self.storage.blocks_size() as f64,
            ),
            gauge(
                "prometheus_tsdb_wal_storage_size_bytes",
                "Bytes on disk of the write-ahead log.",
                self.storage.wal_size_bytes() as f64,
            ),
            gauge(
                "prometheus_tsdb_data_replay_duration_seconds",
                "Time the WAL replay took at start.",
                self.replay_seconds,
            ),
        ];
        if let (Some(min_t), Some(max_t)) = (head.min_t, head.max_t) {
            families.push(gauge(
                "prometheus_tsdb_head_min_time",
                "Oldest timestamp in the head, ms.",
                min_t as f64,
            ));
            families.push(gauge(
                "prometheus_tsdb_head_max_time",
                "Newest timestamp in the head, ms.",
                max_t as f64,
            ));
        }
        if let Some(oldest) = blocks.iter().map(|b| b.min_time).min() {
            families.push(gauge(
                "prometheus_tsdb_lowest_timestamp",
                "Oldest timestamp in the blocks, ms.",
                oldest as f64,
            ));
        }
        families
    }
}
