//! Writing a block: chunks are streamed into zstd frames as series arrive;
//! labels are interned and the index is built once all series are seen
//! (symbol ids depend on the sorted set of all strings).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::format::{
    file_header, frame_crc, put_uvarint, put_varint, Section, Toc, CHUNKS_MAGIC, FILE_HEADER_LEN,
    FRAME_HEADER_LEN, FRAME_TARGET_BYTES, INDEX_MAGIC, MAX_CHUNK_BYTES, META_VERSION, NUM_SECTIONS,
    SEC_LABEL_INDEX, SEC_POSTINGS, SEC_SERIES, SEC_SERIES_OFFSETS, SEC_SYMBOLS, ZSTD_LEVEL,
};
use super::{
    new_block_id, now_ms, sync_dir, BlockError, BlockMeta, BlockStats, ChunkInput, ChunkMeta,
    ChunkRef, Compaction, SeriesInput, CHUNKS_FILE, INDEX_FILE, META_FILE, TMP_SUFFIX,
};
use crate::storage::codec::Encoding;

/// Knobs the public API fixes; tests and the size benchmark vary them.
#[derive(Debug, Clone, Copy)]
pub(super) struct WriteOptions {
    pub(super) zstd_level: i32,
    pub(super) frame_target: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            zstd_level: ZSTD_LEVEL,
            frame_target: FRAME_TARGET_BYTES,
        }
    }
}

/// Writes a block of `series` into a new directory `<parent>/<id>` and returns
/// its meta. `parent` must exist.
///
/// `series` must be sorted by label set, strictly (no duplicates); each label
/// set sorted by name with unique names; each series' chunks sorted by
/// `min_t`, with `min_t <= max_t`, inside `[min_time, max_time]`, at most
/// 1 MiB each. Input breaking these rules fails with
/// [`BlockError::InvalidInput`]. Series without chunks are skipped; if no
/// series has a chunk nothing is written and `Ok(None)` is returned.
///
/// Atomic: the block is built in `<parent>/<id>.tmp`, fsynced, renamed into
/// place and `parent` fsynced. On error (or panic of the iterator) the
/// temporary directory is removed; after a crash it is left for
/// [`super::remove_incomplete`].
pub fn write_block<'a>(
    parent: &Path,
    series: impl IntoIterator<Item = SeriesInput<'a>>,
    min_time: i64,
    max_time: i64,
    compaction: Compaction,
    chunk_encoding: Encoding,
) -> Result<Option<BlockMeta>, BlockError> {
    write_block_with(
        parent,
        series,
        min_time,
        max_time,
        compaction,
        chunk_encoding,
        WriteOptions::default(),
    )
}

pub(super) fn write_block_with<'a>(
    parent: &Path,
    series: impl IntoIterator<Item = SeriesInput<'a>>,
    min_time: i64,
    max_time: i64,
    compaction: Compaction,
    chunk_encoding: Encoding,
    opts: WriteOptions,
) -> Result<Option<BlockMeta>, BlockError> {
    if min_time > max_time {
        return Err(BlockError::InvalidInput(format!(
            "block min_time {min_time} is after max_time {max_time}"
        )));
    }
    let id = new_block_id(now_ms());
    let final_dir = parent.join(&id);
    let mut guard = TmpDir {
        path: parent.join(format!("{id}{TMP_SUFFIX}")),
        armed: false,
    };

    let mut chunks_writer: Option<ChunksWriter> = None;
    let mut symbols = Interner::default();
    let mut records: Vec<SeriesRecord> = Vec::new();
    // Every record's label pairs, back to back: one allocation, not one a
    // series (at 100k series, 6 MB of small allocations).
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut metas: Vec<ChunkMeta> = Vec::new();
    let mut stats = BlockStats::default();
    let mut prev: Option<Vec<(String, String)>> = None;

    for s in series {
        check_labels(&s.labels)?;
        if let Some(p) = &prev {
            if s.labels <= *p {
                return Err(BlockError::InvalidInput(format!(
                    "series not sorted by label set: {} comes after {}",
                    fmt_labels(&s.labels),
                    fmt_labels(p)
                )));
            }
        }
        if !s.chunks.is_empty() {
            check_chunks(&s.labels, &s.chunks, min_time, max_time)?;
            if chunks_writer.is_none() {
                // Created only now, so that empty input leaves no trace.
                fs::create_dir(&guard.path).map_err(|e| BlockError::io(&guard.path, e))?;
                guard.armed = true;
                chunks_writer = Some(ChunksWriter::create(guard.path.join(CHUNKS_FILE), opts)?);
            }
            if let Some(cw) = chunks_writer.as_mut() {
                let start = metas.len();
                for c in &s.chunks {
                    metas.push(ChunkMeta {
                        min_t: c.min_t,
                        max_t: c.max_t,
                        num_samples: c.num_samples,
                        chunk_ref: cw.add(&c.bytes)?,
                    });
                    stats.num_samples += u64::from(c.num_samples);
                }
                stats.num_chunks += s.chunks.len() as u64;
                stats.num_series += 1;
                let first_pair = pairs.len();
                for (n, v) in &s.labels {
                    pairs.push((symbols.intern(n)?, symbols.intern(v)?));
                }
                records.push(SeriesRecord {
                    labels: first_pair..pairs.len(),
                    chunks: start..metas.len(),
                });
            }
        }
        prev = Some(s.labels);
    }

    let Some(cw) = chunks_writer else {
        return Ok(None);
    };
    if u32::try_from(records.len()).is_err() {
        return Err(BlockError::InvalidInput(format!(
            "{} series do not fit in one block (max {})",
            records.len(),
            u32::MAX
        )));
    }
    let chunks_len = cw.finish()?;

    // Symbol ids in the file are positions in sorted order; remap the
    // provisional (first-seen) ids.
    let (sorted_symbols, remap) = symbols.into_sorted();
    for (n, v) in &mut pairs {
        *n = remap[*n as usize];
        *v = remap[*v as usize];
    }
    let sections = build_index(&sorted_symbols, &records, &pairs, &metas, min_time)?;
    write_index_synced(&guard.path.join(INDEX_FILE), &sections, chunks_len)?;

    let meta = BlockMeta {
        version: META_VERSION,
        id,
        min_time,
        max_time,
        stats,
        compaction,
        chunk_encoding,
    };
    let meta_path = guard.path.join(META_FILE);
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| BlockError::io(&meta_path, std::io::Error::other(e)))?;
    write_file_synced(&meta_path, &[&json])?;
    sync_dir(&guard.path).map_err(|e| BlockError::io(&guard.path, e))?;

    // rename(2) would silently replace an empty directory of the same name.
    if final_dir.exists() {
        return Err(BlockError::io(
            &final_dir,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "block already exists"),
        ));
    }
    fs::rename(&guard.path, &final_dir).map_err(|e| BlockError::io(&final_dir, e))?;
    guard.armed = false;
    // Without this the rename may not survive a crash. If it fails the block
    // is in place but possibly not durable; report it so the caller keeps its
    // source data.
    sync_dir(parent).map_err(|e| BlockError::io(parent, e))?;
    Ok(Some(meta))
}

/// Removes the temporary directory unless disarmed after the rename.
struct TmpDir {
    path: PathBuf,
    armed: bool,
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: what stays behind is cleaned by remove_incomplete.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A series of the block being written: where its label pairs and its
/// chunks' metas are in the writer's lists.
struct SeriesRecord {
    labels: Range<usize>,
    chunks: Range<usize>,
}

impl SeriesRecord {
    fn labels<'p>(&self, pairs: &'p [(u32, u32)]) -> &'p [(u32, u32)] {
        pairs.get(self.labels.clone()).unwrap_or_default()
    }
}

/// Assigns provisional ids to strings in first-seen order.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> Result<u32, BlockError> {
        if let Some(&id) = self.ids.get(s) {
            return Ok(id);
        }
        let id = u32::try_from(self.strings.len()).map_err(|_| {
            BlockError::InvalidInput("more than 2^32 distinct label strings".into())
        })?;
        self.strings.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        Ok(id)
    }

    /// Sorted strings and, per provisional id, the final id.
    fn into_sorted(self) -> (Vec<String>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.strings.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.strings[a as usize].cmp(&self.strings[b as usize]));
        let mut remap = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        let mut strings: Vec<Option<String>> = self.strings.into_iter().map(Some).collect();
        let sorted = order
            .iter()
            .map(|&old| strings[old as usize].take().unwrap_or_default())
            .collect();
        (sorted, remap)
    }
}

fn check_labels(labels: &[(String, String)]) -> Result<(), BlockError> {
    if labels.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(BlockError::InvalidInput(format!(
            "labels not sorted by unique name: {}",
            fmt_labels(labels)
        )));
    }
    Ok(())
}

fn check_chunks(
    labels: &[(String, String)],
    chunks: &[ChunkInput<'_>],
    min_time: i64,
    max_time: i64,
) -> Result<(), BlockError> {
    let mut prev_min = i64::MIN;
    for (i, c) in chunks.iter().enumerate() {
        let problem = if c.min_t > c.max_t {
            Some(format!("min_t {} after max_t {}", c.min_t, c.max_t))
        } else if c.min_t < min_time || c.max_t > max_time {
            Some(format!(
                "[{}, {}] outside the block's [{min_time}, {max_time}]",
                c.min_t, c.max_t
            ))
        } else if c.min_t < prev_min {
            Some(format!(
                "min_t {} before the previous chunk's {prev_min}",
                c.min_t
            ))
        } else if c.bytes.len() > MAX_CHUNK_BYTES {
            Some(format!(
                "{} bytes, more than the {MAX_CHUNK_BYTES} allowed",
                c.bytes.len()
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(BlockError::InvalidInput(format!(
                "chunk {i} of series {}: {p}",
                fmt_labels(labels)
            )));
        }
        prev_min = c.min_t;
    }
    Ok(())
}

fn fmt_labels(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Streams chunk bytes into zstd frames in the `chunks` file.
struct ChunksWriter {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes written so far: the offset the next frame will start at.
    written: u64,
    /// Uncompressed bytes of the frame being filled.
    buf: Vec<u8>,
    /// Chunks in `buf`. Counted rather than inferred from `buf.len()`: a
    /// frame of zero-length chunks is empty yet must still be written, since
    /// their references point at it.
    pending: usize,
    zstd: zstd::bulk::Compressor<'static>,
    frame_target: usize,
}

impl ChunksWriter {
    fn create(path: PathBuf, opts: WriteOptions) -> Result<Self, BlockError> {
        let file = File::create_new(&path).map_err(|e| BlockError::io(&path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&file_header(CHUNKS_MAGIC))
            .map_err(|e| BlockError::io(&path, e))?;
        let zstd =
            zstd::bulk::Compressor::new(opts.zstd_level).map_err(|e| BlockError::io(&path, e))?;
        Ok(ChunksWriter {
            path,
            out,
            written: FILE_HEADER_LEN as u64,
            buf: Vec::with_capacity(opts.frame_target + MAX_CHUNK_BYTES.min(1 << 16)),
            pending: 0,
            zstd,
            frame_target: opts.frame_target,
        })
    }

    fn add(&mut self, bytes: &[u8]) -> Result<ChunkRef, BlockError> {
        if self.pending > 0 && self.buf.len() + bytes.len() > self.frame_target {
            self.flush_frame()?;
        }
        // Both fit: the frame is below frame_target + MAX_CHUNK_BYTES.
        let offset = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(bytes);
        self.pending += 1;
        Ok(ChunkRef {
            frame: self.written,
            offset,
            len,
        })
    }

    fn flush_frame(&mut self) -> Result<(), BlockError> {
        let compressed = self
            .zstd
            .compress(&self.buf)
            .map_err(|e| BlockError::io(&self.path, e))?;
        let too_big =
            |_| BlockError::InvalidInput(format!("frame of {} bytes too large", self.buf.len()));
        let clen = u32::try_from(compressed.len()).map_err(too_big)?;
        let ulen = u32::try_from(self.buf.len()).map_err(too_big)?;
        let mut header = [0u8; FRAME_HEADER_LEN];
        header[0..4].copy_from_slice(&clen.to_le_bytes());
        header[4..8].copy_from_slice(&ulen.to_le_bytes());
        header[8..12].copy_from_slice(&frame_crc(clen, ulen, &compressed).to_le_bytes());
        self.out
            .write_all(&header)
            .and_then(|()| self.out.write_all(&compressed))
            .map_err(|e| BlockError::io(&self.path, e))?;
        self.written += (FRAME_HEADER_LEN + compressed.len()) as u64;
        self.buf.clear();
        self.pending = 0;
        Ok(())
    }

    /// Flushes the last frame and fsyncs; returns the file's length.
    fn finish(mut self) -> Result<u64, BlockError> {
        if self.pending > 0 {
            self.flush_frame()?;
        }
        let path = self.path;
        let file = self
            .out
            .into_inner()
            .map_err(|e| BlockError::io(&path, e.into_error()))?;
        file.sync_all().map_err(|e| BlockError::io(&path, e))?;
        Ok(self.written)
    }
}

/// The index file's sections, in memory: written one after the other by
/// [`write_index_synced`] rather than gathered into one more buffer.
fn build_index(
    symbols: &[String],
    records: &[SeriesRecord],
    pairs: &[(u32, u32)],
    metas: &[ChunkMeta],
    base_time: i64,
) -> Result<[Vec<u8>; NUM_SECTIONS], BlockError> {
    let mut sections: [Vec<u8>; NUM_SECTIONS] = Default::default();

    let sym = &mut sections[SEC_SYMBOLS];
    sym.extend_from_slice(&(symbols.len() as u32).to_le_bytes());
    for s in symbols {
        put_uvarint(sym, s.len() as u64);
        sym.extend_from_slice(s.as_bytes());
    }

    let mut series = Vec::new();
    let mut offsets = Vec::with_capacity(records.len() * 4);
    series.extend_from_slice(&base_time.to_le_bytes());
    for r in records {
        let off = u32::try_from(series.len()).map_err(|_| {
            BlockError::InvalidInput("index series section would exceed 4 GiB".into())
        })?;
        offsets.extend_from_slice(&off.to_le_bytes());
        let labels = r.labels(pairs);
        put_uvarint(&mut series, labels.len() as u64);
        for &(n, v) in labels {
            put_uvarint(&mut series, u64::from(n));
            put_uvarint(&mut series, u64::from(v));
        }
        let chunks = metas.get(r.chunks.clone()).unwrap_or_default();
        put_uvarint(&mut series, chunks.len() as u64);
        let (mut prev_min, mut prev_frame) = (base_time, 0u64);
        for c in chunks {
            // Deltas keep timestamps and file offsets to a byte or three.
            put_varint(&mut series, c.min_t.wrapping_sub(prev_min));
            put_uvarint(
                &mut series,
                (i128::from(c.max_t) - i128::from(c.min_t)) as u64,
            );
            put_uvarint(&mut series, u64::from(c.num_samples));
            put_uvarint(&mut series, c.chunk_ref.frame - prev_frame);
            put_uvarint(&mut series, u64::from(c.chunk_ref.offset));
            put_uvarint(&mut series, u64::from(c.chunk_ref.len));
            prev_min = c.min_t;
            prev_frame = c.chunk_ref.frame;
        }
    }
    sections[SEC_SERIES] = series;
    sections[SEC_SERIES_OFFSETS] = offsets;

    // (name id, value id) → series indices; BTreeMap iteration yields names
    // and, within a name, values in symbol order, and indices arrive sorted.
    let mut postings: BTreeMap<(u32, u32), Vec<u32>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        for &pair in r.labels(pairs) {
            postings.entry(pair).or_default().push(i as u32);
        }
    }
    let mut names: Vec<(u32, Vec<(u32, u64)>)> = Vec::new();
    let plists = &mut sections[SEC_POSTINGS];
    for ((name, value), list) in &postings {
        let offset = plists.len() as u64;
        put_uvarint(plists, list.len() as u64);
        let mut prev = 0u32;
        for (j, &s) in list.iter().enumerate() {
            put_uvarint(plists, u64::from(if j == 0 { s } else { s - prev }));
            prev = s;
        }
        match names.last_mut() {
            Some((n, values)) if n == name => values.push((*value, offset)),
            _ => names.push((*name, vec![(*value, offset)])),
        }
    }
    let li = &mut sections[SEC_LABEL_INDEX];
    put_uvarint(li, names.len() as u64);
    for (name, values) in &names {
        put_uvarint(li, u64::from(*name));
        put_uvarint(li, values.len() as u64);
        for &(value, offset) in values {
            put_uvarint(li, u64::from(value));
            put_uvarint(li, offset);
        }
    }

    Ok(sections)
}

/// Writes the index file: its header, `sections`, then their table of
/// contents, and syncs it.
fn write_index_synced(
    path: &Path,
    sections: &[Vec<u8>; NUM_SECTIONS],
    chunks_len: u64,
) -> Result<(), BlockError> {
    let header = file_header(INDEX_MAGIC);
    let mut toc = Toc {
        chunks_len,
        ..Toc::default()
    };
    let mut offset = header.len() as u64;
    for (entry, s) in toc.sections.iter_mut().zip(sections) {
        *entry = Section {
            offset,
            len: s.len() as u64,
            crc: crc32fast::hash(s),
        };
        offset += s.len() as u64;
    }
    let toc = toc.encode();
    let mut parts: Vec<&[u8]> = vec![&header];
    parts.extend(sections.iter().map(Vec::as_slice));
    parts.push(&toc);
    write_file_synced(path, &parts)
}

/// Writes a new file of `parts`, one after the other, and syncs it.
fn write_file_synced(path: &Path, parts: &[&[u8]]) -> Result<(), BlockError> {
    let mut out = BufWriter::new(File::create_new(path).map_err(|e| BlockError::io(path, e))?);
    parts
        .iter()
        .try_for_each(|part| out.write_all(part))
        .and_then(|()| out.into_inner().map_err(|e| e.into_error()))
        .and_then(|file| file.sync_all())
        .map_err(|e| BlockError::io(path, e))
}
