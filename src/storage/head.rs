//! The head: recent samples in memory. Each series keeps Gorilla chunks
//! (sealed ones as immutable byte slices, plus one open [`XorChunk`]), cut
//! at [`MAX_SAMPLES`] samples or at a block-range boundary so that no chunk
//! spans two blocks. Series live in shards chosen by label hash, each behind
//! its own lock, so appends to different series and reads do not serialize.
//! Label names and values are interned ([`Symbols`]) and the inverted index
//! ([`Postings`]) maps each label pair to the sorted refs of its series.
//!
//! Lock order, everywhere: a shard, then the symbols, then the postings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::chunk::{XorChunk, MAX_SAMPLES};
use super::index::{select_postings, LabelIndex};
use super::labels::{Labels, LabelsRef};
use super::matcher::Matcher;
use super::postings;
use super::wal::SeriesRef;

const SHARDS: usize = 16;

/// A sealed chunk of the head: immutable, shared with readers without copying.
#[derive(Debug, Clone)]
pub struct SealedChunk {
    /// First sample's timestamp.
    pub min_t: i64,
    /// Last sample's timestamp.
    pub max_t: i64,
    /// Number of samples.
    pub samples: u16,
    /// Encoded samples.
    pub bytes: Arc<[u8]>,
}

struct MemSeries {
    /// Interned (name, value) pairs, sorted by name.
    labels: Box<[(u32, u32)]>,
    sealed: Vec<SealedChunk>,
    open: XorChunk,
    /// Newest timestamp, and the bits of its value (for duplicate detection).
    max_t: i64,
    last_bits: u64,
}

impl MemSeries {
    fn min_t(&self) -> Option<i64> {
        self.sealed
            .first()
            .map(|c| c.min_t)
            .or_else(|| self.open.first_time())
    }

    fn seal(&mut self) {
        if let (Some(min_t), Some(max_t)) = (self.open.first_time(), self.open.last_time()) {
            let open = std::mem::take(&mut self.open);
            self.sealed.push(SealedChunk {
                min_t,
                max_t,
                samples: open.len() as u16,
                bytes: Arc::from(open.bytes()),
            });
        }
    }

    fn chunks_in(&self, mint: i64, maxt: i64) -> Vec<SealedChunk> {
        let mut out: Vec<SealedChunk> = self
            .sealed
            .iter()
            .filter(|c| c.max_t >= mint && c.min_t <= maxt)
            .cloned()
            .collect();
        if let (Some(min_t), Some(max_t)) = (self.open.first_time(), self.open.last_time()) {
            if max_t >= mint && min_t <= maxt {
                out.push(SealedChunk {
                    min_t,
                    max_t,
                    samples: self.open.len() as u16,
                    bytes: Arc::from(self.open.bytes()),
                });
            }
        }
        out
    }
}

/// Hashes `u64` keys (series refs, label hashes) with one multiplication:
/// they are already well spread, and SipHash dominated the append path.
#[derive(Default, Clone, Copy)]
struct U64Hasher(u64);

impl std::hash::Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type U64Map<V> = HashMap<u64, V, std::hash::BuildHasherDefault<U64Hasher>>;

#[derive(Default)]
struct Shard {
    series: U64Map<MemSeries>,
    by_hash: U64Map<Vec<SeriesRef>>,
}

/// Interned label names and values. The strings live back to back in one
/// arena, so comparing a series' labels on the append path reads compact
/// memory instead of chasing one heap pointer per string.
#[derive(Default)]
struct Symbols {
    ids: HashMap<Box<str>, u32>,
    arena: String,
    /// Start and length of each symbol in `arena`.
    spans: Vec<(u32, u32)>,
}

impl Symbols {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.spans.len() as u32;
        self.spans.push((self.arena.len() as u32, s.len() as u32));
        self.arena.push_str(s);
        self.ids.insert(Box::from(s), id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.spans
            .get(id as usize)
            .and_then(|&(start, len)| self.arena.get(start as usize..(start + len) as usize))
            .unwrap_or("")
    }

    fn resolve(&self, pairs: &[(u32, u32)]) -> Labels {
        Labels::from_sorted(
            pairs
                .iter()
                .map(|&(n, v)| (self.get(n).to_string(), self.get(v).to_string()))
                .collect(),
        )
    }

    fn equals(&self, pairs: &[(u32, u32)], labels: &[(&str, &str)]) -> bool {
        pairs.len() == labels.len()
            && pairs
                .iter()
                .zip(labels)
                .all(|(&(n, v), (ln, lv))| self.get(n) == *ln && self.get(v) == *lv)
    }
}

/// The inverted index: label name → value → sorted series refs.
#[derive(Default)]
struct Postings {
    by_label: HashMap<u32, HashMap<u32, Vec<SeriesRef>>>,
    all: Vec<SeriesRef>,
}

/// A consistent read view of the head's index.
struct HeadIndex<'a> {
    symbols: std::sync::RwLockReadGuard<'a, Symbols>,
    postings: std::sync::RwLockReadGuard<'a, Postings>,
}

impl LabelIndex for HeadIndex<'_> {
    type Error = std::convert::Infallible;

    fn postings_where(
        &self,
        name: &str,
        accept: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<u64>, Self::Error> {
        let Some(values) = self
            .symbols
            .ids
            .get(name)
            .and_then(|n| self.postings.by_label.get(n))
        else {
            return Ok(Vec::new());
        };
        let lists: Vec<&[SeriesRef]> = values
            .iter()
            .filter(|(v, _)| accept(self.symbols.get(**v)))
            .map(|(_, refs)| refs.as_slice())
            .collect();
        Ok(postings::union_many(&lists))
    }

    fn all_postings(&self) -> Result<Vec<u64>, Self::Error> {
        Ok(self.postings.all.clone())
    }
}

/// What happened to one sample offered to the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored.
    Stored,
    /// Same timestamp and same value as the newest sample: accepted, not stored twice.
    Duplicate,
    /// Same timestamp as the newest sample, different value.
    ConflictingDuplicate,
    /// Older than the series' newest sample.
    OutOfOrder,
    /// Older than the head's window.
    TooOld,
}

/// Counts, per series and globally, used by `/api/v1/status/tsdb`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeadStats {
    /// Series in the head.
    pub series: u64,
    /// Chunks, sealed and open.
    pub chunks: u64,
    /// Samples held.
    pub samples: u64,
    /// Oldest and newest timestamp, when there are samples.
    pub min_t: Option<i64>,
    /// Newest timestamp.
    pub max_t: Option<i64>,
    /// Bytes of chunk data (encoded samples).
    pub chunk_bytes: u64,
}

/// The in-memory head.
pub struct Head {
    shards: Box<[RwLock<Shard>]>,
    symbols: RwLock<Symbols>,
    postings: RwLock<Postings>,
    next_ref: AtomicU64,
    max_t: AtomicI64,
    /// Samples older than this are refused: their window is (being) written to a block.
    min_append_t: AtomicI64,
    block_range_ms: i64,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Head {
    /// An empty head whose chunks never span a multiple of `block_range_ms`.
    pub fn new(block_range_ms: i64) -> Head {
        Head {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            symbols: RwLock::new(Symbols::default()),
            postings: RwLock::new(Postings::default()),
            next_ref: AtomicU64::new(1),
            max_t: AtomicI64::new(i64::MIN),
            min_append_t: AtomicI64::new(i64::MIN),
            block_range_ms: block_range_ms.max(1),
        }
    }

    fn shard_of(series: SeriesRef) -> usize {
        (series as usize) % SHARDS
    }

    /// The newest timestamp in the head.
    pub fn max_time(&self) -> Option<i64> {
        Some(self.max_t.load(Ordering::Relaxed)).filter(|t| *t != i64::MIN)
    }

    /// Creates the series `labels` with ref `series` unless it exists (WAL
    /// replay: the refs are those of the series table).
    pub fn restore_series(&self, labels: &Labels, series: SeriesRef) {
        let pairs: Vec<(&str, &str)> = labels
            .pairs()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let hash = labels.stable_hash();
        let mut shard = write(&self.shards[(hash as usize) % SHARDS]);
        if self.find(&shard, hash, &pairs).is_none() {
            self.next_ref
                .fetch_max(series / SHARDS as u64 + 1, Ordering::Relaxed);
            self.insert(&mut shard, hash, &pairs, series);
        }
    }

    fn find(&self, shard: &Shard, hash: u64, labels: &[(&str, &str)]) -> Option<SeriesRef> {
        let candidates = shard.by_hash.get(&hash)?;
        let symbols = read(&self.symbols);
        candidates.iter().copied().find(|candidate| {
            shard
                .series
                .get(candidate)
                .is_some_and(|s| symbols.equals(&s.labels, labels))
        })
    }

    fn insert(&self, shard: &mut Shard, hash: u64, labels: &[(&str, &str)], series: SeriesRef) {
        let interned: Box<[(u32, u32)]> = {
            let mut symbols = write(&self.symbols);
            labels
                .iter()
                .map(|(n, v)| (symbols.intern(n), symbols.intern(v)))
                .collect()
        };
        {
            let mut index = write(&self.postings);
            for &(n, v) in interned.iter() {
                postings::insert_sorted(
                    index.by_label.entry(n).or_default().entry(v).or_default(),
                    series,
                );
            }
            postings::insert_sorted(&mut index.all, series);
        }
        shard.series.insert(
            series,
            MemSeries {
                labels: interned,
                sealed: Vec::new(),
                open: XorChunk::new(),
                max_t: i64::MIN,
                last_bits: 0,
            },
        );
        shard.by_hash.entry(hash).or_default().push(series);
    }

    /// Offers `samples` to the series `labels` under one lock, creating the
    /// series if needed (then the owned labels are returned for the series
    /// table); `outcome` hears what became of each sample. `min_valid_t` is
    /// the oldest time the head accepts.
    pub fn append_series(
        &self,
        labels: &LabelsRef<'_>,
        samples: &[(i64, f64)],
        min_valid_t: i64,
        mut outcome: impl FnMut(SeriesRef, i64, f64, Outcome),
    ) -> (SeriesRef, Option<Labels>) {
        let hash = labels.stable_hash();
        let shard_index = (hash as usize) % SHARDS;
        let mut shard = write(&self.shards[shard_index]);
        let (series, created) = match self.find(&shard, hash, labels.pairs()) {
            Some(series) => (series, None),
            None => {
                // Refs are numbered so that the shard follows from the ref and from the hash alike.
                let series = self.next_ref.fetch_add(1, Ordering::Relaxed) * SHARDS as u64
                    + shard_index as u64;
                self.insert(&mut shard, hash, labels.pairs(), series);
                (series, Some(labels.to_owned()))
            }
        };
        // Read under the shard lock: see `seal_before`.
        let min_t = min_valid_t.max(self.min_append_t.load(Ordering::Acquire));
        if let Some(s) = shard.series.get_mut(&series) {
            let mut newest = i64::MIN;
            for &(t, v) in samples {
                let result = self.append_to(s, t, v, min_t);
                if result == Outcome::Stored {
                    newest = t;
                }
                outcome(series, t, v, result);
            }
            self.max_t.fetch_max(newest, Ordering::Relaxed);
        }
        (series, created)
    }

    /// Offers one sample to `series` (WAL replay).
    pub fn append(&self, series: SeriesRef, t: i64, v: f64, min_valid_t: i64) -> Outcome {
        let mut shard = write(&self.shards[Self::shard_of(series)]);
        let min_t = min_valid_t.max(self.min_append_t.load(Ordering::Acquire));
        let Some(s) = shard.series.get_mut(&series) else {
            return Outcome::TooOld;
        };
        let result = self.append_to(s, t, v, min_t);
        if result == Outcome::Stored {
            self.max_t.fetch_max(t, Ordering::Relaxed);
        }
        result
    }

    fn append_to(&self, s: &mut MemSeries, t: i64, v: f64, min_t: i64) -> Outcome {
        if t < min_t {
            return Outcome::TooOld;
        }
        if t < s.max_t {
            return Outcome::OutOfOrder;
        }
        if t == s.max_t {
            return if v.to_bits() == s.last_bits {
                Outcome::Duplicate
            } else {
                Outcome::ConflictingDuplicate
            };
        }
        self.push(s, t, v);
        s.max_t = t;
        s.last_bits = v.to_bits();
        Outcome::Stored
    }

    /// Re-encodes a series' chunks after `edit` changed its decoded samples.
    fn rewrite(&self, series: SeriesRef, edit: impl FnOnce(&mut Vec<(i64, f64)>)) {
        let mut shard = write(&self.shards[Self::shard_of(series)]);
        let Some(s) = shard.series.get_mut(&series) else {
            return;
        };
        let mut all: Vec<(i64, f64)> = Vec::new();
        for chunk in s.chunks_in(i64::MIN, i64::MAX) {
            all.extend(super::chunk::decode(&chunk.bytes).unwrap_or_default());
        }
        edit(&mut all);
        s.sealed.clear();
        s.open = XorChunk::new();
        for (t, v) in all {
            self.push(s, t, v);
        }
    }

    /// Appends a sample newer than the series' last one to its open chunk,
    /// sealing that chunk first when it is full or `t` is in the next block window.
    fn push(&self, s: &mut MemSeries, t: i64, v: f64) {
        let crosses_boundary = s.open.last_time().is_some_and(|last| {
            last.div_euclid(self.block_range_ms) != t.div_euclid(self.block_range_ms)
        });
        if s.open.len() >= MAX_SAMPLES || crosses_boundary {
            s.seal();
        }
        s.open.append(t, v);
    }

    /// Inserts samples that arrived out of log order during WAL replay.
    pub fn merge_late(&self, series: SeriesRef, late: Vec<(i64, f64)>) {
        self.rewrite(series, |all| {
            all.extend(late);
            all.sort_by_key(|(t, _)| *t);
            all.dedup_by_key(|(t, _)| *t);
        });
        let mut shard = write(&self.shards[Self::shard_of(series)]);
        if let Some(s) = shard.series.get_mut(&series) {
            if let Some((t, v)) = s.open.iter().last().and_then(Result::ok) {
                s.max_t = t;
                s.last_bits = v.to_bits();
            }
        }
    }

    /// Removes the samples of `series` in `[mint, maxt]`. The series keeps
    /// its newest timestamp, so appends stay ordered as before the delete.
    pub fn delete_range(&self, series: SeriesRef, mint: i64, maxt: i64) {
        self.rewrite(series, |all| all.retain(|(t, _)| *t < mint || *t > maxt));
    }

    /// The newest timestamp of `series` (a delete never reaches past it).
    pub fn series_max_time(&self, series: SeriesRef) -> Option<i64> {
        read(&self.shards[Self::shard_of(series)])
            .series
            .get(&series)
            .map(|s| s.max_t)
            .filter(|t| *t != i64::MIN)
    }

    /// The series whose labels satisfy every matcher, sorted by ref.
    pub fn postings_for(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        let view = HeadIndex {
            symbols: read(&self.symbols),
            postings: read(&self.postings),
        };
        match select_postings(&view, matchers) {
            Ok(refs) => refs,
            Err(never) => match never {},
        }
    }

    /// Labels and chunks overlapping `[mint, maxt]` of each series in `refs`.
    pub fn series_data(
        &self,
        refs: &[SeriesRef],
        mint: i64,
        maxt: i64,
    ) -> Vec<(Labels, Vec<SealedChunk>)> {
        let mut out = Vec::with_capacity(refs.len());
        for &series in refs {
            let shard = read(&self.shards[Self::shard_of(series)]);
            let Some(s) = shard.series.get(&series) else {
                continue;
            };
            let chunks = s.chunks_in(mint, maxt);
            if chunks.is_empty() {
                continue;
            }
            let labels = read(&self.symbols).resolve(&s.labels);
            out.push((labels, chunks));
        }
        out
    }

    /// The labels of each series in `refs` with samples in `[mint, maxt]`,
    /// without touching their chunks (label APIs).
    pub fn labels_in(&self, refs: &[SeriesRef], mint: i64, maxt: i64) -> Vec<Labels> {
        let mut out = Vec::new();
        for &series in refs {
            let shard = read(&self.shards[Self::shard_of(series)]);
            let Some(s) = shard.series.get(&series) else {
                continue;
            };
            if s.min_t()
                .is_some_and(|min_t| min_t <= maxt && s.max_t >= mint)
            {
                out.push(read(&self.symbols).resolve(&s.labels));
            }
        }
        out
    }

    /// Refuses samples older than `boundary` from now on and returns, sorted
    /// by labels, every series' chunks that end before it (the open chunk is
    /// sealed when it does): the contents of the block to write.
    pub fn seal_before(&self, boundary: i64) -> Vec<(Labels, Vec<SealedChunk>)> {
        self.min_append_t.fetch_max(boundary, Ordering::AcqRel);
        let mut out = Vec::new();
        // Taking each shard's write lock also waits out appends that read the
        // old bound, so nothing older than `boundary` arrives after this pass.
        for shard in self.shards.iter() {
            let mut shard = write(shard);
            for s in shard.series.values_mut() {
                if s.open.last_time().is_some_and(|last| last < boundary) {
                    s.seal();
                }
                let chunks: Vec<SealedChunk> = s
                    .sealed
                    .iter()
                    .filter(|c| c.max_t < boundary)
                    .cloned()
                    .collect();
                if !chunks.is_empty() {
                    out.push((read(&self.symbols).resolve(&s.labels), chunks));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Drops the chunks that end before `boundary` (now in a block) and the
    /// series left without samples; returns the refs of the dropped series.
    pub fn drop_before(&self, boundary: i64) -> Vec<SeriesRef> {
        let mut dropped = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = write(shard);
            let mut emptied = Vec::new();
            for (&series, s) in shard.series.iter_mut() {
                s.sealed.retain(|c| c.max_t >= boundary);
                if s.sealed.is_empty() && s.open.is_empty() {
                    emptied.push(series);
                }
            }
            for series in emptied {
                if let Some(s) = shard.series.remove(&series) {
                    let hash = read(&self.symbols).resolve(&s.labels).stable_hash();
                    if let Some(list) = shard.by_hash.get_mut(&hash) {
                        list.retain(|r| *r != series);
                        if list.is_empty() {
                            shard.by_hash.remove(&hash);
                        }
                    }
                    let mut index = write(&self.postings);
                    for (n, v) in s.labels.iter() {
                        if let Some(values) = index.by_label.get_mut(n) {
                            if let Some(refs) = values.get_mut(v) {
                                postings::remove_sorted(refs, series);
                                if refs.is_empty() {
                                    values.remove(v);
                                }
                            }
                            if values.is_empty() {
                                index.by_label.remove(n);
                            }
                        }
                    }
                    postings::remove_sorted(&mut index.all, series);
                    dropped.push(series);
                }
            }
        }
        dropped
    }

    /// The oldest timestamp in the head.
    pub fn min_time(&self) -> Option<i64> {
        self.shards
            .iter()
            .filter_map(|shard| {
                read(shard)
                    .series
                    .values()
                    .filter_map(MemSeries::min_t)
                    .min()
            })
            .min()
    }

    /// Counts for the status API.
    pub fn stats(&self) -> HeadStats {
        let mut stats = HeadStats::default();
        for shard in self.shards.iter() {
            let shard = read(shard);
            for s in shard.series.values() {
                stats.series += 1;
                stats.chunks += s.sealed.len() as u64 + u64::from(!s.open.is_empty());
                stats.samples += s.sealed.iter().map(|c| u64::from(c.samples)).sum::<u64>()
                    + s.open.len() as u64;
                stats.chunk_bytes += s.sealed.iter().map(|c| c.bytes.len() as u64).sum::<u64>()
                    + s.open.bytes().len() as u64;
                if let Some(min_t) = s.min_t() {
                    stats.min_t = Some(stats.min_t.map_or(min_t, |m| m.min(min_t)));
                    stats.max_t = Some(stats.max_t.map_or(s.max_t, |m| m.max(s.max_t)));
                }
            }
        }
        stats
    }

    /// Series count per value of label `name` (per metric name for `__name__`), largest first.
    pub fn cardinality_by_value(&self, name: &str, limit: usize) -> Vec<(String, u64)> {
        let symbols = read(&self.symbols);
        let index = read(&self.postings);
        let Some(values) = symbols.ids.get(name).and_then(|n| index.by_label.get(n)) else {
            return Vec::new();
        };
        top(
            values
                .iter()
                .map(|(v, refs)| (symbols.get(*v).to_string(), refs.len() as u64)),
            limit,
        )
    }

    /// Label names with their number of distinct values, largest first.
    pub fn value_counts_by_name(&self, limit: usize) -> Vec<(String, u64)> {
        let symbols = read(&self.symbols);
        let index = read(&self.postings);
        top(
            index
                .by_label
                .iter()
                .map(|(n, values)| (symbols.get(*n).to_string(), values.len() as u64)),
            limit,
        )
    }

    /// Series count per `name=value` pair, largest first.
    pub fn cardinality_by_pair(&self, limit: usize) -> Vec<(String, u64)> {
        let symbols = read(&self.symbols);
        let index = read(&self.postings);
        let pairs = index.by_label.iter().flat_map(|(n, values)| {
            values.iter().map(|(v, refs)| {
                (
                    format!("{}={}", symbols.get(*n), symbols.get(*v)),
                    refs.len() as u64,
                )
            })
        });
        top(pairs, limit)
    }
}

/// The `limit` largest counts, ties by name.
fn top(counts: impl Iterator<Item = (String, u64)>, limit: usize) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = counts.collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(limit);
    counts
}
