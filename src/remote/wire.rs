//! Wire format of Prometheus Remote-Write 1.0.
//!
//! A Remote-Write 1.0 request body is a protobuf `prometheus.WriteRequest`
//! (from Prometheus's `prompb/remote.proto` and `prompb/types.proto`),
//! compressed with the snappy *block* format (not the framed/stream format).
//! Senders announce it with `Content-Type: application/x-protobuf`,
//! `Content-Encoding: snappy` and `X-Prometheus-Remote-Write-Version: 0.1.0`.
//!
//! This module owns only that byte format: decoding a body into Rust values
//! and encoding values into a body. It knows nothing about HTTP (headers,
//! status codes, reading the body) nor about storage (label validation,
//! sorting, series lookup): those are the caller's job.
//!
//! Two ways to decode:
//!
//! - [`decode_request`] returns owned values ([`Decoded`]). Simple, but it
//!   allocates one `String` per label name and value, and that allocation
//!   dominates the cost: a typical request (one sample per series, seven
//!   labels) decodes at only about 1 M samples/s per core.
//! - [`decompress_into`] (or [`decompress`]) followed by [`decode_protobuf`]
//!   returns a [`DecodedRef`] that leaves labels in the decompressed
//!   buffer: each series offers the bytes of its label fields, and reads
//!   its label strings (borrowed) only when asked. It makes a handful of
//!   allocations per request, not per label; it is the one to use on the
//!   ingestion hot path: look series up by their label bytes, and read and
//!   copy labels only for series that are new.
//!
//! Both validate the whole request before returning anything, so a caller
//! never ingests half of a corrupt request.
//!
//! The protobuf is parsed by hand (field numbers are those of `prompb`),
//! because a generated decoder can only produce owned strings.
//!
//! fleetmon stores float samples only. Native histograms and exemplars are
//! therefore not decoded, only counted, so that the caller can report them
//! as received but not stored.

use std::ops::Range;

/// Limits applied while decoding a request.
///
/// Both limits bound memory per request: the decompressed protobuf is held
/// in one buffer; borrowed decoding ([`decode_protobuf`]) adds about half
/// of its size, and owned decoding ([`decode_request`]) a few times its
/// size, since every label name and value becomes its own `String`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body, i.e. snappy-compressed bytes.
    ///
    /// The HTTP layer should already cap the body at this size while
    /// reading it; decoding checks it again so that the limit holds for any
    /// caller.
    pub max_compressed_bytes: usize,
    /// Largest accepted size of the protobuf once decompressed, as announced
    /// by the snappy header. Checked before the output buffer is allocated.
    pub max_decompressed_bytes: usize,
}

impl Default for Limits {
    /// 16 MiB compressed, 64 MiB decompressed.
    ///
    /// A stock Prometheus sends at most a few thousand samples per request
    /// (`max_samples_per_send`), about 1 MiB decompressed or less, so 64 MiB
    /// leaves ample room for aggressive batching and very long label sets
    /// while keeping the worst case per request (buffer plus owned strings)
    /// in the hundreds of MiB rather than gigabytes. Remote-Write payloads
    /// typically compress 4-10x with snappy, so 16 MiB compressed is about
    /// the most that still fits in 64 MiB once decompressed.
    fn default() -> Self {
        Self {
            max_compressed_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
        }
    }
}

/// One time series of a request, with its float samples (owned).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedSeries {
    /// Label pairs `(name, value)` exactly as sent: neither sorted, nor
    /// deduplicated, nor validated (the caller validates). A label whose
    /// value is empty arrives as an empty string.
    pub labels: Vec<(String, String)>,
    /// Float samples `(timestamp in milliseconds since the epoch, value)` in
    /// the order sent. Values are bit-exact, so NaN payloads such as the
    /// Prometheus stale marker survive.
    pub samples: Vec<(i64, f64)>,
}

/// The content of one request, owned. See [`decode_request`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Series that carry at least one float sample. Series that carry only
    /// native histograms and/or exemplars are left out (their histograms and
    /// exemplars are still counted), so that the caller never creates a
    /// series without data.
    pub series: Vec<DecodedSeries>,
    /// Native histogram samples received. fleetmon does not store them.
    pub histograms: u64,
    /// Exemplars received. fleetmon does not store them.
    pub exemplars: u64,
    /// Metric metadata sent alongside the samples (Prometheus sends it
    /// periodically, usually in requests of its own).
    pub metadata: Vec<Metadata>,
}

/// Metadata of one metric family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Name of the metric family, e.g. `http_requests_total`.
    pub metric_family_name: String,
    /// Type in lower case, as Prometheus's `/api/v1/metadata` prints it:
    /// `counter`, `gauge`, `summary`, `histogram`, `gaugehistogram`, `info`,
    /// `stateset` or `unknown` (also used for type numbers this module does
    /// not know).
    pub kind: String,
    /// Help text.
    pub help: String,
    /// Unit, often empty.
    pub unit: String,
}

/// The content of one request, checked whole, with labels left in the
/// decompressed protobuf until asked for. See [`decode_protobuf`].
///
/// Holds the samples of all series in one flat vector, so that decoding
/// costs a few allocations per request, not per series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedRef<'a> {
    /// The decompressed protobuf.
    proto: &'a [u8],
    samples: Vec<(i64, f64)>,
    /// Where each series is in the protobuf and in `samples`.
    series: Vec<DecodedSpans>,
    /// Native histogram samples received. fleetmon does not store them.
    pub histograms: u64,
    /// Exemplars received. fleetmon does not store them.
    pub exemplars: u64,
    /// Metric metadata sent alongside the samples. Owned, because it is
    /// rare and small.
    pub metadata: Vec<Metadata>,
}

/// Where one series of a [`DecodedRef`] is.
#[derive(Debug, Clone, PartialEq)]
struct DecodedSpans {
    /// The `TimeSeries` message's payload in the protobuf.
    message: Range<usize>,
    samples: Range<usize>,
    /// The series' label fields in the protobuf, when they are back to back.
    encoded_labels: Option<Range<usize>>,
}

/// One series of a [`DecodedRef`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRef<'r> {
    /// The protobuf up to the end of the series' message, and where the
    /// message starts: its labels are read from there when asked for.
    proto: &'r [u8],
    message_start: usize,
    /// The bytes of the series' label fields in the protobuf (keys,
    /// lengths and `Label` messages), when the sender wrote them back to
    /// back as encoders do: the store finds a known series by these bytes
    /// alone (see `storage::series_key`), without [`SeriesRef::labels`].
    pub encoded_labels: Option<&'r [u8]>,
    /// Float samples `(timestamp in milliseconds, value)`, as in
    /// [`DecodedSeries::samples`]; never empty.
    pub samples: &'r [(i64, f64)],
}

impl<'a> DecodedRef<'a> {
    /// The series that carry at least one float sample, in request order.
    /// As in [`Decoded::series`], series with only histograms or exemplars
    /// are left out.
    pub fn series(&self) -> impl ExactSizeIterator<Item = SeriesRef<'_>> + '_ {
        self.series.iter().map(|spans| SeriesRef {
            proto: &self.proto[..spans.message.end],
            message_start: spans.message.start,
            samples: &self.samples[spans.samples.clone()],
            encoded_labels: spans
                .encoded_labels
                .clone()
                .and_then(|range| self.proto.get(range)),
        })
    }

    /// Keeps the float samples for which `keep` holds, and the series left
    /// with at least one: how a receiver sets aside samples it refuses
    /// before offering the rest. Returns how many samples it dropped.
    pub fn retain_samples(&mut self, mut keep: impl FnMut(&(i64, f64)) -> bool) -> usize {
        let before = self.samples.len();
        let samples = &mut self.samples;
        // Series' samples are stored in series order, so each kept sample
        // moves down, never over one still to be read.
        let mut kept = 0;
        self.series.retain_mut(|spans| {
            let start = kept;
            for at in spans.samples.clone() {
                let Some(&sample) = samples.get(at) else {
                    break;
                };
                if keep(&sample) {
                    if let Some(slot) = samples.get_mut(kept) {
                        *slot = sample;
                    }
                    kept += 1;
                }
            }
            spans.samples = start..kept;
            kept > start
        });
        self.samples.truncate(kept);
        before - kept
    }

    /// Number of series yielded by [`DecodedRef::series`].
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Number of float samples over all series.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Copies the request into owned values, allocating each vector with
    /// its exact size.
    pub fn into_owned(self) -> Decoded {
        let series = self
            .series()
            .map(|s| DecodedSeries {
                labels: s
                    .labels()
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect(),
                samples: s.samples.to_vec(),
            })
            .collect();
        Decoded {
            series,
            histograms: self.histograms,
            exemplars: self.exemplars,
            metadata: self.metadata,
        }
    }
}

impl<'r> SeriesRef<'r> {
    /// Label pairs `(name, value)` exactly as sent, as in
    /// [`DecodedSeries::labels`], borrowed from the protobuf.
    pub fn labels(&self) -> Vec<(&'r str, &'r str)> {
        // [`decode_protobuf`] checked every label of the message, so reading
        // them again cannot fail.
        read::labels(self.proto, self.message_start).unwrap_or_default()
    }
}

/// Why a request body could not be decoded.
///
/// Every variant is a client error (Prometheus answers HTTP 400; the two
/// size variants may also be answered with 413). The messages are meant to
/// be returned to the sender as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body has no bytes at all. (An empty `WriteRequest` is valid, but
    /// compressed it is still one byte long.)
    #[error("empty body: expected a snappy-compressed protobuf WriteRequest")]
    EmptyBody,
    /// The compressed body is larger than [`Limits::max_compressed_bytes`].
    #[error("compressed body of {size} bytes exceeds the limit of {limit} bytes")]
    CompressedTooLarge {
        /// Size of the body.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The snappy header announces more than
    /// [`Limits::max_decompressed_bytes`].
    #[error("decompressed size {size} exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// Decompressed size announced by the snappy header.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The snappy header announces more bytes than the body could possibly
    /// expand to, so the body is corrupt (or hostile).
    #[error(
        "snappy: corrupt input (header announces {size} decompressed bytes, \
         more than {compressed} compressed bytes can hold)"
    )]
    ImplausibleSize {
        /// Decompressed size announced by the snappy header.
        size: usize,
        /// Size of the body.
        compressed: usize,
    },
    /// The body uses snappy's framed (stream) format, a common sender bug.
    #[error(
        "snappy: corrupt input (the body uses the framed snappy format; \
         Remote-Write requires the block format)"
    )]
    SnappyFramed,
    /// The body is not valid snappy block data. The message is snap's, which
    /// already starts with `snappy:`; it is shown rather than exposed as a
    /// `source` so that error chains do not print it twice.
    #[error("{0}")]
    Snappy(snap::Error),
    /// The decompressed bytes are not a valid protobuf `WriteRequest`
    /// (this includes strings that are not UTF-8).
    #[error("protobuf: {reason} at byte {offset} of the decompressed WriteRequest")]
    Protobuf {
        /// What is wrong, naming the message and field where known.
        reason: &'static str,
        /// Offset in the decompressed protobuf where the problem was found.
        offset: usize,
    },
}

/// Why a request could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The protobuf is too large for one snappy block (4 GiB); split the
    /// batch.
    #[error("{0}")]
    Snappy(snap::Error),
}

/// Decodes a Remote-Write 1.0 request body (snappy block-compressed protobuf
/// `WriteRequest`) into owned values.
///
/// This is [`decompress`], [`decode_protobuf`] and
/// [`DecodedRef::into_owned`] in one call. Prefer the first two on hot paths:
/// the per-label `String`s allocated here cost far more than decoding.
///
/// # Errors
///
/// Returns a [`DecodeError`] if the body is empty, exceeds `limits`, is not
/// snappy block data or is not a valid `WriteRequest`.
pub fn decode_request(body: &[u8], limits: &Limits) -> Result<Decoded, DecodeError> {
    let proto = decompress(body, limits)?;
    Ok(decode_protobuf(&proto)?.into_owned())
}

/// Checks a request body against `limits` and decompresses it (snappy block
/// format) into the protobuf bytes, for [`decode_protobuf`].
///
/// The decompressed size announced by the snappy header is checked, against
/// the limit and against what the body can possibly hold, before the output
/// buffer is allocated.
///
/// # Errors
///
/// Returns a [`DecodeError`] if the body is empty, exceeds `limits` or is not
/// snappy block data.
pub fn decompress(body: &[u8], limits: &Limits) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decompress_into(body, limits, &mut out)?;
    Ok(out)
}

/// Like [`decompress`], but into `out` (whose previous content is replaced),
/// so that a long-lived worker can reuse one buffer for all its requests.
///
/// Reuse matters more than it seems: a fresh buffer of a few MiB is usually
/// fresh memory from the kernel, and faulting its pages in can cost more
/// than the decompression itself (measured: 2.8 ms instead of 1.1 ms for
/// decompressing and decoding a 1 MiB request). `out` keeps the capacity of
/// the largest request it held; shrink it if that matters.
///
/// # Errors
///
/// As for [`decompress`]; `out` is left empty on error.
pub fn decompress_into(body: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let decompressed = decompress_over(body, limits, out);
    if decompressed.is_err() {
        out.clear();
    }
    decompressed
}

/// [`decompress_into`], leaving `out` as it happens to be on error.
fn decompress_over(body: &[u8], limits: &Limits, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if body.len() > limits.max_compressed_bytes {
        return Err(DecodeError::CompressedTooLarge {
            size: body.len(),
            limit: limits.max_compressed_bytes,
        });
    }
    if body.is_empty() {
        return Err(DecodeError::EmptyBody);
    }
    if body.starts_with(SNAPPY_FRAMED_MAGIC) {
        return Err(DecodeError::SnappyFramed);
    }
    let size = snap::raw::decompress_len(body).map_err(DecodeError::Snappy)?;
    if size > limits.max_decompressed_bytes {
        return Err(DecodeError::DecompressedTooLarge {
            size,
            limit: limits.max_decompressed_bytes,
        });
    }
    if size > body.len().saturating_mul(MAX_SNAPPY_EXPANSION) {
        return Err(DecodeError::ImplausibleSize {
            size,
            compressed: body.len(),
        });
    }
    // The bytes `out` holds are overwritten, not zeroed first: only a
    // longer request than the last one pays for zeroing, the rest.
    out.resize(size, 0);
    // `snap` fails with `HeaderMismatch` unless exactly `size` bytes come
    // out, so the whole buffer is decompressed data afterwards.
    snap::raw::Decoder::new()
        .decompress(body, out)
        .map_err(DecodeError::Snappy)?;
    Ok(())
}

/// Decodes the protobuf `WriteRequest` returned by [`decompress`] without
/// copying label strings.
///
/// Unknown fields are skipped, as protobuf requires. Exemplars and native
/// histograms are counted; their content is checked for well-formed
/// protobuf framing only.
///
/// # Errors
///
/// Returns [`DecodeError::Protobuf`] if `proto` is not a valid
/// `WriteRequest`. Nothing is returned for a request that fails part way.
pub fn decode_protobuf(proto: &[u8]) -> Result<DecodedRef<'_>, DecodeError> {
    read::write_request(proto).map_err(|e| DecodeError::Protobuf {
        reason: e.reason,
        offset: e.offset,
    })
}

/// One series to encode: `(labels, samples)`, with labels as `(name, value)`
/// pairs and samples as `(timestamp in milliseconds, value)`.
pub type Series = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Encodes series into a Remote-Write 1.0 request body: a protobuf
/// `WriteRequest` compressed with the snappy block format.
///
/// Labels are written in the given order (Prometheus receivers expect them
/// sorted by name), and so are samples. Values are written bit-exact, including `-0.0` and NaN payloads.
/// Empty strings are left out of the wire encoding, as protobuf does for
/// default values; they decode as empty strings.
///
/// # Errors
///
/// Returns [`EncodeError::Snappy`] only if the protobuf exceeds the largest
/// snappy block (4 GiB).
pub fn encode_request(series: &[Series]) -> Result<Vec<u8>, EncodeError> {
    let proto = write::write_request(series);
    snap::raw::Encoder::new()
        .compress_vec(&proto)
        .map_err(EncodeError::Snappy)
}

/// Upper bound of the snappy block expansion ratio. The densest snappy
/// element is a 3-byte copy that produces 64 bytes (21.3x); a header that
/// announces more is corrupt and is rejected before its buffer is allocated.
const MAX_SNAPPY_EXPANSION: usize = 22;

/// Stream identifier chunk that starts every framed snappy stream. No valid
/// block starts with these bytes (the `s` would be a copy reaching back
/// before the start of the output), so the check never rejects a valid body;
/// it only gives a sender with this common bug a clearer message.
const SNAPPY_FRAMED_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Lower-case name of a `MetricMetadata.MetricType` number, as Prometheus's
/// metadata API prints it.
fn metric_type_name(number: i32) -> &'static str {
    match number {
        1 => "counter",
        2 => "gauge",
        3 => "summary",
        4 => "histogram",
        5 => "gaugehistogram",
        6 => "info",
        7 => "stateset",
        _ => "unknown", // 0 is UNKNOWN; other numbers are from newer senders
    }
}

/// Protobuf field numbers and wire types of the `prompb` messages used here.
mod field {
    /// Wire type of varint fields (`int64`, enums).
    pub const VARINT: u8 = 0;
    /// Wire type of 8-byte fields (`double`).
    pub const FIXED64: u8 = 1;
    /// Wire type of length-delimited fields (strings, messages).
    pub const LEN: u8 = 2;
    /// Wire type that starts a (deprecated) group.
    pub const START_GROUP: u8 = 3;
    /// Wire type that ends a (deprecated) group.
    pub const END_GROUP: u8 = 4;
    /// Wire type of 4-byte fields.
    pub const FIXED32: u8 = 5;

    // WriteRequest { repeated TimeSeries timeseries = 1; reserved 2;
    //                repeated MetricMetadata metadata = 3; }
    pub const WRITE_REQUEST_TIMESERIES: u32 = 1;
    pub const WRITE_REQUEST_METADATA: u32 = 3;
    // TimeSeries { repeated Label labels = 1; repeated Sample samples = 2;
    //              repeated Exemplar exemplars = 3;
    //              repeated Histogram histograms = 4; }
    pub const TIMESERIES_LABELS: u32 = 1;
    pub const TIMESERIES_SAMPLES: u32 = 2;
    pub const TIMESERIES_EXEMPLARS: u32 = 3;
    pub const TIMESERIES_HISTOGRAMS: u32 = 4;
    // Label { string name = 1; string value = 2; }
    pub const LABEL_NAME: u32 = 1;
    pub const LABEL_VALUE: u32 = 2;
    // Sample { double value = 1; int64 timestamp = 2; }
    pub const SAMPLE_VALUE: u32 = 1;
    pub const SAMPLE_TIMESTAMP: u32 = 2;
    // MetricMetadata { MetricType type = 1; string metric_family_name = 2;
    //                  string help = 4; string unit = 5; }
    pub const METADATA_TYPE: u32 = 1;
    pub const METADATA_FAMILY_NAME: u32 = 2;
    pub const METADATA_HELP: u32 = 4;
    pub const METADATA_UNIT: u32 = 5;
}

/// Hand-written protobuf reader for `WriteRequest`, borrowing strings from
/// the input.
mod read {
    use std::ops::Range;

    use super::{field, metric_type_name, DecodedRef, DecodedSpans, Metadata};

    /// How deeply unknown groups may nest before the input is rejected, so
    /// that hostile input cannot exhaust the stack.
    const MAX_GROUP_DEPTH: u32 = 64;

    /// A protobuf error: what and where (offset in the whole protobuf).
    #[derive(Debug)]
    pub(super) struct Error {
        pub reason: &'static str,
        pub offset: usize,
    }

    type Result<T> = std::result::Result<T, Error>;

    /// A cursor over the bytes of one message. `buf` runs from the start of
    /// the whole protobuf to the end of this message, so that positions are
    /// offsets in the whole protobuf (for error messages).
    struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn new(buf: &'a [u8]) -> Self {
            Self { buf, pos: 0 }
        }

        #[inline]
        fn at_end(&self) -> bool {
            self.pos >= self.buf.len()
        }

        #[cold]
        fn error_at(offset: usize, reason: &'static str) -> Error {
            Error { reason, offset }
        }

        #[cold]
        fn error(&self, reason: &'static str) -> Error {
            Self::error_at(self.pos, reason)
        }

        #[inline]
        fn varint(&mut self) -> Result<u64> {
            // One-byte varints (keys, short lengths) are by far the most
            // common, so they get an inlined fast path.
            match self.buf.get(self.pos) {
                Some(&b) if b < 0x80 => {
                    self.pos += 1;
                    Ok(u64::from(b))
                }
                _ => self.varint_slow(),
            }
        }

        #[inline(never)]
        fn varint_slow(&mut self) -> Result<u64> {
            // Up to 8 bytes (timestamps take 6) from one word: the first
            // byte without its continuation bit ends the varint, and the
            // 7-bit groups are packed together in three steps.
            if let Some(bytes) = self.buf.get(self.pos..).and_then(|b| b.first_chunk::<8>()) {
                let word = u64::from_le_bytes(*bytes);
                let ends = !word & 0x8080_8080_8080_8080;
                if ends != 0 {
                    let len = ends.trailing_zeros() / 8 + 1;
                    let mut x = word & (u64::MAX >> (64 - 8 * len)) & 0x7f7f_7f7f_7f7f_7f7f;
                    x = (x & 0x007f_007f_007f_007f) | ((x & 0x7f00_7f00_7f00_7f00) >> 1);
                    x = (x & 0x0000_3fff_0000_3fff) | ((x & 0x3fff_0000_3fff_0000) >> 2);
                    x = (x & 0x0000_0000_0fff_ffff) | ((x & 0x0fff_ffff_0000_0000) >> 4);
                    self.pos += len as usize;
                    return Ok(x);
                }
            }
            let mut value = 0u64;
            for i in 0..10 {
                let Some(&b) = self.buf.get(self.pos + i) else {
                    return Err(self.error("truncated varint"));
                };
                // The 10th byte holds bit 63 only.
                if i == 9 && b > 1 {
                    return Err(self.error("varint overflows 64 bits"));
                }
                value |= u64::from(b & 0x7f) << (7 * i);
                if b < 0x80 {
                    self.pos += i + 1;
                    return Ok(value);
                }
            }
            Err(self.error("varint overflows 64 bits"))
        }

        /// Reads a field key: `(field number, wire type)`.
        #[inline]
        fn key(&mut self) -> Result<(u32, u8)> {
            let start = self.pos;
            let key = self.varint()?;
            let (number, wire_type) = (key >> 3, (key & 7) as u8);
            if number == 0 || number > u64::from(u32::MAX >> 3) {
                return Err(Self::error_at(start, "invalid field number"));
            }
            if wire_type > field::FIXED32 {
                return Err(Self::error_at(start, "invalid wire type"));
            }
            // Lossless: checked just above.
            Ok((number as u32, wire_type))
        }

        /// Reads the length prefix of a length-delimited field and returns
        /// the range of its payload, which has been checked to lie within
        /// this message.
        #[inline]
        fn delimited(&mut self, reason: &'static str) -> Result<std::ops::Range<usize>> {
            let start = self.pos;
            let len = self.varint()?;
            let available = self.buf.len() - self.pos;
            match usize::try_from(len) {
                Ok(len) if len <= available => {
                    let payload = self.pos..self.pos + len;
                    self.pos += len;
                    Ok(payload)
                }
                _ => Err(Self::error_at(start, reason)),
            }
        }

        /// Reads a nested message, returning a reader over it.
        #[inline]
        fn message(&mut self) -> Result<Reader<'a>> {
            let payload = self.delimited("embedded message runs past the end of its parent")?;
            Ok(Reader {
                buf: &self.buf[..payload.end],
                pos: payload.start,
            })
        }

        #[inline]
        fn string(&mut self, invalid_utf8: &'static str) -> Result<&'a str> {
            let payload =
                self.delimited("length-delimited field runs past the end of its message")?;
            let start = payload.start;
            let bytes = &self.buf[payload];
            if bytes.is_ascii() {
                // Label names and values are nearly always ASCII, which a
                // word-at-a-time scan proves valid far faster than UTF-8
                // decoding of short strings.
                // SAFETY: ASCII bytes are valid UTF-8.
                return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
            }
            std::str::from_utf8(bytes).map_err(|_| Self::error_at(start, invalid_utf8))
        }

        #[inline]
        fn fixed64(&mut self) -> Result<u64> {
            match self.buf.get(self.pos..self.pos + 8) {
                Some(bytes) => {
                    let mut le = [0; 8];
                    le.copy_from_slice(bytes);
                    self.pos += 8;
                    Ok(u64::from_le_bytes(le))
                }
                None => Err(self.error("truncated 64-bit field")),
            }
        }

        /// Skips a field this module does not use (unknown to it, or
        /// counted only), after its key was read.
        fn skip(&mut self, number: u32, wire_type: u8, depth: u32) -> Result<()> {
            match wire_type {
                field::VARINT => self.varint().map(drop),
                field::FIXED64 => self.fixed64().map(drop),
                field::LEN => self
                    .delimited("length-delimited field runs past the end of its message")
                    .map(drop),
                field::FIXED32 => {
                    if self.buf.len() - self.pos < 4 {
                        return Err(self.error("truncated 32-bit field"));
                    }
                    self.pos += 4;
                    Ok(())
                }
                field::START_GROUP => {
                    if depth >= MAX_GROUP_DEPTH {
                        return Err(self.error("groups nested too deeply"));
                    }
                    loop {
                        if self.at_end() {
                            return Err(self.error("unterminated group"));
                        }
                        let (inner, wire_type) = self.key()?;
                        if wire_type == field::END_GROUP {
                            if inner != number {
                                return Err(self.error("mismatched end of group"));
                            }
                            return Ok(());
                        }
                        self.skip(inner, wire_type, depth + 1)?;
                    }
                }
                field::END_GROUP => Err(self.error("end of group without a start")),
                // `key` lets no other wire type through.
                _ => Err(self.error("invalid wire type")),
            }
        }

        /// Checks the framing of a message whose content is not used.
        fn skip_fields(mut self) -> Result<()> {
            while !self.at_end() {
                let (number, wire_type) = self.key()?;
                self.skip(number, wire_type, 0)?;
            }
            Ok(())
        }
    }

    pub(super) fn write_request(proto: &[u8]) -> Result<DecodedRef<'_>> {
        let mut out = DecodedRef {
            proto,
            ..DecodedRef::default()
        };
        // Sized up front for the usual one sample per series of about 200
        // bytes: growing them by doubling copied about as much again.
        let series = proto.len() / 128;
        out.series.reserve(series);
        out.samples.reserve(series);
        let mut r = Reader::new(proto);
        while !r.at_end() {
            let (number, wire_type) = r.key()?;
            match (number, wire_type) {
                (field::WRITE_REQUEST_TIMESERIES, field::LEN) => {
                    time_series(r.message()?, &mut out)?;
                }
                (field::WRITE_REQUEST_METADATA, field::LEN) => {
                    out.metadata.push(metadata(r.message()?)?);
                }
                (field::WRITE_REQUEST_TIMESERIES, _) => {
                    return Err(r.error("WriteRequest.timeseries has the wrong wire type"));
                }
                (field::WRITE_REQUEST_METADATA, _) => {
                    return Err(r.error("WriteRequest.metadata has the wrong wire type"));
                }
                _ => r.skip(number, wire_type, 0)?,
            }
        }
        Ok(out)
    }

    /// The labels of the `TimeSeries` message at `start` in `proto`, which
    /// ends where the message does.
    pub(super) fn labels(proto: &[u8], start: usize) -> Result<Vec<(&str, &str)>> {
        let mut r = Reader {
            buf: proto,
            pos: start,
        };
        let mut labels = Vec::new();
        while !r.at_end() {
            let (number, wire_type) = r.key()?;
            if (number, wire_type) == (field::TIMESERIES_LABELS, field::LEN) {
                labels.push(label(r.message()?)?);
            } else {
                r.skip(number, wire_type, 0)?;
            }
        }
        Ok(labels)
    }

    /// Checks one `TimeSeries` and adds it to `out`, or only counts its
    /// histograms and exemplars if it has no float samples.
    fn time_series<'a>(mut r: Reader<'a>, out: &mut DecodedRef<'a>) -> Result<()> {
        let message = r.pos..r.buf.len();
        let samples_start = out.samples.len();
        // The label fields' bytes, while they follow one another.
        let mut encoded_labels: Option<Range<usize>> = None;
        let mut labels_apart = false;
        while !r.at_end() {
            let field_start = r.pos;
            let run = canonical_labels(&r.buf[field_start..]);
            if run > 0 {
                r.pos += run;
                match &mut encoded_labels {
                    Some(span) if span.end == field_start => span.end = r.pos,
                    Some(_) => labels_apart = true,
                    None => encoded_labels = Some(field_start..r.pos),
                }
                continue;
            }
            let (number, wire_type) = r.key()?;
            match (number, wire_type) {
                (field::TIMESERIES_LABELS, field::LEN) => {
                    label(r.message()?)?;
                    match &mut encoded_labels {
                        Some(span) if span.end == field_start => span.end = r.pos,
                        Some(_) => labels_apart = true,
                        None => encoded_labels = Some(field_start..r.pos),
                    }
                }
                (field::TIMESERIES_SAMPLES, field::LEN) => {
                    out.samples.push(sample(r.message()?)?);
                }
                (field::TIMESERIES_EXEMPLARS, field::LEN) => {
                    r.message()?.skip_fields()?;
                    out.exemplars += 1;
                }
                (field::TIMESERIES_HISTOGRAMS, field::LEN) => {
                    r.message()?.skip_fields()?;
                    out.histograms += 1;
                }
                (
                    field::TIMESERIES_LABELS
                    | field::TIMESERIES_SAMPLES
                    | field::TIMESERIES_EXEMPLARS
                    | field::TIMESERIES_HISTOGRAMS,
                    _,
                ) => return Err(r.error("TimeSeries field has the wrong wire type")),
                _ => r.skip(number, wire_type, 0)?,
            }
        }
        if out.samples.len() != samples_start {
            out.series.push(DecodedSpans {
                message,
                samples: samples_start..out.samples.len(),
                encoded_labels: encoded_labels.filter(|_| !labels_apart),
            });
        }
        Ok(())
    }

    fn label(mut r: Reader<'_>) -> Result<(&str, &str)> {
        if let Some(pair) = canonical_label(&r.buf[r.pos..]) {
            return Ok(pair);
        }
        let (mut name, mut value) = ("", "");
        while !r.at_end() {
            let (number, wire_type) = r.key()?;
            match (number, wire_type) {
                // A repeated scalar field keeps its last value, as protobuf
                // requires.
                (field::LABEL_NAME, field::LEN) => {
                    name = r.string("Label.name is not valid UTF-8")?;
                }
                (field::LABEL_VALUE, field::LEN) => {
                    value = r.string("Label.value is not valid UTF-8")?;
                }
                (field::LABEL_NAME | field::LABEL_VALUE, _) => {
                    return Err(r.error("Label field has the wrong wire type"));
                }
                _ => r.skip(number, wire_type, 0)?,
            }
        }
        Ok((name, value))
    }

    /// The name and value of a `Label` message in the shape every encoder
    /// writes — the name field, then the value field, all ASCII (so each
    /// length is one byte) — read with one check instead of the general
    /// field loop. `None` for any other shape, which that loop reads.
    fn canonical_label(message: &[u8]) -> Option<(&str, &str)> {
        const NAME_KEY: u8 = (field::LABEL_NAME as u8) << 3 | field::LEN;
        const VALUE_KEY: u8 = (field::LABEL_VALUE as u8) << 3 | field::LEN;
        if !message.is_ascii() {
            return None;
        }
        let (&[NAME_KEY, name_len], rest) = message.split_first_chunk::<2>()? else {
            return None;
        };
        let (name, rest) = rest.split_at_checked(usize::from(name_len))?;
        let (&[VALUE_KEY, value_len], value) = rest.split_first_chunk::<2>()? else {
            return None;
        };
        if value.len() != usize::from(value_len) {
            return None;
        }
        // SAFETY: the whole message is ASCII, and ASCII is valid UTF-8.
        unsafe {
            Some((
                std::str::from_utf8_unchecked(name),
                std::str::from_utf8_unchecked(value),
            ))
        }
    }

    /// The length of the run of label fields at the start of `bytes` (a
    /// `TimeSeries` message from some field on) that are in the shape
    /// every encoder writes — name then value, all ASCII, so that every
    /// length takes one byte — checked together instead of field by field;
    /// 0 if the first field is not such a label. The fields after the run
    /// are read one by one.
    fn canonical_labels(bytes: &[u8]) -> usize {
        const LABEL_KEY: u8 = (field::TIMESERIES_LABELS as u8) << 3 | field::LEN;
        const NAME_KEY: u8 = (field::LABEL_NAME as u8) << 3 | field::LEN;
        const VALUE_KEY: u8 = (field::LABEL_VALUE as u8) << 3 | field::LEN;
        let mut end = 0;
        while let Some(&[LABEL_KEY, message, NAME_KEY, name]) = bytes.get(end..end + 4) {
            let value_at = end + 4 + usize::from(name);
            let Some(&[VALUE_KEY, value]) = bytes.get(value_at..value_at + 2) else {
                break;
            };
            // Each length below 0x80 is one byte; the message holds exactly
            // the two fields.
            let fits = message < 0x80
                && name < 0x80
                && value < 0x80
                && usize::from(message) == 4 + usize::from(name) + usize::from(value);
            let label_end = value_at + 2 + usize::from(value);
            if !fits || label_end > bytes.len() {
                break;
            }
            end = label_end;
        }
        // Keys and lengths are below 0x80 too: ASCII throughout means valid
        // UTF-8 names and values.
        if is_ascii(&bytes[..end]) {
            end
        } else {
            0
        }
    }

    /// `bytes.is_ascii()`, a word at a time to the end: the standard one
    /// takes the last up to 63 bytes one by one, which was most of the
    /// cost of checking a series' labels.
    fn is_ascii(bytes: &[u8]) -> bool {
        let mut words = bytes.chunks_exact(8);
        let mut seen = 0u64;
        for word in words.by_ref() {
            let mut w = [0; 8];
            w.copy_from_slice(word);
            seen |= u64::from_le_bytes(w);
        }
        for &b in words.remainder() {
            seen |= u64::from(b);
        }
        seen & 0x8080_8080_8080_8080 == 0
    }

    fn sample(mut r: Reader<'_>) -> Result<(i64, f64)> {
        if let Some(sample) = canonical_sample(&r.buf[r.pos..]) {
            return Ok(sample);
        }
        let (mut timestamp, mut value) = (0, 0.0);
        while !r.at_end() {
            let (number, wire_type) = r.key()?;
            match (number, wire_type) {
                (field::SAMPLE_VALUE, field::FIXED64) => value = f64::from_bits(r.fixed64()?),
                // int64 travels as the two's complement in a varint.
                (field::SAMPLE_TIMESTAMP, field::VARINT) => timestamp = r.varint()? as i64,
                (field::SAMPLE_VALUE | field::SAMPLE_TIMESTAMP, _) => {
                    return Err(r.error("Sample field has the wrong wire type"));
                }
                _ => r.skip(number, wire_type, 0)?,
            }
        }
        Ok((timestamp, value))
    }

    /// The timestamp and value of a `Sample` message in the shape encoders
    /// write — the value field, then the timestamp field, and nothing else —
    /// read without the general field loop. `None` for any other shape
    /// (including a default value or timestamp left out), which that loop
    /// reads or rejects.
    fn canonical_sample(message: &[u8]) -> Option<(i64, f64)> {
        const VALUE_KEY: u8 = (field::SAMPLE_VALUE as u8) << 3 | field::FIXED64;
        const TIMESTAMP_KEY: u8 = (field::SAMPLE_TIMESTAMP as u8) << 3 | field::VARINT;
        let (&[VALUE_KEY, ref value @ .., TIMESTAMP_KEY], _) = message.split_first_chunk::<10>()?
        else {
            return None;
        };
        let mut bits = [0; 8];
        bits.copy_from_slice(value);
        let mut rest = Reader {
            buf: message,
            pos: 10,
        };
        // int64 travels as the two's complement in a varint.
        let timestamp = rest.varint().ok()? as i64;
        rest.at_end()
            .then_some((timestamp, f64::from_le_bytes(bits)))
    }

    fn metadata(mut r: Reader<'_>) -> Result<Metadata> {
        let mut kind = 0;
        let (mut name, mut help, mut unit) = ("", "", "");
        while !r.at_end() {
            let (number, wire_type) = r.key()?;
            match (number, wire_type) {
                // Enums are int32: the low 32 bits of the varint.
                (field::METADATA_TYPE, field::VARINT) => kind = r.varint()? as i32,
                (field::METADATA_FAMILY_NAME, field::LEN) => {
                    name = r.string("MetricMetadata.metric_family_name is not valid UTF-8")?;
                }
                (field::METADATA_HELP, field::LEN) => {
                    help = r.string("MetricMetadata.help is not valid UTF-8")?;
                }
                (field::METADATA_UNIT, field::LEN) => {
                    unit = r.string("MetricMetadata.unit is not valid UTF-8")?;
                }
                (
                    field::METADATA_TYPE
                    | field::METADATA_FAMILY_NAME
                    | field::METADATA_HELP
                    | field::METADATA_UNIT,
                    _,
                ) => return Err(r.error("MetricMetadata field has the wrong wire type")),
                _ => r.skip(number, wire_type, 0)?,
            }
        }
        Ok(Metadata {
            metric_family_name: name.to_owned(),
            kind: metric_type_name(kind).to_owned(),
            help: help.to_owned(),
            unit: unit.to_owned(),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::Reader;

        fn encode(mut value: u64, out: &mut Vec<u8>) {
            while value >= 0x80 {
                out.push(value as u8 | 0x80);
                value >>= 7;
            }
            out.push(value as u8);
        }

        #[test]
        fn varints_of_every_length_decode_whatever_follows_them() {
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            for bits in 0..=64u32 {
                for _ in 0..50 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let value = if bits == 64 {
                        rng
                    } else {
                        rng & ((1u64 << bits) - 1)
                    };
                    let mut bytes = Vec::new();
                    encode(value, &mut bytes);
                    let len = bytes.len();
                    // Bytes after the varint, with and without continuation
                    // bits, must not change it.
                    bytes.extend_from_slice(&rng.to_le_bytes());
                    let mut reader = Reader::new(&bytes);
                    assert_eq!(reader.varint().ok(), Some(value), "{value:#x}");
                    assert_eq!(reader.pos, len);
                    // Cut short, it is an error rather than a smaller value.
                    let mut cut = Reader::new(&bytes[..len - 1]);
                    assert!(len == 1 || cut.varint().is_err(), "{value:#x}");
                }
            }
            // Eleven bytes, or a tenth byte above 1, overflow 64 bits.
            assert!(Reader::new(&[0xff; 11]).varint().is_err());
            let mut tenth = vec![0xff; 9];
            tenth.push(0x02);
            assert!(Reader::new(&tenth).varint().is_err());
        }
    }
}

/// Protobuf encoding of a `WriteRequest` straight from borrowed slices, so
/// that a sender does not have to copy every label into owned messages first.
mod write {
    use super::{field, Series};
    use crate::storage::encoding::{put_uvarint as put_varint, uvarint_len};

    /// Key byte of a field; every field number written here is below 16, so
    /// the key fits in one byte.
    const fn key(number: u32, wire_type: u8) -> u8 {
        ((number as u8) << 3) | wire_type
    }

    const WRITE_REQUEST_TIMESERIES: u8 = key(field::WRITE_REQUEST_TIMESERIES, field::LEN);
    const TIMESERIES_LABELS: u8 = key(field::TIMESERIES_LABELS, field::LEN);
    const TIMESERIES_SAMPLES: u8 = key(field::TIMESERIES_SAMPLES, field::LEN);
    const LABEL_NAME: u8 = key(field::LABEL_NAME, field::LEN);
    const LABEL_VALUE: u8 = key(field::LABEL_VALUE, field::LEN);
    const SAMPLE_VALUE: u8 = key(field::SAMPLE_VALUE, field::FIXED64);
    const SAMPLE_TIMESTAMP: u8 = key(field::SAMPLE_TIMESTAMP, field::VARINT);

    /// Encoded size of a length-delimited field holding `len` bytes, with
    /// its one-byte key.
    fn delimited_len(len: usize) -> usize {
        1 + uvarint_len(len as u64) + len
    }

    /// Encoded size of a string field; proto3 leaves empty strings out.
    fn string_len(s: &str) -> usize {
        if s.is_empty() {
            0
        } else {
            delimited_len(s.len())
        }
    }

    fn label_len(name: &str, value: &str) -> usize {
        string_len(name) + string_len(value)
    }

    fn sample_len(timestamp: i64, value: f64) -> usize {
        // Only +0.0 is the default; -0.0 is written so that its sign
        // survives.
        let value_len = if value.to_bits() == 0 { 0 } else { 1 + 8 };
        let timestamp_len = if timestamp == 0 {
            0
        } else {
            1 + uvarint_len(timestamp as u64)
        };
        value_len + timestamp_len
    }

    fn series_len(labels: &[(String, String)], samples: &[(i64, f64)]) -> usize {
        let labels_len: usize = labels
            .iter()
            .map(|(n, v)| delimited_len(label_len(n, v)))
            .sum();
        let samples_len: usize = samples
            .iter()
            .map(|&(t, v)| delimited_len(sample_len(t, v)))
            .sum();
        labels_len + samples_len
    }

    fn put_string(buf: &mut Vec<u8>, key: u8, s: &str) {
        if !s.is_empty() {
            buf.push(key);
            put_varint(buf, s.len() as u64);
            buf.extend_from_slice(s.as_bytes());
        }
    }

    /// Protobuf bytes of a `WriteRequest` holding `series`.
    pub(super) fn write_request(series: &[Series]) -> Vec<u8> {
        // Sizes are computed up front: the total for one exact allocation,
        // and each series' size for its length prefix.
        let series_lens: Vec<usize> = series.iter().map(|(l, s)| series_len(l, s)).collect();
        let total: usize = series_lens.iter().map(|&len| delimited_len(len)).sum();
        let mut buf = Vec::with_capacity(total);
        for ((labels, samples), &len) in series.iter().zip(&series_lens) {
            buf.push(WRITE_REQUEST_TIMESERIES);
            put_varint(&mut buf, len as u64);
            for (name, value) in labels {
                buf.push(TIMESERIES_LABELS);
                put_varint(&mut buf, label_len(name, value) as u64);
                put_string(&mut buf, LABEL_NAME, name);
                put_string(&mut buf, LABEL_VALUE, value);
            }
            for &(timestamp, value) in samples {
                buf.push(TIMESERIES_SAMPLES);
                put_varint(&mut buf, sample_len(timestamp, value) as u64);
                if value.to_bits() != 0 {
                    buf.push(SAMPLE_VALUE);
                    buf.extend_from_slice(&value.to_le_bytes());
                }
                if timestamp != 0 {
                    buf.push(SAMPLE_TIMESTAMP);
                    // int64 travels as the two's complement in a varint.
                    put_varint(&mut buf, timestamp as u64);
                }
            }
        }
        debug_assert_eq!(buf.len(), total);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    /// The `prompb` messages declared for prost, as an independent reference
    /// for the hand-written reader and writer. `Full` has the fields of
    /// exemplars and histograms, to build requests; `Counted` has them as
    /// empty messages, whose content prost skips but still checks for
    /// framing, as the module does.
    mod pb {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct WriteRequest<
            E: prost::Message + Default + std::fmt::Debug,
            H: prost::Message + Default + std::fmt::Debug,
        > {
            #[prost(message, repeated, tag = "1")]
            pub timeseries: Vec<TimeSeries<E, H>>,
            #[prost(message, repeated, tag = "3")]
            pub metadata: Vec<MetricMetadata>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct TimeSeries<
            E: prost::Message + Default + std::fmt::Debug,
            H: prost::Message + Default + std::fmt::Debug,
        > {
            #[prost(message, repeated, tag = "1")]
            pub labels: Vec<Label>,
            #[prost(message, repeated, tag = "2")]
            pub samples: Vec<Sample>,
            #[prost(message, repeated, tag = "3")]
            pub exemplars: Vec<E>,
            #[prost(message, repeated, tag = "4")]
            pub histograms: Vec<H>,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Label {
            #[prost(string, tag = "1")]
            pub name: String,
            #[prost(string, tag = "2")]
            pub value: String,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Sample {
            #[prost(double, tag = "1")]
            pub value: f64,
            #[prost(int64, tag = "2")]
            pub timestamp: i64,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Exemplar {
            #[prost(message, repeated, tag = "1")]
            pub labels: Vec<Label>,
            #[prost(double, tag = "2")]
            pub value: f64,
            #[prost(int64, tag = "3")]
            pub timestamp: i64,
        }

        /// Most of `prometheus.Histogram` (its oneofs as plain fields).
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Histogram {
            #[prost(uint64, tag = "1")]
            pub count_int: u64,
            #[prost(double, tag = "3")]
            pub sum: f64,
            #[prost(sint32, tag = "4")]
            pub schema: i32,
            #[prost(double, tag = "5")]
            pub zero_threshold: f64,
            #[prost(uint64, tag = "6")]
            pub zero_count_int: u64,
            #[prost(message, repeated, tag = "11")]
            pub positive_spans: Vec<BucketSpan>,
            #[prost(sint64, repeated, tag = "12")]
            pub positive_deltas: Vec<i64>,
            #[prost(int64, tag = "15")]
            pub timestamp: i64,
        }

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct BucketSpan {
            #[prost(sint32, tag = "1")]
            pub offset: i32,
            #[prost(uint32, tag = "2")]
            pub length: u32,
        }

        /// Stands in for a message that is only counted.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Skipped {}

        #[derive(Clone, PartialEq, prost::Message)]
        pub struct MetricMetadata {
            #[prost(enumeration = "MetricType", tag = "1")]
            pub r#type: i32,
            #[prost(string, tag = "2")]
            pub metric_family_name: String,
            #[prost(string, tag = "4")]
            pub help: String,
            #[prost(string, tag = "5")]
            pub unit: String,
        }

        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
        #[repr(i32)]
        pub enum MetricType {
            Unknown = 0,
            Counter = 1,
            Gauge = 2,
            Summary = 3,
            Histogram = 4,
            Gaugehistogram = 5,
            Info = 6,
            Stateset = 7,
        }

        pub type Full = WriteRequest<Exemplar, Histogram>;
        pub type FullSeries = TimeSeries<Exemplar, Histogram>;
        pub type Counted = WriteRequest<Skipped, Skipped>;
    }

    /// Decodes `proto` with prost and converts the result as the module
    /// promises to: series without samples left out, the rest counted.
    fn reference_decode(proto: &[u8]) -> Result<Decoded, prost::DecodeError> {
        let request = pb::Counted::decode(proto)?;
        let mut out = Decoded::default();
        for ts in request.timeseries {
            out.histograms += ts.histograms.len() as u64;
            out.exemplars += ts.exemplars.len() as u64;
            if !ts.samples.is_empty() {
                out.series.push(DecodedSeries {
                    labels: ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                    samples: ts
                        .samples
                        .into_iter()
                        .map(|s| (s.timestamp, s.value))
                        .collect(),
                });
            }
        }
        out.metadata = request
            .metadata
            .into_iter()
            .map(|m| Metadata {
                metric_family_name: m.metric_family_name,
                kind: metric_type_name(m.r#type).to_owned(),
                help: m.help,
                unit: m.unit,
            })
            .collect();
        Ok(out)
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    fn pb_label(name: &str, value: &str) -> pb::Label {
        pb::Label {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    fn snappy(bytes: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(bytes).unwrap()
    }

    fn decode(body: &[u8]) -> Result<Decoded, DecodeError> {
        decode_request(body, &Limits::default())
    }

    /// Decodes `proto` (uncompressed) into owned values.
    fn decode_proto(proto: &[u8]) -> Result<Decoded, DecodeError> {
        decode_protobuf(proto).map(DecodedRef::into_owned)
    }

    /// Series with values as bits, which makes NaN comparable.
    type SeriesBits = (Vec<(String, String)>, Vec<(i64, u64)>);

    fn bits(decoded: &Decoded) -> Vec<SeriesBits> {
        decoded
            .series
            .iter()
            .map(|s| {
                let samples = s.samples.iter().map(|&(t, v)| (t, v.to_bits())).collect();
                (s.labels.clone(), samples)
            })
            .collect()
    }

    fn input_bits(input: &[Series]) -> Vec<SeriesBits> {
        input
            .iter()
            .map(|(l, s)| {
                (
                    l.clone(),
                    s.iter().map(|&(t, v)| (t, v.to_bits())).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn round_trip_special_values() {
        let input: Vec<Series> = vec![
            (
                labels(&[("__name__", "up"), ("empty", ""), ("job", "node")]),
                vec![
                    (1_700_000_000_000, 1.0),
                    (1_700_000_015_000, f64::NAN),
                    (1_700_000_030_000, f64::from_bits(STALE_NAN)),
                    (1_700_000_045_000, f64::INFINITY),
                    (1_700_000_060_000, f64::NEG_INFINITY),
                    (0, 0.0),
                    (-1, -0.0),
                    (i64::MIN, f64::MIN_POSITIVE),
                    (i64::MAX, f64::MAX),
                    (-86_400_000, -42.5),
                ],
            ),
            (
                labels(&[
                    ("__name__", "température_°C"),
                    ("city", "Zürich 東京 🚗"),
                    ("", "empty name"),
                ]),
                vec![(5, 21.25)],
            ),
        ];
        let body = encode_request(&input).unwrap();
        let decoded = decode(&body).unwrap();
        assert_eq!(bits(&decoded), input_bits(&input));
        assert_eq!(decoded.series[0].samples[2].1.to_bits(), STALE_NAN);
        assert_eq!(
            decoded.series[0].samples[6].1.to_bits(),
            (-0.0f64).to_bits()
        );
        assert_eq!(
            (
                decoded.histograms,
                decoded.exemplars,
                decoded.metadata.len()
            ),
            (0, 0, 0)
        );

        // The borrowed view holds the same.
        let proto = decompress(&body, &Limits::default()).unwrap();
        let borrowed = decode_protobuf(&proto).unwrap();
        assert_eq!(borrowed.series_count(), 2);
        assert_eq!(borrowed.sample_count(), 11);
        let second = borrowed.series().nth(1).unwrap();
        assert_eq!(second.labels()[1], ("city", "Zürich 東京 🚗"));
        assert_eq!(second.samples, [(5, 21.25)]);
    }

    fn random_input(rng: &mut StdRng, series: usize) -> Vec<Series> {
        (0..series)
            .map(|_| {
                let labels = (0..rng.gen_range(0..12))
                    .map(|j| {
                        let len = rng.gen_range(0..200);
                        let value: String = (0..len).map(|_| rng.gen::<char>()).collect();
                        (format!("label_{j}"), value)
                    })
                    .collect();
                let samples = (0..rng.gen_range(1..20))
                    .map(|_| (rng.gen::<i64>(), f64::from_bits(rng.gen())))
                    .collect();
                (labels, samples)
            })
            .collect()
    }

    #[test]
    fn round_trip_many_random_series() {
        let mut rng = StdRng::seed_from_u64(7);
        let input = random_input(&mut rng, 3_000);
        let body = encode_request(&input).unwrap();
        let decoded = decode(&body).unwrap();
        assert_eq!(bits(&decoded), input_bits(&input));
    }

    /// A series' labels and its samples as `t ^ value bits`, for comparisons.
    type Compared<'a> = (Vec<(&'a str, &'a str)>, Vec<u64>);

    #[test]
    fn retained_samples_and_series_are_exactly_those_kept() {
        let mut rng = StdRng::seed_from_u64(9);
        let input = random_input(&mut rng, 500);
        let keep = |(t, _): &(i64, f64)| t % 3 != 0;
        let expected: Vec<Compared> = input
            .iter()
            .map(|(labels, samples)| {
                let pairs = labels
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let kept = samples
                    .iter()
                    .filter(|s| keep(s))
                    .map(|(t, v)| (*t as u64) ^ v.to_bits());
                (pairs, kept.collect::<Vec<u64>>())
            })
            .filter(|(_, kept)| !kept.is_empty())
            .collect();
        let proto = write::write_request(&input);
        let mut decoded = decode_protobuf(&proto).unwrap();
        let total = decoded.sample_count();
        let dropped = decoded.retain_samples(keep);
        let kept: usize = expected.iter().map(|(_, s)| s.len()).sum();
        assert_eq!((dropped, decoded.sample_count()), (total - kept, kept));
        let actual: Vec<Compared> = decoded
            .series()
            .map(|s| {
                let samples = s.samples.iter().map(|(t, v)| (*t as u64) ^ v.to_bits());
                (s.labels(), samples.collect())
            })
            .collect();
        assert_eq!(actual, expected);
        assert!(
            expected.len() < input.len(),
            "some series lose every sample"
        );
    }

    #[test]
    fn encoder_agrees_with_prost() {
        let mut rng = StdRng::seed_from_u64(8);
        let input = random_input(&mut rng, 200);
        let proto = write::write_request(&input);
        let reference = pb::Full::decode(proto.as_slice()).unwrap();
        let mut expected = pb::Full::default();
        for (labels, samples) in &input {
            expected.timeseries.push(pb::FullSeries {
                labels: labels.iter().map(|(n, v)| pb_label(n, v)).collect(),
                samples: samples
                    .iter()
                    .map(|&(timestamp, value)| pb::Sample { value, timestamp })
                    .collect(),
                ..Default::default()
            });
        }
        // Compare re-encoded bytes, since NaN != NaN.
        assert_eq!(reference.encode_to_vec(), expected.encode_to_vec());
    }

    #[test]
    fn series_without_samples_are_left_out() {
        let input: Vec<Series> = vec![
            (labels(&[("__name__", "a")]), vec![]),
            (labels(&[("__name__", "b")]), vec![(1, 1.0)]),
            (labels(&[("__name__", "c")]), vec![]),
        ];
        let decoded = decode(&encode_request(&input).unwrap()).unwrap();
        assert_eq!(bits(&decoded), input_bits(&input[1..2]));
    }

    #[test]
    fn decodes_hand_written_protobuf() {
        // WriteRequest { timeseries: [TimeSeries {
        //   labels: [{__name__, up}, {job, node}],
        //   samples: [{value: 1.5, timestamp: 1700000000000}] }] }
        // written byte by byte from the protobuf wire format.
        #[rustfmt::skip]
        let label_name: &[u8] = &[
            0x0a, 8, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_', // name = 1, LEN
            0x12, 2, b'u', b'p',                                     // value = 2, LEN
        ];
        #[rustfmt::skip]
        let label_job: &[u8] = &[
            0x0a, 3, b'j', b'o', b'b',
            0x12, 4, b'n', b'o', b'd', b'e',
        ];
        #[rustfmt::skip]
        let sample: &[u8] = &[
            0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f,       // value = 1, I64: 1.5
            0x10, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, // timestamp = 2, VARINT
        ];
        assert_eq!(
            (label_name.len(), label_job.len(), sample.len()),
            (14, 11, 16)
        );
        let mut series = vec![0x0a, 14]; // labels = 1, LEN
        series.extend_from_slice(label_name);
        series.extend_from_slice(&[0x0a, 11]);
        series.extend_from_slice(label_job);
        series.extend_from_slice(&[0x12, 16]); // samples = 2, LEN
        series.extend_from_slice(sample);
        assert_eq!(series.len(), 47);
        let mut request = vec![0x0a, 47]; // timeseries = 1, LEN
        request.extend_from_slice(&series);

        let expected = Decoded {
            series: vec![DecodedSeries {
                labels: labels(&[("__name__", "up"), ("job", "node")]),
                samples: vec![(1_700_000_000_000, 1.5)],
            }],
            ..Decoded::default()
        };
        assert_eq!(decode(&snappy(&request)).unwrap(), expected);
        assert_eq!(reference_decode(&request).unwrap(), expected);
        // The encoder writes the very same bytes.
        let encoded = write::write_request(&[(
            labels(&[("__name__", "up"), ("job", "node")]),
            vec![(1_700_000_000_000, 1.5)],
        )]);
        assert_eq!(encoded, request);
    }

    #[test]
    fn encoded_labels_are_the_label_fields_and_the_store_key_when_sorted() {
        let pairs = [("__name__", "up"), ("job", "node")];
        let request = write::write_request(&[(labels(&pairs), vec![(1, 1.5)])]);
        let decoded = decode_protobuf(&request).unwrap();
        let series = decoded.series().next().unwrap();
        let mut key = Vec::new();
        crate::storage::series_key::encode(&pairs, &mut key);
        assert_eq!(series.encoded_labels, Some(key.as_slice()));
        // TimeSeries { labels, samples, labels }: the labels are not back to
        // back, so there are no bytes to offer.
        let sample = [0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f];
        let label = |name: &str, value: &str| {
            let mut out = vec![0x0a, (4 + name.len() + value.len()) as u8];
            out.extend_from_slice(&[0x0a, name.len() as u8]);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&[0x12, value.len() as u8]);
            out.extend_from_slice(value.as_bytes());
            out
        };
        let mut series = label("__name__", "up");
        series.extend_from_slice(&[0x12, sample.len() as u8]);
        series.extend_from_slice(&sample);
        series.extend(label("job", "node"));
        let mut request = vec![0x0a, series.len() as u8];
        request.extend_from_slice(&series);
        let decoded = decode_protobuf(&request).unwrap();
        let series = decoded.series().next().unwrap();
        assert_eq!(series.labels(), pairs);
        assert_eq!(series.encoded_labels, None);
    }

    #[test]
    fn a_non_ascii_byte_anywhere_in_a_label_is_checked_as_utf8() {
        let request = |value: &[u8]| {
            let mut label = vec![0x0a, 1, b'v', 0x12, value.len() as u8];
            label.extend_from_slice(value);
            let mut series = vec![0x0a, label.len() as u8];
            series.extend_from_slice(&label);
            series.extend_from_slice(&[0x12, 9, 0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
            let mut request = vec![0x0a, series.len() as u8];
            request.extend_from_slice(&series);
            request
        };
        // Every position in the 8-byte words and in the tail after them.
        for len in 1..24 {
            for at in 0..len {
                let mut invalid = vec![b'a'; len];
                invalid[at] = 0xff;
                assert!(
                    decode_protobuf(&request(&invalid)).is_err(),
                    "0xff at {at} of {len}"
                );
                if at + 1 < len {
                    let mut accented = vec![b'a'; len];
                    accented[at..at + 2].copy_from_slice("é".as_bytes());
                    let proto = request(&accented);
                    let decoded = decode_protobuf(&proto).unwrap();
                    let series = decoded.series().next().unwrap();
                    let value = std::str::from_utf8(&accented).unwrap();
                    assert_eq!(series.labels(), [("v", value)]);
                }
            }
        }
    }

    #[test]
    fn metadata_field_numbers() {
        // WriteRequest { metadata (3): [MetricMetadata { type (1): COUNTER,
        //   metric_family_name (2): "x", help (4): "h", unit (5): "u" }] }
        let metadata = [0x08, 1, 0x12, 1, b'x', 0x22, 1, b'h', 0x2a, 1, b'u'];
        let mut request = vec![0x1a, metadata.len() as u8];
        request.extend_from_slice(&metadata);
        let expected = vec![Metadata {
            metric_family_name: "x".into(),
            kind: "counter".into(),
            help: "h".into(),
            unit: "u".into(),
        }];
        assert_eq!(decode(&snappy(&request)).unwrap().metadata, expected);
        assert_eq!(reference_decode(&request).unwrap().metadata, expected);
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        // Unknown fields 9..=13 of each wire type, including a group with a
        // nested group, as a newer sender might add them.
        #[rustfmt::skip]
        let unknown: &[u8] = &[
            0x48, 0x96, 0x01,                 // 9, VARINT 150
            0x51, 1, 2, 3, 4, 5, 6, 7, 8,     // 10, I64
            0x5a, 2, 0xde, 0xad,              // 11, LEN
            0x65, 1, 2, 3, 4,                 // 12, I32
            0x6b,                             // 13, SGROUP
              0x08, 1,                        //   1, VARINT
              0x73, 0x74,                     //   14, SGROUP, EGROUP
            0x6c,                             // 13, EGROUP
        ];
        let with_unknown = |fields: &[u8]| [fields, unknown].concat();
        let len_field = |key: u8, body: &[u8]| [&[key, body.len() as u8], body].concat();

        let label = with_unknown(&[0x0a, 1, b'a', 0x12, 1, b'b']);
        let sample = with_unknown(&[0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 7]);
        let series = with_unknown(&[len_field(0x0a, &label), len_field(0x12, &sample)].concat());
        let metadata = with_unknown(&[0x08, 2, 0x12, 1, b'g']);
        let request = with_unknown(
            &[
                len_field(0x0a, &series),
                vec![0x12, 1, 0], // reserved field 2
                len_field(0x1a, &metadata),
            ]
            .concat(),
        );
        let expected = Decoded {
            series: vec![DecodedSeries {
                labels: labels(&[("a", "b")]),
                samples: vec![(7, 1.0)],
            }],
            metadata: vec![Metadata {
                metric_family_name: "g".into(),
                kind: "gauge".into(),
                ..Metadata::default()
            }],
            ..Decoded::default()
        };
        assert_eq!(reference_decode(&request).unwrap(), expected);
        assert_eq!(decode_proto(&request).unwrap(), expected);
    }

    #[test]
    fn repeated_scalar_fields_keep_the_last_value() {
        // Label { name: "x", name: "y", value: "v" }
        let label = [0x0a, 1, b'x', 0x0a, 1, b'y', 0x12, 1, b'v'];
        let sample = [0x10, 1, 0x10, 2];
        let mut series = vec![0x0a, label.len() as u8];
        series.extend_from_slice(&label);
        series.extend_from_slice(&[0x12, sample.len() as u8]);
        series.extend_from_slice(&sample);
        let mut request = vec![0x0a, series.len() as u8];
        request.extend_from_slice(&series);
        let decoded = decode_proto(&request).unwrap();
        assert_eq!(decoded, reference_decode(&request).unwrap());
        assert_eq!(decoded.series[0].labels, labels(&[("y", "v")]));
        assert_eq!(decoded.series[0].samples, [(2, 0.0)]);
    }

    fn histogram(timestamp: i64) -> pb::Histogram {
        pb::Histogram {
            count_int: 10,
            sum: 12.5,
            schema: 3,
            zero_threshold: 1e-128,
            zero_count_int: 1,
            positive_spans: vec![pb::BucketSpan {
                offset: -2,
                length: 3,
            }],
            positive_deltas: vec![4, -1, 2],
            timestamp,
        }
    }

    /// A request with histograms, exemplars and metadata of every type.
    fn full_request() -> pb::Full {
        let exemplar = pb::Exemplar {
            labels: vec![pb_label("trace_id", "abc123")],
            value: 0.25,
            timestamp: 1_000,
        };
        pb::Full {
            timeseries: vec![
                pb::FullSeries {
                    labels: vec![pb_label("__name__", "rpc_duration_seconds")],
                    exemplars: vec![exemplar.clone()],
                    histograms: vec![histogram(1_000), histogram(2_000), histogram(3_000)],
                    ..Default::default()
                },
                pb::FullSeries {
                    labels: vec![pb_label("__name__", "requests_total")],
                    samples: vec![pb::Sample {
                        value: 7.0,
                        timestamp: 1_000,
                    }],
                    exemplars: vec![exemplar.clone(), exemplar],
                    histograms: vec![histogram(4_000)],
                },
            ],
            metadata: (0..9)
                .map(|t| pb::MetricMetadata {
                    r#type: t,
                    metric_family_name: format!("m{t}"),
                    help: format!("Help of m{t}."),
                    unit: if t == 2 {
                        "seconds".into()
                    } else {
                        String::new()
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn histograms_and_exemplars_are_counted_metadata_decoded() {
        let proto = full_request().encode_to_vec();
        let decoded = decode(&snappy(&proto)).unwrap();
        assert_eq!(decoded, reference_decode(&proto).unwrap());

        assert_eq!(decoded.histograms, 4);
        assert_eq!(decoded.exemplars, 3);
        assert_eq!(
            decoded.series,
            vec![DecodedSeries {
                labels: labels(&[("__name__", "requests_total")]),
                samples: vec![(1_000, 7.0)],
            }]
        );
        let kinds: Vec<&str> = decoded.metadata.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "unknown",
                "counter",
                "gauge",
                "summary",
                "histogram",
                "gaugehistogram",
                "info",
                "stateset",
                "unknown", // type 8 does not exist
            ]
        );
        assert_eq!(
            decoded.metadata[2],
            Metadata {
                metric_family_name: "m2".into(),
                kind: "gauge".into(),
                help: "Help of m2.".into(),
                unit: "seconds".into(),
            }
        );
    }

    /// Mutates valid requests at random and checks that the hand-written
    /// reader accepts exactly what prost accepts, with the same result.
    #[test]
    fn reader_agrees_with_prost_on_mutated_input() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut seeds = vec![full_request().encode_to_vec()];
        for n in [1, 3] {
            seeds.push(write::write_request(&random_input(&mut rng, n)));
        }
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..20_000 {
            let mut proto = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..proto.len());
                match rng.gen_range(0..4) {
                    0 => proto[at] ^= 1 << rng.gen_range(0..8),
                    1 => proto[at] = rng.gen(),
                    2 => proto.truncate(at),
                    _ => proto.insert(at, rng.gen()),
                }
                if proto.is_empty() {
                    break;
                }
            }
            let ours = decode_proto(&proto);
            match reference_decode(&proto) {
                Ok(expected) => {
                    accepted += 1;
                    let ours = ours.unwrap_or_else(|e| panic!("{proto:02x?}: {e}"));
                    assert_eq!(bits(&ours), bits(&expected), "{proto:02x?}");
                    assert_eq!(
                        (ours.histograms, ours.exemplars, &ours.metadata),
                        (expected.histograms, expected.exemplars, &expected.metadata)
                    );
                }
                Err(e) => {
                    rejected += 1;
                    assert!(
                        ours.is_err(),
                        "prost rejects ({e}), ours accepts {proto:02x?}"
                    );
                }
            }
        }
        // Both outcomes must be well represented for the test to mean much.
        assert!(
            accepted > 2_000 && rejected > 2_000,
            "{accepted} {rejected}"
        );
    }

    fn sample_body() -> Vec<u8> {
        let input: Vec<Series> = (0..100)
            .map(|i| {
                (
                    labels(&[("__name__", "up"), ("instance", &format!("host-{i}"))]),
                    vec![(i, 1.0)],
                )
            })
            .collect();
        encode_request(&input).unwrap()
    }

    #[test]
    fn empty_body_is_an_error_but_empty_request_is_valid() {
        assert_eq!(decode(b""), Err(DecodeError::EmptyBody));
        // An empty WriteRequest is zero protobuf bytes; snappy makes that one
        // byte (the length header 0).
        let body = encode_request(&[]).unwrap();
        assert_eq!(body, [0]);
        assert_eq!(decode(&body).unwrap(), Decoded::default());
    }

    #[test]
    fn uncompressed_protobuf_is_rejected() {
        // A sender that forgot to compress: the protobuf bytes read as a
        // snappy length header and garbage.
        let proto = write::write_request(&[(labels(&[("a", "b")]), vec![(1, 1.0)])]);
        let err = decode(&proto).unwrap_err();
        assert!(
            err.to_string().starts_with("snappy: corrupt input"),
            "{err}"
        );
    }

    #[test]
    fn framed_snappy_is_rejected() {
        let proto = write::write_request(&[(labels(&[("a", "b")]), vec![(1, 1.0)])]);
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut framed, &proto).unwrap();
        let err = decode(&framed.into_inner().unwrap()).unwrap_err();
        assert_eq!(err, DecodeError::SnappyFramed);
        assert!(err.to_string().contains("block format"), "{err}");
    }

    #[test]
    fn truncated_snappy_is_rejected() {
        let body = sample_body();
        for cut in [1, 2, body.len() / 2, body.len() - 1] {
            let err = decode(&body[..cut]).unwrap_err();
            // A short cut leaves too few bytes for the announced size, which
            // is caught before decompressing.
            assert!(
                matches!(
                    err,
                    DecodeError::Snappy(_) | DecodeError::ImplausibleSize { .. }
                ),
                "cut at {cut}: {err:?}"
            );
            assert!(
                err.to_string().starts_with("snappy: corrupt input"),
                "{err}"
            );
        }
    }

    #[test]
    fn corrupt_protobuf_is_rejected() {
        let cases: [(&[u8], &str); 7] = [
            (
                &[0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
                "protobuf: embedded message runs past the end of its parent at byte 1 \
                 of the decompressed WriteRequest",
            ),
            (&[0xff; 20], "protobuf: varint overflows 64 bits at byte 0"),
            (
                &[0x0a, 0x04, 0x0a, 0x02, 0x0a, 0x05],
                "protobuf: length-delimited field runs past the end of its message at byte 5 of",
            ),
            (
                &[0x0a, 6, 0x0a, 4, 0x12, 2, 0xc3, 0x28],
                "protobuf: Label.value is not valid UTF-8 at byte 6",
            ),
            (&[0x0f], "protobuf: invalid wire type at byte 0"),
            (&[0x00], "protobuf: invalid field number at byte 0"),
            (
                &[0x0a, 2, 0x11, 0],
                "protobuf: TimeSeries field has the wrong wire type at byte 3",
            ),
        ];
        for (proto, message) in cases {
            let err = decode(&snappy(proto)).unwrap_err();
            assert!(matches!(err, DecodeError::Protobuf { .. }), "{err:?}");
            assert!(err.to_string().starts_with(message), "{proto:x?}: {err}");
            assert!(reference_decode(proto).is_err(), "{proto:x?}");
        }
    }

    #[test]
    fn oversized_header_is_rejected_before_allocating() {
        // Snappy header (varint) announcing 4 GiB - 1 bytes, followed by a
        // few bytes of nothing. Allocating first would take 4 GiB.
        let mut body = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
        body.extend_from_slice(&[0; 8]);
        let err = decode(&body).unwrap_err();
        assert_eq!(
            err,
            DecodeError::DecompressedTooLarge {
                size: 0xffff_ffff,
                limit: 64 << 20,
            }
        );
        assert_eq!(
            err.to_string(),
            "decompressed size 4294967295 exceeds the limit of 67108864 bytes"
        );

        // Within a generous limit, a size no 13 bytes can hold is corrupt.
        let generous = Limits {
            max_compressed_bytes: usize::MAX,
            max_decompressed_bytes: usize::MAX,
        };
        let err = decode_request(&body, &generous).unwrap_err();
        assert_eq!(
            err,
            DecodeError::ImplausibleSize {
                size: 0xffff_ffff,
                compressed: 13,
            }
        );
    }

    #[test]
    fn limits_are_enforced() {
        let body = sample_body();
        let proto_len = snap::raw::decompress_len(&body).unwrap();
        let exact = Limits {
            max_compressed_bytes: body.len(),
            max_decompressed_bytes: proto_len,
        };
        assert_eq!(decode_request(&body, &exact).unwrap().series.len(), 100);

        let small_body = Limits {
            max_compressed_bytes: body.len() - 1,
            ..exact
        };
        assert_eq!(
            decode_request(&body, &small_body),
            Err(DecodeError::CompressedTooLarge {
                size: body.len(),
                limit: body.len() - 1
            })
        );

        let small_proto = Limits {
            max_decompressed_bytes: proto_len - 1,
            ..exact
        };
        assert_eq!(
            decode_request(&body, &small_proto),
            Err(DecodeError::DecompressedTooLarge {
                size: proto_len,
                limit: proto_len - 1
            })
        );
    }
}
