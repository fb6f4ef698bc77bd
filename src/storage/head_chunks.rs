//! Sealed head chunks, kept in files under `chunks_head/` instead of the
//! heap, so that the head's resident memory per series is its labels, its
//! chunk references and its one open chunk, whatever the head's length.
//!
//! The files are a cache of what the WAL already holds: nothing in them is
//! ever fsynced or read at start. [`HeadChunkFiles::open`] empties the
//! directory, and WAL replay writes the chunks again as it seals them. A chunk
//! is appended to the current file (new files start at [`FILE_BYTES`]); the
//! newest bytes wait in a small in-memory buffer (bounded by
//! [`PENDING_BYTES`]) so that sealing a chunk costs no system call. Reads go
//! through `pread`, so the kernel's page cache, not this process, holds the
//! bytes. A file is deleted once every chunk in it ends before the oldest
//! time the head still keeps.
//!
//! When a write fails (a full disk, say), the chunk stays in memory instead:
//! the head keeps working and the WAL still has the samples.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Size at which a new chunk file is started.
pub const FILE_BYTES: u32 = 64 * 1024 * 1024;
/// Bytes of sealed chunks held in memory before they are written out.
pub const PENDING_BYTES: usize = 256 * 1024;
/// File number reserved for chunks that could not be written to a file.
const IN_MEMORY: u32 = u32::MAX;

/// Where a sealed chunk's bytes are: a file number and an offset in it (or,
/// for file [`IN_MEMORY`], an index into the in-memory fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoc {
    file: u32,
    offset: u32,
}

struct Segment {
    file: Arc<File>,
    /// Bytes written to the file (the pending buffer not included).
    written: u32,
    /// Newest sample time of any chunk in the file (pending ones included).
    max_t: i64,
}

#[derive(Default)]
struct Inner {
    segments: BTreeMap<u32, Segment>,
    /// The file new chunks go to (the last of `segments`), if any.
    current: Option<u32>,
    next_file: u32,
    /// Chunks of the current file not written yet; they start at its `written` offset.
    pending: Vec<u8>,
    /// Chunks whose write failed, with their newest sample time.
    in_memory: BTreeMap<u32, (Arc<[u8]>, i64)>,
    next_in_memory: u32,
}

/// The spill files of the head's sealed chunks.
pub struct HeadChunkFiles {
    dir: PathBuf,
    inner: Mutex<Inner>,
}

impl HeadChunkFiles {
    /// Opens `dir` (created if needed) and removes what an earlier run left in it.
    pub fn open(dir: &Path) -> io::Result<HeadChunkFiles> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_file() {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(HeadChunkFiles {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, id: u32) -> PathBuf {
        self.dir.join(format!("{id:06}"))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a sealed chunk whose newest sample is at `max_t`.
    pub fn put(&self, bytes: &[u8], max_t: i64) -> ChunkLoc {
        let mut inner = self.lock();
        match self.put_in_file(&mut inner, bytes, max_t) {
            Ok(loc) => loc,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write a head chunk file; the chunk stays in memory");
                let index = inner.next_in_memory;
                inner.next_in_memory = inner.next_in_memory.wrapping_add(1);
                inner.in_memory.insert(index, (Arc::from(bytes), max_t));
                ChunkLoc {
                    file: IN_MEMORY,
                    offset: index,
                }
            }
        }
    }

    fn put_in_file(&self, inner: &mut Inner, bytes: &[u8], max_t: i64) -> io::Result<ChunkLoc> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "chunk too large"))?;
        let fits = |inner: &Inner, id: u32| {
            inner.segments.get(&id).is_some_and(|s| {
                u64::from(s.written) + inner.pending.len() as u64 + u64::from(len)
                    <= u64::from(FILE_BYTES)
            })
        };
        let id = match inner.current {
            Some(id) if fits(inner, id) => id,
            _ => self.start_file(inner)?,
        };
        let pending_len = inner.pending.len() as u32;
        let segment = inner
            .segments
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("current head chunk file vanished"))?;
        let offset = segment.written + pending_len;
        segment.max_t = segment.max_t.max(max_t);
        inner.pending.extend_from_slice(bytes);
        if inner.pending.len() >= PENDING_BYTES {
            Self::flush(inner)?;
        }
        Ok(ChunkLoc { file: id, offset })
    }

    /// Writes the pending chunks to the current file.
    fn flush(inner: &mut Inner) -> io::Result<()> {
        let Some(id) = inner.current else {
            return Ok(());
        };
        if inner.pending.is_empty() {
            return Ok(());
        }
        let segment = inner
            .segments
            .get_mut(&id)
            .ok_or_else(|| io::Error::other("current head chunk file vanished"))?;
        (&*segment.file).write_all(&inner.pending)?;
        segment.written += inner.pending.len() as u32;
        inner.pending.clear();
        Ok(())
    }

    fn start_file(&self, inner: &mut Inner) -> io::Result<u32> {
        Self::flush(inner)?;
        let id = inner.next_file;
        let path = self.path_of(id);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .open(&path)?;
        inner.next_file += 1;
        inner.segments.insert(
            id,
            Segment {
                file: Arc::new(file),
                written: 0,
                max_t: i64::MIN,
            },
        );
        inner.current = Some(id);
        Ok(id)
    }

    /// The `len` bytes of the chunk at `loc`.
    pub fn get(&self, loc: ChunkLoc, len: usize) -> io::Result<Arc<[u8]>> {
        let inner = self.lock();
        if loc.file == IN_MEMORY {
            return inner
                .in_memory
                .get(&loc.offset)
                .map(|(bytes, _)| bytes.clone())
                .ok_or_else(|| io::Error::other("head chunk no longer held"));
        }
        let segment = inner.segments.get(&loc.file).ok_or_else(|| {
            io::Error::other(format!("head chunk file {:06} was removed", loc.file))
        })?;
        if inner.current == Some(loc.file) && loc.offset >= segment.written {
            let start = (loc.offset - segment.written) as usize;
            return inner
                .pending
                .get(start..start + len)
                .map(Arc::from)
                .ok_or_else(|| io::Error::other("head chunk past the end of its file"));
        }
        let file = segment.file.clone();
        drop(inner);
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, u64::from(loc.offset))
            .map_err(|e| {
                let path = self.path_of(loc.file);
                io::Error::new(e.kind(), format!("{}: {e}", path.display()))
            })?;
        Ok(Arc::from(bytes))
    }

    /// Frees every file (and in-memory chunk) whose chunks all end before
    /// `boundary`: the head holds no reference to them any more.
    pub fn release_before(&self, boundary: i64) -> io::Result<()> {
        let mut inner = self.lock();
        inner.in_memory.retain(|_, (_, max_t)| *max_t >= boundary);
        let current = inner.current;
        let old: Vec<u32> = inner
            .segments
            .iter()
            .filter(|(id, s)| Some(**id) != current && s.max_t < boundary)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            if inner.segments.remove(&id).is_some() {
                std::fs::remove_file(self.path_of(id))?;
            }
        }
        Ok(())
    }

    /// Deletes every file and forgets every chunk: for a stop, once the
    /// head is in a checkpoint. The head's sealed chunks no longer read.
    pub fn release_all(&self) -> io::Result<()> {
        let mut inner = self.lock();
        inner.in_memory.clear();
        inner.pending.clear();
        inner.current = None;
        for id in std::mem::take(&mut inner.segments).into_keys() {
            std::fs::remove_file(self.path_of(id))?;
        }
        Ok(())
    }

    /// Bytes held: in files, pending and in memory.
    pub fn size_bytes(&self) -> u64 {
        let inner = self.lock();
        inner
            .segments
            .values()
            .map(|s| u64::from(s.written))
            .sum::<u64>()
            + inner.pending.len() as u64
            + inner
                .in_memory
                .values()
                .map(|(b, _)| b.len() as u64)
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_back_from_the_buffer_and_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = HeadChunkFiles::open(dir.path()).unwrap();
        let mut locs = Vec::new();
        // Enough to flush the pending buffer several times.
        for i in 0..5_000u32 {
            let bytes: Vec<u8> = (0..(i % 300) + 1).map(|b| (b ^ i) as u8).collect();
            locs.push((files.put(&bytes, i64::from(i)), bytes));
        }
        for (loc, bytes) in &locs {
            assert_eq!(&*files.get(*loc, bytes.len()).unwrap(), bytes.as_slice());
        }
        assert!(files.size_bytes() > PENDING_BYTES as u64);
    }

    #[test]
    fn open_empties_the_directory_and_release_deletes_old_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("000000"), b"left by a crash").unwrap();
        let files = HeadChunkFiles::open(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let first = files.put(&[1, 2, 3], 10);
        // Force a second file by starting one directly.
        {
            let mut inner = files.lock();
            files.start_file(&mut inner).unwrap();
        }
        let second = files.put(&[4, 5], 20);
        files.release_before(11).unwrap();
        assert!(
            files.get(first, 3).is_err(),
            "the file holding t=10 is gone"
        );
        assert_eq!(&*files.get(second, 2).unwrap(), &[4, 5]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_chunk_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let files = HeadChunkFiles::open(&dir.path().join("chunks")).unwrap();
        // Make new files impossible to create.
        std::fs::remove_dir(dir.path().join("chunks")).unwrap();
        let loc = files.put(&[7, 8, 9], 5);
        assert_eq!(&*files.get(loc, 3).unwrap(), &[7, 8, 9]);
        files.release_before(6).unwrap();
        assert!(files.get(loc, 3).is_err());
    }
}
