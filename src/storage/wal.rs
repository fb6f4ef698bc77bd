//! The durable state the head is rebuilt from: the write-ahead log of new
//! series and sample batches, in append-only segment files under
//! `<storage>/wal/`.
//!
//! A batch is acknowledged only after [`Wal::commit`] returned: it
//! fdatasyncs the current segment, and concurrent committers share one sync
//! (group commit). Segments are cut at [`SEGMENT_BYTES`]; a segment is synced
//! before the next one starts, so a sync of the current segment covers
//! everything written before it. Replay does not rely on records being in
//! each series' time order (concurrent appenders may log in either order):
//! the head sorts late samples in. A torn record at the end (a crash during
//! a write that was never acknowledged) is cut off at start-up.
//!
//! A series record is written while the head holds the lock of the series'
//! shard, before the series can take samples, so it precedes every batch that
//! refers to it. A [`Wal::checkpoint_head`] (after compaction, and at a
//! clean stop) starts a new segment, writes the head (every series still in
//! it, with the samples not yet in blocks) into `checkpoint.<n>` in the
//! blocks' compressed encoding, a fraction of the log's size, and deletes
//! the older segments, so the log stays bounded. Checkpoints of earlier
//! versions (series and batch records) are still read.
//!
//! Segment and checkpoint files are sequences of records: payload length
//! (u32 LE), CRC32 of the payload (u32 LE), payload. A batch payload is
//! `0x01`, then per sample: series ref (uvarint), timestamp (zigzag varint,
//! delta to the previous sample of the record), value (8 bytes, f64 bits LE).
//! Batches are written as `0x03` instead: the uncompressed length (uvarint)
//! and a zstd frame (level 1) of the batch in columns — the count, the refs
//! and the timestamps as zigzag deltas, then the 8 byte planes of the
//! values' bits. `0x01` records are still read.
//! A series payload is `0x02`, the series ref (uvarint), the label count
//! (uvarint), then each name and value as length-prefixed strings. Head
//! checkpoints hold `0x04` records ([`HeadCheckpoint`]): series with their
//! labels and samples.
//!
//! Stores of schema 3 kept the series table in the key-value store; the
//! storage moves it into the WAL at open ([`legacy_series`]).

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use zstd::stream::raw::CParameter;

use super::columnar;
use super::encoding::{put_str, put_uvarint, put_varint, Corrupt, Reader};
use super::kv::{trees, Kv, KvError};
use super::labels::Labels;

/// A head series' identifier.
pub type SeriesRef = u64;

/// Size at which a segment is cut.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The WAL's directory under the storage path.
pub const WAL_DIR: &str = "wal";

const BATCH: u8 = 1;
const SERIES: u8 = 2;
/// A batch in columns (refs, timestamps, value byte planes), zstd-compressed.
const BATCH_COLUMNS: u8 = 3;
/// zstd level of batch records: the fastest, as they are on the append path.
const ZSTD_LEVEL: i32 = 1;
/// Series with their labels and samples, zstd-compressed: a checkpoint of
/// the head ([`Wal::checkpoint_head`]).
const HEAD_SERIES: u8 = 4;
/// zstd level of head checkpoints, written once at a stop and read once at
/// the next start: as the blocks' frames.
const HEAD_ZSTD_LEVEL: i32 = 9;
/// Match window and table sizes (log2) of the checkpoint's compressor.
/// Level 9 alone sizes them for the 1 MiB record: 11 MB of tables per
/// writing thread, held while the checkpoint runs, which was the server's
/// peak memory. Measured on the records of a 100k-series checkpoint
/// (72 MB before compression), these smaller ones give 0.8 % fewer bytes
/// in half the time: the records are mostly chunks already compressed,
/// and the labels repeat within a few kilobytes.
const HEAD_ZSTD_WINDOW_LOG: u32 = 18;
const HEAD_ZSTD_TABLE_LOG: u32 = 16;
/// Uncompressed bytes of a head checkpoint record, about: large enough for
/// zstd to find the labels' repetitions.
const HEAD_RECORD_BYTES: usize = 1 << 20;
const HEADER: usize = 8;
const CHECKPOINT_PREFIX: &str = "checkpoint.";
/// A record claiming more than this is corrupt (batches are far smaller).
const MAX_RECORD: usize = 256 * 1024 * 1024;

/// One logged sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WalSample {
    /// The series it belongs to.
    pub series: SeriesRef,
    /// Timestamp, Unix ms.
    pub t: i64,
    /// Value (bit pattern preserved, stale markers included).
    pub v: f64,
}

/// One record's worth of what the log holds, as replay hands it out.
#[derive(Debug, Clone, PartialEq)]
pub enum WalEntry {
    /// A new series and its labels.
    Series(SeriesRef, Labels),
    /// A sample of a series logged earlier.
    Sample(WalSample),
}

/// What a replay read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records read.
    pub records: u64,
    /// Samples read.
    pub samples: u64,
    /// Series records read.
    pub series: u64,
    /// Bytes cut off after a torn or corrupt record.
    pub truncated_bytes: u64,
}

/// A WAL failure.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A WAL file could not be read or written.
    #[error("WAL {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The legacy series table failed.
    #[error(transparent)]
    Kv(#[from] KvError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct Segment {
    /// Shared so that a committer syncs it outside the lock on the segment.
    file: Arc<File>,
    number: u64,
    size: u64,
}

/// What committers share: the open segment and how far it is durable.
struct Log {
    dir: PathBuf,
    current: Mutex<Segment>,
    /// Records written so far (any segment).
    written: AtomicU64,
    /// Records known durable; held while syncing so committers queue behind one sync.
    synced: Mutex<u64>,
    /// How far the log is durable: readers of the log ([`WalTail`]) stop there.
    durable: Mutex<WalPosition>,
}

/// A place in the log: a segment and a byte offset in it, at a record
/// boundary. Positions order as the log does.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct WalPosition {
    /// The segment's number.
    pub segment: u64,
    /// Bytes into it.
    pub offset: u64,
}

/// The write-ahead log.
pub struct Wal {
    log: Arc<Log>,
    compress: bool,
    segments_at_open: (u64, u64),
}

fn segment_name(number: u64) -> String {
    format!("{number:020}")
}

fn checkpoint_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{CHECKPOINT_PREFIX}{number:020}"))
}

fn segment_numbers(dir: &Path) -> Result<(Vec<u64>, Option<u64>), WalError> {
    let mut segments = Vec::new();
    let mut checkpoint = None;
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let name = entry
            .map_err(io(dir))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(n) = name
            .strip_prefix(CHECKPOINT_PREFIX)
            .and_then(|n| n.parse::<u64>().ok())
        {
            checkpoint = checkpoint.max(Some(n));
        } else if let Ok(n) = name.parse::<u64>() {
            segments.push(n);
        }
    }
    segments.sort_unstable();
    Ok((segments, checkpoint))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn create_segment(dir: &Path, number: u64) -> Result<Segment, WalError> {
    let path = dir.join(segment_name(number));
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io(&path))?;
    sync_dir(dir)?;
    Ok(Segment {
        file: Arc::new(file),
        number,
        size: 0,
    })
}

/// A batch as a framed record: header (length, CRC) then payload, built in
/// one buffer so the payload is never copied.
fn batch_record(samples: &[WalSample], compress: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 1 + samples.len() * 12);
    out.extend_from_slice(&[0; HEADER]);
    if compress {
        let mut columns = Vec::with_capacity(samples.len() * 12);
        encode_columns(samples, &mut columns);
        // zstd cannot fail on an in-memory buffer in practice; the plain
        // record below is always a valid fallback.
        if let Some(compressed) = zstd_frame(&columns) {
            out.push(BATCH_COLUMNS);
            put_uvarint(&mut out, columns.len() as u64);
            out.extend_from_slice(&compressed);
            return frame(out);
        }
    }
    encode_batch(samples, &mut out);
    frame(out)
}

/// `bytes` as one zstd frame, by a compressor kept per thread: a new one
/// per record spent more on setting up its tables than on small batches.
fn zstd_frame(bytes: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut compressor = cell.try_borrow_mut().ok()?;
        if compressor.is_none() {
            *compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        compressor.as_mut()?.compress(bytes).ok()
    })
}

/// The columns of a batch: count, then refs (zigzag deltas), timestamps
/// (zigzag deltas), then the 8 byte planes of the values' bits (least
/// significant first). Neighbouring samples share most of their high bytes,
/// which is what zstd finds.
fn encode_columns(samples: &[WalSample], out: &mut Vec<u8>) {
    put_uvarint(out, samples.len() as u64);
    let mut previous = 0u64;
    for s in samples {
        put_varint(out, s.series.wrapping_sub(previous) as i64);
        previous = s.series;
    }
    let mut previous_t = 0i64;
    for s in samples {
        put_varint(out, s.t.wrapping_sub(previous_t));
        previous_t = s.t;
    }
    for plane in 0..8 {
        out.extend(samples.iter().map(|s| (s.v.to_bits() >> (plane * 8)) as u8));
    }
}

fn decode_columns(mut reader: Reader<'_>) -> Result<Vec<WalSample>, Corrupt> {
    let count = reader.uvarint()? as usize;
    // Each sample takes at least 10 bytes: bounds the allocation.
    if count > reader.remaining() / 10 {
        return Err(Corrupt);
    }
    let mut samples = Vec::with_capacity(count);
    let mut previous = 0u64;
    for _ in 0..count {
        previous = previous.wrapping_add(reader.varint()? as u64);
        samples.push(WalSample {
            series: previous,
            t: 0,
            v: 0.0,
        });
    }
    let mut previous_t = 0i64;
    for s in samples.iter_mut() {
        previous_t = previous_t.wrapping_add(reader.varint()?);
        s.t = previous_t;
    }
    let mut bits = vec![0u64; count];
    for plane in 0..8 {
        let bytes = reader.bytes(count)?;
        for (b, byte) in bits.iter_mut().zip(bytes) {
            *b |= u64::from(*byte) << (plane * 8);
        }
    }
    if !reader.is_empty() {
        return Err(Corrupt);
    }
    for (s, b) in samples.iter_mut().zip(bits) {
        s.v = f64::from_bits(b);
    }
    Ok(samples)
}

fn series_record(series: SeriesRef, labels: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 12 + labels.len() * 24);
    out.extend_from_slice(&[0; HEADER]);
    out.push(SERIES);
    put_uvarint(&mut out, series);
    put_uvarint(&mut out, labels.len() as u64);
    for (name, value) in labels {
        put_str(&mut out, name);
        put_str(&mut out, value);
    }
    frame(out)
}

/// Fills in the header of a record whose payload follows `HEADER` zero bytes.
fn frame(mut out: Vec<u8>) -> Vec<u8> {
    let payload_len = (out.len() - HEADER) as u32;
    let crc = crc32fast::hash(&out[HEADER..]);
    out[..4].copy_from_slice(&payload_len.to_le_bytes());
    out[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Reads every intact record of `path`; returns the offset where intact data ends.
fn read_records(
    path: &Path,
    apply: &mut impl FnMut(WalEntry),
    stats: &mut ReplayStats,
) -> Result<(u64, u64), WalError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(path))?;
    let mut offset = 0usize;
    while bytes.len() - offset >= HEADER {
        let len = u32::from_le_bytes([
            bytes[offset],
            bytes[offset + 1],
            bytes[offset + 2],
            bytes[offset + 3],
        ]) as usize;
        let crc = u32::from_le_bytes([
            bytes[offset + 4],
            bytes[offset + 5],
            bytes[offset + 6],
            bytes[offset + 7],
        ]);
        let start = offset + HEADER;
        let Some(payload) = bytes
            .get(start..start.saturating_add(len))
            .filter(|_| len <= MAX_RECORD)
        else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        if decode_record(payload, apply, stats).is_err() {
            break;
        }
        stats.records += 1;
        offset = start + len;
    }
    Ok((offset as u64, bytes.len() as u64))
}

impl Wal {
    /// Opens the WAL under `storage_dir/wal`; `compress` chooses the
    /// format of new sample records (both are read).
    pub fn open(storage_dir: &Path, compress: bool) -> Result<Wal, WalError> {
        let dir = storage_dir.join(WAL_DIR);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        // Leftovers of an interrupted checkpoint are not a checkpoint.
        for entry in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            if entry.file_name().to_string_lossy().ends_with(".tmp") {
                fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        let (segments, checkpoint) = segment_numbers(&dir)?;
        // Empty segments (a start with no appends) hold nothing to replay: without
        // this, every restart would leave one behind until the next checkpoint.
        let mut kept = Vec::with_capacity(segments.len());
        for number in &segments {
            let path = dir.join(segment_name(*number));
            if fs::metadata(&path).map(|m| m.len() == 0).unwrap_or(false) {
                fs::remove_file(&path).map_err(io(&path))?;
            } else if checkpoint.is_none_or(|c| *number > c) {
                kept.push(*number);
            }
        }
        // Replay reads the old segments; new records go to a fresh one, numbered
        // after every segment ever used so that order is kept.
        let next = segments.last().map_or(1, |n| n + 1);
        let current = create_segment(&dir, next)?;
        Ok(Wal {
            log: Arc::new(Log {
                dir,
                current: Mutex::new(current),
                written: AtomicU64::new(0),
                synced: Mutex::new(0),
                durable: Mutex::new(WalPosition {
                    segment: next,
                    offset: 0,
                }),
            }),
            compress,
            segments_at_open: (kept.first().copied().unwrap_or(next), next),
        })
    }

    /// The first and last segment of the log when it was opened: the oldest
    /// one replay reads (the new one when there is none), and the new one
    /// records go to. As in Prometheus, whose log also starts its new segment
    /// before replaying, so the range is never empty.
    pub fn segments_at_open(&self) -> (u64, u64) {
        self.segments_at_open
    }

    /// Records a new series (durable with the next commit). The caller
    /// logs it before any sample of the series can be logged.
    pub fn log_series(&self, series: SeriesRef, labels: &[(&str, &str)]) -> Result<(), WalError> {
        self.write_record(&series_record(series, labels))
    }

    /// Appends a batch to the current segment (durable with the next commit).
    pub fn log_samples(&self, samples: &[WalSample]) -> Result<(), WalError> {
        self.write_record(&batch_record(samples, self.compress))
    }

    fn write_record(&self, record: &[u8]) -> Result<(), WalError> {
        let mut current = self.log.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.size > 0 && current.size + record.len() as u64 > SEGMENT_BYTES {
            self.rotate(&mut current)?;
        }
        let path = self.log.dir.join(segment_name(current.number));
        (&*current.file).write_all(record).map_err(io(&path))?;
        current.size += record.len() as u64;
        self.log.written.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Starts a new segment for a checkpoint; returns the last one it covers.
    fn start_checkpoint(&self) -> Result<u64, WalError> {
        let mut current = self.log.current.lock().unwrap_or_else(|e| e.into_inner());
        let number = current.number;
        self.rotate(&mut current)?;
        Ok(number)
    }

    /// Syncs the current segment and starts the next one.
    fn rotate(&self, current: &mut Segment) -> Result<(), WalError> {
        let path = self.log.dir.join(segment_name(current.number));
        current.file.sync_data().map_err(io(&path))?;
        *current = create_segment(&self.log.dir, current.number + 1)?;
        Ok(())
    }

    /// Makes everything logged so far durable, blocking.
    pub fn commit_blocking(&self) -> Result<(), WalError> {
        sync_log(&self.log)
    }

    /// Makes everything logged so far durable without blocking the runtime.
    pub async fn commit(&self) -> Result<(), WalError> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || sync_log(&log))
            .await
            .map_err(|e| WalError::Io {
                path: self.log.dir.clone(),
                source: std::io::Error::other(e),
            })?
    }

    /// Feeds every logged entry to `apply`: the checkpoint first, then the
    /// segments in order. A torn or corrupt record ends the log: the file is
    /// cut there and later segments removed (only unacknowledged writes can
    /// be torn, since acknowledged ones were synced).
    pub fn replay(&self, mut apply: impl FnMut(WalEntry)) -> Result<ReplayStats, WalError> {
        let dir = &self.log.dir;
        let (segments, checkpoint) = segment_numbers(dir)?;
        let current = self
            .log
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .number;
        let mut stats = ReplayStats::default();
        if let Some(n) = checkpoint {
            read_records(&checkpoint_path(dir, n), &mut apply, &mut stats)?;
        }
        let old: Vec<u64> = segments
            .into_iter()
            .filter(|n| *n < current && checkpoint.is_none_or(|c| *n > c))
            .collect();
        for (i, number) in old.iter().enumerate() {
            let path = dir.join(segment_name(*number));
            let (intact, length) = read_records(&path, &mut apply, &mut stats)?;
            if intact < length {
                stats.truncated_bytes += length - intact;
                tracing::warn!(segment = %path.display(), offset = intact, bytes = length - intact, "WAL ends in a torn or corrupt record; cut there (it was never acknowledged)");
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                file.set_len(intact).map_err(io(&path))?;
                file.sync_all().map_err(io(&path))?;
                for later in &old[i + 1..] {
                    let later = dir.join(segment_name(*later));
                    stats.truncated_bytes += fs::metadata(&later).map(|m| m.len()).unwrap_or(0);
                    fs::remove_file(&later).map_err(io(&later))?;
                }
                break;
            }
        }
        Ok(stats)
    }

    /// Starts a new segment and replaces the checkpoint and every older
    /// segment with a checkpoint of the head that `write` fills, which must
    /// hold every series and sample logged before the new segment (the head
    /// takes a sample before it is logged, so its state covers the log).
    /// Segments from `keep_from` on (a log reader's position, such as a
    /// remote-write queue's cursor) stay on disk for [`WalTail`] until the
    /// next checkpoint; replay skips them. Returns the checkpoint's bytes.
    pub fn checkpoint_head<E: From<WalError>>(
        &self,
        keep_from: Option<WalPosition>,
        write: impl FnOnce(&HeadCheckpoint) -> Result<(), E>,
    ) -> Result<u64, E> {
        let upto = self.start_checkpoint()?;
        let dir = &self.log.dir;
        let target = checkpoint_path(dir, upto);
        let tmp = target.with_extension("tmp");
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let checkpoint = HeadCheckpoint {
            file: Mutex::new(std::io::BufWriter::new(file)),
            path: tmp.clone(),
        };
        let written = write(&checkpoint).and_then(|()| Ok(checkpoint.finish()?));
        let bytes = match written {
            Ok(bytes) => bytes,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let (segments, previous) = segment_numbers(dir)?;
        fs::rename(&tmp, &target).map_err(io(&target))?;
        sync_dir(dir)?;
        let needed = |number: u64| {
            keep_from.is_some_and(|from| {
                number > from.segment
                    || (number == from.segment
                        && fs::metadata(dir.join(segment_name(number)))
                            .is_ok_and(|m| m.len() > from.offset))
            })
        };
        let stale = previous
            .filter(|n| *n != upto)
            .map(|n| checkpoint_path(dir, n))
            .into_iter()
            .chain(
                segments
                    .into_iter()
                    .filter(|n| *n <= upto && !needed(*n))
                    .map(|n| dir.join(segment_name(n))),
            );
        for path in stale {
            fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(bytes)
    }

    /// How far the log is durable (every acknowledged append is before it).
    pub fn durable_position(&self) -> WalPosition {
        *self.log.durable.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A reader of the samples logged from `from` on.
    pub fn tail(&self, from: WalPosition) -> WalTail {
        WalTail {
            dir: self.log.dir.clone(),
            position: from,
            file: None,
        }
    }

    /// Bytes of the segments after the checkpoint: what replay reads.
    pub fn bytes_since_checkpoint(&self) -> Result<u64, WalError> {
        let (segments, checkpoint) = segment_numbers(&self.log.dir)?;
        Ok(segments
            .into_iter()
            .filter(|n| checkpoint.is_none_or(|c| *n > c))
            .filter_map(|n| fs::metadata(self.log.dir.join(segment_name(n))).ok())
            .map(|m| m.len())
            .sum())
    }

    /// Bytes of the WAL's files.
    pub fn size_bytes(&self) -> u64 {
        fs::read_dir(&self.log.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }
}

/// A checkpoint of the head being written: series with their labels and
/// samples, as [`HEAD_SERIES`] records of about [`HEAD_RECORD_BYTES`]
/// before compression, built by several threads at once
/// ([`HeadCheckpoint::write`]); records are independent, so their order
/// does not matter. A record is the zstd frame of entries: the series ref
/// (uvarint), the label count (uvarint), each name and value
/// length-prefixed, the chunk count (uvarint), then each columnar chunk
/// ([`super::columnar`]) length-prefixed, in time order.
pub struct HeadCheckpoint {
    file: Mutex<std::io::BufWriter<File>>,
    path: PathBuf,
}

/// One thread's records of a [`HeadCheckpoint`].
pub struct HeadRecords<'c> {
    checkpoint: &'c HeadCheckpoint,
    pending: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl HeadCheckpoint {
    /// Runs `fill` with a builder of records and writes what it added.
    pub fn write<E: From<WalError>>(
        &self,
        fill: impl FnOnce(&mut HeadRecords<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut compressor =
            zstd::bulk::Compressor::new(HEAD_ZSTD_LEVEL).map_err(io(&self.path))?;
        for parameter in [
            CParameter::WindowLog(HEAD_ZSTD_WINDOW_LOG),
            CParameter::HashLog(HEAD_ZSTD_TABLE_LOG),
            CParameter::ChainLog(HEAD_ZSTD_TABLE_LOG),
        ] {
            compressor
                .set_parameter(parameter)
                .map_err(io(&self.path))?;
        }
        let mut records = HeadRecords {
            checkpoint: self,
            pending: Vec::with_capacity(HEAD_RECORD_BYTES + HEAD_RECORD_BYTES / 4),
            compressor,
        };
        fill(&mut records)?;
        Ok(records.flush()?)
    }

    /// Makes the file durable; returns its size.
    fn finish(self) -> Result<u64, WalError> {
        let file = self
            .file
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_inner()
            .map_err(|e| io(&self.path)(e.into_error()))?;
        file.sync_all().map_err(io(&self.path))?;
        Ok(file.metadata().map_err(io(&self.path))?.len())
    }
}

impl HeadRecords<'_> {
    /// Adds a series: its labels, then its samples as columnar chunks in
    /// time order.
    pub fn series(
        &mut self,
        series: SeriesRef,
        labels: &[(&str, &str)],
        chunks: &[&[u8]],
    ) -> Result<(), WalError> {
        put_uvarint(&mut self.pending, series);
        put_uvarint(&mut self.pending, labels.len() as u64);
        for (name, value) in labels {
            put_str(&mut self.pending, name);
            put_str(&mut self.pending, value);
        }
        put_uvarint(&mut self.pending, chunks.len() as u64);
        for chunk in chunks {
            put_uvarint(&mut self.pending, chunk.len() as u64);
            self.pending.extend_from_slice(chunk);
        }
        if self.pending.len() >= HEAD_RECORD_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = &self.checkpoint.path;
        let compressed = self.compressor.compress(&self.pending).map_err(io(path))?;
        let mut record = Vec::with_capacity(HEADER + 12 + compressed.len());
        record.extend_from_slice(&[0; HEADER]);
        record.push(HEAD_SERIES);
        put_uvarint(&mut record, self.pending.len() as u64);
        record.extend_from_slice(&compressed);
        self.checkpoint
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&frame(record))
            .map_err(io(path))?;
        self.pending.clear();
        Ok(())
    }
}

/// Syncs the current segment, once for every committer waiting at the same time.
fn sync_log(log: &Log) -> Result<(), WalError> {
    let target = log.written.load(Ordering::Acquire);
    let mut synced = log.synced.lock().unwrap_or_else(|e| e.into_inner());
    if *synced >= target {
        return Ok(());
    }
    // Everything counted in `written` is in the current segment or in a segment
    // synced when it was cut; read the count again to cover later writers too.
    let covered = log.written.load(Ordering::Acquire);
    let (file, path, end) = {
        let current = log.current.lock().unwrap_or_else(|e| e.into_inner());
        let path = log.dir.join(segment_name(current.number));
        let end = WalPosition {
            segment: current.number,
            offset: current.size,
        };
        (current.file.clone(), path, end)
    };
    file.sync_data().map_err(io(&path))?;
    *synced = covered;
    let mut durable = log.durable.lock().unwrap_or_else(|e| e.into_inner());
    *durable = (*durable).max(end);
    Ok(())
}

/// Reads the samples of the log in order from a position, up to the durable
/// end, for senders that forward them (remote write). Series records are
/// skipped: readers look labels up in the head.
pub struct WalTail {
    dir: PathBuf,
    position: WalPosition,
    file: Option<(u64, File)>,
}

/// What one [`WalTail::read`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TailRead {
    /// Samples added to the output.
    pub samples: usize,
    /// Segments that a checkpoint folded away before they were read: their
    /// samples are lost to the reader.
    pub skipped_segments: u64,
}

impl WalTail {
    /// Where the next read starts.
    pub fn position(&self) -> WalPosition {
        self.position
    }

    /// Appends the samples of whole records between the position and
    /// `until` to `out`, stopping after the record that brings the count to
    /// `max_samples` or more; moves the position past them.
    pub fn read(
        &mut self,
        until: WalPosition,
        max_samples: usize,
        out: &mut Vec<WalSample>,
    ) -> Result<TailRead, WalError> {
        use std::os::unix::fs::FileExt;
        let mut result = TailRead::default();
        let mut header = [0u8; HEADER];
        let mut payload = Vec::new();
        let mut stats = ReplayStats::default();
        while self.position < until && result.samples < max_samples {
            if !self.open_current(&mut result)? {
                break;
            }
            let Some((_, file)) = self.file.as_ref() else {
                break;
            };
            let path = self.dir.join(segment_name(self.position.segment));
            let end = if self.position.segment == until.segment {
                until.offset
            } else {
                file.metadata().map_err(io(&path))?.len()
            };
            if self.position.offset + HEADER as u64 > end {
                if self.position.segment >= until.segment {
                    break;
                }
                self.position = WalPosition {
                    segment: self.position.segment + 1,
                    offset: 0,
                };
                continue;
            }
            file.read_exact_at(&mut header, self.position.offset)
                .map_err(io(&path))?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let corrupt = || WalError::Io {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "corrupt record in the durable part of the log",
                ),
            };
            if len > MAX_RECORD {
                return Err(corrupt());
            }
            payload.resize(len, 0);
            file.read_exact_at(&mut payload, self.position.offset + HEADER as u64)
                .map_err(io(&path))?;
            if crc32fast::hash(&payload) != crc {
                return Err(corrupt());
            }
            let before = out.len();
            decode_record(
                &payload,
                &mut |entry| {
                    if let WalEntry::Sample(sample) = entry {
                        out.push(sample);
                    }
                },
                &mut stats,
            )
            .map_err(|_| corrupt())?;
            result.samples += out.len() - before;
            self.position.offset += (HEADER + len) as u64;
        }
        Ok(result)
    }

    /// Opens the file of the position's segment; when it was deleted, moves
    /// to the next segment that exists (counting the skipped ones). False
    /// when there is none yet.
    fn open_current(&mut self, result: &mut TailRead) -> Result<bool, WalError> {
        if self.file.as_ref().map(|(n, _)| *n) != Some(self.position.segment) {
            self.file = None;
            let path = self.dir.join(segment_name(self.position.segment));
            match File::open(&path) {
                Ok(file) => self.file = Some((self.position.segment, file)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let (segments, checkpoint) = segment_numbers(&self.dir)?;
                    let Some(&next) = segments.iter().find(|n| **n > self.position.segment) else {
                        return Ok(false);
                    };
                    // Segments up to the checkpoint were folded into it;
                    // later gaps are empty segments removed at start-up.
                    let lost_up_to = checkpoint.map_or(0, |c| c + 1).min(next);
                    result.skipped_segments += lost_up_to.saturating_sub(self.position.segment);
                    self.position = WalPosition {
                        segment: next,
                        offset: 0,
                    };
                    return self.open_current(result);
                }
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Ok(self.file.is_some())
    }
}

fn encode_batch(samples: &[WalSample], out: &mut Vec<u8>) {
    out.push(BATCH);
    let mut previous_t = 0i64;
    for s in samples {
        put_uvarint(out, s.series);
        put_varint(out, s.t.wrapping_sub(previous_t));
        out.extend_from_slice(&s.v.to_bits().to_le_bytes());
        previous_t = s.t;
    }
}

fn decode_record(
    bytes: &[u8],
    apply: &mut impl FnMut(WalEntry),
    stats: &mut ReplayStats,
) -> Result<(), Corrupt> {
    let mut reader = Reader::new(bytes);
    match reader.byte()? {
        BATCH => stats.samples += decode_batch(reader, apply)?,
        BATCH_COLUMNS => {
            let columns = decompressed(reader)?;
            let samples = decode_columns(Reader::new(&columns))?;
            stats.samples += samples.len() as u64;
            samples.into_iter().for_each(|s| apply(WalEntry::Sample(s)));
        }
        SERIES => {
            let series = reader.uvarint()?;
            let labels = decode_labels(reader)?;
            stats.series += 1;
            apply(WalEntry::Series(series, labels));
        }
        HEAD_SERIES => decode_head_series(Reader::new(&decompressed(reader)?), apply, stats)?,
        _ => return Err(Corrupt),
    }
    Ok(())
}

/// The rest of a compressed record: its uncompressed length (uvarint),
/// then one zstd frame of exactly that many bytes.
fn decompressed(mut reader: Reader<'_>) -> Result<Vec<u8>, Corrupt> {
    let len = reader.uvarint()? as usize;
    if len > MAX_RECORD {
        return Err(Corrupt);
    }
    let bytes = zstd::bulk::decompress(reader.rest(), len).map_err(|_| Corrupt)?;
    if bytes.len() != len {
        return Err(Corrupt);
    }
    Ok(bytes)
}

fn decode_batch(mut reader: Reader<'_>, apply: &mut impl FnMut(WalEntry)) -> Result<u64, Corrupt> {
    // Decode fully before applying, so a bad record applies nothing.
    let mut samples = Vec::new();
    let mut previous_t = 0i64;
    while !reader.is_empty() {
        let series = reader.uvarint()?;
        let t = previous_t.wrapping_add(reader.varint()?);
        let v = f64::from_bits(reader.u64_le()?);
        samples.push(WalSample { series, t, v });
        previous_t = t;
    }
    let count = samples.len() as u64;
    samples.into_iter().for_each(|s| apply(WalEntry::Sample(s)));
    Ok(count)
}

fn decode_labels(mut reader: Reader<'_>) -> Result<Labels, Corrupt> {
    let labels = read_labels(&mut reader)?;
    if !reader.is_empty() {
        return Err(Corrupt);
    }
    Ok(labels)
}

fn read_labels(reader: &mut Reader<'_>) -> Result<Labels, Corrupt> {
    let count = reader.uvarint()?;
    let mut pairs = Vec::with_capacity(count.min(1024) as usize);
    for _ in 0..count {
        pairs.push((reader.str()?.to_string(), reader.str()?.to_string()));
    }
    if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(Corrupt);
    }
    Ok(Labels::from_sorted(pairs))
}

/// The entries of a [`HEAD_SERIES`] record, decoded whole before any is
/// applied, so a bad record applies nothing.
fn decode_head_series(
    mut reader: Reader<'_>,
    apply: &mut impl FnMut(WalEntry),
    stats: &mut ReplayStats,
) -> Result<(), Corrupt> {
    let mut entries = Vec::new();
    let mut samples = Vec::new();
    let mut series_count = 0;
    while !reader.is_empty() {
        let series = reader.uvarint()?;
        entries.push(WalEntry::Series(series, read_labels(&mut reader)?));
        series_count += 1;
        let chunks = reader.uvarint()?;
        for _ in 0..chunks {
            let len = usize::try_from(reader.uvarint()?).map_err(|_| Corrupt)?;
            samples.clear();
            columnar::decode_into(reader.bytes(len)?, &mut samples).map_err(|_| Corrupt)?;
            entries.extend(
                samples
                    .iter()
                    .map(|&(t, v)| WalEntry::Sample(WalSample { series, t, v })),
            );
        }
    }
    stats.series += series_count;
    stats.samples += entries.len() as u64 - series_count;
    entries.into_iter().for_each(apply);
    Ok(())
}

/// The series table of a store written with schema 3, which kept it in the
/// key-value store; the storage logs these series in the WAL at open and
/// then calls [`clear_legacy_series`].
pub fn legacy_series(kv: &Kv) -> Result<Vec<(SeriesRef, Labels)>, WalError> {
    let tree = kv.tree(trees::SERIES)?;
    let mut out = Vec::with_capacity(tree.len());
    for entry in tree.iter_raw() {
        let (key, value) = entry?;
        let corrupt = || KvError::CorruptRecord {
            tree: trees::SERIES,
            key: key.iter().map(|b| format!("{b:02x}")).collect(),
        };
        let series = u64::from_be_bytes(key.as_slice().try_into().map_err(|_| corrupt())?);
        let labels = decode_labels(Reader::new(&value)).map_err(|_| corrupt())?;
        out.push((series, labels));
    }
    Ok(out)
}

/// Empties the legacy series table once its series are durable in the WAL.
pub fn clear_legacy_series(kv: &Kv) -> Result<(), WalError> {
    kv.tree(trees::SERIES)?.clear()?;
    kv.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(n: u64) -> Vec<WalSample> {
        (0..n)
            .map(|i| WalSample {
                series: i % 3,
                t: 1_700_000_000_000 + i as i64 * 15_000,
                v: i as f64 * 0.5,
            })
            .collect()
    }

    fn replayed(wal: &Wal) -> (Vec<WalSample>, ReplayStats) {
        let mut read = Vec::new();
        let stats = wal
            .replay(|entry| {
                if let WalEntry::Sample(s) = entry {
                    read.push(s)
                }
            })
            .unwrap();
        (read, stats)
    }

    fn replayed_series(wal: &Wal) -> Vec<(SeriesRef, String)> {
        let mut read = Vec::new();
        wal.replay(|entry| {
            if let WalEntry::Series(r, labels) = entry {
                read.push((r, labels.to_string()))
            }
        })
        .unwrap();
        read
    }

    #[test]
    fn batches_and_series_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), true).unwrap();
            assert_eq!(wal.segments_at_open(), (1, 1), "a new log starts at 1");
            wal.log_series(7, &[("__name__", "up"), ("job", "a")])
                .unwrap();
            wal.log_samples(&samples(10)).unwrap();
            wal.commit_blocking().unwrap();
        }
        {
            // A later start with compression off: both formats are read back.
            let wal = Wal::open(dir.path(), false).unwrap();
            wal.log_samples(&[WalSample {
                series: 7,
                t: -5,
                v: f64::from_bits(0x7ff0_0000_0000_0002),
            }])
            .unwrap();
            wal.commit_blocking().unwrap();
        }
        let wal = Wal::open(dir.path(), true).unwrap();
        assert_eq!(wal.segments_at_open(), (1, 3), "1 and 2 to replay, 3 new");
        assert_eq!(
            replayed_series(&wal),
            vec![(7, r#"up{job="a"}"#.to_string())]
        );
        let (read, stats) = replayed(&wal);
        assert_eq!((stats.records, stats.series, stats.samples), (3, 1, 11));
        assert_eq!(&read[..10], &samples(10)[..]);
        assert_eq!(read[10].v.to_bits(), 0x7ff0_0000_0000_0002);
    }

    #[test]
    fn restarts_without_appends_leave_no_segments_behind() {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=5 {
            let wal = Wal::open(dir.path(), true).unwrap();
            // The empty segment of the last start is gone, not to be replayed.
            assert_eq!(wal.segments_at_open(), (n, n));
        }
        let files = fs::read_dir(dir.path().join(WAL_DIR)).unwrap().count();
        assert_eq!(files, 1, "only the open segment");
    }

    #[test]
    fn a_torn_tail_is_cut_and_everything_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), true).unwrap();
            wal.log_samples(&samples(10)).unwrap();
            wal.log_samples(&samples(5)).unwrap();
            wal.commit_blocking().unwrap();
        }
        // Tear the second record: as if the process died while writing it.
        let segment = dir.path().join(WAL_DIR).join(segment_name(1));
        let length = fs::metadata(&segment).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(length - 3)
            .unwrap();
        let wal = Wal::open(dir.path(), true).unwrap();
        let (read, stats) = replayed(&wal);
        assert_eq!(read, samples(10));
        assert!(stats.truncated_bytes > 0);
        // A flipped bit is caught by the checksum the same way.
        let mut bytes = fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&segment, bytes).unwrap();
        let (read, _) = replayed(&wal);
        assert!(read.is_empty());
    }

    #[test]
    fn a_head_checkpoint_replaces_the_log_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), true).unwrap();
        wal.log_series(1, &[("__name__", "gone")]).unwrap();
        wal.log_samples(&samples(10)).unwrap();
        let kept: Vec<(i64, f64)> = (0..3).map(|i| (i * 1000, i as f64 + 0.5)).collect();
        let mut chunk = Vec::new();
        columnar::encode(&kept, &mut chunk).unwrap();
        let bytes = wal
            .checkpoint_head(None, |checkpoint| {
                checkpoint.write(|records| records.series(7, &[("__name__", "kept")], &[&chunk]))
            })
            .unwrap();
        assert!(bytes > 0);
        wal.log_samples(&samples(2)).unwrap();
        wal.commit_blocking().unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), true).unwrap();
        assert_eq!(replayed_series(&wal), vec![(7, "kept{}".to_string())]);
        let (read, stats) = replayed(&wal);
        assert_eq!((stats.series, stats.samples), (1, 5));
        let from_checkpoint: Vec<(i64, f64)> = read[..3].iter().map(|s| (s.t, s.v)).collect();
        assert_eq!(from_checkpoint, kept);
        assert!(read[..3].iter().all(|s| s.series == 7));
        assert_eq!(&read[3..], &samples(2)[..]);
        // An empty checkpoint leaves nothing.
        wal.checkpoint_head(None, |_| Ok::<(), WalError>(()))
            .unwrap();
        assert!(replayed_series(&wal).is_empty());
        assert!(replayed(&wal).0.is_empty());
    }

    #[test]
    fn a_tail_reads_durable_samples_in_order_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), true).unwrap();
        let start = wal.durable_position();
        wal.log_series(0, &[("__name__", "a")]).unwrap();
        wal.log_samples(&samples(10)).unwrap();
        let mut tail = wal.tail(start);
        let mut out = Vec::new();
        // Nothing is durable before the commit.
        tail.read(wal.durable_position(), usize::MAX, &mut out)
            .unwrap();
        assert!(out.is_empty());
        wal.commit_blocking().unwrap();
        wal.log_samples(&samples(5)).unwrap();
        wal.commit_blocking().unwrap();
        // At most about `max_samples`, in whole records.
        let read = tail.read(wal.durable_position(), 3, &mut out).unwrap();
        assert_eq!(read.samples, 10);
        tail.read(wal.durable_position(), usize::MAX, &mut out)
            .unwrap();
        let expected: Vec<WalSample> = samples(10).into_iter().chain(samples(5)).collect();
        assert_eq!(out, expected);
        let resume_at = tail.position();
        assert_eq!(resume_at, wal.durable_position());

        // After a restart (a new segment) the same position goes on.
        drop(wal);
        let wal = Wal::open(dir.path(), true).unwrap();
        wal.log_samples(&samples(2)).unwrap();
        wal.commit_blocking().unwrap();
        let mut tail = wal.tail(resume_at);
        let mut out = Vec::new();
        let read = tail
            .read(wal.durable_position(), usize::MAX, &mut out)
            .unwrap();
        assert_eq!((read.samples, read.skipped_segments), (2, 0));
        assert_eq!(out, samples(2));

        // Segments folded into a checkpoint are skipped and counted.
        wal.checkpoint_head(None, |_| Ok::<(), WalError>(()))
            .unwrap();
        wal.log_samples(&samples(1)).unwrap();
        wal.commit_blocking().unwrap();
        let mut tail = wal.tail(start);
        let mut out = Vec::new();
        let read = tail
            .read(wal.durable_position(), usize::MAX, &mut out)
            .unwrap();
        assert!(read.skipped_segments >= 2, "{read:?}");
        assert_eq!(out, samples(1));
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_panic() {
        let mut stats = ReplayStats::default();
        assert!(decode_record(&[BATCH, 0x80], &mut |_| {}, &mut stats).is_err());
        assert!(decode_record(&[9], &mut |_| {}, &mut stats).is_err());
        assert!(
            decode_record(
                &[SERIES, 5, 2, 1, b'b', 1, b'x', 1, b'a', 1, b'y'],
                &mut |_| {},
                &mut stats
            )
            .is_err(),
            "unsorted names"
        );
        assert!(
            decode_record(
                &[SERIES, 5, 1, 1, b'a', 1, b'x', 0],
                &mut |_| {},
                &mut stats
            )
            .is_err(),
            "trailing bytes"
        );
        // A compressed batch: every truncation and a claimed length that lies fail.
        let record = batch_record(&samples(50), true);
        let payload = &record[HEADER..];
        for cut in 1..payload.len() {
            assert!(decode_record(&payload[..cut], &mut |_| {}, &mut stats).is_err());
        }
        let mut lying = vec![BATCH_COLUMNS];
        put_uvarint(&mut lying, 1 << 40);
        assert!(decode_record(&lying, &mut |_| {}, &mut stats).is_err());
        let mut columns = Vec::new();
        encode_columns(&samples(3), &mut columns);
        columns[0] = 100; // more samples than the columns hold
        assert!(decode_columns(Reader::new(&columns)).is_err());
    }
}
