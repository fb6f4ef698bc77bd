//! Byte-level pieces shared by the writer and the reader: magic numbers, size
//! limits, varints, the table of contents, and a bounds-checked decoder.
//!
//! Decoding helpers return `Result<_, String>`: the string says *what* is
//! wrong, and the caller (who knows which file it is reading) wraps it into
//! [`super::BlockError::Corrupt`] with the path.

/// First four bytes of the `index` file.
pub(super) const INDEX_MAGIC: [u8; 4] = *b"FMBI";
/// First four bytes of the `chunks` file.
pub(super) const CHUNKS_MAGIC: [u8; 4] = *b"FMBC";
/// Version of the binary `index`/`chunks` layout, stored after the magic.
pub(super) const FORMAT_VERSION: u32 = 1;
/// `version` in `meta.json`.
pub(super) const META_VERSION: u32 = 1;
/// Magic (4 bytes) + format version (u32 LE).
pub(super) const FILE_HEADER_LEN: usize = 8;
/// Compressed length (u32) + uncompressed length (u32) + CRC32 (u32).
pub(super) const FRAME_HEADER_LEN: usize = 12;
/// A frame is cut before the chunk that would take it past this many
/// uncompressed bytes. 64 KiB is large enough for zstd to find the
/// repetition between chunks of neighbouring series (16 KiB frames come out
/// 3.5% larger, 256 KiB ones only 2% smaller), and small enough that reading
/// one chunk decompresses little more than needed.
pub(super) const FRAME_TARGET_BYTES: usize = 64 * 1024;
/// Largest chunk the writer accepts. A Gorilla chunk of ≤120 samples is a few
/// hundred bytes; anything near this is a caller bug.
pub(super) const MAX_CHUNK_BYTES: usize = 1024 * 1024;
/// Largest uncompressed frame the reader will allocate for. The writer never
/// produces more than `max(FRAME_TARGET_BYTES, MAX_CHUNK_BYTES)`; the bound
/// keeps a corrupt length field from asking for gigabytes.
pub(super) const MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;
/// `meta.json` is tiny; refuse to read a huge one into memory.
pub(super) const MAX_META_BYTES: u64 = 16 * 1024 * 1024;
/// zstd level of the frames. Blocks are written once (by compaction, in the
/// background) and read many times, and decompression speed barely depends on
/// the level. Measured on 100k synthetic Gorilla series (1.38 B/sample), the
/// chunks file costs 0.99 B/sample at level 3 (write ~0.2 s), 0.92 at level 9
/// (~0.5 s) and 0.90 at level 19 (3-4 s): 9 buys most of the gain cheaply.
pub(super) const ZSTD_LEVEL: i32 = 9;

/// Sections of the index, in file order.
pub(super) const SEC_SYMBOLS: usize = 0;
pub(super) const SEC_SERIES: usize = 1;
pub(super) const SEC_SERIES_OFFSETS: usize = 2;
pub(super) const SEC_LABEL_INDEX: usize = 3;
pub(super) const SEC_POSTINGS: usize = 4;
pub(super) const NUM_SECTIONS: usize = 5;
/// Human names for error messages, indexed like the `SEC_*` constants.
pub(super) const SECTION_NAMES: [&str; NUM_SECTIONS] = [
    "symbols",
    "series",
    "series offsets",
    "label index",
    "postings",
];
/// Each section: offset u64 + length u64 + CRC32 u32; then the expected
/// length of the chunks file (u64) and the CRC32 of the TOC itself (u32).
pub(super) const TOC_LEN: usize = NUM_SECTIONS * 20 + 8 + 4;

/// Where one index section lives and its checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Section {
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) crc: u32,
}

/// The fixed-size table of contents at the end of the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Toc {
    pub(super) sections: [Section; NUM_SECTIONS],
    /// Length the chunks file must have: lets `open` catch a truncated or
    /// swapped chunks file without reading it.
    pub(super) chunks_len: u64,
}

impl Toc {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOC_LEN);
        for s in &self.sections {
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&s.len.to_le_bytes());
            out.extend_from_slice(&s.crc.to_le_bytes());
        }
        out.extend_from_slice(&self.chunks_len.to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<Toc, String> {
        if bytes.len() != TOC_LEN {
            return Err(format!(
                "table of contents is {} bytes, expected {TOC_LEN}",
                bytes.len()
            ));
        }
        let (body, crc_bytes) = bytes.split_at(TOC_LEN - 4);
        let stored = u32::from_le_bytes(crc_bytes.try_into().map_err(|_| "short TOC CRC")?);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(format!(
                "table of contents CRC mismatch: stored {stored:08x}, computed {computed:08x}"
            ));
        }
        let mut d = Decoder::new(body);
        let mut toc = Toc::default();
        for s in &mut toc.sections {
            s.offset = d.u64_le()?;
            s.len = d.u64_le()?;
            s.crc = d.u32_le()?;
        }
        toc.chunks_len = d.u64_le()?;
        Ok(toc)
    }
}

/// Magic followed by the format version.
pub(super) fn file_header(magic: [u8; 4]) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..4].copy_from_slice(&magic);
    h[4..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

pub(super) fn check_file_header(bytes: &[u8], magic: [u8; 4]) -> Result<(), String> {
    let Some(h) = bytes.get(..FILE_HEADER_LEN) else {
        return Err(format!(
            "file is {} bytes, shorter than its {FILE_HEADER_LEN}-byte header",
            bytes.len()
        ));
    };
    if h[..4] != magic {
        return Err(format!(
            "bad magic {:02x?}, expected {:02x?}",
            &h[..4],
            magic
        ));
    }
    let mut d = Decoder::new(&h[4..]);
    let version = d.u32_le()?;
    if version != FORMAT_VERSION {
        return Err(format!(
            "unsupported format version {version}, this build reads {FORMAT_VERSION}"
        ));
    }
    Ok(())
}

/// CRC32 of a frame: covers both length fields as well as the compressed
/// bytes, so a flipped length is caught before it is used.
pub(super) fn frame_crc(compressed_len: u32, uncompressed_len: u32, compressed: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&compressed_len.to_le_bytes());
    h.update(&uncompressed_len.to_le_bytes());
    h.update(compressed);
    h.finalize()
}

/// LEB128 unsigned varint.
pub(super) fn put_uvarint(out: &mut Vec<u8>, v: u64) {
    let (bytes, len) = uvarint(v);
    out.extend_from_slice(&bytes[..len]);
}

/// Writes `v` as an unsigned varint into `buf` at `at`, which must have
/// room for it; returns the bytes it takes.
pub(super) fn put_uvarint_at(buf: &mut [u8], at: usize, v: u64) -> usize {
    let (bytes, len) = uvarint(v);
    if let Some(place) = buf.get_mut(at..at + len) {
        place.copy_from_slice(&bytes[..len]);
    }
    len
}

/// `v` as an unsigned varint (LEB128): its bytes, and how many it takes.
fn uvarint(mut v: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut len = 0;
    while v >= 0x80 {
        bytes[len] = (v as u8) | 0x80;
        v >>= 7;
        len += 1;
    }
    bytes[len] = v as u8;
    (bytes, len + 1)
}

/// Zigzag-encoded signed varint (small magnitudes of either sign stay short).
pub(super) fn put_varint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Bounds-checked reader over a byte slice. Every method fails with a message
/// instead of panicking when the input ends early or is malformed.
pub(super) struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "needs {n} bytes at offset {} but only {} remain",
                    self.pos,
                    self.remaining()
                )
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(super) fn u32_le(&mut self) -> Result<u32, String> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn u64_le(&mut self) -> Result<u64, String> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub(super) fn uvarint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(format!("varint runs past the end at offset {}", self.pos));
            };
            self.pos += 1;
            // The 10th byte may only carry the single remaining bit.
            if i == 9 && b > 1 {
                return Err(format!("varint overflows u64 at offset {}", self.pos - 1));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(format!(
            "varint longer than 10 bytes at offset {}",
            self.pos
        ))
    }

    pub(super) fn varint(&mut self) -> Result<i64, String> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A uvarint that must fit in u32 (symbol ids, series indices, lengths).
    pub(super) fn uvarint_u32(&mut self, what: &str) -> Result<u32, String> {
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| format!("{what} {v} does not fit in u32"))
    }

    /// A count of items that each take at least `min_item_bytes` bytes: it is
    /// checked against the bytes left, so it can size an allocation safely.
    pub(super) fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, String> {
        let n = self.uvarint()?;
        let max = (self.remaining() / min_item_bytes.max(1)) as u64;
        if n > max {
            return Err(format!(
                "{what} count {n} cannot fit in the {} bytes left",
                self.remaining()
            ));
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_garbage() {
        let vals_u = [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX];
        let vals_i = [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX];
        let mut out = Vec::new();
        for &v in &vals_u {
            put_uvarint(&mut out, v);
        }
        for &v in &vals_i {
            put_varint(&mut out, v);
        }
        let mut d = Decoder::new(&out);
        for &v in &vals_u {
            assert_eq!(d.uvarint().unwrap(), v);
        }
        for &v in &vals_i {
            assert_eq!(d.varint().unwrap(), v);
        }
        assert!(d.is_empty());
        assert!(Decoder::new(&[0x80]).uvarint().is_err());
        assert!(Decoder::new(&[0xff; 11]).uvarint().is_err());
        assert!(
            Decoder::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
                .uvarint()
                .is_err()
        );
        // A count larger than the bytes left is refused before any allocation.
        let mut big = Vec::new();
        put_uvarint(&mut big, 1 << 40);
        assert!(Decoder::new(&big).count("things", 1).is_err());
    }

    #[test]
    fn toc_round_trip_and_crc() {
        let mut toc = Toc::default();
        for (i, s) in toc.sections.iter_mut().enumerate() {
            *s = Section {
                offset: i as u64 * 100,
                len: 100,
                crc: i as u32,
            };
        }
        toc.chunks_len = 12345;
        let mut b = toc.encode();
        assert_eq!(b.len(), TOC_LEN);
        assert_eq!(Toc::decode(&b).unwrap(), toc);
        b[3] ^= 1;
        assert!(Toc::decode(&b).unwrap_err().contains("CRC"));
    }
}
