//! Everything fleetmon keeps on disk under `--storage.path`, and the
//! time-series store's interface ([`Storage`]): append batches of samples
//! with per-sample outcomes, acknowledged once they are in the WAL; select
//! series by label matchers over a time range; label names and values; head
//! statistics. The key-value store ([`kv`]) is sled behind one module, its
//! schema versioned by `migrations/`.
//!
//! Data path: [`Storage::append`] validates label sets ([`labels`]), offers
//! each sample to the [`head`] (which decides its outcome under the series'
//! shard lock), logs the stored ones to the [`wal`] and commits it (one
//! shared flush for concurrent appenders) before answering. At start,
//! [`Storage::open`] rebuilds the head from the series table and the WAL.

pub mod chunk;
mod encoding;
pub mod head;
pub mod kv;
pub mod labels;
pub mod matcher;
mod migrate;
pub mod postings;
pub mod wal;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub use head::{HeadStats, Outcome};
pub use kv::{Kv, KvError, KvTree};
pub use labels::{LabelError, Labels};
pub use matcher::{MatchOp, Matcher};

use head::{Head, SealedChunk};
use wal::{Wal, WalSample};

/// Settings of the time-series store.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Width of a block's time window; chunks never span a multiple of it.
    pub block_range: Duration,
}

impl Default for StorageOptions {
    fn default() -> StorageOptions {
        StorageOptions {
            block_range: Duration::from_secs(2 * 3600),
        }
    }
}

/// A series and the samples offered for it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The label pairs as received (validated by [`Storage::append`]).
    pub labels: Vec<(String, String)>,
    /// `(timestamp ms, value)` pairs, oldest first.
    pub samples: Vec<(i64, f64)>,
}

/// Why samples were not stored, as Prometheus's remote-write answer names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// Same timestamp as the newest sample, different value.
    ConflictingDuplicate,
    /// Older than the series' newest sample.
    OutOfOrder,
    /// Older than the head's window.
    TooOld,
    /// The label set is invalid.
    InvalidLabels,
}

impl Rejection {
    /// Prometheus's wording for this rejection.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::ConflictingDuplicate => "duplicate sample for timestamp",
            Rejection::OutOfOrder => "out of order sample",
            Rejection::TooOld => "out of bounds",
            Rejection::InvalidLabels => "invalid labels",
        }
    }
}

/// What became of an appended batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppendReport {
    /// Samples stored (durable when `append` returns).
    pub stored: u64,
    /// Exact duplicates of stored samples, accepted silently.
    pub duplicates: u64,
    /// Samples refused, by reason.
    pub rejected: HashMap<Rejection, u64>,
    /// A few examples of refused samples, for error messages.
    pub examples: Vec<String>,
    /// Series created by this batch.
    pub new_series: u64,
}

const MAX_EXAMPLES: usize = 10;

impl AppendReport {
    /// Samples refused, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn reject(&mut self, why: Rejection, count: u64, example: impl FnOnce() -> String) {
        *self.rejected.entry(why).or_default() += count;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples
                .push(format!("{}: {}", why.reason(), example()));
        }
    }
}

/// A selected series: its labels and the samples in the asked range.
#[derive(Debug, Clone)]
pub struct Series {
    /// The label set.
    pub labels: Labels,
    chunks: Vec<SealedChunk>,
    mint: i64,
    maxt: i64,
}

impl Series {
    /// The samples within the selected range, oldest first; chunks from
    /// different sources that overlap are merged, later sources winning ties.
    pub fn samples(&self) -> Result<Vec<(i64, f64)>, chunk::ChunkError> {
        let mut out = Vec::new();
        let mut sorted = true;
        for c in &self.chunks {
            for sample in chunk::ChunkIter::new(&c.bytes)? {
                let (t, v) = sample?;
                if t < self.mint || t > self.maxt {
                    continue;
                }
                if out.last().is_some_and(|&(last, _): &(i64, f64)| last >= t) {
                    sorted = false;
                }
                out.push((t, v));
            }
        }
        if !sorted {
            // Stable sort, then keep the last of equal timestamps: the newer source.
            out.sort_by_key(|(t, _)| *t);
            let mut merged: Vec<(i64, f64)> = Vec::with_capacity(out.len());
            for (t, v) in out {
                match merged.last_mut() {
                    Some(last) if last.0 == t => *last = (t, v),
                    _ => merged.push((t, v)),
                }
            }
            out = merged;
        }
        Ok(out)
    }
}

/// How the head was rebuilt at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayReport {
    /// Series loaded from the series table.
    pub series: u64,
    /// WAL records read.
    pub records: u64,
    /// Samples replayed.
    pub samples: u64,
    /// Samples that came out of log order and were merged in.
    pub late_samples: u64,
    /// Time taken.
    pub duration: Duration,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key-value store (WAL, series table) failed.
    #[error(transparent)]
    Kv(#[from] KvError),
}

/// The time-series store.
pub struct Storage {
    head: Head,
    wal: Wal,
    options: StorageOptions,
}

impl Storage {
    /// Opens the store in `kv`, rebuilding the head from the WAL.
    pub fn open(kv: &Kv, options: StorageOptions) -> Result<(Storage, ReplayReport), StorageError> {
        let start = Instant::now();
        let block_range_ms = options.block_range.as_millis() as i64;
        let head = Head::new(block_range_ms);
        let wal = Wal::open(kv)?;
        let mut report = ReplayReport::default();
        for (series, labels) in wal.load_series()? {
            head.get_or_create(&labels, Some(series));
            report.series += 1;
        }
        let mut late: HashMap<wal::SeriesRef, Vec<(i64, f64)>> = HashMap::new();
        let stats = wal.replay(|s| {
            if head.append(s.series, s.t, s.v, i64::MIN) == Outcome::OutOfOrder {
                late.entry(s.series).or_default().push((s.t, s.v));
            }
        })?;
        report.records = stats.records;
        report.samples = stats.samples;
        for (series, samples) in late {
            report.late_samples += samples.len() as u64;
            head.merge_late(series, samples);
        }
        report.duration = start.elapsed();
        Ok((Storage { head, wal, options }, report))
    }

    fn min_valid_time(&self) -> i64 {
        let half_range = self.options.block_range.as_millis() as i64 / 2;
        self.head
            .max_time()
            .map_or(i64::MIN, |max_t| max_t.saturating_sub(half_range))
    }

    fn apply(
        &self,
        batch: &[SeriesSamples],
        report: &mut AppendReport,
    ) -> Result<Vec<WalSample>, StorageError> {
        let min_valid_t = self.min_valid_time();
        let mut logged = Vec::with_capacity(batch.iter().map(|s| s.samples.len()).sum());
        for offered in batch {
            let labels = match Labels::new(offered.labels.iter().cloned()) {
                Ok(labels) => labels,
                Err(e) => {
                    report.reject(
                        Rejection::InvalidLabels,
                        offered.samples.len() as u64,
                        || format!("{e} in {:?}", offered.labels),
                    );
                    continue;
                }
            };
            let (series, created) = self.head.get_or_create(&labels, None);
            if created {
                self.wal.log_series(series, &labels)?;
                report.new_series += 1;
            }
            for &(t, v) in &offered.samples {
                match self.head.append(series, t, v, min_valid_t) {
                    Outcome::Stored => {
                        report.stored += 1;
                        logged.push(WalSample { series, t, v });
                    }
                    Outcome::Duplicate => report.duplicates += 1,
                    Outcome::ConflictingDuplicate => {
                        report.reject(Rejection::ConflictingDuplicate, 1, || {
                            format!("{labels} @ {t}")
                        })
                    }
                    Outcome::OutOfOrder => {
                        report.reject(Rejection::OutOfOrder, 1, || format!("{labels} @ {t}"))
                    }
                    Outcome::TooOld => {
                        report.reject(Rejection::TooOld, 1, || format!("{labels} @ {t}"))
                    }
                }
            }
        }
        if !logged.is_empty() {
            self.wal.log_samples(&logged)?;
        }
        Ok(logged)
    }

    /// Appends a batch; returns once every stored sample is durable in the WAL.
    pub async fn append(&self, batch: &[SeriesSamples]) -> Result<AppendReport, StorageError> {
        let mut report = AppendReport::default();
        let logged = self.apply(batch, &mut report)?;
        if !logged.is_empty() || report.new_series > 0 {
            self.wal.commit().await?;
        }
        Ok(report)
    }

    /// [`Storage::append`] for callers outside an async runtime.
    pub fn append_blocking(&self, batch: &[SeriesSamples]) -> Result<AppendReport, StorageError> {
        let mut report = AppendReport::default();
        let logged = self.apply(batch, &mut report)?;
        if !logged.is_empty() || report.new_series > 0 {
            self.wal.commit_blocking()?;
        }
        Ok(report)
    }

    /// The series matching every matcher with samples in `[mint, maxt]`, sorted by labels.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Series> {
        let refs = self.head.postings_for(matchers);
        let mut out: Vec<Series> = self
            .head
            .series_data(&refs, mint, maxt)
            .into_iter()
            .map(|(labels, chunks)| Series {
                labels,
                chunks,
                mint,
                maxt,
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Label names of the series matching `matchers` in `[mint, maxt]`, sorted.
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        let mut names: Vec<String> = self
            .select(matchers, mint, maxt)
            .iter()
            .flat_map(|s| s.labels.pairs().iter().map(|(n, _)| n.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Values of label `name` among the series matching `matchers` in `[mint, maxt]`, sorted.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let mut values: Vec<String> = self
            .select(matchers, mint, maxt)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        values
    }

    /// The head's counts.
    pub fn head_stats(&self) -> HeadStats {
        self.head.stats()
    }

    /// The head, for cardinality statistics.
    pub fn head(&self) -> &Head {
        &self.head
    }
}
