//! Reading a block: mmapped `index` and `chunks`, symbols and the label index
//! held in memory, series and postings decoded on demand, frames cached.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use memmap2::{Mmap, MmapOptions, UncheckedAdvice};

use super::format::{
    check_file_header, frame_crc, Decoder, Toc, CHUNKS_MAGIC, FILE_HEADER_LEN, FRAME_HEADER_LEN,
    INDEX_MAGIC, MAX_FRAME_BYTES, MAX_META_BYTES, META_VERSION, NUM_SECTIONS, SECTION_NAMES,
    SEC_LABEL_INDEX, SEC_POSTINGS, SEC_SERIES, SEC_SERIES_OFFSETS, SEC_SYMBOLS, TOC_LEN,
};
use super::{BlockError, BlockMeta, ChunkMeta, ChunkRef, CHUNKS_FILE, INDEX_FILE, META_FILE};

/// An open, immutable block. `Send + Sync`: share it (e.g. in an `Arc`)
/// between query threads; the frame cache is behind a `Mutex` that is held
/// only for lookups and inserts, never while decompressing.
pub struct Block {
    dir: PathBuf,
    index_path: PathBuf,
    chunks_path: PathBuf,
    meta: BlockMeta,
    index: Mmap,
    chunks: Mmap,
    size_bytes: u64,
    symbols: Symbols,
    num_series: u32,
    base_time: i64,
    /// Byte ranges of sections within `index`.
    series: Range<usize>,
    series_offsets: Range<usize>,
    postings: Range<usize>,
    /// Label names in symbol order; `values` holds each name's values.
    names: Vec<NameEntry>,
    values: Vec<ValueEntry>,
    cache: Mutex<FrameCache>,
    /// Frames decompressed through `chunk` (cache misses), for tests and
    /// diagnostics.
    decompressions: AtomicU64,
}

/// Bytes of one chunk. Shares the decompressed frame it lives in (an
/// `Arc`), so it is cheap to create and clone, and holding it keeps that frame
/// (≤ 64 KiB typically) alive even after the cache evicts it. Head chunks,
/// read one by one, are frames of their own.
#[derive(Clone)]
pub struct ChunkBytes {
    frame: Arc<[u8]>,
    range: Range<usize>,
}

impl Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // The range was checked against the frame when this was built.
        self.frame.get(self.range.clone()).unwrap_or_default()
    }
}

/// A chunk that is all of its bytes (a head chunk read from its file).
impl From<Arc<[u8]>> for ChunkBytes {
    fn from(bytes: Arc<[u8]>) -> ChunkBytes {
        ChunkBytes {
            range: 0..bytes.len(),
            frame: bytes,
        }
    }
}

impl AsRef<[u8]> for ChunkBytes {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for ChunkBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkBytes")
            .field("len", &self.range.len())
            .finish()
    }
}

struct NameEntry {
    name: u32,
    values: Range<usize>,
}

struct ValueEntry {
    value: u32,
    /// Offset of the postings list within the postings section.
    postings: usize,
}

/// All symbols concatenated, with the end of each.
struct Symbols {
    data: String,
    ends: Vec<usize>,
}

impl Symbols {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, id: u32) -> Option<&str> {
        let i = id as usize;
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.data.get(start..end)
    }

    /// The id of `s`, by binary search (symbols are sorted).
    fn find(&self, s: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid as u32)?.cmp(s) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }
}

/// What `open` extracts from the index bytes.
struct IndexParts {
    symbols: Symbols,
    num_series: u32,
    base_time: i64,
    sections: [Range<usize>; NUM_SECTIONS],
    names: Vec<NameEntry>,
    values: Vec<ValueEntry>,
    chunks_len: u64,
}

impl Block {
    /// Opens the block in `dir`. Checks `meta.json` (version, id equal to the
    /// directory name), the index header, TOC and every section CRC, and that
    /// `chunks` has its recorded length and header; frames are checked when
    /// first read ([`Block::verify_all`] checks them all). `cache_bytes`
    /// bounds the decompressed-frame cache (0 disables it; see
    /// [`super::DEFAULT_CACHE_BYTES`]).
    ///
    /// The files are mmapped: they must not be modified or truncated while the
    /// block is open (blocks are immutable; a truncation by someone else would
    /// fault the process, as with any mmap).
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Block, BlockError> {
        let meta_path = dir.join(META_FILE);
        let meta = read_meta(&meta_path)?;
        let dir_name = dir.file_name().and_then(|n| n.to_str());
        if dir_name != Some(meta.id.as_str()) {
            return Err(BlockError::corrupt(
                &meta_path,
                format!(
                    "id {:?} does not match directory name {:?}",
                    meta.id,
                    dir_name.unwrap_or("")
                ),
            ));
        }
        let meta_len = std::fs::metadata(&meta_path)
            .map_err(|e| BlockError::io(&meta_path, e))?
            .len();

        let index_path = dir.join(INDEX_FILE);
        let index = map_file(&index_path, (FILE_HEADER_LEN + TOC_LEN) as u64)?;
        let parts = parse_index(&index).map_err(|w| BlockError::corrupt(&index_path, w))?;
        release_pages(&index);
        if u64::from(parts.num_series) != meta.stats.num_series {
            return Err(BlockError::corrupt(
                &meta_path,
                format!(
                    "stats.num_series is {} but the index has {} series",
                    meta.stats.num_series, parts.num_series
                ),
            ));
        }

        let chunks_path = dir.join(CHUNKS_FILE);
        let chunks = map_file(&chunks_path, FILE_HEADER_LEN as u64)?;
        check_file_header(&chunks, CHUNKS_MAGIC)
            .map_err(|w| BlockError::corrupt(&chunks_path, w))?;
        if chunks.len() as u64 != parts.chunks_len {
            return Err(BlockError::corrupt(
                &chunks_path,
                format!(
                    "file is {} bytes but the index expects {}",
                    chunks.len(),
                    parts.chunks_len
                ),
            ));
        }

        let size_bytes = meta_len + index.len() as u64 + chunks.len() as u64;
        let [_, series, series_offsets, _, postings] = parts.sections;
        Ok(Block {
            dir: dir.to_path_buf(),
            index_path,
            chunks_path,
            meta,
            index,
            chunks,
            size_bytes,
            symbols: parts.symbols,
            num_series: parts.num_series,
            base_time: parts.base_time,
            series,
            series_offsets,
            postings,
            names: parts.names,
            values: parts.values,
            cache: Mutex::new(FrameCache::new(cache_bytes)),
            decompressions: AtomicU64::new(0),
        })
    }

    /// The block's `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of series; their indices are `0..num_series()`.
    pub fn num_series(&self) -> u32 {
        self.num_series
    }

    /// All label names, sorted.
    pub fn label_names(&self) -> Vec<&str> {
        self.names
            .iter()
            .filter_map(|n| self.symbols.get(n.name))
            .collect()
    }

    /// All values of label `name`, sorted (empty for an unknown name).
    pub fn label_values(&self, name: &str) -> Vec<&str> {
        self.name_values(name)
            .iter()
            .filter_map(|v| self.symbols.get(v.value))
            .collect()
    }

    /// Sorted indices of the series that have label `name` = `value` (empty
    /// if none do).
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u32>, BlockError> {
        let Some(value_id) = self.symbols.find(value) else {
            return Ok(Vec::new());
        };
        let values = self.name_values(name);
        match values.binary_search_by_key(&value_id, |v| v.value) {
            Ok(i) => self.decode_postings(values[i].postings),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Every series index, in label-set order.
    pub fn all_series(&self) -> Range<u32> {
        0..self.num_series
    }

    /// The label set of series `index`, sorted by name.
    pub fn series_labels(&self, index: u32) -> Result<Vec<(String, String)>, BlockError> {
        let entry = self.series_entry(index)?;
        let mut d = Decoder::new(entry);
        let ids = decode_label_ids(&mut d).map_err(|w| self.series_corrupt(index, w))?;
        ids.into_iter()
            .map(|(n, v)| match (self.symbols.get(n), self.symbols.get(v)) {
                (Some(n), Some(v)) => Ok((n.to_owned(), v.to_owned())),
                _ => Err(self.series_corrupt(index, format!("symbol {n} or {v} out of range"))),
            })
            .collect()
    }

    /// The chunk metas of series `index`, in time order.
    pub fn series_chunks(&self, index: u32) -> Result<Vec<ChunkMeta>, BlockError> {
        let entry = self.series_entry(index)?;
        self.decode_chunks(entry)
            .map_err(|w| self.series_corrupt(index, w))
    }

    /// The bytes of the chunk `meta` (from [`Block::series_chunks`] of this
    /// block). The first read of a frame verifies its CRC and decompresses it
    /// into the cache; the result shares that frame (see [`ChunkBytes`]).
    pub fn chunk(&self, meta: &ChunkMeta) -> Result<ChunkBytes, BlockError> {
        let r = meta.chunk_ref;
        let frame = self.frame(r.frame)?;
        let start = r.offset as usize;
        let end = start + r.len as usize;
        if end > frame.len() {
            return Err(BlockError::corrupt(
                &self.chunks_path,
                format!(
                    "chunk {start}..{end} runs past the end of the {}-byte frame at offset {}",
                    frame.len(),
                    r.frame
                ),
            ));
        }
        Ok(ChunkBytes {
            frame,
            range: start..end,
        })
    }

    /// Bytes on disk of `meta.json`, `index` and `chunks`.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Full check: walks every frame of `chunks` (CRC, decompressed size),
    /// decodes every series and postings list, checks that every chunk
    /// reference lands inside a frame and that the counts in `meta.json`
    /// match. Reads everything; meant for recovery or a `check` command.
    pub fn verify_all(&self) -> Result<(), BlockError> {
        let mut frames: HashMap<u64, usize> = HashMap::new();
        let mut off = FILE_HEADER_LEN as u64;
        while off < self.chunks.len() as u64 {
            let (data, next) = self.decompress_frame(off)?;
            frames.insert(off, data.len());
            off = next;
        }

        let (mut num_chunks, mut num_samples) = (0u64, 0u64);
        for i in self.all_series() {
            self.series_labels(i)?;
            for c in self.series_chunks(i)? {
                let r = c.chunk_ref;
                let fits = frames
                    .get(&r.frame)
                    .is_some_and(|&len| r.offset as usize + r.len as usize <= len);
                if !fits {
                    return Err(self.series_corrupt(
                        i,
                        format!("chunk reference {r:?} is not inside a frame of chunks"),
                    ));
                }
                num_chunks += 1;
                num_samples += u64::from(c.num_samples);
            }
        }
        for v in &self.values {
            self.decode_postings(v.postings)?;
        }
        let stats = &self.meta.stats;
        if (stats.num_chunks, stats.num_samples) != (num_chunks, num_samples) {
            return Err(BlockError::corrupt(
                &self.dir.join(META_FILE),
                format!(
                    "stats say {} chunks / {} samples, the index has {num_chunks} / {num_samples}",
                    stats.num_chunks, stats.num_samples
                ),
            ));
        }
        Ok(())
    }

    /// Number of frames decompressed by [`Block::chunk`] so far.
    #[cfg(test)]
    pub(super) fn decompressions(&self) -> u64 {
        self.decompressions.load(Ordering::Relaxed)
    }

    /// Bytes currently held by the frame cache.
    #[cfg(test)]
    pub(super) fn cached_bytes(&self) -> usize {
        self.lock_cache().used
    }

    fn name_values(&self, name: &str) -> &[ValueEntry] {
        let Some(name_id) = self.symbols.find(name) else {
            return &[];
        };
        match self.names.binary_search_by_key(&name_id, |n| n.name) {
            Ok(i) => self
                .values
                .get(self.names[i].values.clone())
                .unwrap_or_default(),
            Err(_) => &[],
        }
    }

    fn series_corrupt(&self, index: u32, what: impl std::fmt::Display) -> BlockError {
        BlockError::corrupt(&self.index_path, format!("series {index}: {what}"))
    }

    /// The bytes of series entry `index`, delimited by its offset and the next.
    fn series_entry(&self, index: u32) -> Result<&[u8], BlockError> {
        if index >= self.num_series {
            return Err(BlockError::SeriesOutOfRange {
                index,
                num_series: self.num_series,
            });
        }
        let offset_at = |i: u32| -> Option<usize> {
            let p = self.series_offsets.start + i as usize * 4;
            let b = self.index.get(p..p + 4)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        };
        let start = offset_at(index);
        let end = if index + 1 < self.num_series {
            offset_at(index + 1)
        } else {
            Some(self.series.len())
        };
        match (start, end) {
            (Some(s), Some(e)) if 8 <= s && s < e && e <= self.series.len() => self
                .index
                .get(self.series.start + s..self.series.start + e)
                .ok_or_else(|| self.series_corrupt(index, "entry outside the index")),
            _ => Err(self.series_corrupt(index, format!("bad entry offsets {start:?}..{end:?}"))),
        }
    }

    fn decode_chunks(&self, entry: &[u8]) -> Result<Vec<ChunkMeta>, String> {
        let mut d = Decoder::new(entry);
        decode_label_ids(&mut d)?;
        // Each chunk meta takes at least 6 bytes (six varints).
        let n = d.count("chunk", 6)?;
        let mut out = Vec::with_capacity(n);
        let (mut prev_min, mut prev_frame) = (self.base_time, 0u64);
        for _ in 0..n {
            let min_t = prev_min.wrapping_add(d.varint()?);
            let dur = d.uvarint()?;
            let max_t = i64::try_from(i128::from(min_t) + i128::from(dur))
                .map_err(|_| format!("chunk max_t overflows (min_t {min_t} + {dur})"))?;
            let num_samples = u16::try_from(d.uvarint()?)
                .map_err(|_| "chunk sample count exceeds 65535".to_string())?;
            let frame = prev_frame
                .checked_add(d.uvarint()?)
                .ok_or("chunk frame offset overflows")?;
            let offset = d.uvarint_u32("chunk offset")?;
            let len = d.uvarint_u32("chunk length")?;
            out.push(ChunkMeta {
                min_t,
                max_t,
                num_samples,
                chunk_ref: ChunkRef { frame, offset, len },
            });
            prev_min = min_t;
            prev_frame = frame;
        }
        if !d.is_empty() {
            return Err(format!("{} trailing bytes after the chunks", d.remaining()));
        }
        Ok(out)
    }

    fn decode_postings(&self, offset: usize) -> Result<Vec<u32>, BlockError> {
        let corrupt = |w: String| {
            BlockError::corrupt(
                &self.index_path,
                format!("postings list at offset {offset}: {w}"),
            )
        };
        let section = self.index.get(self.postings.clone()).unwrap_or_default();
        let bytes = section
            .get(offset..)
            .ok_or_else(|| corrupt("outside the postings section".into()))?;
        let mut d = Decoder::new(bytes);
        let n = d.count("postings", 1).map_err(corrupt)?;
        let mut out = Vec::with_capacity(n);
        let mut prev = 0u64;
        for j in 0..n {
            let v = d.uvarint().map_err(corrupt)?;
            if j > 0 && v == 0 {
                return Err(corrupt("series indices not strictly increasing".into()));
            }
            let s = if j == 0 { v } else { prev.saturating_add(v) };
            if s >= u64::from(self.num_series) {
                return Err(corrupt(format!(
                    "series index {s} beyond the {} series",
                    self.num_series
                )));
            }
            out.push(s as u32);
            prev = s;
        }
        Ok(out)
    }

    fn lock_cache(&self) -> MutexGuard<'_, FrameCache> {
        // A panic while holding the lock cannot leave the cache inconsistent
        // in a way that matters (worst case: a stale size count), so recover.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The decompressed frame at `off`, from the cache or decompressed now.
    fn frame(&self, off: u64) -> Result<Arc<[u8]>, BlockError> {
        if let Some(f) = self.lock_cache().get(off) {
            return Ok(f);
        }
        // Decompress without the lock: other readers proceed meanwhile; two
        // threads missing on the same frame both decompress it, harmlessly.
        let (data, _) = self.decompress_frame(off)?;
        self.decompressions.fetch_add(1, Ordering::Relaxed);
        let data: Arc<[u8]> = Arc::from(data);
        self.lock_cache().insert(off, Arc::clone(&data));
        Ok(data)
    }

    /// Reads, CRC-checks and decompresses the frame whose header is at `off`;
    /// returns it and the offset of the next frame.
    fn decompress_frame(&self, off: u64) -> Result<(Vec<u8>, u64), BlockError> {
        let corrupt = |w: String| {
            BlockError::corrupt(&self.chunks_path, format!("frame at offset {off}: {w}"))
        };
        let start = usize::try_from(off)
            .ok()
            .filter(|&s| s >= FILE_HEADER_LEN)
            .ok_or_else(|| corrupt("not a frame offset".into()))?;
        let rest = self
            .chunks
            .get(start..)
            .ok_or_else(|| corrupt("beyond the end of the file".into()))?;
        let mut d = Decoder::new(rest);
        let clen = d.u32_le().map_err(|w| corrupt(format!("header: {w}")))?;
        let ulen = d.u32_le().map_err(|w| corrupt(format!("header: {w}")))?;
        let crc = d.u32_le().map_err(|w| corrupt(format!("header: {w}")))?;
        let compressed = d
            .bytes(clen as usize)
            .map_err(|w| corrupt(format!("compressed data: {w}")))?;
        let computed = frame_crc(clen, ulen, compressed);
        if computed != crc {
            return Err(corrupt(format!(
                "CRC mismatch: stored {crc:08x}, computed {computed:08x}"
            )));
        }
        if ulen as usize > MAX_FRAME_BYTES {
            return Err(corrupt(format!(
                "uncompressed size {ulen} exceeds the {MAX_FRAME_BYTES}-byte limit"
            )));
        }
        // The capacity is the bound: zstd fails rather than grow past it.
        let data =
            decompress(compressed, ulen as usize).map_err(|e| corrupt(format!("zstd: {e}")))?;
        if data.len() != ulen as usize {
            return Err(corrupt(format!(
                "decompressed to {} bytes, header says {ulen}",
                data.len()
            )));
        }
        let next = off + (FRAME_HEADER_LEN as u64) + u64::from(clen);
        Ok((data, next))
    }
}

/// Reads and checks `meta.json` (size-bounded, JSON, version).
fn read_meta(path: &Path) -> Result<BlockMeta, BlockError> {
    let len = std::fs::metadata(path)
        .map_err(|e| BlockError::io(path, e))?
        .len();
    if len > MAX_META_BYTES {
        return Err(BlockError::corrupt(
            path,
            format!("{len} bytes, more than the {MAX_META_BYTES} allowed"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| BlockError::io(path, e))?;
    let meta: BlockMeta = serde_json::from_slice(&bytes)
        .map_err(|e| BlockError::corrupt(path, format!("invalid JSON: {e}")))?;
    if meta.version != META_VERSION {
        return Err(BlockError::corrupt(
            path,
            format!(
                "unsupported version {}, this build reads {META_VERSION}",
                meta.version
            ),
        ));
    }
    if meta.min_time > meta.max_time {
        return Err(BlockError::corrupt(
            path,
            format!(
                "min_time {} after max_time {}",
                meta.min_time, meta.max_time
            ),
        ));
    }
    Ok(meta)
}

/// mmaps `path`, after checking it has at least `min_len` bytes (which also
/// keeps zero-length files away from mmap).
fn map_file(path: &Path, min_len: u64) -> Result<Mmap, BlockError> {
    let file = File::open(path).map_err(|e| BlockError::io(path, e))?;
    let len = file.metadata().map_err(|e| BlockError::io(path, e))?.len();
    if len < min_len {
        return Err(BlockError::corrupt(
            path,
            format!("file is {len} bytes, shorter than the minimum {min_len}"),
        ));
    }
    // SAFETY: block files are immutable once the block directory is renamed
    // into place; nothing in this process writes or truncates them while
    // mapped. Another process doing so is outside the contract (documented on
    // `Block::open`).
    unsafe { MmapOptions::new().map(&file) }.map_err(|e| BlockError::io(path, e))
}

/// Unmaps `map`'s pages from this process; the kernel's page cache keeps
/// them. Checking an index's CRCs reads every page of it through the
/// mapping, which would otherwise stay counted in the process's resident
/// memory (some 8 MB for a 2-hour block of 100k series), while queries
/// touch a few pages each and map back only those.
fn release_pages(map: &Mmap) {
    // SAFETY: a shared read-only mapping of a file nobody writes while it
    // is mapped (see `map_file`): dropping its pages loses nothing, as the
    // next access reads them again from the page cache or the file. Failing
    // only leaves them mapped.
    let _ = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) };
}

fn decode_label_ids(d: &mut Decoder<'_>) -> Result<Vec<(u32, u32)>, String> {
    // Each pair takes at least two bytes.
    let n = d.count("label", 2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = d.uvarint_u32("label name symbol")?;
        let value = d.uvarint_u32("label value symbol")?;
        out.push((name, value));
    }
    Ok(out)
}

/// Verifies the index's header, TOC and section CRCs and loads what `open`
/// keeps in memory. Errors say what is wrong; the caller adds the path.
fn parse_index(b: &[u8]) -> Result<IndexParts, String> {
    check_file_header(b, INDEX_MAGIC)?;
    let toc_start = b
        .len()
        .checked_sub(TOC_LEN)
        .filter(|&s| s >= FILE_HEADER_LEN)
        .ok_or_else(|| format!("file is {} bytes, too short for a TOC", b.len()))?;
    let toc = Toc::decode(b.get(toc_start..).unwrap_or_default())?;

    let mut sections: [Range<usize>; NUM_SECTIONS] = Default::default();
    let mut cursor = FILE_HEADER_LEN;
    for (i, s) in toc.sections.iter().enumerate() {
        let name = SECTION_NAMES[i];
        if s.offset != cursor as u64 {
            return Err(format!(
                "{name} section starts at {} but should start at {cursor}",
                s.offset
            ));
        }
        let end = s
            .offset
            .checked_add(s.len)
            .filter(|&e| e <= toc_start as u64)
            .ok_or_else(|| {
                format!(
                    "{name} section ({} bytes at {}) runs into the TOC at {toc_start}",
                    s.len, s.offset
                )
            })? as usize;
        let bytes = b.get(cursor..end).unwrap_or_default();
        let computed = crc32fast::hash(bytes);
        if computed != s.crc {
            return Err(format!(
                "{name} section CRC mismatch: stored {:08x}, computed {computed:08x}",
                s.crc
            ));
        }
        sections[i] = cursor..end;
        cursor = end;
    }
    if cursor != toc_start {
        return Err(format!(
            "{} bytes between the last section and the TOC",
            toc_start - cursor
        ));
    }
    let section = |i: usize| b.get(sections[i].clone()).unwrap_or_default();

    let symbols = parse_symbols(section(SEC_SYMBOLS)).map_err(|w| format!("symbols: {w}"))?;

    let base_time = Decoder::new(section(SEC_SERIES))
        .u64_le()
        .map_err(|w| format!("series: base time: {w}"))? as i64;

    let offsets_len = section(SEC_SERIES_OFFSETS).len();
    if offsets_len % 4 != 0 {
        return Err(format!(
            "series offsets section is {offsets_len} bytes, not a multiple of 4"
        ));
    }
    let num_series =
        u32::try_from(offsets_len / 4).map_err(|_| "more than 2^32 series".to_string())?;

    let (names, values) = parse_label_index(
        section(SEC_LABEL_INDEX),
        symbols.len(),
        section(SEC_POSTINGS).len(),
    )
    .map_err(|w| format!("label index: {w}"))?;

    Ok(IndexParts {
        symbols,
        num_series,
        base_time,
        sections,
        names,
        values,
        chunks_len: toc.chunks_len,
    })
}

fn parse_symbols(bytes: &[u8]) -> Result<Symbols, String> {
    let mut d = Decoder::new(bytes);
    let n = d.u32_le()? as usize;
    // Each symbol takes at least its one-byte length.
    if n > d.remaining() {
        return Err(format!("count {n} cannot fit in {} bytes", d.remaining()));
    }
    let mut data = String::with_capacity(d.remaining() - n);
    let mut ends = Vec::with_capacity(n);
    let mut prev: Option<&str> = None;
    for i in 0..n {
        let len = d.uvarint()?;
        let raw = d.bytes(usize::try_from(len).map_err(|_| "symbol too long")?)?;
        let s = std::str::from_utf8(raw).map_err(|e| format!("symbol {i}: {e}"))?;
        if prev.is_some_and(|p| p >= s) {
            return Err(format!("symbol {i} {s:?} is not after the previous one"));
        }
        data.push_str(s);
        ends.push(data.len());
        prev = Some(s);
    }
    if !d.is_empty() {
        return Err(format!("{} trailing bytes", d.remaining()));
    }
    Ok(Symbols { data, ends })
}

fn parse_label_index(
    bytes: &[u8],
    num_symbols: usize,
    postings_len: usize,
) -> Result<(Vec<NameEntry>, Vec<ValueEntry>), String> {
    let mut d = Decoder::new(bytes);
    // Name entry ≥ 2 bytes (id, count); value entry ≥ 2 bytes (id, offset).
    let n = d.count("name", 2)?;
    let mut names = Vec::with_capacity(n);
    let mut values = Vec::new();
    let check_sym = |id: u32, prev: Option<u32>, what: &str| -> Result<(), String> {
        if id as usize >= num_symbols {
            return Err(format!(
                "{what} symbol {id} beyond the {num_symbols} symbols"
            ));
        }
        if prev.is_some_and(|p| p >= id) {
            return Err(format!("{what} symbol {id} out of order"));
        }
        Ok(())
    };
    let mut prev_name = None;
    for _ in 0..n {
        let name = d.uvarint_u32("name symbol")?;
        check_sym(name, prev_name, "name")?;
        let nv = d.count("value", 2)?;
        values.reserve(nv);
        let start = values.len();
        let mut prev_value = None;
        for _ in 0..nv {
            let value = d.uvarint_u32("value symbol")?;
            check_sym(value, prev_value, "value")?;
            let postings = usize::try_from(d.uvarint()?)
                .ok()
                .filter(|&p| p < postings_len)
                .ok_or_else(|| format!("postings offset of value {value} out of range"))?;
            values.push(ValueEntry { value, postings });
            prev_value = Some(value);
        }
        names.push(NameEntry {
            name,
            values: start..values.len(),
        });
        prev_name = Some(name);
    }
    if !d.is_empty() {
        return Err(format!("{} trailing bytes", d.remaining()));
    }
    Ok((names, values))
}

/// Decompressed frames by file offset, least recently used evicted first
/// once the total size would exceed the capacity.
struct FrameCache {
    capacity: usize,
    used: usize,
    clock: u64,
    frames: HashMap<u64, CachedFrame>,
    /// last-use tick → frame offset; the first entry is the LRU victim.
    lru: BTreeMap<u64, u64>,
}

struct CachedFrame {
    data: Arc<[u8]>,
    last_used: u64,
}

impl FrameCache {
    fn new(capacity: usize) -> Self {
        FrameCache {
            capacity,
            used: 0,
            clock: 0,
            frames: HashMap::new(),
            lru: BTreeMap::new(),
        }
    }

    fn get(&mut self, frame: u64) -> Option<Arc<[u8]>> {
        let entry = self.frames.get_mut(&frame)?;
        self.lru.remove(&entry.last_used);
        self.clock += 1;
        entry.last_used = self.clock;
        self.lru.insert(self.clock, frame);
        Some(Arc::clone(&entry.data))
    }

    fn insert(&mut self, frame: u64, data: Arc<[u8]>) {
        let size = data.len();
        if size > self.capacity || self.frames.contains_key(&frame) {
            return;
        }
        while self.used + size > self.capacity {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            if let Some(v) = self.frames.remove(&victim) {
                self.used -= v.data.len();
            }
        }
        self.clock += 1;
        self.lru.insert(self.clock, frame);
        self.frames.insert(
            frame,
            CachedFrame {
                data,
                last_used: self.clock,
            },
        );
        self.used += size;
    }
}

thread_local! {
    /// One zstd decompression context per thread: creating one per frame
    /// costs as much as decompressing a small frame.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses one frame of at most `capacity` bytes.
fn decompress(compressed: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return zstd::bulk::decompress(compressed, capacity);
        };
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(decompressor) => decompressor.decompress(compressed, capacity),
            None => zstd::bulk::decompress(compressed, capacity),
        }
    })
}
