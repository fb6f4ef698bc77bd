//! Immutable on-disk blocks of the time-series store.
//!
//! A block holds every series of a sealed time window `[min_time, max_time]`
//! (milliseconds, both ends inclusive). It is written once, atomically, by
//! [`write_block`] and then read many times through [`Block`]. A chunk is
//! opaque here: a run of Gorilla-encoded samples made elsewhere, plus its
//! `min_t`, `max_t` and sample count.
//!
//! # Directory
//!
//! ```text
//! <parent>/<id>/meta.json   what the block is (JSON, below)
//! <parent>/<id>/index       symbols, series, postings (binary, below)
//! <parent>/<id>/chunks      chunk bytes in zstd frames (binary, below)
//! ```
//!
//! `<id>` is 26 characters of Crockford base32 (`0-9A-Z` without `I L O U`)
//! encoding 128 bits: 48 bits of creation time in ms, then 80 random bits,
//! most significant first, so ids sort by creation time as plain strings
//! ([`new_block_id`]). A block is written into `<parent>/<id>.tmp/`, every
//! file and then that directory are fsynced, the directory is renamed to
//! `<parent>/<id>` and `<parent>` is fsynced. A `<id>.tmp` directory is
//! therefore an interrupted write, never a block: [`remove_incomplete`] deletes
//! those, and [`Block::open`] refuses a directory whose name is not the id in
//! its `meta.json`.
//!
//! # `meta.json`
//!
//! ```json
//! {"version":1,"id":"01J...","min_time":0,"max_time":0,
//!  "stats":{"num_series":0,"num_chunks":0,"num_samples":0},
//!  "compaction":{"level":1,"sources":["01J..."]}}
//! ```
//!
//! # Common conventions
//!
//! All fixed-width integers are little-endian. `uvarint` is unsigned LEB128
//! (7 bits per byte, low group first, high bit = more follows, at most 10
//! bytes); `varint` is a zigzag-encoded `uvarint` (`(v << 1) ^ (v >> 63)`).
//! Both binary files start with an 8-byte header: a 4-byte magic then the
//! format version as `u32` (currently 1).
//!
//! # `chunks`
//!
//! ```text
//! offset 0   "FMBC"                      magic (46 4D 42 43)
//! offset 4   u32 format version = 1
//! offset 8   frame, frame, ... up to the end of the file
//!
//! frame:
//!   +0   u32 compressed_len     C
//!   +4   u32 uncompressed_len   U  (≤ 2 MiB)
//!   +8   u32 crc32               CRC-32 (IEEE, crc32fast) of the 8 bytes
//!                                at +0..+8 followed by the C bytes at +12
//!   +12  C bytes                 one zstd frame; decompresses to exactly U
//!                                bytes: the concatenated chunks it holds
//! ```
//!
//! Chunks are appended in series order (and in order within a series) to a
//! buffer that becomes a frame once the next chunk would take it past 64 KiB
//! uncompressed (a single larger chunk, ≤ 1 MiB, gets a frame of its own).
//! Neighbouring series share frames, which is where zstd finds redundancy that
//! Gorilla leaves. A chunk reference is `(frame, offset, len)`: the file
//! offset of the frame's header, and the chunk's offset and length within the
//! decompressed frame.
//!
//! # `index`
//!
//! ```text
//! offset 0   "FMBI"                      magic (46 4D 42 49)
//! offset 4   u32 format version = 1
//! offset 8   section 0: symbols
//!            section 1: series
//!            section 2: series offsets
//!            section 3: label index
//!            section 4: postings
//! len-112    table of contents (TOC), fixed 112 bytes
//! ```
//!
//! The sections tile the file: section 0 starts at 8, each next one starts
//! where the previous ends, and the last ends where the TOC starts. Together
//! with the header check and the CRCs this means every byte of the index is
//! verified by [`Block::open`].
//!
//! **TOC** (last 112 bytes): for each of the 5 sections in order,
//! `u64 offset` (from the start of the file), `u64 length`, `u32 crc32` of
//! the section's bytes (100 bytes); then `u64` the exact length of the
//! `chunks` file; then `u32 crc32` of the preceding 108 TOC bytes.
//!
//! **symbols**: `u32 count`, then `count` × (`uvarint len`, `len` bytes of
//! UTF-8). Every label name and value of the block, deduplicated and sorted
//! by bytes (strictly increasing). A symbol's id is its position (0-based).
//!
//! **series**: `i64 base_time` (the block's `min_time`), then one entry per
//! series, sorted by label set (lexicographic over `(name, value)` pairs),
//! back to back. The series' index (0-based position) is its id everywhere.
//!
//! ```text
//! uvarint num_labels
//! num_labels × (uvarint name_symbol, uvarint value_symbol)   sorted by name
//! uvarint num_chunks                                          ≥ 1
//! num_chunks × chunk meta:
//!   varint  min_t - prev_min_t        prev_min_t = base_time for the first
//!   uvarint max_t - min_t
//!   uvarint num_samples               ≤ 65535
//!   uvarint frame - prev_frame        prev_frame = 0 for the first
//!   uvarint offset within the decompressed frame
//!   uvarint length
//! ```
//!
//! **series offsets**: `num_series` × `u32` offset of each series entry from
//! the start of the series section (so the first is 8). An entry ends where
//! the next begins (the last at the end of the section). `num_series` is the
//! section length / 4.
//!
//! **label index**: `uvarint num_names`, then per label name, in increasing
//! symbol order: `uvarint name_symbol`, `uvarint num_values`, then per value,
//! in increasing symbol order: `uvarint value_symbol`, `uvarint offset` of its
//! postings list from the start of the postings section.
//!
//! **postings**: lists back to back, one per (name, value) pair:
//! `uvarint count` (≥ 1), `uvarint first series index`, then `count - 1` ×
//! `uvarint delta` (≥ 1) to the previous index: the sorted ids of the series
//! that have that label pair.
//!
//! # Reading
//!
//! [`Block::open`] parses and checks `meta.json`, mmaps both binary files,
//! verifies the index header, TOC and every section CRC, loads the symbols and
//! label index into memory (small: one entry per distinct string / label
//! pair) and checks that `chunks` has the length the TOC records. Series
//! entries and postings lists are decoded from the mmap on demand. Frames are
//! CRC-checked and decompressed on first use and kept in an LRU cache bounded
//! in bytes; [`ChunkBytes`] shares the cached frame instead of copying.

mod format;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::codec::Encoding;

pub use reader::{Block, ChunkBytes};
pub use writer::write_block;

/// File holding the block's [`BlockMeta`] as JSON.
pub const META_FILE: &str = "meta.json";
/// File holding symbols, series and postings.
pub const INDEX_FILE: &str = "index";
/// File holding the chunk bytes in zstd frames.
pub const CHUNKS_FILE: &str = "chunks";
/// Suffix of the directory a block is written into before its atomic rename.
pub const TMP_SUFFIX: &str = ".tmp";
/// A reasonable default for [`Block::open`]'s frame cache bound.
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// One chunk handed to [`write_block`].
#[derive(Debug, Clone)]
pub struct ChunkInput<'a> {
    /// Timestamp (ms) of the chunk's first sample.
    pub min_t: i64,
    /// Timestamp (ms) of the chunk's last sample.
    pub max_t: i64,
    /// Number of samples encoded in `bytes`.
    pub num_samples: u16,
    /// The encoded chunk; stored and returned verbatim. Owned when the
    /// caller streams series it reads from elsewhere (block merging).
    pub bytes: std::borrow::Cow<'a, [u8]>,
}

/// One series handed to [`write_block`].
#[derive(Debug, Clone)]
pub struct SeriesInput<'a> {
    /// Label pairs sorted by name, names unique.
    pub labels: Vec<(String, String)>,
    /// Chunks sorted by `min_t`.
    pub chunks: Vec<ChunkInput<'a>>,
}

/// Contents of `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BlockMeta {
    /// Version of the meta format (1).
    pub version: u32,
    /// The block's id, equal to its directory name.
    pub id: String,
    /// First millisecond covered by the block (inclusive).
    pub min_time: i64,
    /// Last millisecond covered by the block (inclusive).
    pub max_time: i64,
    /// Counts of what the block holds.
    pub stats: BlockStats,
    /// Where the block came from.
    pub compaction: Compaction,
    /// How the chunk bytes are encoded; the block stores them verbatim.
    /// Absent in blocks written before columnar chunks: those are Gorilla.
    #[serde(default)]
    pub chunk_encoding: Encoding,
}

/// Counts of what a block holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BlockStats {
    /// Number of series.
    pub num_series: u64,
    /// Number of chunks over all series.
    pub num_chunks: u64,
    /// Number of samples over all chunks.
    pub num_samples: u64,
}

/// Compaction lineage of a block.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Compaction {
    /// 1 for a block cut from the head, +1 for each compaction round.
    pub level: u32,
    /// Ids of the blocks this one was compacted from (empty at level 1).
    pub sources: Vec<String>,
    /// How the block came to be, beyond compaction: [`BACKFILL_HINT`] for
    /// blocks written by a backfill (and blocks merged from one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

/// The [`Compaction::hints`] entry of backfilled blocks. Their samples never
/// went through the head, so they say nothing about what the WAL still
/// holds.
pub const BACKFILL_HINT: &str = "backfill";

/// Metadata of one chunk of a series, as returned by [`Block::series_chunks`].
/// Pass it to [`Block::chunk`] of the same block to get the bytes; it means
/// nothing to another block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Timestamp (ms) of the chunk's first sample.
    pub min_t: i64,
    /// Timestamp (ms) of the chunk's last sample.
    pub max_t: i64,
    /// Number of samples in the chunk.
    pub num_samples: u16,
    chunk_ref: ChunkRef,
}

/// Where a chunk's bytes are: the frame's header offset in `chunks`, and the
/// range within the decompressed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkRef {
    frame: u64,
    offset: u32,
    len: u32,
}

/// Errors writing or reading a block.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The operating system refused a file operation.
    #[error("block I/O error on {}: {source}", path.display())]
    Io {
        /// File or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A block file does not hold what the format says it must.
    #[error("corrupt block file {}: {what}", path.display())]
    Corrupt {
        /// The file that is wrong (`meta.json`, `index` or `chunks`).
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// [`write_block`] was given input it cannot store (unsorted series,
    /// chunk outside the block's time range, ...). Nothing is left on disk.
    #[error("invalid block input: {0}")]
    InvalidInput(String),
    /// A series index at or past [`Block::num_series`].
    #[error("series index {index} out of range: block has {num_series} series")]
    SeriesOutOfRange {
        /// The index asked for.
        index: u32,
        /// How many series the block has.
        num_series: u32,
    },
}

impl BlockError {
    fn io(path: &Path, source: io::Error) -> Self {
        BlockError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn corrupt(path: &Path, what: impl Into<String>) -> Self {
        BlockError::Corrupt {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// Crockford's base32 alphabet. Its characters are in ASCII order, which is
/// what makes encoded ids sort like the numbers they encode.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const ID_LEN: usize = 26;

/// A new block id for creation time `now_ms` (ms since the Unix epoch,
/// clamped to the 48 bits available): 26 Crockford base32 characters, 48 bits
/// of time then 80 random bits. Ids of different milliseconds sort by time;
/// ids of the same millisecond are distinct but in no particular order.
pub fn new_block_id(now_ms: i64) -> String {
    let ts = now_ms.clamp(0, (1i64 << 48) - 1) as u128;
    let value = (ts << 80) | random_80_bits();
    // 26 × 5 = 130 bits: the first character carries only the top 3 bits.
    (0..ID_LEN)
        .rev()
        .map(|i| CROCKFORD[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// Whether `name` has the shape of a block id (not whether such a block
/// exists). Lets the owner of a blocks directory tell blocks from other
/// entries.
pub fn is_block_id(name: &str) -> bool {
    name.len() == ID_LEN
        && name.bytes().all(|b| CROCKFORD.contains(&b))
        // 128 bits leave the top two of the first character's 5 bits zero.
        && name.as_bytes()[0] <= b'7'
}

/// 80 bits that differ between calls and processes. Ids only need to be
/// unique, not unpredictable, so std's randomly keyed SipHash (keys seeded from
/// the OS once per thread and bumped per `RandomState`) over a counter, the
/// clock and the pid is enough and avoids a dependency.
fn random_80_bits() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut words = [0u64; 2];
    for (i, w) in words.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(count);
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(i);
        *w = h.finish();
    }
    ((u128::from(words[0]) << 64) | u128::from(words[1])) & ((1u128 << 80) - 1)
}

/// Deletes the `<id>.tmp` directories in `parent`: blocks whose write was
/// interrupted before the rename that publishes them. Returns how many were
/// removed. Other entries are left alone. Call it when opening `parent`,
/// before any [`write_block`] into it starts (a write in progress also has a
/// `.tmp` directory).
pub fn remove_incomplete(parent: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(parent)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(TMP_SUFFIX)) else {
            continue;
        };
        if !is_block_id(stem) || !entry.file_type()?.is_dir() {
            continue;
        }
        std::fs::remove_dir_all(entry.path())?;
        removed += 1;
    }
    if removed > 0 {
        // Make the removals durable, so a crash cannot resurrect them.
        sync_dir(parent)?;
    }
    Ok(removed)
}

/// fsync a directory, making the creation, rename or removal of its entries
/// durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
