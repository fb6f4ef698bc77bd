//! Columnar, zstd-friendly encoding of one series' samples.
//!
//! This module owns the byte format of a single *chunk*: the samples
//! `(timestamp_ms, value)` of one series, at most [`MAX_SAMPLES`] of them,
//! with strictly increasing timestamps. It knows nothing about series, block
//! files or compression; the block writer concatenates many chunks into
//! frames of about 64 KiB and runs zstd over each frame. The layout is
//! therefore built for that second pass rather than for its own size: every
//! field is byte aligned, nothing is bit packed, and the bulk of a chunk is
//! *digit planes* of fixed-width integers, so that zstd sees long runs of
//! bytes drawn from one narrow distribution (the lowest digits of a
//! counter's increments, then the next digits, ...) and its entropy coder
//! does the rest.
//!
//! How samples become integers:
//!
//! * Timestamps are an integer column as they are.
//! * Values are turned into integers by decimal scaling: the chunk picks one
//!   exponent `e` and stores each value `v` as the integer mantissa `m` with
//!   `m as f64 / 10^e == v` bit for bit (IEEE division, so exactly what an
//!   exporter that printed `v` with `e` decimals produced). Values with no
//!   such mantissa (NaN, the Prometheus stale marker, ±Inf, -0.0,
//!   `0.1 + 0.2`, ...) are *exceptions*: their raw bits are stored on the
//!   side, and the encoder fills their slot in the mantissa column by
//!   interpolating between the neighbouring mantissas, so that they cost
//!   next to nothing there. When most values are exceptions the chunk
//!   stores all value bits instead ("raw" mode). The encoder picks whatever
//!   its size estimate says is smallest.
//! * An integer column stores its first element and then the differences
//!   of order 1 (deltas) or order 2 (deltas of deltas), whichever spans
//!   fewer values, as offsets from their minimum (`base`), divided by their
//!   greatest common divisor `g`, as `width` digit planes. A constant-rate
//!   column (regular timestamps, a constant gauge) costs only its header.
//!   Digits are bytes, but their base is chosen per column so that all
//!   planes use a similar number of symbols (see `balanced_radix`), which
//!   zstd's single Huffman table per block codes far better than one
//!   uniform low-byte plane next to a nearly constant high-byte plane.
//!
//! Decoding is lossless and bit exact, including NaN payloads. All integer
//! arithmetic of the format is wrapping arithmetic modulo 2^64, so any
//! `i64` timestamps, even ones whose differences overflow, round-trip.
//!
//! # Byte layout
//!
//! `uvar` is an unsigned LEB128 varint of at most 10 bytes, `svar` a zigzag
//! encoded `i64` (`(x << 1) ^ (x >> 63)`) as `uvar`, `u64le` eight bytes
//! little endian. All subtraction, addition and multiplication below is
//! wrapping modulo 2^64.
//!
//! ```text
//! chunk      = format:u8 (= 0x02)
//!              count:uvar                      n, 1..=65535
//!              timestamps:column(n)            t_0 .. t_{n-1}
//!              values
//!
//! values     = kind:u8 body
//!   kind 0..=15: decimal mode with exponent e = kind
//!     body   = xcount:uvar                     number of exceptions, <= n
//!              xgap:uvar * xcount              index_0, then index_k - index_{k-1} - 1
//!              xbits:u64le * xcount            raw f64 bits of each exception
//!              mantissas:column(n)             m_0 .. m_{n-1}
//!     v_i    = xbits of i if i is an exception index, else (m_i as f64) / 10^e
//!              (m_i at exception indexes is arbitrary and ignored)
//!   kind 0x80: raw mode
//!     body   = planes(n, 8, 256) of r_i = bits(v_i) XOR bits(v_{i-1}), bits(v_{-1}) = 0
//!
//! column(n)  = shape:u8                        bits 0..=3: width w (0..=8), bit 4: order 2,
//!                                              bits 5..=7: zero
//!              [radix-1:u8]                    only if w >= 2: radix 2..=256; else radix = 256
//!              g:uvar                          0 if and only if w is 0
//!              base:svar
//!              x_0:svar
//!              [d_1:svar]                      only for order 2 and n >= 2: x_1 - x_0
//!              planes(L, w, radix) of u_i
//!   order 1: L = n - 1, s_i = x_i - x_{i-1}                        for i in 1..n
//!   order 2: L = n - 2, s_i = (x_i - x_{i-1}) - (x_{i-1} - x_{i-2})   for i in 2..n
//!                       (L = 0 when n < 2)
//!   s_i      = base + u_i * g                  (the encoder uses base = min s_i)
//!
//! planes(L, w, r) = w runs of L bytes; run k holds digit k (k = 0 least
//!              significant) of every element in order:  u_i = sum_k digit_k(i) * r^k.
//!              With r = 256 digit k is simply byte k of the little-endian u_i.
//! ```
//!
//! The decoder checks every length and field before it allocates, rejects
//! trailing bytes, and never panics on any input.

use std::error::Error;
use std::fmt;

use super::encoding::{put_uvarint, put_varint, uvarint_len};

/// Format byte that starts every chunk produced by [`encode`].
pub const ENCODING_COLUMNAR: u8 = 0x02;

/// Largest number of samples one chunk may hold.
///
/// Keeping chunks small bounds what a decoder allocates for any input and
/// keeps exception indexes and plane offsets within `u16`-sized ranges.
pub const MAX_SAMPLES: usize = 65_535;

/// Largest decimal exponent tried for values. Powers of ten up to 10^22
/// are exact in `f64`, which the round-trip argument relies on; beyond
/// 10^15 only values below 10^-15 or with more than 15 significant digits
/// would gain, and those are rare in metrics: they become exceptions.
const MAX_DECIMAL_EXP: usize = 15;

/// Exact powers of ten, as the decoder divides by them.
const POW10_F64: [f64; MAX_DECIMAL_EXP + 1] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The same powers of ten as integers, to rescale mantissas exactly.
const POW10_I64: [i64; MAX_DECIMAL_EXP + 1] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// Mantissas stay strictly below 2^53 in magnitude so that `m as f64` is
/// exact and the division by 10^e is the only rounding step.
const MANTISSA_LIMIT: u64 = 1 << 53;

/// `kind` byte of the values section in raw mode.
const VALUES_RAW: u8 = 0x80;

/// Marks a value without a decimal representation in the encoder's tables.
const NO_EXP: u8 = u8::MAX;

/// Column shape byte: plane width in bits 0..=3, order 2 flag in bit 4.
const SHAPE_WIDTH_MASK: u8 = 0x0f;
const SHAPE_ORDER2: u8 = 0x10;
const SHAPE_RESERVED: u8 = 0xe0;

/// Rough encoded cost of one exception (8 raw bytes plus its index gap),
/// used only to compare alternatives.
const EXCEPTION_COST: usize = 10;

/// Why [`encode`] refused its input. The output buffer is left untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// There are no samples; a chunk holds at least one.
    Empty,
    /// More than [`MAX_SAMPLES`] samples were given.
    TooManySamples {
        /// Number of samples given.
        count: usize,
    },
    /// A timestamp is not greater than the one before it.
    NonIncreasingTimestamp {
        /// Index of the offending sample.
        index: usize,
        /// Timestamp of the sample before it.
        previous: i64,
        /// Timestamp of the offending sample.
        current: i64,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Empty => write!(f, "cannot encode an empty chunk: no samples"),
            EncodeError::TooManySamples { count } => write!(
                f,
                "cannot encode {count} samples in one chunk: at most {MAX_SAMPLES} allowed"
            ),
            EncodeError::NonIncreasingTimestamp {
                index,
                previous,
                current,
            } => write!(
                f,
                "timestamps must strictly increase: sample {index} has {current}, \
                 the sample before it {previous}"
            ),
        }
    }
}

impl Error for EncodeError {}

/// Why a byte string is not a valid chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends inside `field`.
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Byte offset at which the field starts or continues.
        offset: usize,
    },
    /// The first byte is not [`ENCODING_COLUMNAR`].
    UnknownFormat {
        /// The format byte found.
        found: u8,
    },
    /// The sample count is 0 or above [`MAX_SAMPLES`].
    BadSampleCount {
        /// The count found.
        count: u64,
    },
    /// A field holds a value that this format never contains.
    Malformed {
        /// The field being read.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Bytes are left over after a complete chunk.
    TrailingBytes {
        /// How many bytes are left over.
        extra: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { field, offset } => write!(
                f,
                "columnar chunk truncated: input ends in {field} at byte {offset}"
            ),
            DecodeError::UnknownFormat { found } => write!(
                f,
                "not a columnar chunk: format byte is {found:#04x}, expected {ENCODING_COLUMNAR:#04x}"
            ),
            DecodeError::BadSampleCount { count } => write!(
                f,
                "columnar chunk claims {count} samples, expected 1..={MAX_SAMPLES}"
            ),
            DecodeError::Malformed {
                field,
                offset,
                reason,
            } => write!(
                f,
                "malformed columnar chunk: {field} at byte {offset}: {reason}"
            ),
            DecodeError::TrailingBytes { extra } => write!(
                f,
                "columnar chunk followed by {extra} unexpected trailing byte(s)"
            ),
        }
    }
}

impl Error for DecodeError {}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Appends the encoding of `samples` to `out`.
///
/// `samples` must hold 1..=[`MAX_SAMPLES`] samples with strictly increasing
/// timestamps; otherwise an error is returned and `out` is left unchanged.
/// Any `f64` bit pattern is stored exactly.
pub fn encode(samples: &[(i64, f64)], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    check_samples(samples)?;
    out.push(ENCODING_COLUMNAR);
    put_uvarint(out, samples.len() as u64);

    let mut planes = Vec::with_capacity(samples.len());
    let timestamps: Vec<i64> = samples.iter().map(|&(t, _)| t).collect();
    let shape = plan_column(&timestamps);
    write_column(&timestamps, &shape, out, &mut planes);
    // The timestamp buffer is reused as the first mantissa candidate buffer.
    encode_values(samples, out, timestamps, &mut planes);
    Ok(())
}

fn check_samples(samples: &[(i64, f64)]) -> Result<(), EncodeError> {
    if samples.is_empty() {
        return Err(EncodeError::Empty);
    }
    if samples.len() > MAX_SAMPLES {
        return Err(EncodeError::TooManySamples {
            count: samples.len(),
        });
    }
    if let Some(i) = samples.windows(2).position(|w| w[1].0 <= w[0].0) {
        return Err(EncodeError::NonIncreasingTimestamp {
            index: i + 1,
            previous: samples[i].0,
            current: samples[i + 1].0,
        });
    }
    Ok(())
}

/// The decimal exponent and mantissa chosen for a values section.
struct DecimalChoice {
    exp: usize,
    exceptions: usize,
    shape: ColumnShape,
}

fn encode_values(
    samples: &[(i64, f64)],
    out: &mut Vec<u8>,
    mut candidate: Vec<i64>,
    planes: &mut Vec<u64>,
) {
    let n = samples.len();
    // Each value's own smallest exponent and the mantissa at it. Any larger
    // exponent then works by exact integer rescaling (see `rescale`), so no
    // value is scaled and checked in floating point more than once.
    let mut exps = Vec::with_capacity(n);
    let mut mants = Vec::with_capacity(n);
    let mut histogram = [0usize; MAX_DECIMAL_EXP + 1];
    for &(_, v) in samples {
        match decimal_repr(v) {
            Some((e, m)) => {
                histogram[usize::from(e)] += 1;
                exps.push(e);
                mants.push(m);
            }
            None => {
                exps.push(NO_EXP);
                mants.push(0);
            }
        }
    }

    // Candidates are the exponents that some value needs, largest first:
    // the largest one usually has no exceptions and wins, and a smaller one
    // is only worth trying if turning the values that need more digits into
    // exceptions could beat the best estimate so far.
    let mut best_size = 1 + 8 * n; // raw mode
    let mut best: Option<DecimalChoice> = None;
    let mut best_mants = Vec::new();
    // Number of values whose own exponent is at most the current one.
    let mut regular_up_to: usize = histogram.iter().sum();
    for exp in (0..=MAX_DECIMAL_EXP).rev() {
        if histogram[exp] == 0 {
            continue;
        }
        // A lower bound: values needing a larger exponent are exceptions,
        // and rescaling may overflow the mantissa limit for a few more.
        let min_exceptions = n - regular_up_to;
        regular_up_to -= histogram[exp];
        if min_exceptions * EXCEPTION_COST >= best_size {
            continue;
        }
        let Some(exceptions) = fill_mantissas(&exps, &mants, exp, &mut candidate) else {
            continue;
        };
        let shape = plan_column(&candidate);
        let size = 1
            + uvarint_len(exceptions as u64)
            + exceptions * EXCEPTION_COST
            + shape.estimated_len(&candidate);
        if size < best_size {
            best_size = size;
            best = Some(DecimalChoice {
                exp,
                exceptions,
                shape,
            });
            std::mem::swap(&mut candidate, &mut best_mants);
        }
    }

    match best {
        Some(choice) => write_decimal(samples, &exps, &mants, &choice, &best_mants, out, planes),
        None => write_raw(samples, out, planes),
    }
}

fn write_decimal(
    samples: &[(i64, f64)],
    exps: &[u8],
    mants: &[i64],
    choice: &DecimalChoice,
    mantissas: &[i64],
    out: &mut Vec<u8>,
    planes: &mut Vec<u64>,
) {
    let exp = choice.exp;
    // `exp <= MAX_DECIMAL_EXP < 0x80`, so it never collides with VALUES_RAW.
    out.push(exp as u8);
    put_uvarint(out, choice.exceptions as u64);
    let is_exception = |i: usize| rescale(exps[i], mants[i], exp).is_none();
    let mut next = 0;
    for i in (0..samples.len()).filter(|&i| is_exception(i)) {
        put_uvarint(out, (i - next) as u64);
        next = i + 1;
    }
    for i in (0..samples.len()).filter(|&i| is_exception(i)) {
        out.extend_from_slice(&samples[i].1.to_bits().to_le_bytes());
    }
    write_column(mantissas, &choice.shape, out, planes);
}

fn write_raw(samples: &[(i64, f64)], out: &mut Vec<u8>, planes: &mut Vec<u64>) {
    out.push(VALUES_RAW);
    planes.clear();
    let mut prev = 0u64;
    planes.extend(samples.iter().map(|&(_, v)| {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        x
    }));
    put_planes(out, planes, 8, 256);
}

/// The smallest exponent `e` and mantissa `m` with `m as f64 / 10^e`
/// reproducing `v` bit for bit, if there is one.
fn decimal_repr(v: f64) -> Option<(u8, i64)> {
    // -0.0 would pass a float comparison but its mantissa 0 decodes as +0.0.
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    let bits = v.to_bits();
    for (e, &p) in POW10_F64.iter().enumerate() {
        // Once |v * 10^e| reaches the mantissa limit, larger e only grows it.
        let m = round_to_mantissa(v * p)?;
        // Exactly what the decoder computes (division by 1.0 is exact).
        if (m as f64 / p).to_bits() == bits {
            return Some((e as u8, m));
        }
    }
    None
}

/// Nearest integer to `x` (ties away from zero), if below the mantissa
/// limit. Truncation plus an exact fractional-part check is much cheaper
/// than `f64::round`, which is a library call on baseline x86-64.
fn round_to_mantissa(x: f64) -> Option<i64> {
    const LIMIT: f64 = MANTISSA_LIMIT as f64;
    // Written so that NaN fails too.
    if x.abs().partial_cmp(&LIMIT) != Some(std::cmp::Ordering::Less) {
        return None;
    }
    let t = x as i64;
    // Exact: x and its truncation share all integer bits.
    let frac = x - t as f64;
    let m = if frac >= 0.5 {
        t + 1
    } else if frac <= -0.5 {
        t - 1
    } else {
        t
    };
    (m.unsigned_abs() < MANTISSA_LIMIT).then_some(m)
}

/// The mantissa at exponent `exp` of a value whose own smallest exponent is
/// `own_exp` with mantissa `m`, or `None` if it has to be an exception.
///
/// `(m * 10^k) / 10^(own_exp + k)` is the same rational number as
/// `m / 10^own_exp`, both divisions have exact operands (|mantissa| < 2^53,
/// 10^e exact for e <= 22), and IEEE division rounds the exact quotient
/// correctly, so the rescaled mantissa decodes to the same bits.
fn rescale(own_exp: u8, m: i64, exp: usize) -> Option<i64> {
    let k = exp.checked_sub(usize::from(own_exp))?;
    m.checked_mul(POW10_I64[k])
        .filter(|x| x.unsigned_abs() < MANTISSA_LIMIT)
}

/// Fills `out` with the mantissas at exponent `exp` and returns the number
/// of exceptions; `None` if every value is an exception.
///
/// The decoder ignores the mantissas in exception slots, so the encoder
/// fills them with whatever keeps the difference streams narrow: a straight
/// line between the neighbouring regular mantissas, or at the ends of the
/// chunk the neighbouring slope continued. Simply repeating the previous
/// mantissa would put the whole change across a gap into one difference
/// and could widen every plane of the chunk.
fn fill_mantissas(exps: &[u8], mants: &[i64], exp: usize, out: &mut Vec<i64>) -> Option<usize> {
    out.clear();
    let mut exceptions = 0;
    let mut run_start = None;
    let mut leading = None;
    for (i, (&e, &m)) in exps.iter().zip(mants).enumerate() {
        match rescale(e, m, exp) {
            Some(x) => {
                out.push(x);
                match run_start.take() {
                    Some(0) => leading = Some(i),
                    Some(a) => interpolate(&mut out[a - 1..=i]),
                    None => {}
                }
            }
            None => {
                exceptions += 1;
                out.push(0);
                run_start.get_or_insert(i);
            }
        }
    }
    if exceptions == out.len() {
        return None;
    }
    // Slopes are taken between regular or already filled slots only.
    let first_regular = leading.unwrap_or(0);
    if let Some(a) = run_start {
        // Trailing run; a > first_regular as some value is regular.
        let slope = match a.checked_sub(2) {
            Some(i) if i >= first_regular => out[a - 1] - out[i],
            _ => 0,
        };
        extrapolate(out[a - 1], slope, out[a..].iter_mut());
    }
    if let Some(b) = leading {
        let slope = out.get(b + 1).map_or(0, |&x| x - out[b]);
        extrapolate(out[b], -slope, out[..b].iter_mut().rev());
    }
    Some(exceptions)
}

/// Replaces the inner elements of `line` by the straight line between its
/// first and last elements (rounded down).
fn interpolate(line: &mut [i64]) {
    let (Some(&p), Some(&q)) = (line.first(), line.last()) else {
        return;
    };
    // i128: the difference times the run length can exceed i64.
    let steps = (line.len() - 1) as i128;
    let diff = i128::from(q) - i128::from(p);
    let inner = line.len().saturating_sub(1);
    for (j, slot) in line[..inner].iter_mut().enumerate().skip(1) {
        *slot = p + (diff * j as i128).div_euclid(steps) as i64;
    }
}

/// Continues `anchor` by `slope` per slot, never leaving the mantissa range.
fn extrapolate<'a>(anchor: i64, slope: i64, slots: impl Iterator<Item = &'a mut i64>) {
    let mut x = anchor;
    for slot in slots {
        // |x| < 2^53 and |slope| < 2^54, so this cannot overflow.
        let next = x + slope;
        if next.unsigned_abs() < MANTISSA_LIMIT {
            x = next;
        }
        *slot = x;
    }
}

/// How one stream of differences is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StreamShape {
    base: i64,
    g: u64,
    /// Largest stored value, `(max - base) / g`.
    span: u64,
    /// Number of digit planes.
    width: u8,
    /// Base of the digits, 2..=256; always 256 for widths below 2.
    radix: u64,
}

/// How an integer column is stored.
#[derive(Clone, Copy, Debug)]
struct ColumnShape {
    order2: bool,
    stream: StreamShape,
}

impl ColumnShape {
    /// Bytes of `write_column` output for `xs` (exact).
    fn estimated_len(&self, xs: &[i64]) -> usize {
        let n = xs.len();
        let (d1_len, stream_len) = if self.order2 {
            let d1 = match xs {
                [a, b, ..] => svarint_len(b.wrapping_sub(*a)),
                _ => 0,
            };
            (d1, n.saturating_sub(2))
        } else {
            (0, n.saturating_sub(1))
        };
        1 + usize::from(self.stream.width >= 2)
            + uvarint_len(self.stream.g)
            + svarint_len(self.stream.base)
            + xs.first().map_or(1, |&x| svarint_len(x))
            + d1_len
            + stream_len * usize::from(self.stream.width)
    }
}

fn order1_stream(xs: &[i64]) -> impl Iterator<Item = i64> + Clone + '_ {
    xs.windows(2).map(|w| w[1].wrapping_sub(w[0]))
}

fn order2_stream(xs: &[i64]) -> impl Iterator<Item = i64> + Clone + '_ {
    xs.windows(3).map(|w| {
        w[2].wrapping_sub(w[1])
            .wrapping_sub(w[1].wrapping_sub(w[0]))
    })
}

/// Frame of reference, common divisor and plane width of a stream.
fn stream_shape(stream: impl Iterator<Item = i64> + Clone) -> StreamShape {
    let (lo, hi) = stream
        .clone()
        .fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
    if lo > hi {
        // Empty stream.
        return StreamShape {
            base: 0,
            g: 0,
            span: 0,
            width: 0,
            radix: 256,
        };
    }
    // s - lo is the exact non-negative difference, as lo <= s.
    let mut g = 0;
    for s in stream {
        g = gcd(g, s.wrapping_sub(lo) as u64);
        if g == 1 {
            break;
        }
    }
    let span = match g {
        0 => 0,
        g => hi.wrapping_sub(lo) as u64 / g,
    };
    let width = byte_width(span);
    StreamShape {
        base: lo,
        g,
        span,
        width,
        radix: balanced_radix(span, width),
    }
}

/// The smallest digit base `r` with `r^width > span`, for `width >= 2`.
///
/// With base 256, a stream spanning say 0..1500 has one plane of uniformly
/// spread low bytes and one of nearly constant high bytes. zstd codes all
/// literals of a block with one Huffman table, so the uniform plane pays
/// for every symbol the other planes (and other chunks of the frame) make
/// common, and vice versa. Base 39 makes both planes uniform over 0..39,
/// small symbols like most other planes have: the same number of planes,
/// markedly fewer bits after zstd.
fn balanced_radix(span: u64, width: u8) -> u64 {
    if width < 2 {
        return 256;
    }
    let exceeds = |r: u64| u128::from(r).pow(u32::from(width)) > u128::from(span);
    // Binary search for the first r in 2..=256 with r^width > span; 256
    // always qualifies as width bytes hold span.
    let (mut lo, mut hi) = (2u64, 256u64);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if exceeds(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Picks delta order 1 or 2 for a column, whichever needs narrower planes
/// (then: spans fewer values). Order 1 wins ties: it is cheaper to decode.
fn plan_column(xs: &[i64]) -> ColumnShape {
    let first = stream_shape(order1_stream(xs));
    if xs.len() >= 3 && first.g != 0 {
        let second = stream_shape(order2_stream(xs));
        if (second.width, second.span) < (first.width, first.span) {
            return ColumnShape {
                order2: true,
                stream: second,
            };
        }
    }
    ColumnShape {
        order2: false,
        stream: first,
    }
}

fn write_column(xs: &[i64], shape: &ColumnShape, out: &mut Vec<u8>, planes: &mut Vec<u64>) {
    let StreamShape {
        base,
        g,
        width,
        radix,
        ..
    } = shape.stream;
    out.push(width | if shape.order2 { SHAPE_ORDER2 } else { 0 });
    if width >= 2 {
        // radix is 2..=256.
        out.push((radix - 1) as u8);
    }
    put_uvarint(out, g);
    put_varint(out, base);
    let Some(&first) = xs.first() else {
        return;
    };
    put_varint(out, first);
    if let (true, Some(&second)) = (shape.order2, xs.get(1)) {
        put_varint(out, second.wrapping_sub(first));
    }
    if width == 0 {
        return;
    }
    let store = move |s: i64| {
        let u = s.wrapping_sub(base) as u64;
        // Skipping the division matters: it is the common case and a
        // 64-bit division costs tens of cycles.
        if g == 1 {
            u
        } else {
            u / g
        }
    };
    planes.clear();
    if shape.order2 {
        planes.extend(order2_stream(xs).map(store));
    } else {
        planes.extend(order1_stream(xs).map(store));
    }
    put_planes(out, planes, usize::from(width), radix);
}

/// Appends `width` digit planes of `values` in base `radix`: all lowest
/// digits, then all second digits, and so on. Every value must be below
/// `radix^width`; `values` is used up as scratch.
fn put_planes(out: &mut Vec<u8>, values: &mut [u64], width: usize, radix: u64) {
    out.reserve(values.len() * width);
    if radix == 256 {
        for k in 0..width {
            let shift = 8 * k;
            out.extend(values.iter().map(|&v| (v >> shift) as u8));
        }
    } else if width <= 4 {
        // Values are below radix^width <= 2^32: 32-bit division is faster.
        let radix = radix as u32;
        for _ in 0..width {
            out.extend(values.iter_mut().map(|v| {
                let x = *v as u32;
                *v = u64::from(x / radix);
                (x % radix) as u8
            }));
        }
    } else {
        for _ in 0..width {
            out.extend(values.iter_mut().map(|v| {
                let x = *v;
                *v = x / radix;
                (x % radix) as u8
            }));
        }
    }
}

/// Bytes needed to hold `x` (0 for 0).
fn byte_width(x: u64) -> u8 {
    (64 - x.leading_zeros()).div_ceil(8) as u8
}

/// Binary GCD; `gcd(0, x) == x`.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    if a == 0 {
        return b;
    }
    if b == 0 {
        return a;
    }
    let shift = (a | b).trailing_zeros();
    a >>= a.trailing_zeros();
    loop {
        b >>= b.trailing_zeros();
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        b -= a;
        if b == 0 {
            return a << shift;
        }
    }
}

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(x: u64) -> i64 {
    ((x >> 1) as i64) ^ -((x & 1) as i64)
}

fn svarint_len(x: i64) -> usize {
    uvarint_len(zigzag(x))
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes one chunk produced by [`encode`].
///
/// `bytes` must be exactly one chunk: truncated input, unknown fields and
/// trailing bytes are errors. Never panics.
pub fn decode(bytes: &[u8]) -> Result<Vec<(i64, f64)>, DecodeError> {
    let mut out = Vec::new();
    decode_into(bytes, &mut out)?;
    Ok(out)
}

/// Decodes one chunk produced by [`encode`], appending its samples to `out`.
///
/// On error `out` is left unchanged. The whole input is validated before
/// anything is allocated or appended, so garbage claiming many samples
/// fails cheaply; a valid chunk allocates at most 24 bytes per sample
/// (its samples plus one scratch word), whatever its encoded size.
pub fn decode_into(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> Result<(), DecodeError> {
    let chunk = Chunk::parse(bytes)?;
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.clear();
        scratch.resize(chunk.n, 0);
        decode_columns(&chunk, out, scratch);
    });
    Ok(())
}

thread_local! {
    /// The column being decoded: reused, since queries decode chunk after
    /// chunk on the same threads.
    static SCRATCH: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends the samples of a parsed `chunk` to `out`, through `scratch`
/// (one word per sample).
fn decode_columns(chunk: &Chunk<'_>, out: &mut Vec<(i64, f64)>, scratch: &mut [u64]) {
    chunk.timestamps.decode(scratch);
    let start = out.len();
    out.extend(scratch.iter().map(|&t| (t as i64, 0.0)));
    let dst = &mut out[start..];

    match &chunk.values {
        Values::Raw { planes } => {
            gather(planes, 8, 256, scratch);
            let mut bits = 0u64;
            for (sample, &x) in dst.iter_mut().zip(scratch.iter()) {
                bits ^= x;
                sample.1 = f64::from_bits(bits);
            }
        }
        Values::Decimal {
            exp,
            exceptions,
            mantissas,
        } => {
            mantissas.decode(scratch);
            if *exp == 0 {
                // Integers (counters mostly): dividing by 1.0 changes nothing.
                for (sample, &m) in dst.iter_mut().zip(scratch.iter()) {
                    sample.1 = m as i64 as f64;
                }
            } else {
                let p = POW10_F64[*exp];
                for (sample, &m) in dst.iter_mut().zip(scratch.iter()) {
                    sample.1 = m as i64 as f64 / p;
                }
            }
            exceptions.for_each(|i, bits| {
                if let Some(sample) = dst.get_mut(i) {
                    sample.1 = f64::from_bits(bits);
                }
            });
        }
    }
}

/// Reads the sample count from a chunk's header without decoding it.
///
/// Only the header is checked: a chunk with a valid header may still fail
/// to decode.
pub fn sample_count(bytes: &[u8]) -> Result<usize, DecodeError> {
    let mut r = Reader::new(bytes);
    read_header(&mut r)
}

fn read_header(r: &mut Reader<'_>) -> Result<usize, DecodeError> {
    let format = r.u8("format byte")?;
    if format != ENCODING_COLUMNAR {
        return Err(DecodeError::UnknownFormat { found: format });
    }
    let count = r.uvarint("sample count")?;
    match usize::try_from(count) {
        Ok(n) if (1..=MAX_SAMPLES).contains(&n) => Ok(n),
        _ => Err(DecodeError::BadSampleCount { count }),
    }
}

/// A fully validated chunk whose bulk data still lives in the input.
struct Chunk<'a> {
    n: usize,
    timestamps: Column<'a>,
    values: Values<'a>,
}

enum Values<'a> {
    Raw {
        planes: &'a [u8],
    },
    Decimal {
        exp: usize,
        exceptions: Exceptions<'a>,
        mantissas: Column<'a>,
    },
}

impl<'a> Chunk<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let n = read_header(&mut r)?;
        let timestamps = Column::parse(&mut r, n, "timestamp column")?;
        let kind_offset = r.pos;
        let kind = r.u8("values kind")?;
        let values = match kind {
            VALUES_RAW => Values::Raw {
                planes: r.take(8 * n, "raw value planes")?,
            },
            e if usize::from(e) <= MAX_DECIMAL_EXP => Values::Decimal {
                exp: usize::from(e),
                exceptions: Exceptions::parse(&mut r, n)?,
                mantissas: Column::parse(&mut r, n, "mantissa column")?,
            },
            _ => {
                return Err(DecodeError::Malformed {
                    field: "values kind",
                    offset: kind_offset,
                    reason: "neither a decimal exponent 0..=15 nor raw mode 0x80",
                });
            }
        };
        r.finish()?;
        Ok(Chunk {
            n,
            timestamps,
            values,
        })
    }
}

/// The exception list of a decimal values section, already validated.
struct Exceptions<'a> {
    gaps: &'a [u8],
    bits: &'a [u8],
}

impl<'a> Exceptions<'a> {
    fn parse(r: &mut Reader<'a>, n: usize) -> Result<Self, DecodeError> {
        let count_offset = r.pos;
        let count = r.uvarint("exception count")?;
        let count =
            usize::try_from(count)
                .ok()
                .filter(|&c| c <= n)
                .ok_or(DecodeError::Malformed {
                    field: "exception count",
                    offset: count_offset,
                    reason: "more exceptions than samples",
                })?;
        let gaps_start = r.pos;
        let mut next = 0usize;
        for _ in 0..count {
            let offset = r.pos;
            let gap = r.uvarint("exception index")?;
            next = usize::try_from(gap)
                .ok()
                .and_then(|gap| next.checked_add(gap))
                .filter(|&i| i < n)
                .ok_or(DecodeError::Malformed {
                    field: "exception index",
                    offset,
                    reason: "index beyond the last sample",
                })?
                + 1;
        }
        let gaps = &r.buf[gaps_start..r.pos];
        let bits = r.take(8 * count, "exception values")?;
        Ok(Exceptions { gaps, bits })
    }

    /// Calls `f(index, bits)` for each exception.
    fn for_each(&self, mut f: impl FnMut(usize, u64)) {
        let mut r = Reader::new(self.gaps);
        let mut next = 0usize;
        for raw in self.bits.chunks_exact(8) {
            // Validated by `parse`; stopping on error keeps this panic free.
            let Ok(gap) = r.uvarint("exception index") else {
                return;
            };
            let index = next.wrapping_add(gap as usize);
            let mut le = [0u8; 8];
            le.copy_from_slice(raw);
            f(index, u64::from_le_bytes(le));
            next = index.wrapping_add(1);
        }
    }
}

/// A validated integer column header with its planes.
struct Column<'a> {
    order2: bool,
    width: usize,
    radix: u64,
    g: u64,
    base: i64,
    first: i64,
    d1: i64,
    planes: &'a [u8],
}

impl<'a> Column<'a> {
    fn parse(r: &mut Reader<'a>, n: usize, what: &'static str) -> Result<Self, DecodeError> {
        let shape_offset = r.pos;
        let shape = r.u8(what)?;
        let width = usize::from(shape & SHAPE_WIDTH_MASK);
        if shape & SHAPE_RESERVED != 0 || width > 8 {
            return Err(DecodeError::Malformed {
                field: what,
                offset: shape_offset,
                reason: "shape byte has reserved bits set or a width above 8",
            });
        }
        let order2 = shape & SHAPE_ORDER2 != 0;
        let radix = if width >= 2 {
            let offset = r.pos;
            match r.u8(what)? {
                0 => {
                    return Err(DecodeError::Malformed {
                        field: what,
                        offset,
                        reason: "digit base below 2",
                    });
                }
                b => u64::from(b) + 1,
            }
        } else {
            256
        };
        let g_offset = r.pos;
        let g = r.uvarint(what)?;
        if (g == 0) != (width == 0) {
            return Err(DecodeError::Malformed {
                field: what,
                offset: g_offset,
                reason: "common divisor is zero exactly when the plane width is not",
            });
        }
        let base = r.svarint(what)?;
        let first = r.svarint(what)?;
        let (d1, len) = if order2 {
            let d1 = if n >= 2 { r.svarint(what)? } else { 0 };
            (d1, n.saturating_sub(2))
        } else {
            (0, n - 1)
        };
        let planes = r.take(len * width, what)?;
        Ok(Column {
            order2,
            width,
            radix,
            g,
            base,
            first,
            d1,
            planes,
        })
    }

    /// Writes `x_0 .. x_{n-1}` (as `u64` bits) to `dst`, `n = dst.len()`.
    fn decode(&self, dst: &mut [u64]) {
        let n = dst.len();
        let stream_start = if self.order2 { 2.min(n) } else { 1.min(n) };
        let Some((head, stream)) = dst.split_at_mut_checked(stream_start) else {
            return;
        };
        gather(self.planes, self.width, self.radix, stream);
        let (base, g) = (self.base as u64, self.g);
        let first = self.first as u64;
        if let Some(x) = head.first_mut() {
            *x = first;
        }
        // Scaling each digit sum is off the running sums' dependency chain,
        // so it costs nothing inside their loop and saves a pass.
        if self.order2 {
            let mut d = self.d1 as u64;
            let mut x = first.wrapping_add(d);
            if let Some(second) = head.get_mut(1) {
                *second = x;
            }
            for s in stream.iter_mut() {
                d = d.wrapping_add(base.wrapping_add(s.wrapping_mul(g)));
                x = x.wrapping_add(d);
                *s = x;
            }
        } else {
            let mut x = first;
            for s in stream.iter_mut() {
                x = x.wrapping_add(base.wrapping_add(s.wrapping_mul(g)));
                *s = x;
            }
        }
    }
}

/// Reassembles integers from `width` digit planes in base `radix` into
/// `dst` (wrapping, so digits out of range cannot panic).
fn gather(planes: &[u8], width: usize, radix: u64, dst: &mut [u64]) {
    let len = dst.len();
    // Horner's rule from the most significant plane down, plane by plane,
    // keeps every loop a simple vectorizable pass; the top plane is copied.
    let mut planes = planes.chunks_exact(len.max(1)).take(width).rev();
    let Some(top) = planes.next() else {
        dst.fill(0);
        return;
    };
    for (d, &b) in dst.iter_mut().zip(top) {
        *d = u64::from(b);
    }
    for plane in planes {
        for (d, &b) in dst.iter_mut().zip(plane) {
            *d = d.wrapping_mul(radix).wrapping_add(u64::from(b));
        }
    }
}

/// Bounds-checked cursor over the input.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn truncated(&self, field: &'static str) -> DecodeError {
        DecodeError::Truncated {
            field,
            offset: self.pos,
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| self.truncated(field))?;
        self.pos += 1;
        Ok(b)
    }

    fn uvarint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut x = 0u64;
        let mut shift = 0;
        loop {
            let b = self.u8(field)?;
            if shift == 63 && b > 1 {
                return Err(DecodeError::Malformed {
                    field,
                    offset: start,
                    reason: "varint longer than 64 bits",
                });
            }
            x |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(x);
            }
            shift += 7;
        }
    }

    fn svarint(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.uvarint(field).map(unzigzag)
    }

    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.truncated(field))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { extra }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    fn specials() -> Vec<f64> {
        vec![
            f64::from_bits(STALE_NAN),
            f64::NAN,
            f64::from_bits(0xfff8_0000_0000_0001), // negative NaN with payload
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::from_bits(1), // smallest subnormal
            f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            (1u64 << 60) as f64,
            -((1u64 << 53) as f64),
            0.1 + 0.2,
            1.0 / 3.0,
            1e-300,
            -1e300,
            123456789.123456,
        ]
    }

    fn assert_same(want: &[(i64, f64)], got: &[(i64, f64)]) {
        assert_eq!(want.len(), got.len(), "sample count");
        for (i, (a, b)) in want.iter().zip(got).enumerate() {
            assert_eq!(a.0, b.0, "timestamp {i}");
            assert_eq!(
                a.1.to_bits(),
                b.1.to_bits(),
                "value {i}: want {:e} got {:e}",
                a.1,
                b.1
            );
        }
    }

    /// Encodes, checks every decode entry point, returns the encoding.
    fn roundtrip(samples: &[(i64, f64)]) -> Vec<u8> {
        let mut buf = vec![0xaa];
        encode(samples, &mut buf).unwrap();
        assert_eq!(buf[0], 0xaa, "encode must append");
        let enc = buf[1..].to_vec();
        assert_eq!(sample_count(&enc).unwrap(), samples.len());
        assert_same(samples, &decode(&enc).unwrap());
        let mut into = vec![(7, 7.0)];
        decode_into(&enc, &mut into).unwrap();
        assert_eq!(into[0].0, 7);
        assert_same(samples, &into[1..]);
        enc
    }

    fn zip_ts(ts: &[i64], values: &[f64]) -> Vec<(i64, f64)> {
        ts.iter().copied().zip(values.iter().copied()).collect()
    }

    fn regular_ts(n: usize) -> Vec<i64> {
        (0..n as i64)
            .map(|i| 1_700_000_000_000 + 15_000 * i)
            .collect()
    }

    // -- generators shared by the unit, property and measurement tests --

    fn gen_timestamps(rng: &mut StdRng, n: usize) -> Vec<i64> {
        match rng.gen_range(0..5) {
            0 => regular_ts(n),
            1 => (0..n as i64)
                .map(|i| 1_700_000_000_000 + 15_000 * i + rng.gen_range(-3..=3))
                .collect(),
            2 => {
                let mut t = rng.gen_range(-1_000_000_000..1_000_000_000);
                (0..n)
                    .map(|_| {
                        t += if rng.gen_ratio(1, 50) {
                            rng.gen_range(15_000..100_000_000)
                        } else {
                            15_000 + rng.gen_range(0..5)
                        };
                        t
                    })
                    .collect()
            }
            3 => {
                // Extremes: sorted random i64s including both ends, so
                // differences overflow i64.
                let mut ts: Vec<i64> = (0..n).map(|_| rng.r#gen()).collect();
                ts.push(i64::MIN);
                ts.push(i64::MAX);
                ts.sort_unstable();
                ts.dedup();
                ts.truncate(n.max(2) - 1);
                if let Some(last) = ts.last_mut() {
                    *last = i64::MAX;
                }
                ts.dedup();
                ts
            }
            _ => {
                let start = if rng.r#gen() {
                    i64::MIN
                } else {
                    i64::MAX - n as i64 * 1000 - 1
                };
                (0..n as i64)
                    .map(|i| start + i * 1000 + rng.gen_range(0..=1))
                    .collect()
            }
        }
    }

    fn round2(x: f64) -> f64 {
        (x * 100.0).round() / 100.0
    }

    fn gen_values(rng: &mut StdRng, n: usize) -> Vec<f64> {
        let sp = specials();
        let mut v = f64::from(rng.gen_range(0..10_000));
        let kind = rng.gen_range(0..11);
        let exp = rng.gen_range(0..=15);
        (0..n)
            .map(|_| {
                let out = v;
                v = match kind {
                    0 => v + f64::from(rng.gen_range(0..=50)),
                    1 => round2(v + rng.gen_range(0.0..=15.0)),
                    2 => v + f64::from(rng.gen_range(-100..=100)) * 10_000.0,
                    3 => round2(v + f64::from(rng.gen_range(-100..=100)) / 100.0 * 0.5),
                    4 => sp[rng.gen_range(0..sp.len())],
                    5 => f64::from_bits(rng.r#gen()),
                    6 => {
                        // Mostly a counter, sometimes special or random.
                        match rng.gen_range(0..20) {
                            0 => sp[rng.gen_range(0..sp.len())],
                            1 => f64::from_bits(rng.r#gen()),
                            2 => 0.1 + f64::from(rng.gen_range(0..100)) / 7.0,
                            _ => out.abs().min(1e12).floor() + f64::from(rng.gen_range(0..=20)),
                        }
                    }
                    7 => 42.0,
                    8 => {
                        // Decimals with a random number of digits.
                        let m = rng.gen_range(-(1i64 << 50)..(1i64 << 50));
                        m as f64 / POW10_F64[exp]
                    }
                    9 => rng.gen_range(-1e6..1e6),
                    _ => 8_123_450_000.0 + f64::from(rng.gen_range(-5..=5)) * 10_000.0,
                };
                out
            })
            .collect()
    }

    fn gen_series(rng: &mut StdRng, n: usize) -> Vec<(i64, f64)> {
        let ts = gen_timestamps(rng, n);
        let values = gen_values(rng, ts.len());
        zip_ts(&ts, &values)
    }

    // -- round trips --

    #[test]
    fn golden_small_chunks() {
        let mut out = Vec::new();
        encode(&[(1000, 1.5), (2000, 2.5), (3000, 3.5)], &mut out).unwrap();
        #[rustfmt::skip]
        let want = [
            0x02, 0x03,                         // format, count
            0x00, 0x00, 0xd0, 0x0f, 0xd0, 0x0f, // ts: shape, g, base 1000, t0 1000
            0x01, 0x00,                         // decimal e = 1, no exceptions
            0x00, 0x00, 0x14, 0x1e,             // mantissas: shape, g, base 10, m0 15
        ];
        assert_eq!(out, want);

        out.clear();
        let stale = f64::from_bits(STALE_NAN);
        encode(&[(0, 1.0), (10, stale), (20, 3.0), (35, 4.0)], &mut out).unwrap();
        #[rustfmt::skip]
        let want = [
            0x02, 0x04,
            0x01, 0x05, 0x14, 0x00, 0x00, 0x00, 0x01, // ts: w 1, g 5, base 10, t0 0, plane
            0x00, 0x01, 0x01,                         // e = 0, one exception at index 1
            0x02, 0, 0, 0, 0, 0, 0xf0, 0x7f,          // its bits
            0x00, 0x00, 0x02, 0x02,                   // mantissas 1 (2) 3 4: base 1, m0 1
        ];
        assert_eq!(out, want);
        assert_same(
            &[(0, 1.0), (10, stale), (20, 3.0), (35, 4.0)],
            &decode(&out).unwrap(),
        );
    }

    #[test]
    fn integer_counters() {
        let mut rng = StdRng::seed_from_u64(1);
        for step in [0u64, 1, 2, 20, 50, 1000, 1 << 40] {
            let mut v = 5000.0;
            let values: Vec<f64> = (0..480)
                .map(|_| {
                    v += rng.gen_range(0..=step) as f64;
                    v
                })
                .collect();
            let enc = roundtrip(&zip_ts(&regular_ts(480), &values));
            if step <= 50 {
                assert!(enc.len() < 480 + 40, "step {step}: {} bytes", enc.len());
            }
        }
    }

    #[test]
    fn constant_and_linear_series_cost_only_headers() {
        let ts = regular_ts(MAX_SAMPLES);
        let constant = vec![1.0; MAX_SAMPLES];
        assert!(roundtrip(&zip_ts(&ts, &constant)).len() < 24);
        let linear: Vec<f64> = (0..MAX_SAMPLES).map(|i| i as f64 * 0.25).collect();
        assert!(roundtrip(&zip_ts(&ts, &linear)).len() < 24);
    }

    #[test]
    fn decimals_and_gauges() {
        let mut rng = StdRng::seed_from_u64(2);
        let ts = regular_ts(480);
        let mut cpu = 100.0;
        let mut walk = 3456.78;
        let mut mem = 8_123_450_000.0;
        let mut cpus = Vec::new();
        let mut walks = Vec::new();
        let mut mems = Vec::new();
        for _ in 0..480 {
            cpu = round2(cpu + rng.gen_range(0.0..=15.0));
            walk = round2(walk + rng.gen_range(-0.5..=0.5));
            mem += f64::from(rng.gen_range(-50..=50)) * 10_000.0;
            cpus.push(cpu);
            walks.push(walk);
            mems.push(mem);
        }
        // 1501 possible increments: two planes.
        assert!(roundtrip(&zip_ts(&ts, &cpus)).len() < 2 * 480 + 40);
        // 101 possible steps, one plane; the divisor 10^4 is found.
        assert!(roundtrip(&zip_ts(&ts, &walks)).len() < 480 + 40);
        assert!(roundtrip(&zip_ts(&ts, &mems)).len() < 480 + 40);
        for p in POW10_F64 {
            let values: Vec<f64> = (0..480)
                .map(|_| rng.gen_range(-(1i64 << 52)..(1i64 << 52)) as f64 / p)
                .collect();
            roundtrip(&zip_ts(&ts, &values));
        }
    }

    fn mantissa_column(enc: &[u8]) -> Column<'_> {
        match Chunk::parse(enc).unwrap().values {
            Values::Decimal { mantissas, .. } => mantissas,
            Values::Raw { .. } => panic!("raw mode"),
        }
    }

    #[test]
    fn balanced_digit_planes() {
        assert_eq!(balanced_radix(200, 1), 256);
        assert_eq!(balanced_radix(256, 2), 17);
        assert_eq!(balanced_radix(1500, 2), 39);
        assert_eq!(balanced_radix(65_535, 2), 256);
        assert_eq!(balanced_radix(65_536, 3), 41);
        assert_eq!(balanced_radix(1 << 56, 8), 129);
        assert_eq!(balanced_radix(u64::MAX, 8), 256);
        // CPU seconds: increments 0.00..=15.00 become two base-39 planes.
        let mut rng = StdRng::seed_from_u64(9);
        let mut m = 0i64;
        let values: Vec<f64> = (0..480)
            .map(|i| {
                m += match i {
                    1 => 0,
                    2 => 1500,
                    _ => rng.gen_range(0..=1500),
                };
                m as f64 / 100.0
            })
            .collect();
        let enc = roundtrip(&zip_ts(&regular_ts(480), &values));
        let column = mantissa_column(&enc);
        assert_eq!((column.width, column.radix), (2, 39));
        // A zero radix byte is rejected.
        let mut bad = enc.clone();
        let at = enc.len() - column.planes.len() - 5;
        assert_eq!(bad[at], 38, "radix byte position");
        bad[at] = 0;
        assert!(matches!(decode(&bad), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn column_shapes() {
        // Quadratic mantissas: order 2 differences are constant.
        let values: Vec<f64> = (0..480).map(|i| f64::from(i * (i + 1) / 2)).collect();
        let enc = roundtrip(&zip_ts(&regular_ts(480), &values));
        assert!(enc.len() < 30, "{} bytes", enc.len());
        assert!(mantissa_column(&enc).order2);

        // Jittered timestamps need one plane.
        let mut rng = StdRng::seed_from_u64(8);
        let ts: Vec<i64> = (0..480)
            .map(|i| 1_700_000_000_000 + 15_000 * i + rng.gen_range(-2..=2))
            .collect();
        let enc = roundtrip(&zip_ts(&ts, &[1.0; 480]));
        assert!(enc.len() < 480 + 30, "{} bytes", enc.len());

        // A run of stale markers inside a counter: the increase across the
        // gap is spread over the exception slots, so one plane still does.
        let mut v = 0.0;
        let mut values: Vec<f64> = (0..480)
            .map(|_| {
                v += f64::from(rng.gen_range(0..=200));
                v
            })
            .collect();
        for x in &mut values[100..111] {
            *x = f64::from_bits(STALE_NAN);
        }
        values[0] = f64::NAN;
        values[479] = f64::NAN;
        let enc = roundtrip(&zip_ts(&regular_ts(480), &values));
        assert!(enc.len() < 480 + 13 * 10 + 40, "{} bytes", enc.len());
    }

    #[test]
    fn special_values() {
        let sp = specials();
        let ts = regular_ts(sp.len());
        roundtrip(&zip_ts(&ts, &sp));
        for &x in &sp {
            roundtrip(&[(i64::MIN, x)]);
            roundtrip(&[(-5, x), (i64::MAX, x)]);
        }
        // A counter with a few stale markers stays in decimal mode.
        let mut values: Vec<f64> = (0..480).map(|i| f64::from(i * 3)).collect();
        for i in [0, 17, 18, 300, 479] {
            values[i] = f64::from_bits(STALE_NAN);
        }
        let enc = roundtrip(&zip_ts(&regular_ts(480), &values));
        assert!(enc.len() < 100, "{} bytes", enc.len());
        // Mostly non-decimal values switch to raw mode.
        let mut rng = StdRng::seed_from_u64(3);
        let values: Vec<f64> = (0..480).map(|_| f64::from_bits(rng.r#gen())).collect();
        let enc = roundtrip(&zip_ts(&regular_ts(480), &values));
        assert!(enc.len() <= 20 + 8 * 480, "{} bytes", enc.len());
    }

    #[test]
    fn few_samples() {
        roundtrip(&[(0, 0.0)]);
        roundtrip(&[(i64::MAX, -0.0)]);
        roundtrip(&[(1, 1.0), (2, 1.0)]);
        roundtrip(&[(1, 1.0), (2, 5.0)]);
        roundtrip(&[(1, 1.0), (2, 5.0), (10, 3.0)]);
        roundtrip(&[(i64::MIN, f64::NAN), (i64::MAX, 0.1 + 0.2)]);
        roundtrip(&[(i64::MIN, 1.0), (0, 2.0), (i64::MAX, 3.0)]);
    }

    #[test]
    fn extreme_timestamps() {
        let ts = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        roundtrip(&zip_ts(&ts, &[1.0; 7]));
        let ts = [i64::MIN, i64::MAX];
        roundtrip(&zip_ts(&ts, &[1.0, 2.0]));
        let ts: Vec<i64> = (0..1000u64)
            .map(|i| i64::MIN.wrapping_add((i * (u64::MAX / 1000)) as i64))
            .collect();
        roundtrip(&zip_ts(&ts, &vec![3.5; 1000]));
    }

    #[test]
    fn max_samples_and_mantissa_edges() {
        let mut rng = StdRng::seed_from_u64(4);
        let s = gen_series(&mut rng, MAX_SAMPLES);
        roundtrip(&s);
        let limit = (1u64 << 53) as f64;
        let values = [
            limit - 1.0,
            -(limit - 1.0),
            limit,
            1.0,
            -limit,
            0.5,
            limit - 1.0,
        ];
        roundtrip(&zip_ts(&regular_ts(values.len()), &values));
        // Rescaling 2^53 - 1 by 10 would exceed the limit: exception.
        let values = [limit - 1.0, 0.1, 0.2];
        roundtrip(&zip_ts(&regular_ts(3), &values));
    }

    #[test]
    fn randomized_roundtrips() {
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..3000 {
            let n = match rng.gen_range(0..10) {
                0 => rng.gen_range(1..4),
                1 => rng.gen_range(1..4000),
                _ => rng.gen_range(1..600),
            };
            let mut s = gen_series(&mut rng, n);
            if rng.gen_ratio(1, 4) {
                // Sprinkle specials into otherwise regular data.
                let sp = specials();
                for _ in 0..rng.gen_range(1..5) {
                    let i = rng.gen_range(0..s.len());
                    s[i].1 = sp[rng.gen_range(0..sp.len())];
                }
            }
            roundtrip(&s);
        }
    }

    // -- errors and robustness --

    #[test]
    fn encode_errors() {
        let mut out = vec![1, 2, 3];
        assert_eq!(encode(&[], &mut out), Err(EncodeError::Empty));
        assert_eq!(
            encode(&[(5, 1.0), (5, 2.0)], &mut out),
            Err(EncodeError::NonIncreasingTimestamp {
                index: 1,
                previous: 5,
                current: 5
            })
        );
        assert!(matches!(
            encode(&[(0, 1.0), (5, 1.0), (4, 1.0)], &mut out),
            Err(EncodeError::NonIncreasingTimestamp { index: 2, .. })
        ));
        let too_many = zip_ts(&regular_ts(MAX_SAMPLES + 1), &vec![0.0; MAX_SAMPLES + 1]);
        assert_eq!(
            encode(&too_many, &mut out),
            Err(EncodeError::TooManySamples {
                count: MAX_SAMPLES + 1
            })
        );
        assert_eq!(out, [1, 2, 3], "output untouched on error");
        for e in [
            EncodeError::Empty,
            EncodeError::TooManySamples { count: 70_000 },
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn decode_errors() {
        let good = roundtrip(&[(1, 1.0), (2, 2.0)]);
        assert!(matches!(decode(&[]), Err(DecodeError::Truncated { .. })));
        assert_eq!(
            decode(&[0x01, 0x01]),
            Err(DecodeError::UnknownFormat { found: 1 })
        );
        assert_eq!(
            decode(&[0x02, 0x00]),
            Err(DecodeError::BadSampleCount { count: 0 })
        );
        assert_eq!(
            sample_count(&[0x02, 0x80, 0x80, 0x04]),
            Err(DecodeError::BadSampleCount { count: 65_536 })
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
        // 65535 samples claimed, planes that cannot fit: fails before
        // allocating anything sample-sized.
        let liar = [0x02, 0xff, 0xff, 0x03, 0x08, 0xff, 0x01, 0x00, 0x00, 0x00];
        let err = decode(&liar).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err}");
        // Overlong varint.
        let mut long = vec![0x02];
        long.extend([0xff; 11]);
        assert!(matches!(decode(&long), Err(DecodeError::Malformed { .. })));
        let mut out = vec![(1, 1.0)];
        assert!(decode_into(&trailing, &mut out).is_err());
        assert_eq!(out.len(), 1, "output untouched on error");
        for bad in [&liar[..], &long, &trailing, &[0x07]] {
            let msg = decode(bad).unwrap_err().to_string();
            assert!(msg.contains("chunk"), "{msg}");
        }
    }

    fn sample_encodings() -> Vec<Vec<u8>> {
        let mut rng = StdRng::seed_from_u64(6);
        let mut encs = vec![
            roundtrip(&[(0, 1.0)]),
            roundtrip(&[(0, 1.0), (15, f64::NAN)]),
            roundtrip(&zip_ts(&[0, 1, 3, 7], &[1.0, 2.5, f64::INFINITY, 7.25])),
            roundtrip(&zip_ts(&regular_ts(20), &specials())),
        ];
        for _ in 0..12 {
            let n = rng.gen_range(1..120);
            encs.push(roundtrip(&gen_series(&mut rng, n)));
        }
        encs
    }

    #[test]
    fn every_truncation_fails() {
        for enc in sample_encodings() {
            for len in 0..enc.len() {
                assert!(decode(&enc[..len]).is_err(), "prefix {len} of {enc:02x?}");
            }
        }
    }

    /// Decoding must never panic; whatever decodes has the advertised count.
    fn decode_any(bytes: &[u8]) {
        if let Ok(samples) = decode(bytes) {
            assert_eq!(sample_count(bytes), Ok(samples.len()));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..96);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            if len > 2 && rng.gen_ratio(4, 5) {
                // Mostly valid headers with small field values, to get deep.
                bytes[0] = ENCODING_COLUMNAR;
                bytes[1] = rng.gen_range(1..12);
                for b in bytes[2..].iter_mut() {
                    if rng.r#gen() {
                        *b &= 0x1f;
                    }
                }
            }
            decode_any(&bytes);
        }
        for enc in sample_encodings() {
            for _ in 0..2000 {
                let mut bytes = enc.clone();
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = if rng.r#gen() {
                    rng.r#gen()
                } else {
                    bytes[i] ^ (1 << rng.gen_range(0..8))
                };
                decode_any(&bytes);
            }
        }
    }
}
