//! The head: recent samples. Each series keeps Gorilla chunks, cut at
//! [`MAX_SAMPLES`] samples or at a block-range boundary so that no chunk
//! spans two blocks (and a window's first chunk earlier, at a point spread
//! by series: [`first_cut`]): one open [`XorChunk`] in memory, and sealed ones whose
//! bytes live in the head chunk files ([`HeadChunkFiles`]), so memory per
//! series does not grow with the head's length. Series live in shards chosen
//! by the hash of their key ([`series_key`]), each behind its own lock, so
//! appends to different series and reads do not serialize; within a shard, a
//! slab of series and two tables of slots find a series by its key (one
//! compare against the stored copy) or by its ref. Label names and values are interned
//! ([`Symbols`]) for the inverted index ([`Postings`]), which maps each
//! label pair to the sorted refs of its series.
//!
//! Lock order, everywhere: a shard, then the symbols, then the postings.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, TryLockError};

use hashbrown::HashTable;

use super::block::ChunkBytes;
use super::chunk::{XorChunk, MAX_SAMPLES};
use super::codec::Encoding;
use super::head_chunks::{ChunkLoc, HeadChunkFiles};
use super::index::{select_postings, LabelIndex};
use super::labels::{push_validated, LabelError, Labels};
use super::matcher::Matcher;
use super::postings;
use super::series_key;
use super::slot_table::{prefetch, prefetch_bytes, SlotTable};
use super::wal::SeriesRef;

/// Number of shards; a series ref modulo this is its shard.
pub const SHARDS: usize = 16;

/// A chunk's samples with its time range, handed out by the head (the
/// bytes are read from the chunk files or copied from the open chunk).
#[derive(Debug, Clone)]
pub struct SealedChunk {
    /// First sample's timestamp.
    pub min_t: i64,
    /// Last sample's timestamp.
    pub max_t: i64,
    /// Number of samples.
    pub samples: u16,
    /// How `bytes` are encoded (head chunks are Gorilla, block chunks may not be).
    pub encoding: Encoding,
    /// Encoded samples.
    pub bytes: ChunkBytes,
}

/// What the head keeps in memory of a sealed chunk: where its bytes are.
/// 24 bytes rather than 32: at a 15 s interval a series holds five per
/// block window of its head (four of 120 samples and a first one cut
/// early, see [`first_cut`]).
#[derive(Debug, Clone, Copy)]
struct HeadChunk {
    min_t: i64,
    loc: ChunkLoc,
    /// `max_t - min_t`: [`Head::push`] cuts a chunk before it spans more
    /// than [`MAX_CHUNK_SPAN_MS`].
    span: u32,
    /// Bytes, at most [`MAX_CHUNK_BYTES`].
    len: u16,
    samples: u16,
}

impl HeadChunk {
    fn max_t(&self) -> i64 {
        self.min_t + i64::from(self.span)
    }
}

/// Longest time a head chunk spans, from its first sample to its last.
const MAX_CHUNK_SPAN_MS: i64 = u32::MAX as i64;

/// Samples after which the first chunk of a block window is cut, between
/// 0 (not cut early) and [`MAX_SAMPLES`] − 1, spread by series ref.
///
/// Every series restarts its chunks at a window boundary and, scraped at
/// one interval, fills them in step with all the others: without this, all
/// open chunks are nearly full at the same moment (120 samples, about
/// 400 bytes each) and all are sealed together, so the head's peak memory
/// is every open chunk at its largest. Cutting each series' first chunk
/// at its own point spreads the cycles evenly, and the open chunks then
/// hold about half a chunk each at any moment: one more sealed chunk per
/// window (24 bytes) for about 200 bytes less at the peak.
fn first_cut(series: SeriesRef) -> usize {
    let spread = ref_hash(series) >> 32;
    ((spread * MAX_SAMPLES as u64) >> 32) as usize
}

/// Bytes a head chunk takes at most: its 2-byte header, then per sample a
/// timestamp (a varint of up to 10 bytes, or a delta-of-delta code of up
/// to 68 bits) and a value (8 bytes, or an XOR code of up to 77 bits) —
/// under 20 bytes a sample, and [`MAX_SAMPLES`] samples at most.
const MAX_CHUNK_BYTES: usize = 2 + MAX_SAMPLES * 20;
const _: () = assert!(MAX_CHUNK_BYTES <= u16::MAX as usize);

struct MemSeries {
    series_ref: SeriesRef,
    /// The series' key ([`series_key`]): one compact allocation that the
    /// append path compares against incoming keys without any lookup.
    /// Shared rather than copied when a block is written: a window's list
    /// of series would otherwise copy every key (16 MB at 100k series).
    key: Arc<[u8]>,
    sealed: Vec<HeadChunk>,
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

    fn seal(&mut self, files: &HeadChunkFiles) {
        if let (Some(min_t), Some(max_t)) = (self.open.first_time(), self.open.last_time()) {
            let open = std::mem::take(&mut self.open);
            // One more at a time: a series seals a chunk every half hour or so,
            // and doubling would leave up to half the list unused.
            self.sealed.reserve_exact(1);
            // Both fit: `push` cuts chunks at `MAX_SAMPLES` samples and
            // `MAX_CHUNK_SPAN_MS`, which bound the bytes by `MAX_CHUNK_BYTES`.
            self.sealed.push(HeadChunk {
                min_t,
                loc: files.put(open.bytes(), max_t),
                span: (max_t - min_t) as u32,
                len: open.bytes().len() as u16,
                samples: open.len() as u16,
            });
        }
    }

    /// The sealed chunks overlapping `[mint, maxt]`, and a copy of the open
    /// chunk if it overlaps too.
    fn chunks_in(&self, mint: i64, maxt: i64) -> (Vec<HeadChunk>, Option<SealedChunk>) {
        let sealed = self
            .sealed
            .iter()
            .filter(|c| c.max_t() >= mint && c.min_t <= maxt)
            .copied()
            .collect();
        let open = match (self.open.first_time(), self.open.last_time()) {
            (Some(min_t), Some(max_t)) if max_t >= mint && min_t <= maxt => Some(SealedChunk {
                min_t,
                max_t,
                samples: self.open.len() as u16,
                encoding: Encoding::Xor,
                bytes: ChunkBytes::from(Arc::<[u8]>::from(self.open.bytes())),
            }),
            _ => None,
        };
        (sealed, open)
    }

    /// The chunks whose first sample is in `[start, end)`, the open one
    /// copied: those of a block window, as no chunk spans two.
    fn chunks_within(&self, start: i64, end: i64) -> (Vec<HeadChunk>, Option<SealedChunk>) {
        let (mut sealed, open) = self.chunks_in(start, end.saturating_sub(1));
        sealed.retain(|c| (start..end).contains(&c.min_t));
        let open = open.filter(|c| (start..end).contains(&c.min_t));
        (sealed, open)
    }

    /// Whether a chunk's first sample is in `[start, end)`.
    fn has_chunks_within(&self, start: i64, end: i64) -> bool {
        self.sealed
            .iter()
            .map(|c| c.min_t)
            .chain(self.open.first_time())
            .any(|t| (start..end).contains(&t))
    }
}

/// Items between two stages of [`Head::append_batch`]'s pipeline: enough
/// for a stage's fetches to arrive before the next stage needs them, few
/// enough that all stay in flight (a core tracks about a dozen misses).
const PIPELINE_LEAD: usize = 4;
/// Slot candidates remembered between the pipeline's stages (a power of
/// two above `3 * PIPELINE_LEAD`).
const PIPELINE_RING: usize = 16;

/// The shard a key hash places its series in.
fn shard_of_hash(hash: u64) -> usize {
    (hash as usize) % SHARDS
}

/// The series of an append batch prepared for [`Head::append_batch`]:
/// each one's key and its hash, and the validated labels the key was
/// encoded from, unless the key is only a caller's hint.
#[derive(Default)]
pub struct PreparedBatch<'a> {
    items: Vec<PreparedSeries<'a>>,
    pairs: Vec<(&'a str, &'a str)>,
    /// The keys encoded here, back to back.
    keys: Vec<u8>,
}

/// One series of a batch: 64 bytes, one cache line, since the append
/// visits them in shard order rather than in order.
struct PreparedSeries<'a> {
    hash: u64,
    key: PreparedKey<'a>,
    /// Its samples, here rather than looked up by `index` in the caller's
    /// batch: that would be one more cache miss per series.
    samples: &'a [(i64, f64)],
    /// Its pairs, `pairs[pairs.start..pairs.end]`, sorted by name; `None`
    /// for a hint.
    pairs: Option<std::ops::Range<u32>>,
    /// Its position in the caller's batch.
    index: u32,
}

enum PreparedKey<'a> {
    /// Bytes the caller had, unchecked: they find a series or miss.
    Hint(&'a [u8]),
    /// `keys[range]`, encoded here from validated labels.
    Encoded(std::ops::Range<usize>),
}

impl<'a> PreparedBatch<'a> {
    /// An empty batch with room for `series` series of `labels` labels in all.
    pub fn with_capacity(series: usize, labels: usize) -> PreparedBatch<'a> {
        PreparedBatch {
            items: Vec::with_capacity(series),
            pairs: Vec::with_capacity(labels),
            keys: Vec::new(),
        }
    }

    /// Validates the labels of the caller's series at `index` (as
    /// [`Labels::new`] does) and adds it with its samples; an invalid set is
    /// not added.
    pub fn push(
        &mut self,
        index: usize,
        labels: impl Iterator<Item = (&'a str, &'a str)>,
        samples: &'a [(i64, f64)],
    ) -> Result<(), LabelError> {
        let pairs_start = self.pairs.len();
        push_validated(labels, &mut self.pairs)?;
        let key_start = self.keys.len();
        series_key::encode(&self.pairs[pairs_start..], &mut self.keys);
        self.items.push(PreparedSeries {
            hash: series_key::hash(&self.keys[key_start..]),
            key: PreparedKey::Encoded(key_start..self.keys.len()),
            samples,
            pairs: Some(narrow(pairs_start)..narrow(self.pairs.len())),
            index: narrow(index),
        });
        Ok(())
    }

    /// Adds the caller's series at `index` by bytes that may be its key
    /// (labels as a remote-write sender encoded them). If no series has
    /// that key, [`Head::append_batch`] hands `index` back as missed, for
    /// the caller to [`PreparedBatch::push`] its labels.
    pub fn push_hint(&mut self, index: usize, key: &'a [u8], samples: &'a [(i64, f64)]) {
        self.items.push(PreparedSeries {
            hash: series_key::hash(key),
            key: PreparedKey::Hint(key),
            samples,
            pairs: None,
            index: narrow(index),
        });
    }

    fn key(&self, item: &PreparedSeries<'a>) -> &[u8] {
        match &item.key {
            PreparedKey::Hint(key) => key,
            PreparedKey::Encoded(range) => self.keys.get(range.clone()).unwrap_or_default(),
        }
    }

    fn pairs(&self, item: &PreparedSeries<'a>) -> Option<&[(&'a str, &'a str)]> {
        let range = item.pairs.clone()?;
        self.pairs.get(range.start as usize..range.end as usize)
    }
}

/// Series in one [`PreparedBatch`] at most: callers split larger batches,
/// so positions fit the `u32` that keeps a prepared series in one cache line.
pub const PREPARED_SERIES_MAX: usize = 1 << 20;

/// A batch position or pair count as stored in [`PreparedSeries`]. Positions
/// are below [`PREPARED_SERIES_MAX`]; pair counts are bounded by the bodies
/// that carry them (128 MiB for remote write), far below 4 G.
fn narrow(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What [`Head::append_batch`] did beyond storing samples.
#[derive(Debug, Default)]
pub struct BatchAppended {
    /// Series created.
    pub created: u64,
    /// Caller indices of hints that found no series, in batch order.
    pub missed: Vec<usize>,
}

/// Hash of a series ref in the ref table.
fn ref_hash(series: SeriesRef) -> u64 {
    series.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

/// One shard of the head's series: a slab of series, and two tables of
/// slab slots, by labels (the append path) and by ref (WAL replay, reads).
#[derive(Default)]
struct Shard {
    /// The slab, in pages of [`PAGE_SLOTS`]: growing it never copies series
    /// nor leaves more than one page unused.
    pages: Vec<Box<[Option<MemSeries>]>>,
    /// Slots handed out so far.
    used: u32,
    /// Slots emptied by dropped series, reused first.
    free: Vec<u32>,
    by_labels: SlotTable,
    by_ref: HashTable<u32>,
}

/// Series per slab page.
const PAGE_SLOTS: usize = 512;

impl Shard {
    fn slot(&self, slot: u32) -> Option<&Option<MemSeries>> {
        let slot = slot as usize;
        self.pages.get(slot / PAGE_SLOTS)?.get(slot % PAGE_SLOTS)
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Option<MemSeries>> {
        let slot = slot as usize;
        self.pages
            .get_mut(slot / PAGE_SLOTS)?
            .get_mut(slot % PAGE_SLOTS)
    }

    fn get(&self, slot: u32) -> Option<&MemSeries> {
        self.slot(slot)?.as_ref()
    }

    fn get_mut(&mut self, slot: u32) -> Option<&mut MemSeries> {
        self.slot_mut(slot)?.as_mut()
    }

    /// The slot of the series with `key` (hashing to `hash`).
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        self.by_labels
            .candidates(hash)
            .find(|&slot| self.holds(slot, key))
    }

    /// Whether `slot` holds the series with `key`.
    fn holds(&self, slot: u32, key: &[u8]) -> bool {
        self.get(slot).is_some_and(|s| *s.key == *key)
    }

    fn slot_of(&self, series: SeriesRef) -> Option<u32> {
        self.by_ref
            .find(ref_hash(series), |&slot| {
                self.get(slot).is_some_and(|s| s.series_ref == series)
            })
            .copied()
    }

    fn series(&self, series: SeriesRef) -> Option<&MemSeries> {
        self.get(self.slot_of(series)?)
    }

    fn series_mut(&mut self, series: SeriesRef) -> Option<&mut MemSeries> {
        let slot = self.slot_of(series)?;
        self.get_mut(slot)
    }

    fn add(&mut self, hash: u64, s: MemSeries) -> u32 {
        let series = s.series_ref;
        let slot = self.free.pop().unwrap_or_else(|| {
            if self.used as usize == self.pages.len() * PAGE_SLOTS {
                self.pages.push((0..PAGE_SLOTS).map(|_| None).collect());
            }
            self.used += 1;
            self.used - 1
        });
        if let Some(place) = self.slot_mut(slot) {
            *place = Some(s);
        }
        let Shard {
            pages,
            by_labels,
            by_ref,
            ..
        } = self;
        let ref_hash_of = |slot: &u32| {
            let slot = *slot as usize;
            pages
                .get(slot / PAGE_SLOTS)
                .and_then(|page| page.get(slot % PAGE_SLOTS)?.as_ref())
                .map_or(0, |s| ref_hash(s.series_ref))
        };
        by_labels.insert(hash, slot);
        by_ref.insert_unique(ref_hash(series), slot, ref_hash_of);
        slot
    }

    fn remove(&mut self, series: SeriesRef) -> Option<MemSeries> {
        let slot = self.slot_of(series)?;
        let s = self.slot_mut(slot)?.take()?;
        if let Ok(entry) = self.by_ref.find_entry(ref_hash(series), |&x| x == slot) {
            entry.remove();
        }
        self.by_labels.remove(series_key::hash(&s.key), slot);
        self.free.push(slot);
        Some(s)
    }

    fn all(&self) -> impl Iterator<Item = &MemSeries> {
        self.pages.iter().flat_map(|page| page.iter().flatten())
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut MemSeries> {
        self.pages
            .iter_mut()
            .flat_map(|page| page.iter_mut().flatten())
    }
}

/// Interned label names and values, the keys of the inverted index. The
/// strings live back to back in one arena.
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
}

/// The inverted index: label name → value → sorted series refs.
#[derive(Default)]
struct Postings {
    by_label: HashMap<u32, HashMap<u32, Vec<SeriesRef>>>,
    all: Vec<SeriesRef>,
    /// Series restored at start are added in any order and the lists
    /// sorted once ([`Head::sort_postings`]): a checkpoint lists them by
    /// shard, and inserting each in place moved half a list every time.
    unsorted: bool,
}

impl Postings {
    fn sort(&mut self) {
        if self.unsorted {
            for list in self.by_label.values_mut().flat_map(|v| v.values_mut()) {
                list.sort_unstable();
            }
            self.all.sort_unstable();
            self.unsorted = false;
        }
    }
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

/// Whether a series is created by a start's replay, which sorts the index
/// once at the end, or by an append.
#[derive(Clone, Copy)]
enum Restoring {
    Yes,
    No,
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

/// The series of a block window: each one's key and ref.
type WindowSeries = Vec<(Arc<[u8]>, SeriesRef)>;

/// The series of a head window to write as a block, in label order. Only
/// their keys and refs are listed: each series' chunks in the window (the
/// sealed ones, whose bytes the chunk files keep until
/// [`Head::drop_before`], and a copy of the open one, for a snapshot) are
/// looked up as [`SealedWindow::series`] reaches it, so writing the block
/// holds neither the window's bytes nor its chunk lists all at once.
pub struct SealedWindow<'h> {
    head: &'h Head,
    /// Chunks whose first sample is in `[start, end)`.
    start: i64,
    end: i64,
    series: WindowSeries,
}

impl SealedWindow<'_> {
    /// Each series' labels and chunks, read as the iterator advances. A
    /// series deleted since has no chunks.
    pub fn series(&self) -> impl Iterator<Item = io::Result<(Labels, Vec<SealedChunk>)>> + '_ {
        self.series.iter().map(|(key, series)| {
            let (sealed, open) = read(&self.head.shards[self.head.shard_of(*series)])
                .series(*series)
                .map(|s| s.chunks_within(self.start, self.end))
                .unwrap_or_default();
            let mut chunks = self.head.load(&sealed)?;
            chunks.extend(open);
            Ok((series_key::decode(key), chunks))
        })
    }

    fn sorted(head: &Head, start: i64, end: i64, mut series: WindowSeries) -> SealedWindow<'_> {
        // Label order: pair by pair, names then values, as `Labels` compare.
        series.sort_unstable_by(|a, b| series_key::pairs(&a.0).cmp(series_key::pairs(&b.0)));
        SealedWindow {
            head,
            start,
            end,
            series,
        }
    }
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
    chunk_files: HeadChunkFiles,
    next_ref: AtomicU64,
    /// Where the next batch append starts its round of the shards.
    next_shard: AtomicUsize,
    max_t: AtomicI64,
    /// Samples older than this are refused: their window is (being) written to a block.
    min_append_t: AtomicI64,
    block_range_ms: i64,
    /// Series whose ref names another shard than their key's hash: those
    /// of stores from before [`series_key`]'s hash (schema 4), whose refs
    /// followed the old hash. Refs are never renumbered (the WAL, the
    /// tombstones and remote-write cursors hold them), so these series are
    /// found through this map for as long as they live.
    relocated: RwLock<HashMap<SeriesRef, usize>>,
    any_relocated: AtomicBool,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Head {
    /// An empty head whose chunks never span a multiple of `block_range_ms`,
    /// keeping its sealed chunks in `chunk_files`.
    pub fn new(block_range_ms: i64, chunk_files: HeadChunkFiles) -> Head {
        Head {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            symbols: RwLock::new(Symbols::default()),
            postings: RwLock::new(Postings::default()),
            chunk_files,
            next_ref: AtomicU64::new(1),
            next_shard: AtomicUsize::new(0),
            max_t: AtomicI64::new(i64::MIN),
            min_append_t: AtomicI64::new(i64::MIN),
            block_range_ms: block_range_ms.max(1),
            relocated: RwLock::new(HashMap::new()),
            any_relocated: AtomicBool::new(false),
        }
    }

    /// The shard holding `series`: the one its ref names, unless relocated.
    fn shard_of(&self, series: SeriesRef) -> usize {
        if self.any_relocated.load(Ordering::Acquire) {
            if let Some(&shard) = read(&self.relocated).get(&series) {
                return shard;
            }
        }
        (series as usize) % SHARDS
    }

    /// The newest timestamp in the head.
    pub fn max_time(&self) -> Option<i64> {
        Some(self.max_t.load(Ordering::Relaxed)).filter(|t| *t != i64::MIN)
    }

    /// Bytes of sealed chunks in the head's chunk files.
    pub fn chunk_files_bytes(&self) -> u64 {
        self.chunk_files.size_bytes()
    }

    /// The counter new series refs are numbered from: every ref handed out
    /// so far is below `next_ref() * SHARDS`.
    pub fn next_ref(&self) -> u64 {
        self.next_ref.load(Ordering::Relaxed)
    }

    /// Numbers new series from `next` on at least: after a restart, the
    /// refs of series dropped before the last checkpoint are in no WAL
    /// record any more, but a remote-write queue's older segments and the
    /// head's tombstones may still name them, so they are not handed out
    /// again.
    pub fn raise_next_ref(&self, next: u64) {
        self.next_ref.fetch_max(next, Ordering::Relaxed);
    }

    /// Creates the series `labels` with ref `series` unless it exists (WAL
    /// replay: the refs are those of the series table).
    pub fn restore_series(&self, labels: &Labels, series: SeriesRef) {
        let pairs = labels.str_pairs();
        let mut key = Vec::new();
        series_key::encode(&pairs, &mut key);
        let hash = series_key::hash(&key);
        let shard_index = shard_of_hash(hash);
        let mut shard = write(&self.shards[shard_index]);
        if shard.find(hash, &key).is_none() {
            self.next_ref
                .fetch_max(series / SHARDS as u64 + 1, Ordering::Relaxed);
            if (series as usize) % SHARDS != shard_index {
                write(&self.relocated).insert(series, shard_index);
                self.any_relocated.store(true, Ordering::Release);
            }
            self.insert(&mut shard, hash, key, &pairs, series, Restoring::Yes);
        }
    }

    /// Sorts the index after [`Head::restore_series`]; before the head
    /// serves reads.
    pub fn sort_postings(&self) {
        write(&self.postings).sort();
    }

    fn insert(
        &self,
        shard: &mut Shard,
        hash: u64,
        key: Vec<u8>,
        labels: &[(&str, &str)],
        series: SeriesRef,
        restoring: Restoring,
    ) -> u32 {
        let interned: Vec<(u32, u32)> = {
            let mut symbols = write(&self.symbols);
            labels
                .iter()
                .map(|(n, v)| (symbols.intern(n), symbols.intern(v)))
                .collect()
        };
        {
            let mut index = write(&self.postings);
            let add: fn(&mut Vec<SeriesRef>, SeriesRef) = match restoring {
                Restoring::Yes => {
                    index.unsorted = true;
                    postings::push
                }
                Restoring::No => {
                    index.sort();
                    postings::insert_sorted
                }
            };
            for &(n, v) in interned.iter() {
                add(
                    index.by_label.entry(n).or_default().entry(v).or_default(),
                    series,
                );
            }
            add(&mut index.all, series);
        }
        shard.add(
            hash,
            MemSeries {
                series_ref: series,
                key: key.into(),
                sealed: Vec::new(),
                open: XorChunk::new(),
                max_t: i64::MIN,
                last_bits: 0,
            },
        )
    }

    /// Offers the samples of every series of `batch` to the head, creating
    /// the series that are new; `outcome` hears what became of each
    /// sample (with the series' key and ref). `min_valid_t` is the oldest
    /// time the head accepts. A new series is first handed to `log_new`
    /// (the WAL), under its shard's lock, so that it is logged before any
    /// sample of it can be; if that fails, the series is not created and the
    /// error returned. A hint that finds no series creates none: it is
    /// returned as missed, its samples not offered.
    ///
    /// Series are taken shard by shard, each shard locked once, and within
    /// a shard the lookups are pipelined: a few series ahead, the table line
    /// of one is fetched, then the slab entry of the next, then the labels
    /// and open chunk of the next — so the cache misses of several series
    /// overlap instead of each series waiting for its own in turn.
    pub fn append_batch<E>(
        &self,
        batch: &PreparedBatch<'_>,
        min_valid_t: i64,
        mut log_new: impl FnMut(SeriesRef, &[(&str, &str)]) -> Result<(), E>,
        mut outcome: impl FnMut(&[u8], SeriesRef, i64, f64, Outcome),
    ) -> Result<BatchAppended, E> {
        // The batch's items, grouped by shard (a counting sort).
        let mut starts = [0usize; SHARDS + 1];
        for item in &batch.items {
            starts[shard_of_hash(item.hash) + 1] += 1;
        }
        for i in 0..SHARDS {
            starts[i + 1] += starts[i];
        }
        let mut order = vec![0u32; batch.items.len()];
        let mut next = starts;
        for (position, item) in batch.items.iter().enumerate() {
            let shard = shard_of_hash(item.hash);
            order[next[shard]] = position as u32;
            next[shard] += 1;
        }
        // Concurrent appenders start at different shards, and pass over a
        // shard another one holds to come back to it last, so they seldom
        // wait for each other's locks.
        let first = self.next_shard.fetch_add(5, Ordering::Relaxed);
        let mut append =
            |shard: &mut Shard, shard_index: usize, items: &[u32], done: &mut BatchAppended| {
                self.append_to_shard(
                    shard,
                    shard_index,
                    batch,
                    items,
                    min_valid_t,
                    &mut log_new,
                    &mut outcome,
                    done,
                )
            };
        let mut passed_over = Vec::new();
        let mut done = BatchAppended::default();
        for k in 0..SHARDS {
            let shard_index = (first + k) % SHARDS;
            let items = &order[starts[shard_index]..starts[shard_index + 1]];
            if items.is_empty() {
                continue;
            }
            let mut shard = match self.shards[shard_index].try_write() {
                Ok(shard) => shard,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    passed_over.push((shard_index, items));
                    continue;
                }
            };
            append(&mut shard, shard_index, items, &mut done)?;
        }
        for (shard_index, items) in passed_over {
            append(
                &mut write(&self.shards[shard_index]),
                shard_index,
                items,
                &mut done,
            )?;
        }
        done.missed.sort_unstable();
        Ok(done)
    }

    /// [`Head::append_batch`] for the `items` of one shard, whose lock the
    /// caller holds; adds what it created and missed to `done`.
    #[allow(clippy::too_many_arguments)] // the batch append's state, passed down once per shard
    fn append_to_shard<E>(
        &self,
        shard: &mut Shard,
        shard_index: usize,
        batch: &PreparedBatch<'_>,
        items: &[u32],
        min_valid_t: i64,
        log_new: &mut impl FnMut(SeriesRef, &[(&str, &str)]) -> Result<(), E>,
        outcome: &mut impl FnMut(&[u8], SeriesRef, i64, f64, Outcome),
        done: &mut BatchAppended,
    ) -> Result<(), E> {
        // Read under the shard lock: see `seal_before`.
        let min_t = min_valid_t.max(self.min_append_t.load(Ordering::Acquire));
        let mut newest = i64::MIN;
        // Slot candidates of the items between the pipeline's stages.
        let mut found = [None::<u32>; PIPELINE_RING];
        for step in 0..items.len() + 3 * PIPELINE_LEAD {
            let at = |behind: usize| {
                step.checked_sub(behind)
                    .and_then(|i| Some((i, &batch.items[*items.get(i)? as usize])))
            };
            // The batch's items are visited in shard order, not in the
            // order they were prepared in, so their records are fetched too.
            if let Some(&ahead) = items.get(step + PIPELINE_LEAD) {
                prefetch(batch.items.as_ptr().wrapping_add(ahead as usize));
            }
            if let Some((_, item)) = at(0) {
                shard.by_labels.prefetch(item.hash);
            }
            if let Some((i, item)) = at(PIPELINE_LEAD) {
                let slot = shard.by_labels.candidates(item.hash).next();
                if let Some(entry) = slot.and_then(|slot| shard.slot(slot)) {
                    prefetch_bytes(entry, std::mem::size_of_val(entry));
                }
                found[i % PIPELINE_RING] = slot;
            }
            if let Some((i, item)) = at(2 * PIPELINE_LEAD) {
                // Both keys are compared at the last stage.
                let key = batch.key(item);
                prefetch_bytes(key.as_ptr(), key.len());
                prefetch(item.samples.as_ptr());
                if let Some(s) = found[i % PIPELINE_RING].and_then(|slot| shard.get(slot)) {
                    prefetch_bytes(s.key.as_ptr(), s.key.len());
                    let open = s.open.bytes();
                    prefetch(open.as_ptr());
                    prefetch(open.as_ptr().wrapping_add(open.len().saturating_sub(1)));
                }
            }
            let Some((i, item)) = at(3 * PIPELINE_LEAD) else {
                continue;
            };
            let key = batch.key(item);
            let slot = match found[i % PIPELINE_RING] {
                Some(slot) if shard.holds(slot, key) => slot,
                // A tag shared with another series, or a series an earlier
                // item of this batch created since.
                _ => match (shard.find(item.hash, key), batch.pairs(item)) {
                    (Some(slot), _) => slot,
                    (None, None) => {
                        done.missed.push(item.index as usize);
                        continue;
                    }
                    (None, Some(pairs)) => {
                        // Refs are numbered so that the shard follows from
                        // the ref and from the hash alike.
                        let series = self.next_ref.fetch_add(1, Ordering::Relaxed) * SHARDS as u64
                            + shard_index as u64;
                        if let Err(e) = log_new(series, pairs) {
                            self.max_t.fetch_max(newest, Ordering::Relaxed);
                            return Err(e);
                        }
                        done.created += 1;
                        self.insert(shard, item.hash, key.to_vec(), pairs, series, Restoring::No)
                    }
                },
            };
            let Some(s) = shard.get_mut(slot) else {
                // Unreachable: the slot was found or filled under this lock.
                continue;
            };
            for &(t, v) in item.samples {
                let result = self.append_to(s, t, v, min_t);
                if result == Outcome::Stored {
                    newest = t;
                }
                outcome(&s.key, s.series_ref, t, v, result);
            }
        }
        self.max_t.fetch_max(newest, Ordering::Relaxed);
        Ok(())
    }

    /// Offers a run of samples to `series` under one lock (WAL replay,
    /// where a checkpoint holds each series' samples together); `outcome`
    /// hears each sample's. False when the head has no such series.
    pub fn append_run(
        &self,
        series: SeriesRef,
        samples: &[(i64, f64)],
        min_valid_t: i64,
        mut outcome: impl FnMut((i64, f64), Outcome),
    ) -> bool {
        let mut shard = write(&self.shards[self.shard_of(series)]);
        let min_t = min_valid_t.max(self.min_append_t.load(Ordering::Acquire));
        let Some(s) = shard.series_mut(series) else {
            return false;
        };
        let mut newest = i64::MIN;
        for &(t, v) in samples {
            let result = self.append_to(s, t, v, min_t);
            if result == Outcome::Stored {
                newest = t;
            }
            outcome((t, v), result);
        }
        self.max_t.fetch_max(newest, Ordering::Relaxed);
        true
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

    /// Reads the bytes of sealed chunks from the chunk files.
    fn load(&self, chunks: &[HeadChunk]) -> io::Result<Vec<SealedChunk>> {
        chunks
            .iter()
            .map(|c| {
                Ok(SealedChunk {
                    min_t: c.min_t,
                    max_t: c.max_t(),
                    samples: c.samples,
                    encoding: Encoding::Xor,
                    bytes: ChunkBytes::from(self.chunk_files.get(c.loc, c.len as usize)?),
                })
            })
            .collect()
    }

    /// Re-encodes a series' chunks after `edit` changed its decoded samples;
    /// returns the newest sample left.
    fn rewrite(
        &self,
        series: SeriesRef,
        edit: impl FnOnce(&mut Vec<(i64, f64)>),
    ) -> io::Result<Option<(i64, f64)>> {
        let mut shard = write(&self.shards[self.shard_of(series)]);
        let Some(s) = shard.series_mut(series) else {
            return Ok(None);
        };
        let (sealed, open) = s.chunks_in(i64::MIN, i64::MAX);
        let mut all: Vec<(i64, f64)> = Vec::new();
        for chunk in self.load(&sealed)?.iter().chain(open.as_ref()) {
            all.extend(super::chunk::decode(&chunk.bytes).unwrap_or_default());
        }
        edit(&mut all);
        s.sealed.clear();
        s.open = XorChunk::new();
        for &(t, v) in &all {
            self.push(s, t, v);
        }
        Ok(all.last().copied())
    }

    /// Appends a sample newer than the series' last one to its open chunk,
    /// sealing that chunk first when `t` is in the next block window or
    /// [`MAX_CHUNK_SPAN_MS`] after its first sample, and after when the
    /// chunk is full.
    fn push(&self, s: &mut MemSeries, t: i64, v: f64) {
        // A chunk's samples are all in one window, its first sample's.
        let must_cut = s.open.first_time().is_some_and(|first| {
            first.div_euclid(self.block_range_ms) != t.div_euclid(self.block_range_ms)
                || t.saturating_sub(first) > MAX_CHUNK_SPAN_MS
        });
        if must_cut {
            s.seal(&self.chunk_files);
        }
        s.open.append(t, v);
        // A full chunk goes to the chunk files at once rather than with the
        // next sample: it will not change, and memory holds only open chunks.
        let samples = s.open.len();
        if samples >= MAX_SAMPLES || (samples == first_cut(s.series_ref) && self.first_in_window(s))
        {
            s.seal(&self.chunk_files);
        }
    }

    /// Whether the series' open chunk is the first of its block window.
    fn first_in_window(&self, s: &MemSeries) -> bool {
        let window = |t: i64| t.div_euclid(self.block_range_ms);
        match (s.sealed.last(), s.open.first_time()) {
            (Some(last), Some(first)) => window(last.min_t) != window(first),
            _ => true,
        }
    }

    /// Inserts samples that arrived out of log order during WAL replay.
    pub fn merge_late(&self, series: SeriesRef, late: Vec<(i64, f64)>) -> io::Result<()> {
        let newest = self.rewrite(series, |all| {
            all.extend(late);
            all.sort_by_key(|(t, _)| *t);
            all.dedup_by_key(|(t, _)| *t);
        })?;
        let mut shard = write(&self.shards[self.shard_of(series)]);
        if let (Some(s), Some((t, v))) = (shard.series_mut(series), newest) {
            s.max_t = t;
            s.last_bits = v.to_bits();
        }
        Ok(())
    }

    /// Removes the samples of `series` in `[mint, maxt]`. The series keeps
    /// its newest timestamp, so appends stay ordered as before the delete.
    pub fn delete_range(&self, series: SeriesRef, mint: i64, maxt: i64) -> io::Result<()> {
        self.rewrite(series, |all| all.retain(|(t, _)| *t < mint || *t > maxt))
            .map(|_| ())
    }

    /// Whether the head holds `series`.
    pub fn contains(&self, series: SeriesRef) -> bool {
        read(&self.shards[self.shard_of(series)])
            .slot_of(series)
            .is_some()
    }

    /// The labels of `series`, if the head still holds it.
    pub fn series_labels(&self, series: SeriesRef) -> Option<Labels> {
        read(&self.shards[self.shard_of(series)])
            .series(series)
            .map(|s| series_key::decode(&s.key))
    }

    /// The newest timestamp of `series` (a delete never reaches past it).
    pub fn series_max_time(&self, series: SeriesRef) -> Option<i64> {
        read(&self.shards[self.shard_of(series)])
            .series(series)
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
    ) -> io::Result<Vec<(Labels, Vec<SealedChunk>)>> {
        let mut out = Vec::with_capacity(refs.len());
        for &series in refs {
            // The lock is let go before the chunk files are read.
            let (labels, (sealed, open)) = {
                let shard = read(&self.shards[self.shard_of(series)]);
                let Some(s) = shard.series(series) else {
                    continue;
                };
                let chunks = s.chunks_in(mint, maxt);
                if chunks.0.is_empty() && chunks.1.is_none() {
                    continue;
                }
                (series_key::decode(&s.key), chunks)
            };
            let mut chunks = self.load(&sealed)?;
            chunks.extend(open);
            out.push((labels, chunks));
        }
        Ok(out)
    }

    /// The labels of each series in `refs` with samples in `[mint, maxt]`,
    /// without touching their chunks (label APIs).
    pub fn labels_in(&self, refs: &[SeriesRef], mint: i64, maxt: i64) -> Vec<Labels> {
        let mut out = Vec::new();
        for &series in refs {
            let shard = read(&self.shards[self.shard_of(series)]);
            let Some(s) = shard.series(series) else {
                continue;
            };
            if s.min_t()
                .is_some_and(|min_t| min_t <= maxt && s.max_t >= mint)
            {
                out.push(series_key::decode(&s.key));
            }
        }
        out
    }

    /// The oldest time the head still accepts, from compaction's point of
    /// view (`i64::MIN` before the first compaction).
    pub fn refused_before(&self) -> i64 {
        self.min_append_t.load(Ordering::Acquire)
    }

    /// Refuses samples older than `boundary` from now on.
    pub fn refuse_before(&self, boundary: i64) {
        self.min_append_t.fetch_max(boundary, Ordering::AcqRel);
    }

    /// Refuses samples older than `boundary`, a window boundary, from now on
    /// and returns, sorted by labels, every series with chunks before it
    /// (the open chunk is sealed when it ends before it): the contents of
    /// the block to write.
    pub fn seal_before(&self, boundary: i64) -> SealedWindow<'_> {
        self.refuse_before(boundary);
        // Sized for every series (24 bytes each), not grown by doubling:
        // the list lives while the block is written.
        let mut found = Vec::with_capacity(read(&self.postings).all.len());
        // Taking each shard's write lock also waits out appends that read the
        // old bound, so nothing older than `boundary` arrives after this pass.
        for shard in self.shards.iter() {
            let mut shard = write(shard);
            for s in shard.all_mut() {
                if s.open.last_time().is_some_and(|last| last < boundary) {
                    s.seal(&self.chunk_files);
                }
                if s.has_chunks_within(i64::MIN, boundary) {
                    found.push((s.key.clone(), s.series_ref));
                }
            }
        }
        SealedWindow::sorted(self, i64::MIN, boundary, found)
    }

    /// Every chunk of the head, by block-range window (`min_t` divided by
    /// `range`; no chunk spans two): what a snapshot writes. A series'
    /// chunks in a window, its open one copied, are read as that window is
    /// written, so samples appended meanwhile may be in it too; the caller
    /// keeps [`Head::drop_before`] from overtaking.
    pub fn windows(&self, range: i64) -> BTreeMap<i64, SealedWindow<'_>> {
        let mut windows: BTreeMap<i64, WindowSeries> = BTreeMap::new();
        for shard in self.shards.iter() {
            let shard = read(shard);
            for s in shard.all() {
                // In time order, so one window's chunks are next to each other.
                let mut of_series: Vec<i64> = s
                    .sealed
                    .iter()
                    .map(|c| c.min_t)
                    .chain(s.open.first_time())
                    .map(|t| t.div_euclid(range))
                    .collect();
                of_series.dedup();
                for window in of_series {
                    windows
                        .entry(window)
                        .or_default()
                        .push((s.key.clone(), s.series_ref));
                }
            }
        }
        windows
            .into_iter()
            .map(|(window, series)| {
                let start = window.saturating_mul(range);
                let end = start.saturating_add(range);
                (window, SealedWindow::sorted(self, start, end, series))
            })
            .collect()
    }

    /// Every series' ref, key and chunks (sealed, then the open one copied)
    /// in the shards `shards` (indexes below [`SHARDS`]), a shard at a time:
    /// what a checkpoint of the head holds. A shard's lock is let go before
    /// its chunk files are read.
    pub fn for_each_series<E>(
        &self,
        shards: &[usize],
        mut each: impl FnMut(SeriesRef, &[u8], io::Result<Vec<SealedChunk>>) -> Result<(), E>,
    ) -> Result<(), E> {
        for shard in shards.iter().filter_map(|i| self.shards.get(*i)) {
            let listed: Vec<_> = read(shard)
                .all()
                .map(|s| {
                    let (sealed, open) = s.chunks_in(i64::MIN, i64::MAX);
                    (s.series_ref, s.key.clone(), sealed, open)
                })
                .collect();
            for (series, key, sealed, open) in listed {
                let chunks = self.load(&sealed).map(|mut chunks| {
                    chunks.extend(open);
                    chunks
                });
                each(series, &key, chunks)?;
            }
        }
        Ok(())
    }

    /// Forgets the sealed chunks' files: the head is in a checkpoint and
    /// the store is stopping ([`super::Storage::close`]).
    pub fn release_chunk_files(&self) -> io::Result<()> {
        self.chunk_files.release_all()
    }

    /// Drops the chunks that end before `boundary` (now in a block) and the
    /// series left without samples, and frees the chunk files that held
    /// only such chunks; returns the refs of the dropped series.
    pub fn drop_before(&self, boundary: i64) -> io::Result<Vec<SeriesRef>> {
        let mut dropped = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = write(shard);
            let mut emptied = Vec::new();
            for s in shard.all_mut() {
                s.sealed.retain(|c| c.max_t() >= boundary);
                if s.sealed.is_empty() && s.open.is_empty() {
                    emptied.push(s.series_ref);
                }
            }
            for series in emptied {
                let Some(s) = shard.remove(series) else {
                    continue;
                };
                let symbols = read(&self.symbols);
                let mut index = write(&self.postings);
                let symbol = |bytes| {
                    std::str::from_utf8(bytes)
                        .ok()
                        .and_then(|s| symbols.ids.get(s))
                };
                for (n, v) in series_key::pairs(&s.key) {
                    let (Some(n), Some(v)) = (symbol(n), symbol(v)) else {
                        continue;
                    };
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
        if self.any_relocated.load(Ordering::Acquire) {
            let mut relocated = write(&self.relocated);
            for series in &dropped {
                relocated.remove(series);
            }
        }
        self.chunk_files.release_before(boundary)?;
        Ok(dropped)
    }

    /// The oldest timestamp in the head.
    pub fn min_time(&self) -> Option<i64> {
        self.shards
            .iter()
            .filter_map(|shard| read(shard).all().filter_map(MemSeries::min_t).min())
            .min()
    }

    /// Counts for the status API.
    pub fn stats(&self) -> HeadStats {
        let mut stats = HeadStats::default();
        for shard in self.shards.iter() {
            let shard = read(shard);
            for s in shard.all() {
                stats.series += 1;
                stats.chunks += s.sealed.len() as u64 + u64::from(!s.open.is_empty());
                stats.samples += s.sealed.iter().map(|c| u64::from(c.samples)).sum::<u64>()
                    + s.open.len() as u64;
                stats.chunk_bytes += s.sealed.iter().map(|c| u64::from(c.len)).sum::<u64>()
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
