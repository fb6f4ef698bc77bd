//! The in-memory store scripts load into, read by the engine through
//! [`Queryable`]: series kept sorted by label set (the order Prometheus's
//! `labels.Compare` gives, which `select` promises), loads additive until
//! `clear`.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use fleetmon::promql::{Queryable, SeriesData};
use fleetmon::storage::{Labels, Matcher};

/// Series by label pairs.
#[derive(Default)]
pub struct MemoryStore {
    series: RwLock<BTreeMap<Vec<(String, String)>, StoredSeries>>,
}

struct StoredSeries {
    labels: Labels,
    samples: Vec<(i64, f64)>,
}

impl MemoryStore {
    /// Adds `samples` (in time order) to the series `labels`. A load that
    /// repeats a series extends it; a sample at a time the series already
    /// has replaces the old one.
    pub fn append(&self, labels: Labels, samples: Vec<(i64, f64)>) {
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let entry = series
            .entry(labels.pairs().to_vec())
            .or_insert_with(|| StoredSeries {
                labels,
                samples: Vec::new(),
            });
        entry.samples.extend(samples);
        // Stable: of two samples at one time the later-loaded comes last and wins.
        entry.samples.sort_by_key(|(t, _)| *t);
        entry.samples.reverse();
        entry.samples.dedup_by_key(|(t, _)| *t);
        entry.samples.reverse();
    }

    /// Drops everything (`clear`).
    pub fn clear(&self) {
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Queryable for MemoryStore {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, String> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let selected = series
            .values()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            })
            .filter_map(|s| {
                let samples: Vec<(i64, f64)> = s
                    .samples
                    .iter()
                    .copied()
                    .filter(|(t, _)| (mint..=maxt).contains(t))
                    .collect();
                (!samples.is_empty()).then(|| SeriesData {
                    labels: s.labels.clone(),
                    samples: Box::new(samples),
                })
            })
            .collect();
        Ok(selected)
    }
}
