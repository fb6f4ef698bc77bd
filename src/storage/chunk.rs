//! Gorilla-style ("XOR") compression of one series' samples.
//!
//! This module owns the byte encoding of a run of `(timestamp, value)` samples
//! of a single series — millisecond `i64` timestamps and `f64` values — and its
//! decoding: [`XorChunk`] appends to an open chunk, [`ChunkIter`] and [`decode`]
//! read encoded bytes from anywhere (the head's memory, an mmapped block file).
//! It knows nothing of series, labels, sample ordering or storage: the head
//! checks ordering and cuts a new chunk after [`MAX_SAMPLES`]; block files store
//! the bytes of [`XorChunk::bytes`] with their own length and checksum.
//!
//! # Byte format
//!
//! Bit-compatible with Prometheus's XOR chunk (`chunkenc.EncXOR`), so its
//! documentation and test data apply; the tests hold chunks written by
//! Prometheus 2.42, which this decodes and this encoder reproduces byte for
//! byte:
//!
//! ```text
//! chunk     = count (u16, big-endian: number of samples) , stream
//! stream    = bit fields, each written most significant bit first, packed from
//!             the most significant bit of each byte; the last byte is padded
//!             with zero bits. Bytes after the last sample are ignored (older
//!             Prometheus versions sometimes leave one extra zero byte).
//! sample 0  = t0 as signed varint (zigzag, then LEB128 as Go's PutVarint)
//!             v0 as 64 raw bits (IEEE-754 bit pattern)
//! sample 1  = t1 - t0 as unsigned varint (LEB128, at most 10 bytes)
//!             value(v1, v0)
//! sample n  = dod(n) = (tn - tn-1) - (tn-1 - tn-2), for n >= 2:
//!               dod == 0                   '0'
//!               -8191   <= dod <= 8192     '10'   + dod in 14 bits
//!               -65535  <= dod <= 65536    '110'  + dod in 17 bits
//!               -524287 <= dod <= 524288   '1110' + dod in 20 bits
//!               otherwise                  '1111' + dod in 64 bits
//!             (an N-bit field f > 2^(N-1) stands for f - 2^N; the ranges are
//!              Prometheus's, asymmetric on purpose)
//!             value(vn, vn-1)
//! value(v, prev), x = bits(v) XOR bits(prev):
//!               x == 0                     '0'
//!               x fits the window          '10' + the window's bits of x
//!               otherwise                  '11' + L (5 bits) + S (6 bits)
//!                                               + S bits: x >> (64 - L - S)
//!             where L = min(leading zeros of x, 31), S = 64 - L - trailing
//!             zeros of x (S = 64 is written as 0), and the window becomes
//!             (L, 64 - L - S). x "fits" when it has at least the window's
//!             leading and trailing zeros. Before the first '11' the window is
//!             (0, 0), i.e. 64 bits (this encoder never relies on that; a
//!             Prometheus appender reopened after one sample does).
//! ```
//!
//! The varints are byte-aligned: they come before the first sub-byte field.
//! All timestamp arithmetic is modulo 2^64 (two's complement), in the encoder
//! and the decoder alike, so every `i64` sequence round-trips, even extremes
//! whose deltas overflow. Values are handled only as bit patterns, so NaN
//! payloads (Prometheus's stale marker `0x7ff0000000000002`), `-0.0` and `±Inf`
//! round-trip bit-exactly.

use std::fmt;
use std::iter::FusedIterator;

/// Samples per chunk at most; the head cuts a new chunk after this many.
pub const MAX_SAMPLES: usize = 120;

/// Length of the sample-count header.
const HEADER_LEN: usize = 2;

/// Most samples a chunk can hold: its header counts them in 16 bits.
const MAX_COUNT: usize = u16::MAX as usize;

/// Initial buffer capacity: room for the header, the first sample (up to
/// 18 bytes) and a dozen more at a 15 s interval. A chunk of 120 regular
/// samples takes roughly 50 (constant) to 400 (random walk) bytes.
const INITIAL_CAPACITY: usize = 64;

/// Bytes added to a full buffer at a time. A buffer grows once fewer than
/// 16 bytes are free (see `write_code`), so at about 3 bytes a sample it
/// holds some 25 bytes more than its chunk, averaged over the chunk's
/// life; steps of 64 from 128 bytes (Prometheus's start) hold some 47 more,
/// for 6 fewer reallocations per 120 samples.
const GROWTH_STEP: usize = 32;

/// `leading` value of an appender that has not opened a value window yet.
const NO_WINDOW: u8 = 0xff;

/// Leading-zero counts are written in 5 bits, so larger ones are clamped.
const MAX_LEADING: u32 = 31;

/// Delta-of-delta buckets after the '0' case: (prefix, prefix length, field
/// width). The index of a bucket is the number of leading 1-bits of its prefix
/// minus one, which is how the decoder finds it.
const DOD_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];

/// Longest code [`XorChunk::write_code`] takes at once: with up to 7 bits
/// of the last byte taken back it still fits a u128.
const MAX_CODE: u32 = 120;

/// Longest LEB128 encoding of a u64.
const MAX_VARINT_LEN: usize = 10;

/// Why encoded bytes could not be decoded, or a sample not appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// The bytes end before the samples their header announces.
    Truncated,
    /// The chunk already holds this many samples, the most its 16-bit header
    /// can count.
    TooManySamples(usize),
    /// The bytes cannot have been written by an XOR chunk encoder.
    Corrupt(&'static str),
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::Truncated => {
                f.write_str("chunk truncated: fewer bits than its samples need")
            }
            ChunkError::TooManySamples(n) => {
                write!(
                    f,
                    "chunk full: it holds {n} samples, the most its header can count"
                )
            }
            ChunkError::Corrupt(what) => write!(f, "corrupt chunk: {what}"),
        }
    }
}

impl std::error::Error for ChunkError {}

/// An open chunk being appended to (the head's current chunk).
///
/// It keeps the encoder state (last timestamp, delta, value and value window,
/// and the partly written last byte) so that an append costs O(1), and keeps
/// the sample count in the header current so [`XorChunk::bytes`] is a valid
/// chunk after every append.
#[derive(Debug, Clone)]
pub struct XorChunk {
    /// Header and bit stream; the low `free` bits of the last byte are unused
    /// (zero).
    buf: Vec<u8>,
    /// Unused low bits of the last byte of `buf`, 0..=7.
    free: u32,
    count: u16,
    first_t: i64,
    last_t: i64,
    /// Last timestamp delta; unsigned so that it wraps exactly as the
    /// decoder's does.
    delta: u64,
    /// Bit pattern of the last value.
    last_v: u64,
    /// Current value window: leading zeros ([`NO_WINDOW`] before the first)
    /// and trailing zeros.
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk: just the header, counting zero samples.
    pub fn new() -> XorChunk {
        let mut buf = Vec::with_capacity(INITIAL_CAPACITY);
        buf.extend_from_slice(&[0; HEADER_LEN]);
        XorChunk {
            buf,
            free: 0,
            count: 0,
            first_t: 0,
            last_t: 0,
            delta: 0,
            last_v: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// Appends a sample. The caller guarantees t is greater than the last
    /// appended timestamp (the head checks ordering); values may be anything.
    ///
    /// (The encoding itself round-trips any timestamps, ordered or not.)
    ///
    /// # Panics
    ///
    /// If the chunk already holds `u16::MAX` samples; the head cuts chunks at
    /// [`MAX_SAMPLES`], far below. [`XorChunk::try_append`] returns an error
    /// instead.
    pub fn append(&mut self, t: i64, v: f64) {
        if let Err(e) = self.try_append(t, v) {
            panic!("XorChunk::append: {e}");
        }
    }

    /// Appends a sample like [`XorChunk::append`], or returns
    /// [`ChunkError::TooManySamples`] (changing nothing) if the chunk already
    /// holds `u16::MAX` samples.
    pub fn try_append(&mut self, t: i64, v: f64) -> Result<(), ChunkError> {
        let n = self.len();
        if n >= MAX_COUNT {
            return Err(ChunkError::TooManySamples(n));
        }
        let bits = v.to_bits();
        match n {
            0 => {
                // Byte-aligned: only the header precedes.
                put_uvarint(&mut self.buf, zigzag(t));
                self.buf.extend_from_slice(&bits.to_be_bytes());
                self.first_t = t;
            }
            1 => {
                // Still byte-aligned: sample 0 is whole bytes.
                let delta = t.wrapping_sub(self.last_t) as u64;
                put_uvarint(&mut self.buf, delta);
                self.delta = delta;
                let (code, len) = self.value_code(bits);
                self.write_code(code, len);
            }
            _ => {
                let delta = t.wrapping_sub(self.last_t) as u64;
                let (t_code, t_len) = dod_code(delta.wrapping_sub(self.delta) as i64);
                self.delta = delta;
                let (v_code, v_len) = self.value_code(bits);
                // One write per sample unless both fields are at their
                // longest (a 68-bit dod and a 77-bit value).
                if t_len + v_len <= MAX_CODE {
                    self.write_code((t_code << v_len) | v_code, t_len + v_len);
                } else {
                    self.write_code(t_code, t_len);
                    self.write_code(v_code, v_len);
                }
            }
        }
        self.last_t = t;
        self.last_v = bits;
        self.count += 1;
        // Keep the header current so bytes() is a complete chunk at all times.
        if let Some(header) = self.buf.get_mut(..HEADER_LEN) {
            header.copy_from_slice(&self.count.to_be_bytes());
        }
        Ok(())
    }

    /// Number of samples appended.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether no sample has been appended.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Timestamp of the first sample, if any.
    pub fn first_time(&self) -> Option<i64> {
        (self.count > 0).then_some(self.first_t)
    }

    /// Timestamp of the last sample, if any.
    pub fn last_time(&self) -> Option<i64> {
        (self.count > 0).then_some(self.last_t)
    }

    /// The encoded chunk (header + bit stream), valid at any point (readable
    /// while still appendable).
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Iterates over the samples appended so far.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::with_count(self.buf.get(HEADER_LEN..).unwrap_or(&[]), self.len())
    }

    /// Memory used, for accounting (capacity of the buffer + struct size).
    pub fn memory_bytes(&self) -> usize {
        self.buf.capacity() + std::mem::size_of::<Self>()
    }

    /// The code of value `bits` after the last value, as (bits, length),
    /// opening a new window if needed.
    #[inline(always)]
    fn value_code(&mut self, bits: u64) -> (u128, u32) {
        let x = bits ^ self.last_v;
        if x == 0 {
            return (0, 1);
        }
        let leading = x.leading_zeros().min(MAX_LEADING);
        let trailing = x.trailing_zeros();
        if self.leading != NO_WINDOW
            && leading >= u32::from(self.leading)
            && trailing >= u32::from(self.trailing)
        {
            // x fits the current window: '10' + the window's bits.
            let (wl, wt) = (u32::from(self.leading), u32::from(self.trailing));
            let sig = 64 - wl - wt;
            return ((0b10 << sig) | u128::from(x >> wt), 2 + sig);
        }
        // New window: '11' + 5 bits leading + 6 bits significant count.
        // leading <= 31 and trailing <= 63 with x != 0, so both fit a u8.
        self.leading = leading as u8;
        self.trailing = trailing as u8;
        let sig = 64 - leading - trailing;
        // sig is in 1..=64; 64 does not fit 6 bits and is written as 0 (a
        // window of 0 bits never occurs, x == 0 takes the '0' branch).
        let head = (0b11 << 11) | (u128::from(leading) << 6) | u128::from(sig & 63);
        ((head << sig) | u128::from(x >> trailing), 13 + sig)
    }

    /// Appends the low `n` bits of `code` (1 <= n <= [`MAX_CODE`]), most
    /// significant first: the partly written last byte is taken back and
    /// rewritten with the new bits in one fixed-size copy.
    #[inline(always)]
    fn write_code(&mut self, code: u128, n: u32) {
        debug_assert!((1..=MAX_CODE).contains(&n));
        let mut code = code & (u128::MAX >> (128 - n));
        let mut n = n;
        if self.free > 0 {
            if let Some(last) = self.buf.pop() {
                let used = 8 - self.free;
                code |= u128::from(last >> self.free) << n;
                n += used;
            }
        }
        // n <= 127: left-align and copy the bytes that hold the bits.
        let aligned = (code << (128 - n)).to_be_bytes();
        let nbytes = n.div_ceil(8) as usize;
        let len = self.buf.len();
        if self.buf.capacity() - len >= aligned.len() {
            // A fixed 16-byte copy then a cut is cheaper than a copy of a
            // variable length, and with the room already there it cannot
            // make the buffer grow.
            self.buf.extend_from_slice(&aligned);
            self.buf.truncate(len + nbytes);
        } else {
            // Grow by a fixed step, not by doubling: the open chunk is the one
            // chunk per series kept on the heap, and doubling would leave a
            // busy series' 260-byte chunk in a 512-byte buffer.
            self.buf.reserve_exact(GROWTH_STEP);
            self.buf.extend_from_slice(&aligned[..nbytes]);
        }
        self.free = (nbytes * 8) as u32 - n;
    }
}

impl<'a> IntoIterator for &'a XorChunk {
    type Item = Result<(i64, f64), ChunkError>;
    type IntoIter = ChunkIter<'a>;
    fn into_iter(self) -> ChunkIter<'a> {
        self.iter()
    }
}

/// Decodes an encoded chunk borrowed from anywhere (memory, an mmapped block
/// file).
///
/// Yields the samples in order. Corrupt or truncated input yields one `Err`
/// and then ends; it never panics and allocates nothing.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    r: BitReader<'a>,
    /// Samples the header declares.
    total: usize,
    /// Samples yielded so far (set to `total` after an error).
    done: usize,
    t: i64,
    delta: u64,
    v: u64,
    leading: u32,
    trailing: u32,
}

impl<'a> ChunkIter<'a> {
    /// Reads the header. Fails only if there is no complete header; every
    /// 16-bit count is accepted (it is at most `u16::MAX`, so bounded), and
    /// missing sample bits surface as [`ChunkError::Truncated`] while
    /// iterating.
    pub fn new(bytes: &'a [u8]) -> Result<ChunkIter<'a>, ChunkError> {
        match bytes {
            [hi, lo, stream @ ..] => Ok(Self::with_count(
                stream,
                usize::from(u16::from_be_bytes([*hi, *lo])),
            )),
            _ => Err(ChunkError::Truncated),
        }
    }

    fn with_count(stream: &'a [u8], total: usize) -> ChunkIter<'a> {
        ChunkIter {
            r: BitReader::new(stream),
            total,
            done: 0,
            t: 0,
            delta: 0,
            v: 0,
            // The window before any '11': (0, 0), as Prometheus's reader.
            leading: 0,
            trailing: 0,
        }
    }

    /// Number of samples the header declares (not how many remain).
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the header declares no samples.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn read_sample(&mut self) -> Result<(i64, f64), ChunkError> {
        match self.done {
            0 => {
                self.t = unzigzag(self.r.read_uvarint()?);
                self.v = self.r.read_long(64)?;
            }
            1 => {
                self.delta = self.r.read_uvarint()?;
                self.t = self.t.wrapping_add(self.delta as i64);
                self.read_value()?;
            }
            _ => {
                let dod = self.read_dod()?;
                self.delta = self.delta.wrapping_add(dod as u64);
                self.t = self.t.wrapping_add(self.delta as i64);
                self.read_value()?;
            }
        }
        Ok((self.t, f64::from_bits(self.v)))
    }

    #[inline(always)]
    fn read_dod(&mut self) -> Result<i64, ChunkError> {
        let ones = self.r.read_unary(4)?;
        if ones == 0 {
            return Ok(0);
        }
        match DOD_BUCKETS.get(ones as usize - 1) {
            Some(&(_, _, width)) => {
                let field = self.r.read(width)?;
                // Fields above 2^(width-1) are negative (see the format).
                Ok(if field > 1 << (width - 1) {
                    field as i64 - (1 << width)
                } else {
                    field as i64
                })
            }
            None => Ok(self.r.read_long(64)? as i64),
        }
    }

    #[inline(always)]
    fn read_value(&mut self) -> Result<(), ChunkError> {
        match self.r.read_unary(2)? {
            0 => return Ok(()),
            1 => {}
            _ => {
                let head = self.r.read(11)?;
                let leading = (head >> 6) as u32;
                let sig = match (head & 63) as u32 {
                    0 => 64,
                    s => s,
                };
                if leading + sig > 64 {
                    return Err(ChunkError::Corrupt("value window wider than 64 bits"));
                }
                self.leading = leading;
                self.trailing = 64 - leading - sig;
            }
        }
        // The window always has 1..=64 bits: it is (0, 0) or came from a
        // checked '11' with sig >= 1, so the shift below is < 64.
        let sig = 64 - self.leading - self.trailing;
        self.v ^= self.r.read_long(sig)? << self.trailing;
        Ok(())
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = Result<(i64, f64), ChunkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done >= self.total {
            return None;
        }
        match self.read_sample() {
            Ok(sample) => {
                self.done += 1;
                Some(Ok(sample))
            }
            Err(e) => {
                // One error, then the end: nothing after a bad bit is
                // trustworthy.
                self.done = self.total;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Each remaining sample yields an item, unless an error cuts it short
        // (which is itself an item).
        let left = self.total - self.done;
        (left.min(1), Some(left))
    }
}

impl FusedIterator for ChunkIter<'_> {}

/// Convenience: decode all samples.
pub fn decode(bytes: &[u8]) -> Result<Vec<(i64, f64)>, ChunkError> {
    let iter = ChunkIter::new(bytes)?;
    // Trust the header only as far as the bytes could hold: every sample
    // takes at least 2 bits, so a lying header cannot inflate the allocation.
    let plausible = bytes.len().saturating_mul(4);
    let mut out = Vec::with_capacity(iter.len().min(plausible));
    for sample in iter {
        out.push(sample?);
    }
    Ok(out)
}

/// Reads bit fields MSB-first through a 64-bit buffer refilled 8 bytes at a
/// time, instead of bit by bit.
#[derive(Debug, Clone)]
struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load into `buf`.
    pos: usize,
    /// Bits to read, left-aligned. The `valid` top bits are unread stream
    /// bits; the bits below are zero or copies of the stream bits that follow
    /// (the fast refill loads a whole word), so OR-ing those in again is
    /// harmless.
    buf: u64,
    valid: u32,
}

/// The bit reader ran out of data. Kept apart from [`ChunkError`] so the hot
/// reads return a bare word plus a flag, not a 24-byte enum.
#[derive(Debug)]
struct OutOfBits;

impl From<OutOfBits> for ChunkError {
    fn from(_: OutOfBits) -> Self {
        ChunkError::Truncated
    }
}

/// Longest field [`BitReader::read`] takes: after a refill at least 56 bits
/// are buffered unless the data ends.
const MAX_READ: u32 = 56;

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader {
            data,
            pos: 0,
            buf: 0,
            valid: 0,
        }
    }

    /// Tops the buffer up to at least 56 valid bits, or to the end of the
    /// data. Only called with `valid < 56`.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(word) = self.data.get(self.pos..self.pos + 8) {
            let mut be = [0u8; 8];
            be.copy_from_slice(word);
            self.buf |= u64::from_be_bytes(be) >> self.valid;
            // Count only the whole bytes that fit, leaving valid in 56..=63;
            // the partial byte's bits already in `buf` are correct anyway.
            let took = (63 - self.valid) / 8;
            self.pos += took as usize;
            self.valid += took * 8;
        } else {
            while self.valid <= 56 {
                let Some(&b) = self.data.get(self.pos) else {
                    break;
                };
                self.buf |= u64::from(b) << (56 - self.valid);
                self.valid += 8;
                self.pos += 1;
            }
        }
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        // n <= 56 here, so the shift is in range.
        self.buf <<= n;
        self.valid -= n;
    }

    /// Reads an `n`-bit field, 1 <= n <= [`MAX_READ`].
    #[inline(always)]
    fn read(&mut self, n: u32) -> Result<u64, OutOfBits> {
        debug_assert!((1..=MAX_READ).contains(&n));
        if self.valid < n {
            self.refill();
            if self.valid < n {
                return Err(OutOfBits);
            }
        }
        let field = self.buf >> (64 - n);
        self.consume(n);
        Ok(field)
    }

    /// Reads an `n`-bit field, 0 <= n <= 64.
    #[inline(always)]
    fn read_long(&mut self, n: u32) -> Result<u64, OutOfBits> {
        match n {
            0 => Ok(0),
            1..=MAX_READ => self.read(n),
            _ => {
                let hi = self.read(n - 32)?;
                let lo = self.read(32)?;
                Ok((hi << 32) | lo)
            }
        }
    }

    /// Counts 1-bits up to `max` (<= 8), consuming them and the 0-bit that
    /// ends them if it comes before `max`: the prefix codes '0', '10', '110',
    /// '1110', '1111' for max = 4.
    #[inline(always)]
    fn read_unary(&mut self, max: u32) -> Result<u32, OutOfBits> {
        if self.valid < max {
            self.refill();
        }
        // Bits below `valid` are zero or real stream bits, and the length
        // check below rejects a prefix that runs past the data.
        let ones = (!self.buf).leading_zeros().min(max);
        let used = if ones < max { ones + 1 } else { max };
        if used > self.valid {
            return Err(OutOfBits);
        }
        self.consume(used);
        Ok(ones)
    }

    /// Reads a LEB128 unsigned varint as Go's `binary.Uvarint` does,
    /// rejecting encodings longer than 10 bytes or above `u64::MAX`.
    fn read_uvarint(&mut self) -> Result<u64, ChunkError> {
        let mut x = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let b = self.read(8)?;
            if b < 0x80 {
                if i == MAX_VARINT_LEN - 1 && b > 1 {
                    return Err(ChunkError::Corrupt("varint overflows 64 bits"));
                }
                return Ok(x | (b << (7 * i)));
            }
            x |= (b & 0x7f) << (7 * i);
        }
        Err(ChunkError::Corrupt("varint longer than 10 bytes"))
    }
}

/// Appends `v` as a LEB128 unsigned varint (Go's `binary.PutUvarint`).
fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Go's `binary.PutVarint` mapping: small magnitudes of either sign become
/// small unsigned numbers.
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// The code of a timestamp delta-of-delta, as (bits, length).
#[inline(always)]
fn dod_code(dod: i64) -> (u128, u32) {
    if dod == 0 {
        return (0, 1);
    }
    for (prefix, prefix_len, width) in DOD_BUCKETS {
        if fits_bucket(dod, width) {
            let field = (dod as u64) & low_mask(width);
            return (u128::from((prefix << width) | field), prefix_len + width);
        }
    }
    ((0b1111 << 64) | u128::from(dod as u64), 68)
}

/// Prometheus's `bitRange`: whether `dod` goes in a `width`-bit field, whose
/// range is -(2^(width-1) - 1) ..= 2^(width-1).
fn fits_bucket(dod: i64, width: u32) -> bool {
    let half = 1i64 << (width - 1);
    -(half - 1) <= dod && dod <= half
}

/// The low `n` bits set, 0 < n <= 64.
fn low_mask(n: u32) -> u64 {
    u64::MAX >> (64 - n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    /// Values that must survive bit-exactly.
    const SPECIAL_BITS: [u64; 16] = [
        STALE_NAN,
        0x7ff8_0000_0000_0000, // the usual quiet NaN
        0xfff8_0000_0000_0000, // negative NaN
        0x7ff0_0000_0000_0001, // signalling NaN
        0x7fff_ffff_ffff_ffff, // NaN, all payload bits
        0x7ff0_0000_0000_0000, // +Inf
        0xfff0_0000_0000_0000, // -Inf
        0x8000_0000_0000_0000, // -0.0
        0,                     // +0.0
        1,                     // smallest subnormal
        0x000f_ffff_ffff_ffff, // largest subnormal
        0x8000_0000_0000_0001, // negative subnormal
        0x0010_0000_0000_0000, // smallest normal
        0x7fef_ffff_ffff_ffff, // f64::MAX
        0xffef_ffff_ffff_ffff, // f64::MIN
        0x3ff0_0000_0000_0000, // 1.0
    ];

    fn encode(samples: &[(i64, f64)]) -> XorChunk {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v);
        }
        c
    }

    /// Samples compared with values as bits, so NaN == NaN and -0.0 != 0.0.
    fn as_bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
        samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
    }

    fn assert_round_trip(samples: &[(i64, f64)]) -> XorChunk {
        let c = encode(samples);
        assert_eq!(c.len(), samples.len());
        assert_eq!(c.is_empty(), samples.is_empty());
        assert_eq!(c.first_time(), samples.first().map(|s| s.0));
        assert_eq!(c.last_time(), samples.last().map(|s| s.0));
        let decoded = decode(c.bytes()).expect("decode");
        assert_eq!(as_bits(&decoded), as_bits(samples));
        let iterated: Vec<_> = c.iter().collect::<Result<_, _>>().expect("iter");
        assert_eq!(as_bits(&iterated), as_bits(samples));
        let it = ChunkIter::new(c.bytes()).expect("header");
        assert_eq!(it.len(), samples.len());
        assert_eq!(it.size_hint().1, Some(samples.len()));
        // Every stream byte carries data: at most 7 bits of padding.
        if samples.len() > 1 {
            assert!(c.free < 8);
        }
        c
    }

    fn timestamps_regular(rng: &mut StdRng, n: usize, step: i64, jitter: i64) -> Vec<i64> {
        let start = 1_700_000_000_000 + rng.gen_range(0..1_000_000);
        (0..n as i64)
            .map(|i| start + i * step + rng.gen_range(-jitter..=jitter))
            .collect()
    }

    /// Increasing timestamps with gaps from 1 ms up to 2^40 ms, the gap size
    /// itself random so delta-of-deltas hit every bucket, both signs.
    fn timestamps_gappy(rng: &mut StdRng, n: usize) -> Vec<i64> {
        let mut t = rng.gen_range(-(1i64 << 50)..(1i64 << 50));
        (0..n)
            .map(|_| {
                let bits = rng.gen_range(0..=40);
                t += rng.gen_range(1..=(1i64 << bits));
                t
            })
            .collect()
    }

    fn values(rng: &mut StdRng, kind: usize, n: usize) -> Vec<f64> {
        let mut acc = 0.0f64;
        let mut cents = 2000i64;
        (0..n)
            .map(|_| match kind {
                0 => 42.0,
                1 => {
                    acc += f64::from(rng.gen_range(0u32..=100));
                    acc
                }
                2 => f64::from_bits(rng.gen()),
                3 => f64::from_bits(SPECIAL_BITS[rng.gen_range(0..SPECIAL_BITS.len())]),
                4 => {
                    cents += rng.gen_range(-50..=50);
                    cents as f64 / 100.0
                }
                5 => {
                    // Mostly regular, sometimes stale or special: window changes.
                    if rng.gen_bool(0.2) {
                        f64::from_bits(SPECIAL_BITS[rng.gen_range(0..SPECIAL_BITS.len())])
                    } else {
                        acc += 1.0;
                        acc
                    }
                }
                _ => {
                    // Values differing from the previous in random bit ranges.
                    let lo = rng.gen_range(0..64);
                    let hi = rng.gen_range(lo..64);
                    let mask = (u64::MAX >> (63 - (hi - lo))) << lo;
                    f64::from_bits(acc.to_bits() ^ (rng.gen::<u64>() & mask))
                }
            })
            .collect()
    }

    const VALUE_KINDS: usize = 7;

    #[test]
    fn round_trips_random_series_of_every_size() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in [0, 1, 2, 3, 4, 5, 120, 1000] {
            for kind in 0..VALUE_KINDS {
                for ts_kind in 0..3 {
                    let ts = match ts_kind {
                        0 => timestamps_regular(&mut rng, n, 15_000, 0),
                        1 => timestamps_regular(&mut rng, n, 15_000, 1),
                        _ => timestamps_gappy(&mut rng, n),
                    };
                    let vs = values(&mut rng, kind, n);
                    let samples: Vec<_> = ts.into_iter().zip(vs).collect();
                    assert_round_trip(&samples);
                }
            }
        }
    }

    #[test]
    fn round_trips_many_short_random_chunks() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..3000 {
            let n = rng.gen_range(1..=130);
            let kind = rng.gen_range(0..VALUE_KINDS);
            let ts = if rng.gen_bool(0.5) {
                timestamps_gappy(&mut rng, n)
            } else {
                let (step, jitter) = (rng.gen_range(1..100_000), rng.gen_range(0..20));
                timestamps_regular(&mut rng, n, step, jitter)
            };
            let samples: Vec<_> = ts.into_iter().zip(values(&mut rng, kind, n)).collect();
            assert_round_trip(&samples);
        }
    }

    #[test]
    fn round_trips_every_special_value_after_every_other() {
        let mut samples = Vec::new();
        let mut t = 0;
        for &a in &SPECIAL_BITS {
            for &b in &SPECIAL_BITS {
                for bits in [a, b, b, a] {
                    t += 15_000;
                    samples.push((t, f64::from_bits(bits)));
                }
            }
        }
        assert_round_trip(&samples);
        // Also with each special value first (sample 0 is raw bits).
        for &a in &SPECIAL_BITS {
            assert_round_trip(&[(5, f64::from_bits(a))]);
            assert_round_trip(&[(5, f64::from_bits(a)), (6, -0.0), (7, f64::from_bits(a))]);
        }
    }

    #[test]
    fn round_trips_extreme_and_unordered_timestamps() {
        let cases: Vec<Vec<i64>> = vec![
            vec![i64::MIN],
            vec![i64::MAX],
            vec![i64::MIN, i64::MIN + 1, i64::MIN + 2],
            vec![i64::MAX - 2, i64::MAX - 1, i64::MAX],
            vec![i64::MIN, 0, i64::MAX - 1],
            vec![-1, 0, 1 << 62, i64::MAX],
            vec![i64::MIN, -(1 << 62), 0, 1 << 62, i64::MAX],
            vec![i64::MIN, i64::MAX, i64::MIN, i64::MAX],
            vec![0, -(1 << 40), 1 << 40, -(1 << 40)],
            vec![5, 5, 5, 4, 3, 100],
        ];
        for ts in cases {
            let samples: Vec<_> = ts.iter().map(|&t| (t, 1.5)).collect();
            assert_round_trip(&samples);
        }
        // Arbitrary i64s in any order: the arithmetic is modulo 2^64.
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..200 {
            let samples: Vec<_> = (0..rng.gen_range(1..50))
                .map(|_| (rng.gen::<i64>(), f64::from_bits(rng.gen())))
                .collect();
            assert_round_trip(&samples);
        }
    }

    /// Bits one sample at index >= 2 adds, from the chunk length in bits.
    fn stream_bits(c: &XorChunk) -> usize {
        c.bytes().len() * 8 - c.free as usize
    }

    #[test]
    fn delta_of_delta_bucket_edges() {
        // (dod, bits of the timestamp field including its prefix)
        let cases = [
            (0, 1),
            (1, 16),
            (-1, 16),
            (8192, 16),
            (-8191, 16),
            (8193, 20),
            (-8192, 20),
            (65536, 20),
            (-65535, 20),
            (65537, 24),
            (-65536, 24),
            (524288, 24),
            (-524287, 24),
            (524289, 68),
            (-524288, 68),
            (1 << 40, 68),
            (-(1 << 40), 68),
        ];
        let base = 10_000_000i64;
        for (dod, ts_bits) in cases {
            let before = encode(&[(0, 1.0), (base, 1.0)]);
            let after = assert_round_trip(&[(0, 1.0), (base, 1.0), (2 * base + dod, 1.0)]);
            // The value repeats: its field is the single bit '0'.
            assert_eq!(
                stream_bits(&after) - stream_bits(&before),
                ts_bits + 1,
                "dod {dod}"
            );
        }
    }

    /// Bytes computed by hand from the format description (bit strings
    /// concatenated outside this code), covering every field kind.
    #[test]
    fn matches_hand_encoded_bytes() {
        let samples = [
            (1000, 0.0),
            (16000, 42.0),   // delta 15000; '11' new window (lead 1, 15 bits)
            (31000, 40.0),   // dod 0; '10' window reuse
            (46001, 42.0),   // dod 1 in '10'+14; '10' reuse
            (1061002, -0.0), // dod 1000000 in '1111'+64; '11' (lead 0, 16 bits)
            (2075993, -0.0), // dod -10 in '10'+14; '0' same value
        ];
        let expected: [u8; 39] = [
            0x00, 0x06, // count
            0xd0, 0x0f, // varint(1000): zigzag 2000
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0.0
            0x98, 0x75, // uvarint(15000)
            0xc2, 0x7c, 0x04, 0x54, 0x00, 0x06, 0x00, 0x06, 0x00, 0x03, 0xe0, 0x00, 0x00, 0x00,
            0x00, 0x01, 0xe8, 0x48, 0x18, 0x10, 0xc0, 0x45, 0xbf, 0xf6, 0x00,
        ];
        let c = assert_round_trip(&samples);
        assert_eq!(c.bytes(), &expected[..]);
    }

    fn from_hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Chunks written by Prometheus 2.42 itself (`promtool tsdb
    /// create-blocks-from openmetrics`, taken from the block's chunks file),
    /// with the samples they hold: we decode them, and encode those samples to
    /// the same bytes. Prometheus before 3.0 sometimes ends a chunk with one
    /// needless zero byte (its bstream.writeByte bug), which we neither write
    /// nor mind reading.
    #[test]
    fn agrees_with_chunks_written_by_prometheus() {
        // (chunk as hex, its samples as (t, value bits), extra zero byte)
        type Case<'a> = (&'a str, &'a [(i64, u64)], bool);
        let cases: [Case; 3] = [
            (
                // A counter scraped every 15 s with ±1 ms jitter.
                "000fee8cb582fa6240cd1800000000009975e43f9bfffe226dffff21e2c001\
                 7027ba8817ffd059352000610203c0016e2fd2dffe411a000e19f7fff02f80018098",
                &[
                    (1700004274999, 0x40cd180000000000),
                    (1700004290000, 0x40cd248000000000),
                    (1700004305000, 0x40cd4c8000000000),
                    (1700004319999, 0x40cd6e0000000000),
                    (1700004335000, 0x40cd808000000000),
                    (1700004350001, 0x40cda08000000000),
                    (1700004365000, 0x40cdab8000000000),
                    (1700004379999, 0x40cdc18000000000),
                    (1700004394999, 0x40cdd18000000000),
                    (1700004409999, 0x40cdd20000000000),
                    (1700004425001, 0x40ce008000000000),
                    (1700004439999, 0x40ce238000000000),
                    (1700004455000, 0x40ce440000000000),
                    (1700004470000, 0x40ce538000000000),
                    (1700004485001, 0x40ce5a0000000000),
                ],
                false,
            ),
            (
                // -Inf, Prometheus's NaN, gaps of 2 ms to 1 h, random bits.
                "0006c88ddee4fa62c879b6633f9b6bb202c5eef136cc67f36d767c0000000000\
                 dbb9fa3bd6199c6f80f7c7ffffffffffe91ca060023bf6199c6f80f7c7ffffff\
                 fffffdc4b617fed1fc6c8b7503042368",
                &[
                    (1700107371364, 0xc879b6633f9b6bb2),
                    (1700107371366, 0xfff0000000000000),
                    (1700110971366, 0xf10586671be03df0),
                    (1700111571366, 0x7ff8000000000001),
                    (1700111586366, 0x7ff8000000000001),
                    (1700111601356, 0x4075916ea060846c),
                ],
                false,
            ),
            (
                // f64::MAX among random bits; Prometheus added a zero byte.
                "0005cccf84f486636fa176ac2b9d736401c00565f9e9db1269fc0abcf1b468b6\
                 2fb31a8001ab29a1930d01b07030ea5a8ba850be5c4892a200",
                &[
                    (1701734028262, 0x6fa176ac2b9d7364),
                    (1701734028263, 0xc31e4b9749d04ce5),
                    (1701734028264, 0x7fefffffffffffff),
                    (1701734028266, 0xd34979b3cbf93e3f),
                    (1701734043266, 0x58e1290d97b1ac9d),
                ],
                true,
            ),
        ];
        for (hex, want, extra_zero) in cases {
            let prom = from_hex(&hex.replace(' ', ""));
            let got = decode(&prom).expect("Prometheus chunk");
            assert_eq!(as_bits(&got), want.to_vec());
            let samples: Vec<_> = want.iter().map(|&(t, b)| (t, f64::from_bits(b))).collect();
            let ours = encode(&samples);
            let prom_len = prom.len() - usize::from(extra_zero);
            assert_eq!(ours.bytes(), &prom[..prom_len]);
        }
    }

    #[test]
    fn value_field_matches_published_example() {
        // 42.0 after 0.0 is '1 1 00001 001111 100000001000101' (28 bits), as
        // documented for Prometheus's varbit_xor.
        let c = encode(&[(0, 0.0), (1, 42.0)]);
        let stream = &c.bytes()[2 + 1 + 8 + 1..];
        assert_eq!(stream, &[0xc2, 0x7c, 0x04, 0x50]);
        assert_eq!(c.free, 4);
    }

    #[test]
    fn bytes_mid_way_equal_a_fresh_encoding_and_decode() {
        let mut rng = StdRng::seed_from_u64(4);
        for kind in 0..VALUE_KINDS {
            let n = 300;
            let ts = timestamps_gappy(&mut rng, n);
            let samples: Vec<_> = ts.into_iter().zip(values(&mut rng, kind, n)).collect();
            let mut c = XorChunk::new();
            assert_eq!(decode(c.bytes()), Ok(vec![]));
            for (i, &(t, v)) in samples.iter().enumerate() {
                c.append(t, v);
                let prefix = &samples[..=i];
                assert_eq!(c.bytes(), encode(prefix).bytes());
                assert_eq!(
                    as_bits(&decode(c.bytes()).expect("mid-way")),
                    as_bits(prefix)
                );
            }
        }
    }

    #[test]
    fn clone_continues_independently() {
        let mut a = encode(&[(1, 1.0), (2, 2.0), (3, 3.5)]);
        let mut b = a.clone();
        a.append(4, f64::NAN);
        b.append(5, -7.0);
        b.append(6, -7.0);
        assert_eq!(decode(a.bytes()).expect("a").len(), 4);
        let bs = decode(b.bytes()).expect("b");
        assert_eq!(bs[3], (5, -7.0));
        assert_eq!(bs[4], (6, -7.0));
    }

    /// Some valid chunks of various shapes, to cut and corrupt.
    fn sample_chunks() -> Vec<Vec<u8>> {
        let mut rng = StdRng::seed_from_u64(5);
        let mut out = vec![XorChunk::new().bytes().to_vec()];
        for n in [1, 2, 3, 7, 120] {
            for kind in 0..VALUE_KINDS {
                let ts = if kind % 2 == 0 {
                    timestamps_gappy(&mut rng, n)
                } else {
                    timestamps_regular(&mut rng, n, 15_000, 1)
                };
                let samples: Vec<_> = ts.into_iter().zip(values(&mut rng, kind, n)).collect();
                out.push(encode(&samples).bytes().to_vec());
            }
        }
        out
    }

    #[test]
    fn every_truncation_is_an_error() {
        for bytes in sample_chunks() {
            let n = decode(&bytes).expect("whole").len();
            for cut in 0..bytes.len() {
                let res = decode(&bytes[..cut]);
                assert_eq!(
                    res,
                    Err(ChunkError::Truncated),
                    "{n} samples cut to {cut} bytes"
                );
                // The iterator yields the samples before the cut, then one
                // error, then nothing.
                if let Ok(mut it) = ChunkIter::new(&bytes[..cut]) {
                    let oks = it.by_ref().take_while(|s| s.is_ok()).count();
                    assert!(oks < n);
                    assert!(it.next().is_none());
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        for bytes in sample_chunks() {
            let want = decode(&bytes).expect("whole");
            let mut padded = bytes.clone();
            padded.push(0);
            assert_eq!(as_bits(&decode(&padded).expect("padded")), as_bits(&want));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = StdRng::seed_from_u64(6);
        let mut errors = 0;
        for i in 0..200_000 {
            let len = rng.gen_range(0..48);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if len >= 2 && i % 2 == 0 {
                // Plausible counts, so decoding gets past the header.
                bytes[0] = 0;
                bytes[1] = rng.gen_range(0..8);
            }
            match decode(&bytes) {
                Ok(samples) => assert!(samples.len() <= usize::from(u16::MAX)),
                Err(_) => errors += 1,
            }
        }
        assert!(
            errors > 100_000,
            "garbage decodes suspiciously often: {errors} errors"
        );
    }

    #[test]
    fn bit_flipped_chunks_never_panic() {
        let mut rng = StdRng::seed_from_u64(7);
        for bytes in sample_chunks() {
            for _ in 0..2000 {
                let mut b = bytes.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..b.len());
                    b[i] ^= 1 << rng.gen_range(0..8);
                }
                // Any answer is fine; panicking or hanging is not.
                let _ = decode(&b);
                let _ = ChunkIter::new(&b).map(|it| it.count());
            }
        }
    }

    #[test]
    fn corrupt_fields_are_reported() {
        assert_eq!(decode(&[]), Err(ChunkError::Truncated));
        assert_eq!(decode(&[0]), Err(ChunkError::Truncated));
        assert!(ChunkIter::new(&[0]).is_err());
        // A header claiming 65535 samples over no data.
        assert_eq!(decode(&[0xff, 0xff]), Err(ChunkError::Truncated));
        // An 11-byte varint for t0.
        let mut b = vec![0, 1];
        b.extend_from_slice(&[0x80; 10]);
        b.extend_from_slice(&[0; 9]);
        assert_eq!(
            decode(&b),
            Err(ChunkError::Corrupt("varint longer than 10 bytes"))
        );
        // A 10-byte varint above u64::MAX.
        let mut b = vec![0, 1];
        b.extend_from_slice(&[0xff; 9]);
        b.push(0x02);
        b.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode(&b),
            Err(ChunkError::Corrupt("varint overflows 64 bits"))
        );
        // Sample 1 with a '11' window of 31 leading + 63 significant bits.
        let mut b = vec![0, 2, 0];
        b.extend_from_slice(&[0; 8]);
        b.push(1); // delta 1
                   // '11' 11111 111111 then padding
        b.extend_from_slice(&[0b1111_1111, 0b1111_1000, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode(&b),
            Err(ChunkError::Corrupt("value window wider than 64 bits"))
        );
        let msg = ChunkError::Corrupt("x").to_string();
        assert!(msg.contains("corrupt") && msg.contains('x'), "{msg}");
    }

    #[test]
    fn reads_prometheus_style_reuse_before_any_window() {
        // A Prometheus appender reopened after one sample writes '10' + 64
        // bits for the second value: the initial window is (0, 0).
        let mut b = vec![0, 2, 0];
        b.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
        b.push(1);
        let x = 1.0f64.to_bits() ^ 3.25f64.to_bits();
        let bits = (0b10u128 << 64) | u128::from(x); // 66 bits
        let aligned = bits << (128 - 66);
        b.extend_from_slice(&aligned.to_be_bytes()[..9]);
        assert_eq!(decode(&b), Ok(vec![(0, 1.0), (1, 3.25)]));
    }

    #[test]
    fn regular_counter_is_at_most_two_bytes_per_sample() {
        // A request counter scraped every 15 s exactly, growing by 0..=10 per
        // scrape from wherever it stood. Timestamps cost 1 bit ('0' dod);
        // values about 12 (mostly '10' + an 8-10 bit window). Larger random
        // increments cost more: about 2.1 bytes/sample for 0..=100, 2.5 for
        // 0..=1000 (the increments' own entropy).
        let mut rng = StdRng::seed_from_u64(8);
        let mut total_bytes = 0;
        for _ in 0..100 {
            let ts = timestamps_regular(&mut rng, MAX_SAMPLES, 15_000, 0);
            let mut v = f64::from(rng.gen_range(0..10_000_000u32));
            let samples: Vec<_> = ts
                .into_iter()
                .map(|t| {
                    v += f64::from(rng.gen_range(0..=10u32));
                    (t, v)
                })
                .collect();
            let c = assert_round_trip(&samples);
            let len = c.bytes().len();
            // Like Prometheus's, this encoder never narrows a value window,
            // so a carry across a power of two early in a chunk can leave it
            // near 2.2 bytes/sample; the average stays far lower.
            assert!(
                len * 2 <= 5 * MAX_SAMPLES,
                "{len} bytes for {MAX_SAMPLES} samples"
            );
            total_bytes += len;
        }
        let per_sample = total_bytes as f64 / (100 * MAX_SAMPLES) as f64;
        assert!(per_sample <= 1.8, "{per_sample} bytes/sample");
    }

    #[test]
    fn constant_series_is_a_few_bits_per_sample() {
        let start = 1_700_000_000_000;
        let samples: Vec<_> = (0..MAX_SAMPLES as i64)
            .map(|i| (start + i * 15_000, 1.0))
            .collect();
        let c = assert_round_trip(&samples);
        // 2 header + 6 varint t0 + 8 v0 + 2 uvarint delta, then 1 bit for v1
        // and 2 bits ('0' dod, '0' value) for each of the other 118: 30 bytes.
        assert_eq!(c.bytes().len(), 48);
        assert!((c.bytes().len() as f64 / MAX_SAMPLES as f64) < 0.5);
        // Long runs approach 2 bits, a quarter byte, per sample.
        let samples: Vec<_> = (0..1000).map(|i| (start + i * 15_000, 1.0)).collect();
        let c = assert_round_trip(&samples);
        assert!((c.bytes().len() as f64 / 1000.0) < 0.27);
    }

    #[test]
    fn full_chunk_refuses_more_samples() {
        let mut c = XorChunk::new();
        for i in 0..u16::MAX as i64 {
            c.append(i * 1000, (i % 7) as f64);
        }
        assert_eq!(c.len(), usize::from(u16::MAX));
        let before = c.bytes().to_vec();
        assert_eq!(
            c.try_append(i64::MAX, 0.0),
            Err(ChunkError::TooManySamples(65535))
        );
        assert_eq!(c.bytes(), &before[..]);
        let d = decode(c.bytes()).expect("full chunk");
        assert_eq!(d.len(), 65535);
        assert_eq!(d[65534], (65534 * 1000, (65534 % 7) as f64));
    }

    #[test]
    #[should_panic(expected = "chunk full")]
    fn append_to_full_chunk_panics() {
        let mut c = XorChunk::new();
        for i in 0..=u16::MAX as i64 {
            c.append(i, 0.0);
        }
    }

    #[test]
    fn accounting_and_empty_chunk() {
        let c = XorChunk::default();
        assert!(c.is_empty());
        assert_eq!(c.len(), 0);
        assert_eq!(c.first_time(), None);
        assert_eq!(c.last_time(), None);
        assert_eq!(c.bytes(), &[0, 0]);
        assert_eq!(c.iter().count(), 0);
        assert!(ChunkIter::new(c.bytes()).expect("header").is_empty());
        assert!(c.memory_bytes() >= INITIAL_CAPACITY + std::mem::size_of::<XorChunk>());
        let mut c = c;
        for i in 0..1000 {
            c.append(
                i,
                f64::from_bits((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            );
        }
        assert!(c.memory_bytes() >= c.bytes().len() + std::mem::size_of::<XorChunk>());
        assert_eq!((&c).into_iter().count(), 1000);
    }
}
