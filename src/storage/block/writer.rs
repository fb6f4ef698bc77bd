//! Writing a block: chunks are streamed into zstd frames as series arrive;
//! labels are interned and the index is built once all series are seen
//! (symbol ids depend on the sorted set of all strings).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fs::{self, File};
use std::hash::Hash;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::format::{
    file_header, frame_crc, put_uvarint, put_uvarint_at, put_varint, Section, Toc, CHUNKS_MAGIC,
    FILE_HEADER_LEN, FRAME_HEADER_LEN, FRAME_TARGET_BYTES, INDEX_MAGIC, MAX_CHUNK_BYTES,
    META_VERSION, SEC_LABEL_INDEX, SEC_POSTINGS, SEC_SERIES, SEC_SERIES_OFFSETS, SEC_SYMBOLS,
    ZSTD_LEVEL,
};
use super::{
    new_block_id, now_ms, sync_dir, BlockError, BlockMeta, BlockStats, ChunkInput, ChunkRef,
    Compaction, SeriesInput, CHUNKS_FILE, INDEX_FILE, META_FILE, TMP_SUFFIX,
};
use crate::storage::codec::Encoding;
use crate::storage::encoding::uvarint_len;

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
    let mut symbols = Interner::new("label strings");
    let mut pairs = Interner::new("label pairs");
    let mut series_list = SeriesList::default();
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
                let mut list =
                    ChunkListEncoder::new(&mut series_list.chunk_lists, min_time, s.chunks.len());
                for c in &s.chunks {
                    list.push(c, cw.add(&c.bytes)?);
                    stats.num_samples += u64::from(c.num_samples);
                }
                stats.num_chunks += s.chunks.len() as u64;
                stats.num_series += 1;
                for (n, v) in &s.labels {
                    let pair = pairs.intern(&(symbols.intern(n)?, symbols.intern(v)?))?;
                    series_list.pairs.push(pair);
                }
                series_list.end_series()?;
            }
        }
        prev = Some(s.labels);
    }

    let Some(cw) = chunks_writer else {
        return Ok(None);
    };
    let chunks_len = cw.finish()?;

    // Symbol ids in the file are positions in sorted order; remap the
    // provisional (first-seen) ids.
    let (sorted_symbols, remap) = symbols.into_sorted();
    let pairs = pairs.into_remapped(&remap);
    write_index_synced(
        &guard.path.join(INDEX_FILE),
        &sorted_symbols,
        &pairs,
        &series_list,
        min_time,
        chunks_len,
    )?;

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
    write_file_synced(&meta_path, &json)?;
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

/// The series of the block being written, in order: each one's label
/// pairs (as ids of the block's distinct pairs) and its encoded chunk list, back to back in
/// two lists, with where each series ends in them. About 50 bytes a series
/// of 7 labels and 5 chunks, in three allocations: a `Vec` of pairs and a
/// `ChunkMeta` list per series took some 250, in many.
#[derive(Default)]
struct SeriesList {
    pairs: Vec<u32>,
    chunk_lists: Vec<u8>,
    /// Per series, the end of its pairs and of its chunk list.
    ends: Vec<(u32, u32)>,
}

impl SeriesList {
    /// Closes the series whose pairs and chunk list were just pushed.
    fn end_series(&mut self) -> Result<(), BlockError> {
        let too_large =
            |what: &str| BlockError::InvalidInput(format!("the block's {what} would exceed 4 GiB"));
        let pairs = u32::try_from(self.pairs.len()).map_err(|_| too_large("label pairs"))?;
        // The chunk lists are part of the index's series section, whose
        // offsets are 32-bit.
        let chunks =
            u32::try_from(self.chunk_lists.len()).map_err(|_| too_large("series section"))?;
        if self.ends.len() == u32::MAX as usize {
            return Err(BlockError::InvalidInput(format!(
                "more than {} series do not fit in one block",
                u32::MAX
            )));
        }
        self.ends.push((pairs, chunks));
        Ok(())
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Each series' pair ids and its encoded chunk list.
    fn iter(&self) -> impl Iterator<Item = (&[u32], &[u8])> + '_ {
        let starts = std::iter::once((0, 0)).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|((p0, c0), &(p1, c1))| {
            (
                self.pairs.get(p0 as usize..p1 as usize).unwrap_or_default(),
                self.chunk_lists
                    .get(c0 as usize..c1 as usize)
                    .unwrap_or_default(),
            )
        })
    }
}

/// Encodes a series' chunk list as the index's series entry holds it: the
/// count, then per chunk its times, sample count and place in `chunks`,
/// as deltas from the previous chunk's (timestamps and file offsets then
/// take a byte or three).
struct ChunkListEncoder<'o> {
    out: &'o mut Vec<u8>,
    prev_min: i64,
    prev_frame: u64,
}

impl<'o> ChunkListEncoder<'o> {
    fn new(out: &'o mut Vec<u8>, base_time: i64, count: usize) -> Self {
        put_uvarint(out, count as u64);
        ChunkListEncoder {
            out,
            prev_min: base_time,
            prev_frame: 0,
        }
    }

    fn push(&mut self, c: &ChunkInput<'_>, at: ChunkRef) {
        let out = &mut *self.out;
        put_varint(out, c.min_t.wrapping_sub(self.prev_min));
        put_uvarint(out, (i128::from(c.max_t) - i128::from(c.min_t)) as u64);
        put_uvarint(out, u64::from(c.num_samples));
        put_uvarint(out, at.frame - self.prev_frame);
        put_uvarint(out, u64::from(at.offset));
        put_uvarint(out, u64::from(at.len));
        self.prev_min = c.min_t;
        self.prev_frame = at.frame;
    }
}

/// Assigns provisional ids in first-seen order: to label strings, and to
/// label pairs (by their strings' ids), so that a series lists a 4-byte
/// pair id per label and the postings are built per pair.
struct Interner<K> {
    ids: HashMap<K, u32>,
    items: Vec<K>,
    /// What is interned, for the error past 2^32 of them.
    what: &'static str,
}

impl<K: Clone + Eq + Hash> Interner<K> {
    fn new(what: &'static str) -> Self {
        Interner {
            ids: HashMap::new(),
            items: Vec::new(),
            what,
        }
    }

    fn intern<Q>(&mut self, item: &Q) -> Result<u32, BlockError>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(&id) = self.ids.get(item) {
            return Ok(id);
        }
        let id = u32::try_from(self.items.len()).map_err(|_| {
            BlockError::InvalidInput(format!("more than 2^32 distinct {}", self.what))
        })?;
        self.items.push(item.to_owned());
        self.ids.insert(item.to_owned(), id);
        Ok(id)
    }
}

impl Interner<String> {
    /// Sorted strings and, per provisional id, the final id.
    fn into_sorted(self) -> (Vec<String>, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.items.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.items[a as usize].cmp(&self.items[b as usize]));
        let mut remap = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        let mut strings: Vec<Option<String>> = self.items.into_iter().map(Some).collect();
        let sorted = order
            .iter()
            .map(|&old| strings[old as usize].take().unwrap_or_default())
            .collect();
        (sorted, remap)
    }
}

impl Interner<(u32, u32)> {
    /// The pairs by id, their string ids replaced by `remap[id]`.
    fn into_remapped(self, remap: &[u32]) -> Vec<(u32, u32)> {
        let symbol = |id: u32| remap.get(id as usize).copied().unwrap_or_default();
        self.items
            .into_iter()
            .map(|(n, v)| (symbol(n), symbol(v)))
            .collect()
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

/// Writes the index file, section by section, and syncs it. The series
/// section, the largest, goes straight to the file as it is encoded; the
/// others are small (the postings about a byte per label of a series) and
/// are built in memory.
fn write_index_synced(
    path: &Path,
    symbols: &[String],
    pairs: &[(u32, u32)],
    series: &SeriesList,
    base_time: i64,
    chunks_len: u64,
) -> Result<(), BlockError> {
    let io = |e| BlockError::io(path, e);
    let file = File::create_new(path).map_err(io)?;
    let mut out = SectionWriter::new(BufWriter::with_capacity(1 << 20, file));
    out.raw(&file_header(INDEX_MAGIC)).map_err(io)?;
    let mut toc = Toc {
        chunks_len,
        ..Toc::default()
    };

    let mut sym = Vec::new();
    sym.extend_from_slice(&(symbols.len() as u32).to_le_bytes());
    for s in symbols {
        put_uvarint(&mut sym, s.len() as u64);
        sym.extend_from_slice(s.as_bytes());
    }
    toc.sections[SEC_SYMBOLS] = out.section(&sym).map_err(io)?;

    let mut offsets = Vec::with_capacity(series.len() * 4);
    let mut entry = Vec::new();
    out.begin();
    out.write(&base_time.to_le_bytes()).map_err(io)?;
    for (pair_ids, chunk_list) in series.iter() {
        let off = u32::try_from(out.section_len()).map_err(|_| {
            BlockError::InvalidInput("index series section would exceed 4 GiB".into())
        })?;
        offsets.extend_from_slice(&off.to_le_bytes());
        entry.clear();
        put_uvarint(&mut entry, pair_ids.len() as u64);
        for &(n, v) in pair_ids.iter().filter_map(|&p| pairs.get(p as usize)) {
            put_uvarint(&mut entry, u64::from(n));
            put_uvarint(&mut entry, u64::from(v));
        }
        out.write(&entry).map_err(io)?;
        out.write(chunk_list).map_err(io)?;
    }
    toc.sections[SEC_SERIES] = out.end();
    toc.sections[SEC_SERIES_OFFSETS] = out.section(&offsets).map_err(io)?;
    drop(offsets);

    let (label_index, postings) = encode_postings(pairs, series);
    toc.sections[SEC_LABEL_INDEX] = out.section(&label_index).map_err(io)?;
    toc.sections[SEC_POSTINGS] = out.section(&postings).map_err(io)?;
    out.raw(&toc.encode()).map_err(io)?;
    out.into_inner()
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|file| file.sync_all())
        .map_err(io)
}

/// The label index and postings sections: for each label pair, in symbol
/// order of name then value, the series that have it. The postings are
/// sized first and then written in place, so they take their encoded size
/// (about a byte per label of a series) and no list of series indices.
fn encode_postings(pairs: &[(u32, u32)], series: &SeriesList) -> (Vec<u8>, Vec<u8>) {
    // Per pair: series counted, and bytes of their deltas.
    let mut count = vec![0u32; pairs.len()];
    let mut delta_bytes = vec![0usize; pairs.len()];
    for_each_posting(series, pairs.len(), |p, delta| {
        count[p] += 1;
        delta_bytes[p] += uvarint_len(u64::from(delta));
    });

    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_unstable_by_key(|&p| pairs[p]);
    // Each list: its count, then room for its deltas, which `cursor` fills.
    let mut cursor = vec![0usize; pairs.len()];
    let mut postings = Vec::new();
    let mut names: Vec<(u32, Vec<(u32, u64)>)> = Vec::new();
    for &p in &order {
        let (name, value) = pairs[p];
        let offset = postings.len() as u64;
        match names.last_mut() {
            Some((n, values)) if *n == name => values.push((value, offset)),
            _ => names.push((name, vec![(value, offset)])),
        }
        put_uvarint(&mut postings, u64::from(count[p]));
        cursor[p] = postings.len();
        postings.resize(postings.len() + delta_bytes[p], 0);
    }
    for_each_posting(series, pairs.len(), |p, delta| {
        cursor[p] += put_uvarint_at(&mut postings, cursor[p], u64::from(delta));
    });

    let mut li = Vec::new();
    put_uvarint(&mut li, names.len() as u64);
    for (name, values) in &names {
        put_uvarint(&mut li, u64::from(*name));
        put_uvarint(&mut li, values.len() as u64);
        for &(value, offset) in values {
            put_uvarint(&mut li, u64::from(value));
            put_uvarint(&mut li, offset);
        }
    }
    (li, postings)
}

/// Calls `visit(pair, delta)` for each label of each series, in series
/// order: `delta` is the series' index minus that of the pair's previous
/// series, or the index itself for the pair's first (a postings list's
/// encoding).
fn for_each_posting(series: &SeriesList, num_pairs: usize, mut visit: impl FnMut(usize, u32)) {
    let mut last = vec![0u32; num_pairs];
    for (i, (pair_ids, _)) in series.iter().enumerate() {
        let i = i as u32;
        for &p in pair_ids {
            let p = p as usize;
            if let Some(last) = last.get_mut(p) {
                visit(p, i - *last);
                *last = i;
            }
        }
    }
}

/// Writes a file's sections one after the other, keeping each one's
/// offset, length and checksum for the table of contents.
struct SectionWriter<W: Write> {
    out: W,
    /// Bytes written so far.
    offset: u64,
    /// Where the section being written starts, and its checksum so far.
    start: u64,
    crc: crc32fast::Hasher,
}

impl<W: Write> SectionWriter<W> {
    fn new(out: W) -> Self {
        SectionWriter {
            out,
            offset: 0,
            start: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Writes bytes outside any section (a header, the table of contents).
    fn raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn begin(&mut self) {
        self.start = self.offset;
        self.crc = crc32fast::Hasher::new();
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.raw(bytes)
    }

    /// Bytes of the current section written so far.
    fn section_len(&self) -> u64 {
        self.offset - self.start
    }

    fn end(&mut self) -> Section {
        Section {
            offset: self.start,
            len: self.section_len(),
            crc: std::mem::take(&mut self.crc).finalize(),
        }
    }

    /// Writes a whole section.
    fn section(&mut self, bytes: &[u8]) -> std::io::Result<Section> {
        self.begin();
        self.write(bytes)?;
        Ok(self.end())
    }

    fn into_inner(self) -> W {
        self.out
    }
}

/// Writes a new file of `bytes` and syncs it.
fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<(), BlockError> {
    let mut file = File::create_new(path).map_err(|e| BlockError::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| BlockError::io(path, e))
}
