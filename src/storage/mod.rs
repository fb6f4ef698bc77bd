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

mod backfill;
pub mod block;
pub mod chunk;
pub mod codec;
pub mod columnar;
pub(crate) mod encoding;
pub mod head;
mod head_chunks;
mod index;
pub mod kv;
pub mod labels;
pub mod matcher;
mod migrate;
pub mod postings;
pub mod series_key;
mod slot_table;
pub mod tombstones;
pub mod wal;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use backfill::BackfillReport;
pub use head::{HeadStats, Outcome};
pub use kv::{trees, Kv, KvError, KvTree};
pub use labels::{LabelError, Labels, LabelsRef};
pub use matcher::{MatchOp, Matcher};

use block::{Block, BlockError, BlockMeta, ChunkInput, Compaction, SeriesInput, BACKFILL_HINT};
use codec::Encoding;
use head::{Head, PreparedBatch, SealedChunk};
use head_chunks::HeadChunkFiles;
use index::{select_postings, LabelIndex};
use tombstones::{covered, Interval, Tombstones};
use wal::{Wal, WalEntry, WalSample};

/// Settings of the time-series store.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Width of a block's time window; chunks never span a multiple of it.
    pub block_range: Duration,
    /// Blocks whose newest sample is older than this, counted back from the
    /// newest sample in the store, are deleted.
    pub retention_time: Duration,
    /// When blocks take more bytes than this, the oldest are deleted.
    pub retention_size: Option<u64>,
    /// Bytes of decompressed block chunks cached per block.
    pub block_cache_bytes: usize,
    /// Write sample batches to the WAL zstd-compressed.
    pub wal_compression: bool,
    /// When the WAL's segments after its checkpoint reach this many bytes,
    /// [`Storage::checkpoint_if_log_grew`] writes the head's checkpoint in
    /// their place, between compactions.
    pub wal_checkpoint_bytes: u64,
}

impl Default for StorageOptions {
    fn default() -> StorageOptions {
        StorageOptions {
            block_range: Duration::from_secs(2 * 3600),
            retention_time: Duration::from_secs(15 * 24 * 3600),
            retention_size: None,
            block_cache_bytes: 8 * 1024 * 1024,
            wal_compression: true,
            wal_checkpoint_bytes: WAL_CHECKPOINT_BYTES,
        }
    }
}

/// The WAL's default bound between checkpoints: 4 segments, about 12 M
/// samples; at 100k series scraped every 15 s, a checkpoint every half hour.
pub const WAL_CHECKPOINT_BYTES: u64 = 4 * wal::SEGMENT_BYTES;

/// A series and the samples offered for it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The label pairs as received (validated by [`Storage::append`]).
    pub labels: Vec<(String, String)>,
    /// `(timestamp ms, value)` pairs, oldest first.
    pub samples: Vec<(i64, f64)>,
}

/// A series and the samples offered for it, owned ([`SeriesSamples`]) or
/// borrowed from a decoded request (remote write), so that the append path
/// copies label strings only for the series it creates.
pub trait OfferedSeries {
    /// The label pairs `(name, value)` as received (validated by
    /// [`Storage::append`]). Read only for series the store does not find
    /// by [`OfferedSeries::encoded_labels`], so an offerer may decode them
    /// here.
    fn labels(&self) -> impl Iterator<Item = (&str, &str)>;
    /// `(timestamp ms, value)` pairs, oldest first.
    fn samples(&self) -> &[(i64, f64)];
    /// [`OfferedSeries::labels`] as a remote-write sender encoded them
    /// (`TimeSeries.labels`), if the offerer has those bytes: a series
    /// whose [`series_key`] they equal is found without decoding or
    /// validating the labels. The bytes must encode exactly those labels,
    /// in any protobuf form: a form other than the key's just falls back to
    /// the labels.
    fn encoded_labels(&self) -> Option<&[u8]> {
        None
    }
}

impl OfferedSeries for SeriesSamples {
    fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        labels::as_str_pairs(&self.labels)
    }

    fn samples(&self) -> &[(i64, f64)] {
        &self.samples
    }
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
    /// Deleted intervals (block tombstones), never returned.
    deleted: Vec<Interval>,
    mint: i64,
    maxt: i64,
}

impl Series {
    /// The samples within the selected range, oldest first; chunks from
    /// different sources that overlap are merged, later sources winning ties.
    ///
    /// Every chunk holds strictly increasing timestamps (both encoders
    /// refuse anything else), so only chunks that straddle the range are
    /// filtered and only the seams between chunks are checked for order:
    /// a query over whole chunks copies each sample once.
    pub fn samples(&self) -> Result<Vec<(i64, f64)>, codec::DecodeError> {
        let (mint, maxt) = (self.mint, self.maxt);
        let mut out = Vec::with_capacity(self.chunks.iter().map(|c| usize::from(c.samples)).sum());
        let mut in_order = true;
        for c in &self.chunks {
            if c.max_t < mint || c.min_t > maxt {
                continue;
            }
            let start = out.len();
            codec::decode_into(c.encoding, &c.bytes, &mut out)?;
            if c.min_t < mint || c.max_t > maxt {
                retain_from(&mut out, start, |t| t >= mint && t <= maxt);
            }
            if let (Some(before), Some(first)) = (start.checked_sub(1), out.get(start)) {
                in_order &= out[before].0 < first.0;
            }
        }
        if !self.deleted.is_empty() {
            out.retain(|&(t, _)| !covered(&self.deleted, t));
        }
        if !in_order {
            merge_in_time_order(&mut out);
        }
        Ok(out)
    }
}

/// Keeps, of `samples[start..]`, those whose timestamp `keep` accepts.
fn retain_from(samples: &mut Vec<(i64, f64)>, start: usize, keep: impl Fn(i64) -> bool) {
    let mut kept = start;
    for i in start..samples.len() {
        if keep(samples[i].0) {
            samples[kept] = samples[i];
            kept += 1;
        }
    }
    samples.truncate(kept);
}

/// Sorts samples gathered from several chunks by time, keeping the last of
/// equal timestamps (the chunks come oldest source first, so the newer one
/// wins). Does nothing to samples already in strict time order.
fn merge_in_time_order(samples: &mut Vec<(i64, f64)>) {
    if samples.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    // Stable, so equal timestamps keep their source order.
    samples.sort_by_key(|(t, _)| *t);
    let mut kept = 0;
    for i in 0..samples.len() {
        if kept > 0 && samples[kept - 1].0 == samples[i].0 {
            samples[kept - 1] = samples[i];
        } else {
            samples[kept] = samples[i];
            kept += 1;
        }
    }
    samples.truncate(kept);
}

/// Decodes `chunks` of one series and cuts the samples `keep` accepts into
/// columnar block chunks.
fn block_chunks_of<'c>(
    chunks: impl IntoIterator<Item = (Encoding, &'c [u8])>,
    keep: impl Fn(i64) -> bool,
) -> Result<Vec<ChunkInput<'static>>, String> {
    let mut samples = Vec::new();
    for (encoding, bytes) in chunks {
        codec::decode_into(encoding, bytes, &mut samples).map_err(|e| e.to_string())?;
    }
    samples.retain(|&(t, _)| keep(t));
    merge_in_time_order(&mut samples);
    codec::block_chunks(&samples).map_err(|e| e.to_string())
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
    /// Samples of series the log never recorded (dropped; a damaged log).
    pub orphan_samples: u64,
    /// The WAL segments replayed, first and last (see [`Wal::segments_at_open`]).
    pub wal_segments: (u64, u64),
    /// Time taken.
    pub duration: Duration,
}

/// What [`Storage::close`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CloseReport {
    /// Series in the head's checkpoint.
    pub series: u64,
    /// Size of the checkpoint file.
    pub checkpoint_bytes: u64,
    /// Time taken.
    pub duration: Duration,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key-value store (series table) failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] wal::WalError),
    /// A block could not be read; it was set aside and later queries skip it.
    #[error("block {id} is corrupted and was set aside in {set_aside}: {source}")]
    CorruptBlock {
        /// The block's id.
        id: String,
        /// Where it was moved.
        set_aside: String,
        /// What is wrong with it.
        source: BlockError,
    },
    /// Writing a block failed; the head keeps its samples.
    #[error("writing a block: {0}")]
    BlockWrite(BlockError),
    /// A storage directory could not be created or listed.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Where the store keeps its block directories, under `--storage.path`.
pub const BLOCKS_DIR: &str = "blocks";
/// Where the head keeps its sealed chunks, under `--storage.path`.
pub const HEAD_CHUNKS_DIR: &str = "chunks_head";
/// Where unreadable blocks are moved, under `--storage.path`.
pub const CORRUPTED_DIR: &str = "corrupted";
/// Key in the `meta` tree: the head's series ref counter at the last
/// checkpoint ([`head::Head::next_ref`]), so that no ref is handed out twice.
const NEXT_SERIES_REF_KEY: &[u8] = b"head_next_series_ref";

/// The time-series store: the head (with its WAL) and the sealed blocks.
pub struct Storage {
    head: Head,
    wal: Wal,
    kv: Kv,
    options: StorageOptions,
    /// The storage directory.
    dir: PathBuf,
    blocks_dir: PathBuf,
    corrupted_dir: PathBuf,
    /// Open blocks, oldest first.
    blocks: RwLock<Vec<Arc<Block>>>,
    tombstones: Tombstones,
    /// One compaction (or tombstone clean-up) at a time.
    compacting: Mutex<()>,
}

impl Storage {
    /// Opens the store of `kv` whose files are under `dir`: opens every
    /// block (setting aside those that fail their checks), then rebuilds the
    /// head from the series table and the WAL.
    pub fn open(
        kv: &Kv,
        dir: &Path,
        options: StorageOptions,
    ) -> Result<(Storage, ReplayReport), StorageError> {
        let start = Instant::now();
        let blocks_dir = dir.join(BLOCKS_DIR);
        let corrupted_dir = dir.join(CORRUPTED_DIR);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { path, source }
        };
        std::fs::create_dir_all(&blocks_dir).map_err(io(&blocks_dir))?;
        block::remove_incomplete(&blocks_dir).map_err(io(&blocks_dir))?;
        let mut blocks = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(&blocks_dir)
            .map_err(io(&blocks_dir))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| block::is_block_id(name))
            .collect();
        names.sort();
        for name in names {
            match Block::open(&blocks_dir.join(&name), options.block_cache_bytes) {
                Ok(b) => blocks.push(Arc::new(b)),
                Err(e) => {
                    let moved = set_aside(&blocks_dir.join(&name), &corrupted_dir);
                    tracing::error!(block = name, error = %e, set_aside = moved, "block failed its checks; set aside, the rest of the store keeps serving");
                }
            }
        }
        blocks.sort_by_key(|b| b.meta().min_time);
        // Only blocks cut from the head tell how far the WAL reached blocks.
        let persisted_until = blocks
            .iter()
            .filter(|b| !b.meta().compaction.hints.iter().any(|h| h == BACKFILL_HINT))
            .map(|b| b.meta().max_time)
            .max();

        let chunks_dir = dir.join(HEAD_CHUNKS_DIR);
        let chunk_files = HeadChunkFiles::open(&chunks_dir).map_err(io(&chunks_dir))?;
        let head = Head::new(options.block_range.as_millis() as i64, chunk_files);
        let wal = Wal::open(dir, options.wal_compression)?;
        let mut report = ReplayReport {
            wal_segments: wal.segments_at_open(),
            ..ReplayReport::default()
        };
        let legacy = wal::legacy_series(kv)?;
        for (series, labels) in &legacy {
            head.restore_series(labels, *series);
            report.series += 1;
        }
        if let Some(until) = persisted_until {
            // Samples a crash left in the WAL after they reached a block are not replayed twice.
            head.refuse_before(until.saturating_add(1));
        }
        let (stats, late) = replay_in_parallel(&head, &wal)?;
        head.sort_postings();
        if let Some(next) = kv.tree(trees::META)?.get::<u64>(NEXT_SERIES_REF_KEY)? {
            head.raise_next_ref(next);
        }
        report.series += stats.series;
        if !legacy.is_empty() {
            // A schema-3 store: its series table moves into the log, durably, before it is cleared.
            for (series, labels) in &legacy {
                wal.log_series(*series, &labels.str_pairs())?;
            }
            wal.commit_blocking()?;
            wal::clear_legacy_series(kv)?;
        }
        report.records = stats.records;
        report.samples = stats.samples;
        for (series, samples) in late {
            if !head.contains(series) {
                report.orphan_samples += samples.len() as u64;
                continue;
            }
            report.late_samples += samples.len() as u64;
            head.merge_late(series, samples).map_err(io(&chunks_dir))?;
        }
        // The WAL still holds deleted samples: delete them again.
        let tombstones = Tombstones::open(kv)?;
        for (series, intervals) in tombstones.head()? {
            for (mint, maxt) in intervals {
                head.delete_range(series, mint, maxt)
                    .map_err(io(&chunks_dir))?;
            }
        }
        report.duration = start.elapsed();
        let storage = Storage {
            head,
            wal,
            kv: kv.clone(),
            options,
            dir: dir.to_path_buf(),
            blocks_dir,
            corrupted_dir,
            blocks: RwLock::new(blocks),
            tombstones,
            compacting: Mutex::new(()),
        };
        Ok((storage, report))
    }

    fn min_valid_time(&self) -> i64 {
        let half_range = self.options.block_range.as_millis() as i64 / 2;
        self.head
            .max_time()
            .map_or(i64::MIN, |max_t| max_t.saturating_sub(half_range))
    }

    fn apply<S: OfferedSeries>(
        &self,
        batch: &[S],
        report: &mut AppendReport,
    ) -> Result<Vec<WalSample>, StorageError> {
        let min_valid_t = self.min_valid_time();
        let mut logged = Vec::with_capacity(batch.iter().map(|s| s.samples().len()).sum());
        for part in batch.chunks(head::PREPARED_SERIES_MAX) {
            self.apply_part(part, min_valid_t, report, &mut logged)?;
        }
        if !logged.is_empty() {
            self.wal.log_samples(&logged)?;
        }
        Ok(logged)
    }

    /// Prepares and appends up to [`head::PREPARED_SERIES_MAX`] series,
    /// collecting stored samples into `logged`.
    fn apply_part<S: OfferedSeries>(
        &self,
        batch: &[S],
        min_valid_t: i64,
        report: &mut AppendReport,
        logged: &mut Vec<WalSample>,
    ) -> Result<(), StorageError> {
        let unhinted_labels = batch
            .iter()
            .filter(|s| s.encoded_labels().is_none())
            .map(|s| s.labels().size_hint().0)
            .sum();
        let mut prepared = PreparedBatch::with_capacity(batch.len(), unhinted_labels);
        for (index, offered) in batch.iter().enumerate() {
            match offered.encoded_labels() {
                Some(key) => prepared.push_hint(index, key, offered.samples()),
                None => Self::prepare(&mut prepared, index, offered, report),
            }
        }
        let missed = self.append_prepared(&prepared, min_valid_t, report, logged)?;
        // Hints that found no series: new series, or labels in another form
        // than their key. Their labels are validated and offered again.
        if !missed.is_empty() {
            let mut retry = PreparedBatch::with_capacity(missed.len(), 0);
            for index in missed {
                if let Some(offered) = batch.get(index) {
                    Self::prepare(&mut retry, index, offered, report);
                }
            }
            self.append_prepared(&retry, min_valid_t, report, logged)?;
        }
        Ok(())
    }

    /// Adds the caller's series at `index` to `prepared` by its labels, or
    /// reports its samples rejected when the labels are invalid.
    fn prepare<'b, S: OfferedSeries>(
        prepared: &mut PreparedBatch<'b>,
        index: usize,
        offered: &'b S,
        report: &mut AppendReport,
    ) {
        if let Err(e) = prepared.push(index, offered.labels(), offered.samples()) {
            report.reject(
                Rejection::InvalidLabels,
                offered.samples().len() as u64,
                || {
                    let pairs: Vec<(&str, &str)> = offered.labels().collect();
                    format!("{e} in {pairs:?}")
                },
            );
        }
    }

    /// Appends a prepared batch to the head, logging new series and
    /// collecting stored samples into `logged`; returns the missed hints.
    fn append_prepared(
        &self,
        prepared: &PreparedBatch<'_>,
        min_valid_t: i64,
        report: &mut AppendReport,
        logged: &mut Vec<WalSample>,
    ) -> Result<Vec<usize>, StorageError> {
        let done = self.head.append_batch(
            prepared,
            min_valid_t,
            |series, pairs| self.wal.log_series(series, pairs),
            |key, series, t, v, outcome| match outcome {
                Outcome::Stored => {
                    report.stored += 1;
                    logged.push(WalSample { series, t, v });
                }
                Outcome::Duplicate => report.duplicates += 1,
                Outcome::ConflictingDuplicate => {
                    report.reject(Rejection::ConflictingDuplicate, 1, || describe(key, t))
                }
                Outcome::OutOfOrder => report.reject(Rejection::OutOfOrder, 1, || describe(key, t)),
                Outcome::TooOld => report.reject(Rejection::TooOld, 1, || describe(key, t)),
            },
        )?;
        report.new_series += done.created;
        Ok(done.missed)
    }

    /// Appends a batch; returns once every stored sample is durable in the WAL.
    pub async fn append<S: OfferedSeries>(
        &self,
        batch: &[S],
    ) -> Result<AppendReport, StorageError> {
        let mut report = AppendReport::default();
        let logged = self.apply(batch, &mut report)?;
        if !logged.is_empty() || report.new_series > 0 {
            self.wal.commit().await?;
        }
        Ok(report)
    }

    /// [`Storage::append`] for callers outside an async runtime.
    pub fn append_blocking<S: OfferedSeries>(
        &self,
        batch: &[S],
    ) -> Result<AppendReport, StorageError> {
        let mut report = AppendReport::default();
        let logged = self.apply(batch, &mut report)?;
        if !logged.is_empty() || report.new_series > 0 {
            self.wal.commit_blocking()?;
        }
        Ok(report)
    }

    /// How far the WAL is durable: every acknowledged sample is before it.
    pub fn wal_durable_position(&self) -> wal::WalPosition {
        self.wal.durable_position()
    }

    /// A reader of the samples logged from `from` on (remote write).
    pub fn wal_tail(&self, from: wal::WalPosition) -> wal::WalTail {
        self.wal.tail(from)
    }

    /// The labels of a head series, by the ref the WAL logs it under.
    pub fn series_labels(&self, series: wal::SeriesRef) -> Option<Labels> {
        self.head.series_labels(series)
    }

    /// The series matching every matcher with samples in `[mint, maxt]`,
    /// from the blocks and the head merged, sorted by labels. A block that
    /// fails to read is set aside and reported; later selects skip it.
    pub fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let blocks: Vec<Arc<Block>> = read_lock(&self.blocks)
            .iter()
            .filter(|b| b.meta().max_time >= mint && b.meta().min_time <= maxt)
            .cloned()
            .collect();
        let from_block = |b: &Arc<Block>| -> Result<Vec<Series>, StorageError> {
            let marked = self.tombstones.block_has_marks(&b.meta().id)?;
            let deleted = |index: u32| {
                if marked {
                    self.tombstones.block(&b.meta().id, index)
                } else {
                    Ok(Vec::new())
                }
            };
            match select_from_block(b, matchers, mint, maxt, &deleted) {
                Ok(found) => Ok(found),
                Err(BlockRead::Block(source)) => Err(self.set_block_aside(b, source)),
                Err(BlockRead::Kv(e)) => Err(e.into()),
            }
        };
        let from_head = || -> Result<Vec<Series>, StorageError> {
            let refs = self.head.postings_for(matchers);
            let mut found: Vec<Series> = self
                .head
                .series_data(&refs, mint, maxt)
                .map_err(|e| self.head_chunks_error(e))?
                .into_iter()
                .map(|(labels, chunks)| Series {
                    labels,
                    chunks,
                    deleted: Vec::new(),
                    mint,
                    maxt,
                })
                .collect();
            // Head series come in the order they were created.
            found.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
            Ok(found)
        };
        // The head and the blocks are read side by side: a query over the
        // last hours reads about as much from each.
        let (from_blocks, from_head) = if blocks.is_empty() {
            (Vec::new(), from_head())
        } else {
            std::thread::scope(|scope| {
                let head = scope.spawn(from_head);
                let blocks: Vec<_> = blocks.iter().map(from_block).collect();
                let head = head
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (blocks, head)
            })
        };
        // Each source's series, sorted by labels, one source after another
        // (oldest block first, the head last).
        let mut found: Vec<Series> = Vec::new();
        for part in from_blocks {
            found.extend(part?);
        }
        found.extend(from_head?);
        Ok(merge_sorted_runs(found))
    }

    fn head_chunks_error(&self, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: self.dir.join(HEAD_CHUNKS_DIR),
            source,
        }
    }

    fn set_block_aside(&self, b: &Arc<Block>, source: BlockError) -> StorageError {
        write_lock(&self.blocks).retain(|other| !Arc::ptr_eq(other, b));
        let set_aside = set_aside(b.dir(), &self.corrupted_dir);
        tracing::error!(block = b.meta().id, error = %source, set_aside, "block failed a read check; set aside, the rest of the store keeps serving");
        StorageError::CorruptBlock {
            id: b.meta().id.clone(),
            set_aside,
            source,
        }
    }

    /// Blocks set aside under `corrupted/` because they failed their checks
    /// (they stay until an operator removes them).
    pub fn corrupted_blocks(&self) -> usize {
        std::fs::read_dir(&self.corrupted_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| block::is_block_id(&e.file_name().to_string_lossy()))
                    .count()
            })
            .unwrap_or(0)
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// Metadata of the open blocks, oldest first.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        read_lock(&self.blocks)
            .iter()
            .map(|b| b.meta().clone())
            .collect()
    }

    /// Bytes on disk of the write-ahead log.
    pub fn wal_size_bytes(&self) -> u64 {
        self.wal.size_bytes()
    }

    /// Bytes on disk of the open blocks.
    pub fn blocks_size(&self) -> u64 {
        read_lock(&self.blocks).iter().map(|b| b.size_bytes()).sum()
    }

    /// Deletes the samples in `[mint, maxt]` of the series matching
    /// `matchers`: at once from the head, by tombstones in blocks (honoured
    /// by every read until [`Storage::clean_tombstones`]). Returns how many
    /// series had something to delete.
    pub fn delete(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<u64, StorageError> {
        let mut touched = 0;
        let blocks: Vec<Arc<Block>> = read_lock(&self.blocks).clone();
        for b in blocks
            .iter()
            .filter(|b| b.meta().max_time >= mint && b.meta().min_time <= maxt)
        {
            let interval = (mint.max(b.meta().min_time), maxt.min(b.meta().max_time));
            let ids = select_postings(&BlockIndex(b), matchers)
                .map_err(|e| self.set_block_aside(b, e))?;
            for id in ids {
                self.tombstones
                    .add_block(&b.meta().id, id as u32, interval)?;
                touched += 1;
            }
        }
        for series in self.head.postings_for(matchers) {
            // Samples appended later are newer than the series' newest one now;
            // the mark must not reach them when the WAL is replayed.
            let Some(newest) = self.head.series_max_time(series) else {
                continue;
            };
            if mint > newest {
                continue;
            }
            let interval = (mint, maxt.min(newest));
            self.head
                .delete_range(series, interval.0, interval.1)
                .map_err(|e| self.head_chunks_error(e))?;
            self.tombstones.add_head(series, interval)?;
            touched += 1;
        }
        self.kv.flush()?;
        Ok(touched)
    }

    /// Rewrites every block that has tombstones without the deleted samples,
    /// then drops its tombstones. Returns the number of blocks rewritten.
    pub fn clean_tombstones(&self) -> Result<u64, StorageError> {
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        self.clean_tombstones_locked()
    }

    fn clean_tombstones_locked(&self) -> Result<u64, StorageError> {
        let blocks: Vec<Arc<Block>> = read_lock(&self.blocks).clone();
        let mut rewritten = 0;
        for old in blocks {
            let id = old.meta().id.clone();
            if !self.tombstones.block_has_marks(&id)? {
                continue;
            }
            let mut kept: Vec<RewrittenSeries> = Vec::new();
            let read = |index: u32| -> Result<RewrittenSeries, BlockRead> {
                let deleted = self.tombstones.block(&id, index).map_err(BlockRead::Kv)?;
                let bytes = old
                    .series_chunks(index)?
                    .iter()
                    .map(|meta| old.chunk(meta))
                    .collect::<Result<Vec<_>, _>>()?;
                let encoding = old.meta().chunk_encoding;
                let chunks = block_chunks_of(bytes.iter().map(|b| (encoding, &**b)), |t| {
                    !covered(&deleted, t)
                })
                .map_err(|what| {
                    BlockRead::Block(BlockError::Corrupt {
                        path: old.dir().to_path_buf(),
                        what,
                    })
                })?;
                Ok((old.series_labels(index)?, chunks))
            };
            for index in old.all_series() {
                match read(index) {
                    Ok((labels, chunks)) if !chunks.is_empty() => kept.push((labels, chunks)),
                    Ok(_) => {}
                    Err(BlockRead::Block(e)) => return Err(self.set_block_aside(&old, e)),
                    Err(BlockRead::Kv(e)) => return Err(e.into()),
                }
            }
            let inputs = kept
                .into_iter()
                .map(|(labels, chunks)| SeriesInput { labels, chunks });
            let compaction = Compaction {
                level: old.meta().compaction.level,
                sources: vec![id.clone()],
                hints: old.meta().compaction.hints.clone(),
            };
            let written = block::write_block(
                &self.blocks_dir,
                inputs,
                old.meta().min_time,
                old.meta().max_time,
                compaction,
                Encoding::Columnar,
            )
            .map_err(StorageError::BlockWrite)?;
            let replacement = match &written {
                Some(meta) => Some(Arc::new(
                    Block::open(
                        &self.blocks_dir.join(&meta.id),
                        self.options.block_cache_bytes,
                    )
                    .map_err(StorageError::BlockWrite)?,
                )),
                None => None,
            };
            {
                let mut list = write_lock(&self.blocks);
                list.retain(|b| !Arc::ptr_eq(b, &old));
                list.extend(replacement);
                list.sort_by_key(|b| b.meta().min_time);
            }
            self.tombstones.remove_block(&id)?;
            self.kv.flush()?;
            if let Err(e) = std::fs::remove_dir_all(old.dir()) {
                tracing::error!(block = id, error = %e, "could not delete a block replaced by its cleaned copy");
            }
            rewritten += 1;
        }
        Ok(rewritten)
    }

    /// Writes a copy of the whole store into `target` (which must not exist
    /// or be empty) that opens as a store: the blocks (hard-linked, they are
    /// immutable), the head written as blocks, and the key-value trees
    /// (accounts, tokens, fleet, tombstones of blocks). Returns the number of
    /// blocks in the snapshot.
    pub fn snapshot(&self, target: &Path) -> Result<usize, StorageError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StorageError::Io { path, source }
        };
        if std::fs::read_dir(target)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
        {
            return Err(StorageError::Io {
                path: target.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the snapshot directory must be new or empty",
                ),
            });
        }
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        let blocks_dir = target.join(BLOCKS_DIR);
        std::fs::create_dir_all(&blocks_dir).map_err(io(&blocks_dir))?;
        let blocks: Vec<Arc<Block>> = read_lock(&self.blocks).clone();
        for b in &blocks {
            let dir = blocks_dir.join(&b.meta().id);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for file in [block::META_FILE, block::INDEX_FILE, block::CHUNKS_FILE] {
                let (from, to) = (b.dir().join(file), dir.join(file));
                std::fs::hard_link(&from, &to)
                    .or_else(|_| std::fs::copy(&from, &to).map(|_| ()))
                    .map_err(io(&to))?;
            }
        }
        let range = self.options.block_range.as_millis() as i64;
        let mut count = blocks.len();
        // Window by window, a series at a time; holding `compacting` keeps
        // the chunk files from being released meanwhile.
        for (window, sealed) in self.head.windows(range) {
            let written = write_head_block(
                &blocks_dir,
                sealed
                    .series()
                    .map(|read| read.map_err(|e| self.head_chunks_error(e))),
                window * range,
                window * range + range - 1,
            )?;
            count += usize::from(written.is_some());
        }
        let target_kv = Kv::open(target)?;
        self.kv.copy_trees_to(&target_kv, &[trees::META])?;
        // The head went into blocks with its deletions applied: its marks are done.
        Tombstones::open(&target_kv)?.trim_head(i64::MAX, &[])?;
        target_kv.flush()?;
        Ok(count)
    }

    /// Stops the store: writes the head as a checkpoint that replaces the
    /// WAL (every series with its samples in columnar chunks under zstd,
    /// several times smaller than the log), then deletes the head's chunk
    /// files. The next start reads the checkpoint instead of the log.
    /// Segments from `keep_wal_from` on stay for the remote-write queues
    /// that have not sent them yet. After this, the head's sealed chunks no
    /// longer read; appends still work, logged after the checkpoint.
    /// Blocking.
    pub fn close(
        &self,
        keep_wal_from: Option<wal::WalPosition>,
    ) -> Result<CloseReport, StorageError> {
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        let start = Instant::now();
        let (series, checkpoint_bytes) = self.checkpoint_head(keep_wal_from)?;
        self.head
            .release_chunk_files()
            .map_err(|e| self.head_chunks_error(e))?;
        Ok(CloseReport {
            series,
            checkpoint_bytes,
            duration: start.elapsed(),
        })
    }

    /// Writes the head's checkpoint in place of the WAL when the segments
    /// after the last checkpoint hold [`StorageOptions::wal_checkpoint_bytes`]
    /// or more, so the log stays small between compactions. Segments from
    /// `keep_wal_from` (the oldest remote-write cursor) on stay. Returns the
    /// series and bytes written, if it wrote. Blocking.
    pub fn checkpoint_if_log_grew(
        &self,
        keep_wal_from: Option<wal::WalPosition>,
    ) -> Result<Option<(u64, u64)>, StorageError> {
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        if self.wal.bytes_since_checkpoint()? < self.options.wal_checkpoint_bytes {
            return Ok(None);
        }
        self.checkpoint_head(keep_wal_from).map(Some)
    }

    /// Writes the head as the WAL's checkpoint ([`Wal::checkpoint_head`]),
    /// keeping the segments from `keep_wal_from` on; returns the series and
    /// bytes written. The caller holds `compacting`.
    fn checkpoint_head(
        &self,
        keep_wal_from: Option<wal::WalPosition>,
    ) -> Result<(u64, u64), StorageError> {
        // Before the checkpoint drops the records of series no longer in the
        // head, the store remembers which refs were handed out.
        let meta = self.kv.tree(trees::META)?;
        meta.put(NEXT_SERIES_REF_KEY, &self.head.next_ref())?;
        meta.flush()?;
        let mut series_written = 0u64;
        let shards: Vec<usize> = (0..head::SHARDS).collect();
        let checkpoint_bytes = self.wal.checkpoint_head(keep_wal_from, |checkpoint| {
            // Encoding and compressing is the work: spread over the cores.
            let written = crate::parallel::map_parts(&shards, 1, |part| {
                let mut count = 0u64;
                checkpoint.write(|records| {
                    self.head.for_each_series(part, |series, key, chunks| {
                        let chunks = chunks.map_err(|e| self.head_chunks_error(e))?;
                        let labels = series_key::decode(key);
                        let encoded =
                            block_chunks_of(chunks.iter().map(|c| (c.encoding, &*c.bytes)), |_| {
                                true
                            })
                            .map_err(|e| {
                                self.head_chunks_error(std::io::Error::new(
                                    std::io::ErrorKind::InvalidData,
                                    format!("head series {labels}: {e}"),
                                ))
                            })?;
                        let bytes: Vec<&[u8]> = encoded.iter().map(|c| &*c.bytes).collect();
                        records.series(series, &labels.str_pairs(), &bytes)?;
                        count += 1;
                        Ok::<(), StorageError>(())
                    })
                })?;
                Ok::<u64, StorageError>(count)
            });
            for part in written {
                series_written += part?;
            }
            Ok::<(), StorageError>(())
        })?;
        Ok((series_written, checkpoint_bytes))
    }

    /// Writes the head's oldest block-range window to a block once the head
    /// reaches half a range past its end, drops it from the head, checkpoints
    /// the WAL, keeping the segments from `keep_wal_from` (the oldest
    /// remote-write cursor) on. Returns the block written, if any.
    /// Blocking: run it off the async workers.
    pub fn compact(
        &self,
        keep_wal_from: Option<wal::WalPosition>,
    ) -> Result<Option<BlockMeta>, StorageError> {
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        let range = self.options.block_range.as_millis() as i64;
        let (Some(head_min), Some(head_max)) = (self.head.min_time(), self.head.max_time()) else {
            return Ok(None);
        };
        let window_start = head_min.div_euclid(range) * range;
        let window_end = window_start + range;
        if head_max < window_end + range / 2 {
            return Ok(None);
        }
        let sealed = self.head.seal_before(window_end);
        let written = write_head_block(
            &self.blocks_dir,
            sealed
                .series()
                .map(|read| read.map_err(|e| self.head_chunks_error(e))),
            window_start,
            window_end - 1,
        )?;
        if let Some(meta) = &written {
            self.publish_block(meta, &[])?;
        }
        // Only now that the block is durable may the head and the WAL let go.
        let dropped = self
            .head
            .drop_before(window_end)
            .map_err(|e| self.head_chunks_error(e))?;
        self.tombstones.trim_head(window_end, &dropped)?;
        let (checkpoint_series, checkpoint_bytes) = self.checkpoint_head(keep_wal_from)?;
        self.kv.flush()?;
        tracing::info!(
            block = written.as_ref().map(|m| m.id.as_str()),
            window_start,
            window_end,
            checkpoint_series,
            checkpoint_bytes,
            "head window written to a block; the WAL before it replaced by the head's checkpoint"
        );
        Ok(written)
    }

    /// Opens a block just written and serves it in place of `replacing`.
    fn publish_block(
        &self,
        meta: &BlockMeta,
        replacing: &[Arc<Block>],
    ) -> Result<(), StorageError> {
        let opened = Block::open(
            &self.blocks_dir.join(&meta.id),
            self.options.block_cache_bytes,
        )
        .map_err(StorageError::BlockWrite)?;
        let mut blocks = write_lock(&self.blocks);
        blocks.retain(|b| !replacing.iter().any(|r| Arc::ptr_eq(r, b)));
        blocks.push(Arc::new(opened));
        blocks.sort_by_key(|b| b.meta().min_time);
        Ok(())
    }

    /// Everything compaction does, as often as there is work: head windows
    /// to blocks, retention, then block merges. Returns the number of
    /// blocks written and merged. WAL segments from `keep_wal_from` on stay,
    /// as for [`Storage::compact`]. Blocking.
    pub fn maintain(
        &self,
        keep_wal_from: Option<wal::WalPosition>,
    ) -> Result<(usize, usize), StorageError> {
        let mut written = 0;
        while self.compact(keep_wal_from)?.is_some() {
            written += 1;
        }
        // Counted back from the newest sample anywhere, so retention also
        // applies while nothing new arrives.
        let newest = self
            .head
            .max_time()
            .into_iter()
            .chain(self.blocks().iter().map(|b| b.max_time))
            .max();
        if let Some(newest) = newest {
            self.apply_retention(newest);
        }
        let mut merged = 0;
        while self.merge_blocks()?.is_some() {
            merged += 1;
        }
        Ok((written, merged))
    }

    /// The widest block a merge may produce: 10 % of the retention time,
    /// at most 31 days, at least the block range.
    fn max_block_range(&self) -> i64 {
        let range = self.options.block_range.as_millis() as i64;
        let tenth = self.options.retention_time.as_millis() as i64 / 10;
        tenth.min(31 * 24 * 3_600_000).max(range)
    }

    /// Merges adjacent blocks into larger ones: the oldest window of 1×
    /// (blocks that backfills and imports wrote in pieces), 3×, 9×, 27×… the
    /// block range (up to [`Storage::max_block_range`]) that holds two
    /// blocks or more and, from 3× on, is complete (newer blocks exist after
    /// it). A query reads every block its range touches, so a window in
    /// ten pieces costs ten index lookups per series. Tombstones are cleaned first so merged blocks never carry
    /// deleted samples. Returns the merged block, if any. Blocking.
    pub fn merge_blocks(&self) -> Result<Option<BlockMeta>, StorageError> {
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        self.clean_tombstones_locked()?;
        let blocks: Vec<Arc<Block>> = read_lock(&self.blocks).clone();
        let Some(newest_end) = blocks.iter().map(|b| b.meta().max_time + 1).max() else {
            return Ok(None);
        };
        let base = self.options.block_range.as_millis() as i64;
        let mut plan = None;
        let mut range = base;
        while plan.is_none() && range <= self.max_block_range() {
            let mut windows: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
            for b in &blocks {
                let window = b.meta().min_time.div_euclid(range);
                if b.meta().max_time < (window + 1) * range {
                    windows.entry(window).or_default().push(b.clone());
                }
            }
            plan = windows
                .into_iter()
                .find(|(window, group)| {
                    group.len() >= 2 && (range == base || (window + 1) * range <= newest_end)
                })
                .map(|(_, group)| {
                    // The merged block spans what its sources span, not the whole window.
                    let min_time = group
                        .iter()
                        .map(|b| b.meta().min_time)
                        .min()
                        .unwrap_or_default();
                    let max_time = group
                        .iter()
                        .map(|b| b.meta().max_time)
                        .max()
                        .unwrap_or_default();
                    (min_time, max_time, group)
                });
            range *= 3;
        }
        let Some((min_time, max_time, sources)) = plan else {
            return Ok(None);
        };
        // Series of every source, by labels; sources are in time order, so chunks are too.
        let mut series: BTreeMap<Labels, Vec<(usize, u32)>> = BTreeMap::new();
        for (i, b) in sources.iter().enumerate() {
            for index in b.all_series() {
                let labels = b
                    .series_labels(index)
                    .map_err(|e| self.set_block_aside(b, e))?;
                series
                    .entry(Labels::from_sorted(labels))
                    .or_default()
                    .push((i, index));
            }
        }
        let mut failure: Option<(usize, BlockError)> = None;
        let mut entries = series.into_iter();
        let inputs = std::iter::from_fn(|| {
            let (labels, parts) = entries.next()?;
            let mut read = Vec::new();
            for (i, index) in parts {
                let encoding = sources[i].meta().chunk_encoding;
                let bytes = sources[i].series_chunks(index).and_then(|metas| {
                    metas
                        .iter()
                        .map(|meta| sources[i].chunk(meta))
                        .collect::<Result<Vec<_>, BlockError>>()
                });
                match bytes {
                    Ok(bytes) => read.extend(bytes.into_iter().map(|b| (i, encoding, b))),
                    Err(e) => {
                        failure = Some((i, e));
                        return None;
                    }
                }
            }
            let chunks = block_chunks_of(read.iter().map(|(_, e, b)| (*e, &**b)), |_| true);
            match chunks {
                Ok(chunks) => Some(SeriesInput {
                    labels: labels.pairs().to_vec(),
                    chunks,
                }),
                Err(what) => {
                    // Name the source block: it is the one that does not decode.
                    let i = read.first().map_or(0, |(i, _, _)| *i);
                    failure = Some((
                        i,
                        BlockError::Corrupt {
                            path: sources[i].dir().to_path_buf(),
                            what,
                        },
                    ));
                    None
                }
            }
        });
        let level = sources
            .iter()
            .map(|b| b.meta().compaction.level)
            .max()
            .unwrap_or(1)
            + 1;
        let ids: Vec<String> = sources.iter().map(|b| b.meta().id.clone()).collect();
        // A merge keeps every hint of its sources (a backfilled part stays one).
        let mut hints: Vec<String> = sources
            .iter()
            .flat_map(|b| b.meta().compaction.hints.iter().cloned())
            .collect();
        hints.sort();
        hints.dedup();
        let written = block::write_block(
            &self.blocks_dir,
            inputs,
            min_time,
            max_time,
            Compaction {
                level,
                sources: ids,
                hints,
            },
            Encoding::Columnar,
        )
        .map_err(StorageError::BlockWrite)?;
        if let Some((i, source)) = failure {
            // The merged block is incomplete: throw it away, set the bad source aside.
            if let Some(meta) = &written {
                let _ = std::fs::remove_dir_all(self.blocks_dir.join(&meta.id));
            }
            return Err(self.set_block_aside(&sources[i], source));
        }
        let Some(meta) = written else {
            return Ok(None);
        };
        self.publish_block(&meta, &sources)?;
        for b in &sources {
            if let Err(e) = std::fs::remove_dir_all(b.dir()) {
                tracing::error!(block = b.meta().id, error = %e, "could not delete a block merged into a larger one");
            }
        }
        tracing::info!(
            block = meta.id,
            min_time,
            max_time,
            level,
            merged = sources.len(),
            "blocks merged"
        );
        Ok(Some(meta))
    }

    /// Deletes whole blocks beyond the retention time (counted back from
    /// `newest`) or, oldest first, beyond the retention size.
    fn apply_retention(&self, newest: i64) {
        let cutoff = newest.saturating_sub(self.options.retention_time.as_millis() as i64);
        let mut doomed: Vec<Arc<Block>> = Vec::new();
        {
            let mut blocks = write_lock(&self.blocks);
            blocks.retain(|b| {
                let keep = b.meta().max_time >= cutoff;
                if !keep {
                    doomed.push(b.clone());
                }
                keep
            });
            if let Some(limit) = self.options.retention_size {
                let mut total: u64 = blocks.iter().map(|b| b.size_bytes()).sum();
                while total > limit && !blocks.is_empty() {
                    let oldest = blocks.remove(0);
                    total -= oldest.size_bytes();
                    doomed.push(oldest);
                }
            }
        }
        for b in doomed {
            if let Err(e) = self.tombstones.remove_block(&b.meta().id) {
                tracing::error!(block = b.meta().id, error = %e, "could not drop the tombstones of a deleted block");
            }
            // Readers holding the block keep their mappings; the files go when they are done.
            match std::fs::remove_dir_all(b.dir()) {
                Ok(()) => tracing::info!(
                    block = b.meta().id,
                    max_time = b.meta().max_time,
                    "block deleted by retention"
                ),
                Err(e) => {
                    tracing::error!(block = b.meta().id, error = %e, "could not delete a block past retention")
                }
            }
        }
    }

    /// The label sets of the series matching `matchers` with samples in
    /// `[mint, maxt]`, from the block indexes and the head, reading no chunk.
    fn matching_labels(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<BTreeSet<Labels>, StorageError> {
        let mut out = BTreeSet::new();
        let blocks: Vec<Arc<Block>> = read_lock(&self.blocks).clone();
        for b in blocks
            .iter()
            .filter(|b| b.meta().max_time >= mint && b.meta().min_time <= maxt)
        {
            let read = || -> Result<Vec<Labels>, BlockError> {
                let mut labels = Vec::new();
                for id in select_postings(&BlockIndex(b), matchers)? {
                    let id = id as u32;
                    if b.series_chunks(id)?
                        .iter()
                        .any(|m| m.max_t >= mint && m.min_t <= maxt)
                    {
                        labels.push(Labels::from_sorted(b.series_labels(id)?));
                    }
                }
                Ok(labels)
            };
            out.extend(read().map_err(|e| self.set_block_aside(b, e))?);
        }
        out.extend(
            self.head
                .labels_in(&self.head.postings_for(matchers), mint, maxt),
        );
        Ok(out)
    }

    /// Label names of the series matching `matchers` in `[mint, maxt]`, sorted.
    pub fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let names: BTreeSet<String> = self
            .matching_labels(matchers, mint, maxt)?
            .iter()
            .flat_map(|l| l.pairs().iter().map(|(n, _)| n.clone()))
            .collect();
        Ok(names.into_iter().collect())
    }

    /// The label sets of the series matching `matchers` with samples in
    /// `[mint, maxt]`, sorted; no chunk is read.
    pub fn series_labels_matching(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .matching_labels(matchers, mint, maxt)?
            .into_iter()
            .collect())
    }

    /// Values of label `name` among the series matching `matchers` in `[mint, maxt]`, sorted.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let values: BTreeSet<String> = self
            .matching_labels(matchers, mint, maxt)?
            .iter()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        Ok(values.into_iter().collect())
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

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Moves a block directory into `corrupted`; returns where it went (or why it could not).
fn set_aside(block_dir: &Path, corrupted: &Path) -> String {
    let target = corrupted.join(block_dir.file_name().unwrap_or_default());
    match std::fs::create_dir_all(corrupted).and_then(|()| std::fs::rename(block_dir, &target)) {
        Ok(()) => target.display().to_string(),
        Err(e) => format!("(could not move {}: {e})", block_dir.display()),
    }
}

/// A block's postings as a [`LabelIndex`].
struct BlockIndex<'a>(&'a Block);

impl LabelIndex for BlockIndex<'_> {
    type Error = BlockError;

    fn postings_where(
        &self,
        name: &str,
        accept: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<u64>, BlockError> {
        let mut lists = Vec::new();
        for value in self.0.label_values(name).into_iter().filter(|v| accept(v)) {
            lists.push(
                self.0
                    .postings(name, value)?
                    .into_iter()
                    .map(u64::from)
                    .collect::<Vec<u64>>(),
            );
        }
        let slices: Vec<&[u64]> = lists.iter().map(Vec::as_slice).collect();
        Ok(postings::union_many(&slices))
    }

    fn all_postings(&self) -> Result<Vec<u64>, BlockError> {
        Ok(self.0.all_series().map(u64::from).collect())
    }
}

/// Writes head series (sorted by labels, with their sealed chunks) as a level-1 block.
fn write_head_block(
    dir: &Path,
    series: impl IntoIterator<Item = Result<(Labels, Vec<SealedChunk>), StorageError>>,
    min_time: i64,
    max_time: i64,
) -> Result<Option<BlockMeta>, StorageError> {
    let mut failure = None;
    let mut series = series.into_iter();
    // Streamed: one series' re-encoded chunks at a time.
    let inputs = std::iter::from_fn(|| {
        let (labels, chunks) = match series.next()? {
            Ok(read) => read,
            Err(e) => {
                failure = Some(e);
                return None;
            }
        };
        let encoded = chunks.iter().map(|c| (c.encoding, &*c.bytes));
        match block_chunks_of(encoded, |_| true) {
            Ok(chunks) => Some(SeriesInput {
                labels: labels.pairs().to_vec(),
                chunks,
            }),
            Err(e) => {
                failure = Some(StorageError::BlockWrite(BlockError::InvalidInput(format!(
                    "head series {labels}: {e}"
                ))));
                None
            }
        }
    });
    let written = block::write_block(
        dir,
        inputs,
        min_time,
        max_time,
        Compaction {
            level: 1,
            sources: Vec::new(),
            hints: Vec::new(),
        },
        Encoding::Columnar,
    );
    if let Some(e) = failure {
        // The block (without the rest of the series) must not stay.
        if let Ok(Some(meta)) = &written {
            let _ = std::fs::remove_dir_all(dir.join(&meta.id));
        }
        return Err(e);
    }
    written.map_err(StorageError::BlockWrite)
}

/// A block series re-encoded without its deleted samples: labels and chunks.
type RewrittenSeries = (Vec<(String, String)>, Vec<ChunkInput<'static>>);

/// Why reading a block failed: the block itself, or its tombstones.
enum BlockRead {
    Block(BlockError),
    Kv(KvError),
}

impl From<BlockError> for BlockRead {
    fn from(e: BlockError) -> BlockRead {
        BlockRead::Block(e)
    }
}

/// One list of series by labels from runs that are each sorted (one per
/// source, oldest source first): the runs merged, and the series that
/// several sources hold made one, their chunks in source order.
fn merge_sorted_runs(mut found: Vec<Series>) -> Vec<Series> {
    // Stable, and it merges sorted runs rather than sorting anew.
    found.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut merged: Vec<Series> = Vec::with_capacity(found.len());
    for series in found {
        match merged.last_mut() {
            Some(last) if last.labels == series.labels => {
                last.chunks.extend(series.chunks);
                last.deleted.extend(series.deleted);
            }
            _ => merged.push(series),
        }
    }
    merged
}

/// The series of `block` that match, with their chunks in `[mint, maxt]`
/// and their deleted intervals, sorted by labels.
fn select_from_block(
    block: &Block,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
    deleted: &(dyn Fn(u32) -> Result<Vec<Interval>, KvError> + Sync),
) -> Result<Vec<Series>, BlockRead> {
    let ids = select_postings(&BlockIndex(block), matchers)?;
    let mut found = Vec::with_capacity(ids.len());
    for part in crate::parallel::map_parts(&ids, SERIES_PER_READER, |ids| {
        series_from_block(block, ids, mint, maxt, deleted)
    }) {
        found.extend(part?);
    }
    // Blocks are written with series ids in label order, so this finds
    // them sorted; the check keeps the promise whatever wrote the block.
    if !found.windows(2).all(|w| w[0].labels < w[1].labels) {
        found.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
    Ok(found)
}

/// Series a thread reading a block takes at least. Reading a series means
/// decompressing its frames (when the block's cache misses, as it does
/// for a metric of several thousand series over a day), which is worth
/// spreading from a few hundred series on.
const SERIES_PER_READER: usize = 256;

/// The series `ids` of `block` with chunks in `[mint, maxt]`, in `ids` order.
fn series_from_block(
    block: &Block,
    ids: &[u64],
    mint: i64,
    maxt: i64,
    deleted: &(dyn Fn(u32) -> Result<Vec<Interval>, KvError> + Sync),
) -> Result<Vec<Series>, BlockRead> {
    let mut found = Vec::new();
    for &id in ids {
        let id = id as u32;
        let mut chunks = Vec::new();
        for meta in block
            .series_chunks(id)?
            .into_iter()
            .filter(|m| m.max_t >= mint && m.min_t <= maxt)
        {
            let bytes = block.chunk(&meta)?;
            chunks.push(SealedChunk {
                min_t: meta.min_t,
                max_t: meta.max_t,
                samples: meta.num_samples,
                encoding: block.meta().chunk_encoding,
                bytes,
            });
        }
        if !chunks.is_empty() {
            found.push(Series {
                labels: Labels::from_sorted(block.series_labels(id)?),
                chunks,
                deleted: deleted(id).map_err(BlockRead::Kv)?,
                mint,
                maxt,
            });
        }
    }
    Ok(found)
}

/// Entries handed to a replay worker at a time.
const REPLAY_BATCH: usize = 8192;

/// Late samples of WAL replay, by series.
type LateSamples = HashMap<wal::SeriesRef, Vec<(i64, f64)>>;

/// Replays the WAL into `head`: this thread reads and decodes the log, and
/// one worker per core applies the entries of its share of the head's
/// shards, so each series still sees its entries in log order. Returns the
/// samples that came late (or before their series record) for `merge_late`.
fn replay_in_parallel(
    head: &Head,
    wal: &Wal,
) -> Result<(wal::ReplayStats, LateSamples), StorageError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<WalEntry>>(4);
            senders.push(tx);
            handles.push(scope.spawn(move || {
                let mut late = LateSamples::new();
                // Consecutive samples of one series (a head checkpoint's)
                // go in as one run, under one lock.
                let mut run: Vec<(i64, f64)> = Vec::new();
                let mut run_series = 0;
                let mut flush = |series: wal::SeriesRef, run: &mut Vec<(i64, f64)>| {
                    if run.is_empty() {
                        return;
                    }
                    let mut came_late = Vec::new();
                    let found = head.append_run(series, run, i64::MIN, |sample, outcome| {
                        if outcome == Outcome::OutOfOrder {
                            came_late.push(sample);
                        }
                    });
                    // Late, or logged before its series record (a schema-3
                    // store's series table is appended after its samples).
                    if !found {
                        came_late = std::mem::take(run);
                    }
                    if !came_late.is_empty() {
                        late.entry(series).or_default().extend(came_late);
                    }
                    run.clear();
                };
                for batch in rx {
                    for entry in batch {
                        match entry {
                            WalEntry::Series(series, labels) => {
                                flush(run_series, &mut run);
                                head.restore_series(&labels, series)
                            }
                            WalEntry::Sample(s) => {
                                if s.series != run_series {
                                    flush(run_series, &mut run);
                                    run_series = s.series;
                                }
                                run.push((s.t, s.v));
                            }
                        }
                    }
                    flush(run_series, &mut run);
                }
                late
            }));
        }
        let mut pending: Vec<Vec<WalEntry>> = (0..workers).map(|_| Vec::new()).collect();
        let route = |series: wal::SeriesRef| (series as usize % head::SHARDS) % workers;
        let stats = wal.replay(|entry| {
            let worker = match &entry {
                WalEntry::Series(series, _) => route(*series),
                WalEntry::Sample(s) => route(s.series),
            };
            pending[worker].push(entry);
            if pending[worker].len() >= REPLAY_BATCH {
                // A worker that stopped has panicked; its join below reports it.
                let _ = senders[worker].send(std::mem::take(&mut pending[worker]));
            }
        });
        for (sender, batch) in senders.iter().zip(pending) {
            let _ = sender.send(batch);
        }
        drop(senders);
        let mut late = LateSamples::new();
        for handle in handles {
            let part = handle.join().map_err(|_| StorageError::Io {
                path: PathBuf::from(wal::WAL_DIR),
                source: std::io::Error::other("a WAL replay worker panicked"),
            })?;
            late.extend(part);
        }
        Ok((stats?, late))
    })
}

/// `metric{labels} @ t`, for error examples.
fn describe(key: &[u8], t: i64) -> String {
    format!("{} @ {t}", series_key::decode(key))
}
