//! Parsing of scrape bodies in the Prometheus text exposition format 0.0.4
//! and the OpenMetrics 1.0.0 text format.
//!
//! This module owns everything between the raw bytes of a scrape response
//! (or of a file being imported in pieces) and a stream of [`Entry`] values:
//! choosing the format from the `Content-Type`, the `Accept` header fleetmon
//! sends, tokenizing, unescaping, float and timestamp parsing, metric-family
//! type tracking, and the canonical re-formatting of `le`/`quantile` label
//! values.
//!
//! The goal is to accept and reject exactly what Prometheus's own parsers
//! (`model/textparse/promparse.go` and `openmetricsparse.go`, v3 line)
//! accept and reject, quirks included: a target that scrapes cleanly in
//! Prometheus must scrape cleanly here, and a broken one must fail here too.
//! Where this module deliberately differs, the item's documentation says so.
//! Checks that Prometheus makes after parsing, in its scrape loop (duplicate
//! label names, the name validation scheme, sample limits), are not made here.
//!
//! Samples borrow from the input whenever no unescaping or re-formatting was
//! needed, and the label vector of a consumed sample can be handed back with
//! [`Parser::recycle`], so steady-state parsing allocates nothing per sample.
//!
//! Where this differs from Prometheus (v3; 2.x differed more, e.g. it had
//! no quoted names and no `le`/`quantile` re-formatting):
//! - Errors carry a line number and are worded differently.
//! - An OpenMetrics sample line with junk after the value (`a 1 \n`) fails
//!   on that line; Prometheus first returns the sample, then fails. Either
//!   way the exposition is rejected.
//! - Quoted metric and label names must be valid UTF-8, here already (the
//!   scrape loop rejects them later in Prometheus), exemplar label names
//!   included; quoted names in `# HELP`/`# TYPE`/`# UNIT` are unescaped like
//!   sample names, where Prometheus hands them out raw.
//! - NUL bytes are ordinary bytes in label values, help text and comments
//!   and invalid elsewhere. Prometheus's lexer silently skips them in a few
//!   more places; its text-format rule that a NUL starting a line (or
//!   following `#` without a blank) ends the input is kept.
//! - Fed in pieces, an entry still open after [`MAX_PENDING_ENTRY`] bytes is
//!   an error rather than an ever-growing carry-over.
//! - OpenMetrics timestamps beyond the `i64` millisecond range saturate,
//!   where Go's float-to-int conversion is platform-dependent.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// The `Accept` header Prometheus 2.42+ sends with scrapes: OpenMetrics 1.0.0
/// preferred, then OpenMetrics 0.0.1, then the text format 0.0.4, then
/// anything.
///
/// Prometheus 3 by default also offers `text/plain;version=1.0.0` and adds
/// `escaping=allow-utf-8`; fleetmon keeps the 2.42 header so targets keep
/// escaping non-legacy names, which this parser accepts either way.
pub const SCRAPE_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,\
text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Bit pattern of the NaN every NaN sample value is replaced with, as in
/// Prometheus (`value.NormalNaN`), so that a scraped NaN can never be taken
/// for a staleness marker.
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// A label name and value, both unescaped.
pub type Label<'a> = (Cow<'a, str>, Cow<'a, str>);

/// Which text format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text exposition format 0.0.4.
    Text,
    /// The OpenMetrics 1.0.0 text format.
    OpenMetrics,
}

impl Format {
    /// The format of a scrape response with this `Content-Type`.
    ///
    /// `application/openmetrics-text` (any case, any version, any
    /// well-formed parameters) is OpenMetrics; everything else, including a
    /// missing, malformed or unknown header, is the text format, which is
    /// where Prometheus 2.x falls back. A header whose parameters Go's
    /// `mime.ParseMediaType` rejects also falls back to the text format,
    /// as it does in Prometheus.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        match content_type {
            Some(value) if is_openmetrics_media_type(value) => Format::OpenMetrics,
            _ => Format::Text,
        }
    }
}

/// The type of a metric family, as declared by a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    /// `counter`.
    Counter,
    /// `gauge`.
    Gauge,
    /// `histogram`.
    Histogram,
    /// `gaugehistogram` (OpenMetrics only).
    GaugeHistogram,
    /// `summary`.
    Summary,
    /// `info` (OpenMetrics only).
    Info,
    /// `stateset` (OpenMetrics only).
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in the text format, and the type of
    /// samples before any `# TYPE` line.
    #[default]
    Unknown,
}

impl MetricType {
    /// The name Prometheus uses for this type in its metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    fn from_text_keyword(word: &[u8]) -> Option<MetricType> {
        match word {
            b"counter" => Some(MetricType::Counter),
            b"gauge" => Some(MetricType::Gauge),
            b"histogram" => Some(MetricType::Histogram),
            b"summary" => Some(MetricType::Summary),
            b"untyped" => Some(MetricType::Unknown),
            _ => None,
        }
    }

    fn from_openmetrics_keyword(word: &[u8]) -> Option<MetricType> {
        match word {
            b"counter" => Some(MetricType::Counter),
            b"gauge" => Some(MetricType::Gauge),
            b"histogram" => Some(MetricType::Histogram),
            b"gaugehistogram" => Some(MetricType::GaugeHistogram),
            b"summary" => Some(MetricType::Summary),
            b"info" => Some(MetricType::Info),
            b"stateset" => Some(MetricType::StateSet),
            b"unknown" => Some(MetricType::Unknown),
            _ => None,
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One meaningful line of an exposition. Comments and blank lines are
/// consumed silently.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// A sample line.
    Sample(Sample<'a>),
    /// A `# HELP` line; `text` is unescaped.
    Help {
        /// The metric family name, unescaped if it was quoted.
        metric: Cow<'a, str>,
        /// The help text.
        text: Cow<'a, str>,
    },
    /// A `# TYPE` line.
    Type {
        /// The metric family name, unescaped if it was quoted.
        metric: Cow<'a, str>,
        /// The declared type.
        kind: MetricType,
    },
    /// A `# UNIT` line (OpenMetrics only).
    Unit {
        /// The metric family name, unescaped if it was quoted.
        metric: Cow<'a, str>,
        /// The unit; empty when the line declared none.
        unit: Cow<'a, str>,
    },
}

impl Entry<'_> {
    /// The same entry, owning all of its strings.
    pub fn into_owned(self) -> Entry<'static> {
        match self {
            Entry::Sample(sample) => Entry::Sample(sample.into_owned()),
            Entry::Help { metric, text } => Entry::Help {
                metric: owned(metric),
                text: owned(text),
            },
            Entry::Type { metric, kind } => Entry::Type {
                metric: owned(metric),
                kind,
            },
            Entry::Unit { metric, unit } => Entry::Unit {
                metric: owned(metric),
                unit: owned(unit),
            },
        }
    }
}

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric name (the `__name__` value).
    pub name: Cow<'a, str>,
    /// The other labels in exposition order, values unescaped (borrowed when
    /// nothing had to change). `le` of histograms and `quantile` of summaries
    /// are re-formatted canonically, as Prometheus 3 does.
    pub labels: Vec<Label<'a>>,
    /// The value; every NaN is the one with bits [`NORMAL_NAN_BITS`].
    pub value: f64,
    /// Milliseconds since the epoch, if the line had a timestamp
    /// (OpenMetrics seconds are multiplied by 1000 and truncated toward zero,
    /// as Prometheus does).
    pub timestamp_ms: Option<i64>,
    /// Whether an exemplar followed. It is validated, then dropped:
    /// Prometheus keeps exemplars only behind a feature flag.
    pub has_exemplar: bool,
}

impl Sample<'_> {
    /// The same sample, owning all of its strings.
    pub fn into_owned(self) -> Sample<'static> {
        Sample {
            name: owned(self.name),
            labels: self
                .labels
                .into_iter()
                .map(|(name, value)| (owned(name), owned(value)))
                .collect(),
            value: self.value,
            timestamp_ms: self.timestamp_ms,
            has_exemplar: self.has_exemplar,
        }
    }
}

fn owned(text: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(text.into_owned())
}

/// Why an exposition was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number, counted over the whole input even when it was
    /// fed in pieces.
    pub line: usize,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Everything a [`Parser`] must remember between two pieces of one input.
///
/// Get it from [`Parser::into_state`] and hand it to [`Parser::resume`] or
/// [`Parser::resume_last`] with the next piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParserState {
    /// Line number of the first byte not yet consumed.
    line: usize,
    /// The type from the most recent `# TYPE` line.
    mtype: MetricType,
    /// The family name from the most recent `# TYPE` line.
    family: String,
    /// Set by `# EOF` in OpenMetrics, and by the NUL byte at the start of a
    /// line that makes Prometheus's text lexer report end of input.
    ended: bool,
    /// Bytes of an entry that the previous piece ended in the middle of.
    carry: Vec<u8>,
    /// The error that stopped parsing, repeated by [`Parser::finish`].
    error: Option<ParseError>,
}

impl ParserState {
    /// The state at the start of an input.
    pub fn new() -> ParserState {
        ParserState {
            line: 1,
            mtype: MetricType::Unknown,
            family: String::new(),
            ended: false,
            carry: Vec::new(),
            error: None,
        }
    }

    /// Line number of the first byte not yet consumed.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The type declared by the most recent `# TYPE` line.
    pub fn current_type(&self) -> MetricType {
        self.mtype
    }

    /// The family named by the most recent `# TYPE` line, if any.
    pub fn current_family(&self) -> Option<&str> {
        (!self.family.is_empty()).then_some(self.family.as_str())
    }
}

impl Default for ParserState {
    fn default() -> ParserState {
        ParserState::new()
    }
}

/// Streaming parser over one input, or over one piece of an input that is
/// fed in pieces.
///
/// Whole input: [`Parser::new`], then [`Parser::next_entry`] (or iterate)
/// until `None`. In OpenMetrics a missing `# EOF` is reported as the last
/// item, an error.
///
/// Pieces: [`Parser::resume`] for every piece but the last, passing along
/// [`Parser::into_state`] of the previous parser, and
/// [`Parser::resume_last`] for the last piece (possibly empty). Pieces may
/// be cut anywhere, though cutting after a newline is cheapest: an entry cut
/// in two is carried over and returned (owned) by the next parser. The
/// entries and error line numbers are exactly those of parsing the
/// concatenation in one go.
///
/// [`Parser::finish`] tells whether the input as a whole was valid.
pub struct Parser<'a> {
    format: Format,
    input: &'a [u8],
    /// Next byte of `input` to parse when no carried entry is pending.
    pos: usize,
    /// End of the bytes of `input` that may be parsed in place. Before the
    /// last piece this is just after the last newline: what follows is an
    /// incomplete line.
    region_end: usize,
    /// Whether the end of `input` is the end of the exposition.
    last: bool,
    /// Whether this piece is used up and the next piece is needed.
    paused: bool,
    state: ParserState,
    /// An entry straddling piece boundaries, copied out to be parsed.
    joined: Option<Joined>,
    /// Label vector to fill for the next sample.
    spare: Vec<Label<'a>>,
}

/// Longest entry (in bytes) that may still be incomplete at the end of a
/// piece fed to [`Parser::resume`]. Deliberately not in Prometheus, which
/// parses whole bodies only.
pub const MAX_PENDING_ENTRY: usize = 64 << 20;

/// Owned bytes made of carried bytes and a copy of (part of) the input.
struct Joined {
    bytes: Vec<u8>,
    pos: usize,
    /// Offset in the input just after the copied part.
    input_to: usize,
    /// How many trailing bytes of `bytes` were copied from the input; once
    /// only such bytes remain, parsing continues in place.
    copied: usize,
    /// Whether `bytes` ends where the exposition ends.
    at_true_end: bool,
}

/// What one call into the parser produced.
enum Step<'a> {
    Entry(Entry<'a>),
    Continue,
    Done,
    Error(ParseError),
}

impl<'a> Parser<'a> {
    /// A parser over a whole exposition.
    pub fn new(input: &'a [u8], format: Format) -> Parser<'a> {
        Parser::start(input, format, ParserState::new(), true)
    }

    /// A parser over a piece of an exposition that more pieces follow.
    pub fn resume(input: &'a [u8], format: Format, state: ParserState) -> Parser<'a> {
        Parser::start(input, format, state, false)
    }

    /// A parser over the last piece of an exposition.
    pub fn resume_last(input: &'a [u8], format: Format, state: ParserState) -> Parser<'a> {
        Parser::start(input, format, state, true)
    }

    fn start(input: &'a [u8], format: Format, mut state: ParserState, last: bool) -> Parser<'a> {
        // OpenMetrics does not need a final newline (`# EOF` may end the
        // input), so at the true end everything may be parsed in place.
        let region_end = if last && format == Format::OpenMetrics {
            input.len()
        } else {
            input.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
        };
        let carry = std::mem::take(&mut state.carry);
        let mut parser = Parser {
            format,
            input,
            pos: 0,
            region_end,
            last,
            paused: false,
            state,
            joined: None,
            spare: Vec::new(),
        };
        if !carry.is_empty() {
            let upto = parser.first_line_end();
            parser.joined = Some(parser.join(&carry, 0, upto));
        }
        parser
    }

    /// The next entry, `None` at the end of the input (or of this piece), and
    /// `None` for good after an error was returned.
    pub fn next_entry(&mut self) -> Option<Result<Entry<'a>, ParseError>> {
        loop {
            if self.state.error.is_some() || self.paused {
                return None;
            }
            let step = if self.state.ended {
                self.after_end()
            } else if self.joined.is_some() {
                self.step_joined()
            } else {
                self.step_in_place()
            };
            match step {
                Step::Entry(entry) => return Some(Ok(entry)),
                Step::Continue => {}
                Step::Done => {
                    self.paused = true;
                    return None;
                }
                Step::Error(error) => {
                    self.state.error = Some(error.clone());
                    return Some(Err(error));
                }
            }
        }
    }

    /// Hands back the label vector of a consumed sample so that the next
    /// sample reuses its allocation.
    pub fn recycle(&mut self, mut labels: Vec<Label<'a>>) {
        labels.clear();
        if labels.capacity() > self.spare.capacity() {
            self.spare = labels;
        }
    }

    /// The type declared by the most recent `# TYPE` line.
    ///
    /// Like Prometheus, which applies it when re-formatting `le` and
    /// `quantile`, this is not matched against sample names: it holds for
    /// every sample until the next `# TYPE` line, whatever family the sample
    /// belongs to. Compare [`Parser::current_family`] with the sample name
    /// when that matters.
    pub fn current_type(&self) -> MetricType {
        self.state.current_type()
    }

    /// The family named by the most recent `# TYPE` line, if any.
    pub fn current_family(&self) -> Option<&str> {
        self.state.current_family()
    }

    /// The state to pass to the parser of the next piece. Bytes of this
    /// piece not yet parsed are carried along, so stopping early loses
    /// nothing.
    pub fn into_state(mut self) -> ParserState {
        if self.state.error.is_none() && !self.state.ended {
            let mut rest = Vec::new();
            let from = match &self.joined {
                Some(joined) => {
                    rest.extend_from_slice(&joined.bytes[joined.pos..]);
                    joined.input_to
                }
                None => self.pos,
            };
            rest.extend_from_slice(&self.input[from..]);
            self.state.carry = rest;
        }
        self.state
    }

    /// Declares the end of the input and reports whether the exposition as
    /// a whole is valid: the error that stopped parsing (again, if
    /// `next_entry` already returned it) or, in OpenMetrics, the missing
    /// `# EOF`.
    ///
    /// Entries not yet taken are parsed and discarded. Call it after
    /// iterating a parser from [`Parser::new`] or [`Parser::resume_last`];
    /// on a parser from [`Parser::resume`] it treats the end of the piece as
    /// the end of the input, so a final line without newline carried from
    /// that piece would be discarded unread.
    pub fn finish(mut self) -> Result<(), ParseError> {
        while let Some(result) = self.next_entry() {
            result?;
        }
        if let Some(error) = self.state.error.take() {
            return Err(error);
        }
        if self.last {
            return Ok(());
        }
        let format = self.format;
        Parser::resume_last(&[], format, self.into_state()).finish()
    }

    fn step_in_place(&mut self) -> Step<'a> {
        let start = self.pos;
        let mut cursor = Cursor::new(
            self.input,
            start,
            self.region_end,
            self.last && self.region_end == self.input.len(),
            self.state.line,
        );
        let mut labels = std::mem::take(&mut self.spare);
        let result = parse_item(self.format, &mut cursor, self.state.mtype, &mut labels);
        let (pos, line) = (cursor.pos, cursor.line);
        match result {
            Ok(Parsed::End) if self.last && start < self.input.len() => {
                // The text format's last line lacks its newline: parse a copy
                // that has one, as Prometheus appends one.
                self.recycle(labels);
                self.joined = Some(self.join(&[], start, self.region_end));
                Step::Continue
            }
            Ok(Parsed::End) => {
                self.recycle(labels);
                if self.last {
                    self.pos = self.input.len();
                    self.end_of_input()
                } else {
                    Step::Done
                }
            }
            Ok(Parsed::Stop) => {
                self.recycle(labels);
                self.state.line = line;
                self.pos = pos;
                self.state.ended = true;
                Step::Continue
            }
            Ok(parsed) => {
                self.pos = pos;
                self.state.line = line;
                self.deliver(parsed, labels)
            }
            Err(Halt::Incomplete) => {
                self.recycle(labels);
                if self.last {
                    self.joined = Some(self.join(&[], start, self.region_end));
                    Step::Continue
                } else {
                    self.wait_for_more(self.input.len() - start)
                }
            }
            Err(Halt::Invalid(error)) => Step::Error(error),
        }
    }

    fn step_joined(&mut self) -> Step<'a> {
        let Some(mut joined) = self.joined.take() else {
            return Step::Continue;
        };
        let start = joined.pos;
        let mut cursor = Cursor::new(
            &joined.bytes,
            start,
            joined.bytes.len(),
            joined.at_true_end,
            self.state.line,
        );
        let mut labels = Vec::new();
        let result = parse_item(self.format, &mut cursor, self.state.mtype, &mut labels)
            .map(Parsed::into_owned);
        let labels = own_labels(labels);
        let (pos, line) = (cursor.pos, cursor.line);
        match result {
            Ok(Parsed::End) if joined.at_true_end => {
                self.pos = self.input.len();
                self.end_of_input()
            }
            Ok(Parsed::End) => {
                self.pos = joined.input_to;
                Step::Continue
            }
            Ok(Parsed::Stop) => {
                self.state.line = line;
                self.state.ended = true;
                // Kept so that `after_end` sees whatever follows `# EOF`.
                joined.pos = pos;
                self.joined = Some(joined);
                Step::Continue
            }
            Ok(parsed) => {
                joined.pos = pos;
                self.state.line = line;
                let remaining = joined.bytes.len() - joined.pos;
                if !joined.at_true_end && remaining <= joined.copied {
                    self.pos = joined.input_to - remaining;
                } else {
                    self.joined = Some(joined);
                }
                self.deliver(parsed, labels)
            }
            Err(Halt::Incomplete) if joined.input_to < self.region_end => {
                let upto = self.region_end;
                let retry = self.join(&joined.bytes[start..], joined.input_to, upto);
                self.joined = Some(retry);
                Step::Continue
            }
            Err(Halt::Incomplete) => {
                let pending = joined.bytes.len() - start + self.input.len() - joined.input_to;
                self.joined = Some(joined);
                self.wait_for_more(pending)
            }
            Err(Halt::Invalid(error)) => Step::Error(error),
        }
    }

    /// After `# EOF` only the end of the input may follow; after the text
    /// format's NUL line start, everything is ignored.
    fn after_end(&mut self) -> Step<'a> {
        let leftover = match &self.joined {
            Some(joined) => joined.pos < joined.bytes.len() || joined.input_to < self.input.len(),
            None => self.pos < self.input.len(),
        };
        self.joined = None;
        self.pos = self.input.len();
        if self.format == Format::OpenMetrics && leftover {
            return Step::Error(ParseError {
                line: self.state.line,
                message: "expected the end of the input after \"# EOF\", got more data".to_owned(),
            });
        }
        Step::Done
    }

    fn end_of_input(&mut self) -> Step<'a> {
        self.joined = None;
        if self.format == Format::OpenMetrics && !self.state.ended {
            return Step::Error(ParseError {
                line: self.state.line,
                message:
                    "expected \"# EOF\" before the end of the input (data does not end with # EOF)"
                        .to_owned(),
            });
        }
        Step::Done
    }

    fn deliver(&mut self, parsed: Parsed<'a>, labels: Vec<Label<'a>>) -> Step<'a> {
        match parsed {
            Parsed::Sample(head) => Step::Entry(Entry::Sample(Sample {
                name: head.name,
                labels,
                value: head.value,
                timestamp_ms: head.timestamp_ms,
                has_exemplar: head.has_exemplar,
            })),
            Parsed::Meta(entry) => {
                self.recycle(labels);
                if let Entry::Type { metric, kind } = &entry {
                    self.state.mtype = *kind;
                    self.state.family.clear();
                    self.state.family.push_str(metric);
                }
                Step::Entry(entry)
            }
            Parsed::Skip | Parsed::End | Parsed::Stop => {
                self.recycle(labels);
                Step::Continue
            }
        }
    }

    /// Just after the first newline of the parseable region, or its end.
    fn first_line_end(&self) -> usize {
        self.input[..self.region_end]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.region_end, |i| i + 1)
    }

    /// Pauses for the next piece, unless the entry waiting for it is already
    /// too long: each piece re-reads a pending entry from its start, so an
    /// unbounded one (typically an unterminated quoted string) would make
    /// reading pieces quadratic.
    fn wait_for_more(&self, pending: usize) -> Step<'a> {
        if pending <= MAX_PENDING_ENTRY {
            return Step::Done;
        }
        Step::Error(ParseError {
            line: self.state.line,
            message: format!(
                "expected an entry to end within {} MiB, got one still open at the end of a piece \
                 (unterminated quoted string?)",
                MAX_PENDING_ENTRY >> 20
            ),
        })
    }

    /// Owned bytes `prefix` followed by `input[from..upto]`; when that
    /// reaches the end of the last piece, the rest of the input too, plus the
    /// newline Prometheus appends to text-format bodies.
    fn join(&self, prefix: &[u8], from: usize, upto: usize) -> Joined {
        let mut bytes = prefix.to_vec();
        if self.last && upto >= self.region_end {
            bytes.extend_from_slice(&self.input[from..]);
            if self.format == Format::Text && bytes.last().is_some_and(|&b| b != b'\n') {
                bytes.push(b'\n');
            }
            return Joined {
                bytes,
                pos: 0,
                input_to: self.input.len(),
                copied: 0,
                at_true_end: true,
            };
        }
        bytes.extend_from_slice(&self.input[from..upto]);
        Joined {
            bytes,
            pos: 0,
            input_to: upto,
            copied: upto - from,
            at_true_end: false,
        }
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry()
    }
}

fn own_labels(labels: Vec<Label<'_>>) -> Vec<Label<'static>> {
    labels
        .into_iter()
        .map(|(name, value)| (owned(name), owned(value)))
        .collect()
}

// ---------------------------------------------------------------------------
// Items and the byte cursor shared by both formats.
// ---------------------------------------------------------------------------

/// Result of parsing one line (or one multi-line entry).
enum Parsed<'b> {
    Sample(Head<'b>),
    Meta(Entry<'b>),
    /// A blank line or comment.
    Skip,
    /// No bytes left to parse.
    End,
    /// `# EOF`, or the NUL byte that ends a text-format body.
    Stop,
}

impl Parsed<'_> {
    fn into_owned(self) -> Parsed<'static> {
        match self {
            Parsed::Sample(head) => Parsed::Sample(Head {
                name: owned(head.name),
                value: head.value,
                timestamp_ms: head.timestamp_ms,
                has_exemplar: head.has_exemplar,
            }),
            Parsed::Meta(entry) => Parsed::Meta(entry.into_owned()),
            Parsed::Skip => Parsed::Skip,
            Parsed::End => Parsed::End,
            Parsed::Stop => Parsed::Stop,
        }
    }
}

/// A sample without its labels, which go into the caller's vector.
struct Head<'b> {
    name: Cow<'b, str>,
    value: f64,
    timestamp_ms: Option<i64>,
    has_exemplar: bool,
}

/// Why parsing an item stopped short.
enum Halt {
    /// The item runs past the available bytes; more input may complete it.
    Incomplete,
    Invalid(ParseError),
}

fn parse_item<'b>(
    format: Format,
    cursor: &mut Cursor<'b>,
    mtype: MetricType,
    labels: &mut Vec<Label<'b>>,
) -> Result<Parsed<'b>, Halt> {
    match format {
        Format::Text => text_item(cursor, mtype, labels),
        Format::OpenMetrics => om_item(cursor, mtype, labels),
    }
}

/// Which metadata line is being parsed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Meta {
    Help,
    Type,
    Unit,
}

impl Meta {
    fn expected_name(self) -> &'static str {
        match self {
            Meta::Help => "expected metric name after HELP",
            Meta::Type => "expected metric name after TYPE",
            Meta::Unit => "expected metric name after UNIT",
        }
    }

    fn expected_text(self) -> &'static str {
        match self {
            Meta::Help => "expected a space and text up to a newline in HELP",
            Meta::Type => "expected a space and text up to a newline in TYPE",
            Meta::Unit => "expected a space and text up to a newline in UNIT",
        }
    }
}

/// What a quoted string may contain besides escape pairs. Prometheus's
/// lexers differ per position; NUL is allowed where they skip it.
#[derive(Clone, Copy)]
struct QuoteRules {
    newline: bool,
    nul: bool,
}

/// Quoted metric names (anywhere) and quoted label names in a label set.
const QUOTED_NAME: QuoteRules = QuoteRules {
    newline: true,
    nul: false,
};
/// Label values in the text format.
const TEXT_LABEL_VALUE: QuoteRules = QuoteRules {
    newline: true,
    nul: true,
};
/// Label values in OpenMetrics.
const OM_LABEL_VALUE: QuoteRules = QuoteRules {
    newline: false,
    nul: true,
};
/// Label names and values inside an OpenMetrics exemplar.
const OM_EXEMPLAR_STRING: QuoteRules = QuoteRules {
    newline: false,
    nul: false,
};

/// The body of a quoted string, quotes excluded.
#[derive(Clone, Copy)]
struct Quoted<'b> {
    raw: &'b [u8],
    escaped: bool,
}

/// Longest excerpt of the input quoted in an error message.
const EXCERPT: usize = 40;

struct Cursor<'b> {
    buf: &'b [u8],
    pos: usize,
    /// End of the bytes that may be looked at.
    end: usize,
    /// Whether `end` is the end of the exposition rather than of the bytes
    /// available so far.
    at_true_end: bool,
    line: usize,
    line_start: usize,
}

impl<'b> Cursor<'b> {
    fn new(buf: &'b [u8], pos: usize, end: usize, at_true_end: bool, line: usize) -> Cursor<'b> {
        Cursor {
            buf,
            pos,
            end,
            at_true_end,
            line,
            line_start: pos,
        }
    }

    /// The byte at `i`: `None` at the end of the exposition, `Incomplete`
    /// at the end of the bytes available so far.
    fn byte_at(&self, i: usize) -> Result<Option<u8>, Halt> {
        if i < self.end {
            Ok(Some(self.buf[i]))
        } else if self.at_true_end {
            Ok(None)
        } else {
            Err(Halt::Incomplete)
        }
    }

    fn peek(&self) -> Result<Option<u8>, Halt> {
        self.byte_at(self.pos)
    }

    fn skip_blanks(&mut self) {
        while self.pos < self.end && matches!(self.buf[self.pos], b' ' | b'\t') {
            self.pos += 1;
        }
    }

    /// Consumes the run of bytes accepted by `accept`.
    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> Result<&'b [u8], Halt> {
        let start = self.pos;
        while self.pos < self.end && accept(self.buf[self.pos]) {
            self.pos += 1;
        }
        if self.pos == self.end && !self.at_true_end {
            // The run might go on in bytes not yet seen.
            return Err(Halt::Incomplete);
        }
        Ok(&self.buf[start..self.pos])
    }

    /// Consumes `literal` if the input continues with it.
    fn eat(&mut self, literal: &[u8]) -> Result<bool, Halt> {
        for (offset, &want) in literal.iter().enumerate() {
            if self.byte_at(self.pos + offset)? != Some(want) {
                return Ok(false);
            }
        }
        self.pos += literal.len();
        Ok(true)
    }

    /// Consumes the newline at the cursor.
    fn line_break(&mut self) {
        self.pos += 1;
        self.line += 1;
        self.line_start = self.pos;
    }

    fn find_newline(&self, from: usize) -> Result<Option<usize>, Halt> {
        let from = from.min(self.end);
        match self.buf[from..self.end].iter().position(|&b| b == b'\n') {
            Some(i) => Ok(Some(from + i)),
            None if self.at_true_end => Ok(None),
            None => Err(Halt::Incomplete),
        }
    }

    /// Scans the quoted string opening at the cursor. `None` (cursor
    /// unmoved) when Prometheus's lexer would not recognise it.
    fn quoted(&mut self, rules: QuoteRules) -> Result<Option<Quoted<'b>>, Halt> {
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let mut newlines = 0;
        loop {
            while i < self.end && !matches!(self.buf[i], b'"' | b'\\' | b'\n' | 0) {
                i += 1;
            }
            match self.byte_at(i)? {
                None => return Ok(None),
                Some(b'"') => break,
                Some(b'\\') => match self.byte_at(i + 1)? {
                    None | Some(b'\n') => return Ok(None),
                    Some(0) if !rules.nul => return Ok(None),
                    Some(_) => {
                        escaped = true;
                        i += 2;
                    }
                },
                Some(b'\n') if rules.newline => {
                    newlines += 1;
                    i += 1;
                }
                Some(0) if rules.nul => i += 1,
                Some(_) => return Ok(None),
            }
        }
        self.pos = i + 1;
        self.line += newlines;
        Ok(Some(Quoted {
            raw: &self.buf[start..i],
            escaped,
        }))
    }

    /// Error "`expected`, got (excerpt at `at`) after (line so far)".
    ///
    /// When the excerpt would be cut short by the end of the bytes available
    /// so far, this waits for more: the same error then comes with the same
    /// message however the input was split.
    fn fail(&self, at: usize, expected: &str) -> Halt {
        let Some(found) = self.found(at) else {
            return Halt::Incomplete;
        };
        let mut message = format!("{expected}, got {found}");
        let context = self.context(at);
        if !context.is_empty() {
            message.push_str(" after ");
            message.push_str(&context);
        }
        self.fail_with(message)
    }

    fn fail_with(&self, message: String) -> Halt {
        Halt::Invalid(ParseError {
            line: self.line,
            message,
        })
    }

    fn found(&self, at: usize) -> Option<String> {
        let rest = self.buf.get(at..self.end).unwrap_or_default();
        let line_len = match rest.iter().take(EXCERPT + 1).position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if rest.len() > EXCERPT || self.at_true_end => rest.len(),
            None => return None,
        };
        if line_len == 0 {
            return Some("end of input".to_owned());
        }
        Some(excerpt(&rest[..line_len]))
    }

    /// The current line up to `at`, quoted, or empty.
    fn context(&self, at: usize) -> String {
        let at = at.min(self.end);
        if self.line_start >= at {
            return String::new();
        }
        let from = self.line_start.max(at.saturating_sub(EXCERPT));
        let mut text = excerpt(&self.buf[from..at]);
        if from > self.line_start {
            text.insert_str(0, "...");
        }
        text
    }
}

/// `bytes` (at most [`EXCERPT`] of them) as a quoted, escaped string.
fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.len().min(EXCERPT);
    let mut text = format!("{:?}", String::from_utf8_lossy(&bytes[..cut]));
    if cut < bytes.len() {
        text.push_str("...");
    }
    text
}

fn is_metric_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_metric_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Name of the metric in a metadata line: bare, or quoted (Prometheus 3).
/// Also returns the raw bytes, against which OpenMetrics checks the unit.
fn meta_name<'b>(c: &mut Cursor<'b>, meta: Meta) -> Result<(&'b [u8], Cow<'b, str>), Halt> {
    let tok = c.pos;
    match c.peek()? {
        Some(b'"') => match c.quoted(QUOTED_NAME)? {
            Some(quoted) => Ok((quoted.raw, quoted_text(c, quoted, "metric name")?)),
            None => Err(c.fail(tok, meta.expected_name())),
        },
        Some(b) if is_metric_start(b) => {
            let raw = c.take_while(is_metric_char)?;
            Ok((raw, String::from_utf8_lossy(raw)))
        }
        _ => Err(c.fail(tok, meta.expected_name())),
    }
}

/// A quoted name or value: UTF-8 checked, then unescaped.
///
/// Prometheus checks label values here; quoted names it checks only later,
/// in the scrape loop, and this module needs `str` anyway.
fn quoted_text<'b>(c: &Cursor<'b>, quoted: Quoted<'b>, what: &str) -> Result<Cow<'b, str>, Halt> {
    match std::str::from_utf8(quoted.raw) {
        Ok(text) if quoted.escaped => Ok(unescape(text, true)),
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(_) => Err(c.fail_with(format!("invalid UTF-8 {what}: {}", excerpt(quoted.raw)))),
    }
}

/// Help text: UTF-8 checked, then unescaped. The text format only knows the
/// `\\` and `\n` escapes there; OpenMetrics also `\"`.
fn help_text<'b>(c: &Cursor<'b>, raw: &'b [u8], quote_escape: bool) -> Result<Cow<'b, str>, Halt> {
    match std::str::from_utf8(raw) {
        Ok(text) if text.contains('\\') => Ok(unescape(text, quote_escape)),
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(_) => Err(c.fail_with(format!("expected help text in UTF-8, got {}", excerpt(raw)))),
    }
}

/// Replaces `\\`, `\n` and (with `quote_escape`) `\"`; any other backslash
/// is kept as is, as Prometheus does.
fn unescape(text: &str, quote_escape: bool) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let replacement = match after.as_bytes().first() {
            Some(b'\\') => Some('\\'),
            Some(b'n') => Some('\n'),
            Some(b'"') if quote_escape => Some('"'),
            _ => None,
        };
        match replacement {
            Some(ch) => {
                out.push(ch);
                rest = &after[1..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Adds a label, re-formatting `le`/`quantile` as Prometheus 3 does.
fn push_label<'b>(
    labels: &mut Vec<Label<'b>>,
    mtype: MetricType,
    name: Cow<'b, str>,
    value: Cow<'b, str>,
) {
    let value = normalize_float_label(mtype, &name, value);
    labels.push((name, value));
}

/// Prometheus 3 rewrites the `le` label while the current type is histogram
/// and the `quantile` label while it is summary (not gauge histogram), if
/// the value parses as a Go float, so that `1` and `1.0` are one series.
fn normalize_float_label<'b>(mtype: MetricType, name: &str, value: Cow<'b, str>) -> Cow<'b, str> {
    let applies = match mtype {
        MetricType::Histogram => name == "le",
        MetricType::Summary => name == "quantile",
        _ => false,
    };
    if !applies {
        return value;
    }
    let Ok(number) = go_float(value.as_bytes()) else {
        return value;
    };
    let mut canonical = SmallBuf::default();
    if format_openmetrics_float(number, &mut canonical).is_err()
        || canonical.as_bytes() == value.as_bytes()
    {
        return value;
    }
    Cow::Owned(String::from_utf8_lossy(canonical.as_bytes()).into_owned())
}

/// A sample value as Prometheus reads it, NaN made canonical.
fn sample_value(c: &Cursor<'_>, at: usize, raw: &[u8]) -> Result<f64, Halt> {
    let value = number(c, at, raw)?;
    Ok(if value.is_nan() {
        f64::from_bits(NORMAL_NAN_BITS)
    } else {
        value
    })
}

fn number(c: &Cursor<'_>, at: usize, raw: &[u8]) -> Result<f64, Halt> {
    prometheus_float(raw).map_err(|error| {
        let mut message = format!(
            "expected a number, got {} ({})",
            excerpt(raw),
            error.describe()
        );
        let context = c.context(at);
        if !context.is_empty() {
            message.push_str(" after ");
            message.push_str(&context);
        }
        c.fail_with(message)
    })
}

// ---------------------------------------------------------------------------
// Text format 0.0.4, following promlex.l: blanks ([ \t]) may separate any
// two tokens, comments are free-form, label sets are lenient.
// ---------------------------------------------------------------------------

fn text_item<'b>(
    c: &mut Cursor<'b>,
    mtype: MetricType,
    labels: &mut Vec<Label<'b>>,
) -> Result<Parsed<'b>, Halt> {
    if c.pos >= c.end {
        return Ok(Parsed::End);
    }
    c.line_start = c.pos;
    c.skip_blanks();
    match c.peek()? {
        None => Ok(Parsed::End),
        // Prometheus's text lexer takes a NUL where a line (or token) starts
        // for the end of the input.
        Some(0) => Ok(Parsed::Stop),
        Some(b'\n') => {
            c.line_break();
            Ok(Parsed::Skip)
        }
        Some(b'#') => text_hash(c),
        Some(b'{') => text_series(c, None, mtype, labels),
        Some(b) if is_metric_start(b) => {
            let name = c.take_while(is_metric_char)?;
            text_series(c, Some(name), mtype, labels)
        }
        Some(_) => Err(c.fail(c.pos, "expected a metric name, a comment or a blank line")),
    }
}

fn text_hash<'b>(c: &mut Cursor<'b>) -> Result<Parsed<'b>, Halt> {
    c.pos += 1;
    if !matches!(c.peek()?, Some(b' ' | b'\t')) {
        return text_comment(c, true);
    }
    c.skip_blanks();
    if c.peek()? == Some(0) {
        return Ok(Parsed::Stop);
    }
    if text_keyword(c, b"HELP")? {
        return text_meta(c, Meta::Help);
    }
    if text_keyword(c, b"TYPE")? {
        return text_meta(c, Meta::Type);
    }
    text_comment(c, false)
}

/// Consumes `keyword` and the blanks after it, if both are there.
fn text_keyword(c: &mut Cursor<'_>, keyword: &[u8]) -> Result<bool, Halt> {
    let start = c.pos;
    if !c.eat(keyword)? {
        return Ok(false);
    }
    if !matches!(c.peek()?, Some(b' ' | b'\t')) {
        c.pos = start;
        return Ok(false);
    }
    c.skip_blanks();
    Ok(true)
}

/// Skips a comment line. In a comment not opened by `# ` Prometheus's lexer
/// also takes a NUL for the end of the input.
fn text_comment<'b>(c: &mut Cursor<'b>, nul_ends_input: bool) -> Result<Parsed<'b>, Halt> {
    let rest = &c.buf[c.pos..c.end];
    let stop = rest
        .iter()
        .position(|&b| b == b'\n' || (nul_ends_input && b == 0));
    match stop {
        Some(i) if rest[i] == 0 => Ok(Parsed::Stop),
        Some(i) => {
            c.pos += i;
            c.line_break();
            Ok(Parsed::Skip)
        }
        None if c.at_true_end => {
            c.pos = c.end;
            Ok(Parsed::Skip)
        }
        None => Err(Halt::Incomplete),
    }
}

fn text_meta<'b>(c: &mut Cursor<'b>, meta: Meta) -> Result<Parsed<'b>, Halt> {
    let (_, metric) = meta_name(c, meta)?;
    let start = c.pos;
    let newline = c.find_newline(start)?.unwrap_or(c.end);
    let rest = &c.buf[start..newline];
    // Prometheus drops the first byte after the name (normally the
    // separating blank) and keeps the rest verbatim, unless only blanks are
    // left, which make the text empty.
    let text = if rest.iter().all(|&b| b == b' ' || b == b'\t') {
        &rest[..0]
    } else {
        &rest[1..]
    };
    let entry = if meta == Meta::Type {
        let Some(kind) = MetricType::from_text_keyword(text) else {
            return Err(c.fail_with(format!(
                "expected counter, gauge, histogram, summary or untyped, got invalid metric type {}",
                excerpt(text)
            )));
        };
        Entry::Type { metric, kind }
    } else {
        Entry::Help {
            metric,
            text: help_text(c, text, false)?,
        }
    };
    c.pos = newline;
    if newline < c.end {
        c.line_break();
    }
    Ok(Parsed::Meta(entry))
}

fn text_series<'b>(
    c: &mut Cursor<'b>,
    bare_name: Option<&'b [u8]>,
    mtype: MetricType,
    labels: &mut Vec<Label<'b>>,
) -> Result<Parsed<'b>, Halt> {
    let mut name = bare_name.map(String::from_utf8_lossy);
    c.skip_blanks();
    if c.peek()? == Some(b'{') {
        c.pos += 1;
        text_labels(c, &mut name, mtype, labels)?;
        c.skip_blanks();
    }
    let Some(name) = name else {
        return Err(c.fail(c.pos, "expected a metric name in the label set"));
    };
    let tok = c.pos;
    let raw = c.take_while(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'{' | 0))?;
    if raw.is_empty() {
        return Err(c.fail(tok, "expected value after metric"));
    }
    let value = sample_value(c, tok, raw)?;
    c.skip_blanks();
    let timestamp_ms = match c.peek()? {
        Some(b'\n') => None,
        Some(b'0'..=b'9') => {
            let tok = c.pos;
            let digits = c.take_while(|b| b.is_ascii_digit())?;
            let Some(timestamp) = decimal_i64(digits) else {
                return Err(c.fail(
                    tok,
                    "expected a timestamp in int64 milliseconds (value out of range)",
                ));
            };
            c.skip_blanks();
            if c.peek()? != Some(b'\n') {
                return Err(c.fail(c.pos, "expected end of line after timestamp"));
            }
            Some(timestamp)
        }
        _ => return Err(c.fail(c.pos, "expected timestamp or end of line")),
    };
    c.line_break();
    Ok(Parsed::Sample(Head {
        name,
        value,
        timestamp_ms,
        has_exemplar: false,
    }))
}

/// Label set after `{`. Blanks may surround every token, a trailing comma is
/// allowed and, as in Prometheus, so is a missing comma between two labels.
fn text_labels<'b>(
    c: &mut Cursor<'b>,
    name: &mut Option<Cow<'b, str>>,
    mtype: MetricType,
    labels: &mut Vec<Label<'b>>,
) -> Result<(), Halt> {
    loop {
        c.skip_blanks();
        let (label, quoted) = match label_name_token(c, QUOTED_NAME)? {
            LabelToken::Close => return Ok(()),
            LabelToken::Name(label, quoted) => (label, quoted),
        };
        c.skip_blanks();
        let next = c.peek()?;
        if quoted && matches!(next, Some(b',' | b'}')) {
            set_metric_name(c, name, label)?;
            c.pos += 1;
            if next == Some(b'}') {
                return Ok(());
            }
            continue;
        }
        if next != Some(b'=') {
            return Err(c.fail(c.pos, "expected equal"));
        }
        c.pos += 1;
        c.skip_blanks();
        let value = label_value(c, TEXT_LABEL_VALUE)?;
        push_label(labels, mtype, label, value);
        c.skip_blanks();
        if c.peek()? == Some(b',') {
            c.pos += 1;
        }
    }
}

enum LabelToken<'b> {
    Close,
    /// The name, and whether it was quoted (so could be the metric name).
    Name(Cow<'b, str>, bool),
}

fn label_name_token<'b>(c: &mut Cursor<'b>, rules: QuoteRules) -> Result<LabelToken<'b>, Halt> {
    let tok = c.pos;
    match c.peek()? {
        Some(b'}') => {
            c.pos += 1;
            Ok(LabelToken::Close)
        }
        Some(b'"') => match c.quoted(rules)? {
            Some(quoted) => Ok(LabelToken::Name(
                quoted_text(c, quoted, "label name")?,
                true,
            )),
            None => Err(c.fail(tok, "expected label name")),
        },
        Some(b) if is_label_start(b) => {
            let raw = c.take_while(is_label_char)?;
            Ok(LabelToken::Name(String::from_utf8_lossy(raw), false))
        }
        _ => Err(c.fail(tok, "expected label name")),
    }
}

/// A quoted string standing alone in a label set names the metric
/// (Prometheus 3 UTF-8 names).
fn set_metric_name<'b>(
    c: &Cursor<'b>,
    name: &mut Option<Cow<'b, str>>,
    quoted: Cow<'b, str>,
) -> Result<(), Halt> {
    if name.is_some() {
        return Err(c.fail(c.pos, "expected a label, as the metric name is already set"));
    }
    *name = Some(quoted);
    Ok(())
}

fn label_value<'b>(c: &mut Cursor<'b>, rules: QuoteRules) -> Result<Cow<'b, str>, Halt> {
    let tok = c.pos;
    let quoted = match c.peek()? {
        Some(b'"') => c.quoted(rules)?,
        _ => None,
    };
    match quoted {
        Some(quoted) => quoted_text(c, quoted, "label value"),
        None => Err(c.fail(tok, "expected label value")),
    }
}

fn decimal_i64(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

// ---------------------------------------------------------------------------
// OpenMetrics 1.0.0, following openmetricslex.l: single spaces only, no
// blank lines, no comments other than HELP, TYPE, UNIT and EOF.
// ---------------------------------------------------------------------------

fn om_item<'b>(
    c: &mut Cursor<'b>,
    mtype: MetricType,
    labels: &mut Vec<Label<'b>>,
) -> Result<Parsed<'b>, Halt> {
    if c.pos >= c.end {
        return Ok(Parsed::End);
    }
    c.line_start = c.pos;
    match c.buf[c.pos] {
        b'#' => om_hash(c),
        b'{' => om_series(c, None, mtype, labels),
        b if is_metric_start(b) => {
            let name = c.take_while(is_metric_char)?;
            om_series(c, Some(name), mtype, labels)
        }
        _ => Err(c.fail(c.pos, "expected a metric name or \"# \"")),
    }
}

fn om_hash<'b>(c: &mut Cursor<'b>) -> Result<Parsed<'b>, Halt> {
    let tok = c.pos;
    if !c.eat(b"# ")? {
        return Err(c.fail(tok, "expected a metric name or \"# \""));
    }
    for (keyword, meta) in [
        (&b"HELP "[..], Meta::Help),
        (&b"TYPE "[..], Meta::Type),
        (&b"UNIT "[..], Meta::Unit),
    ] {
        if c.eat(keyword)? {
            return om_meta(c, meta);
        }
    }
    if c.eat(b"EOF")? {
        if c.peek()? == Some(b'\n') {
            c.line_break();
        }
        return Ok(Parsed::Stop);
    }
    Err(c.fail(
        tok,
        "expected \"# HELP \", \"# TYPE \", \"# UNIT \" or \"# EOF\"",
    ))
}

fn om_meta<'b>(c: &mut Cursor<'b>, meta: Meta) -> Result<Parsed<'b>, Halt> {
    let (raw_name, metric) = meta_name(c, meta)?;
    let tok = c.pos;
    let newline = if c.peek()? == Some(b' ') {
        c.find_newline(tok + 1)?
    } else {
        None
    };
    let Some(newline) = newline else {
        return Err(c.fail(tok, meta.expected_text()));
    };
    let text = &c.buf[tok + 1..newline];
    let entry = match meta {
        Meta::Type => {
            let Some(kind) = MetricType::from_openmetrics_keyword(text) else {
                return Err(c.fail_with(format!(
                    "expected one of the eight OpenMetrics types, got invalid metric type {}",
                    excerpt(text)
                )));
            };
            Entry::Type { metric, kind }
        }
        Meta::Help => Entry::Help {
            metric,
            text: help_text(c, text, true)?,
        },
        Meta::Unit => Entry::Unit {
            unit: om_unit(c, raw_name, text)?,
            metric,
        },
    };
    c.pos = newline;
    c.line_break();
    Ok(Parsed::Meta(entry))
}

/// A non-empty unit must be a `_`-separated suffix of the (raw) name.
fn om_unit<'b>(c: &Cursor<'b>, name: &[u8], unit: &'b [u8]) -> Result<Cow<'b, str>, Halt> {
    let is_suffix = name.len() > unit.len()
        && name.ends_with(unit)
        && name[name.len() - unit.len() - 1] == b'_';
    if !unit.is_empty() && !is_suffix {
        return Err(c.fail_with(format!(
            "expected the unit to be a suffix of the metric name, got unit {} for metric {}",
            excerpt(unit),
            excerpt(name)
        )));
    }
    // A suffix of a valid name after an ASCII `_` is valid UTF-8.
    Ok(String::from_utf8_lossy(unit))
}

fn om_series<'b>(
    c: &mut Cursor<'b>,
    bare_name: Option<&'b [u8]>,
    mtype: MetricType,
    labels: &mut Vec<Label<'b>>,
) -> Result<Parsed<'b>, Halt> {
    let mut name = bare_name.map(String::from_utf8_lossy);
    if c.peek()? == Some(b'{') {
        c.pos += 1;
        om_labels(c, Some((&mut name, labels)), mtype)?;
    }
    let Some(name) = name else {
        return Err(c.fail(c.pos, "expected a metric name in the label set"));
    };
    let tok = c.pos + 1;
    let raw = om_token(c, "expected a space and a value after the metric")?;
    let mut head = Head {
        name,
        value: sample_value(c, tok, raw)?,
        timestamp_ms: None,
        has_exemplar: false,
    };
    match c.peek()? {
        Some(b'\n') => {}
        Some(b' ') if om_exemplar_opens(c)? => {
            head.has_exemplar = true;
            return om_exemplar(c).map(|()| Parsed::Sample(head));
        }
        Some(b' ') => {
            let tok = c.pos + 1;
            let raw = om_token(c, "expected timestamp, exemplar or end of line")?;
            let seconds = number(c, tok, raw)?;
            if !seconds.is_finite() {
                return Err(c.fail(tok, "expected a finite timestamp"));
            }
            head.timestamp_ms = Some(seconds_to_ms(seconds));
            match c.peek()? {
                Some(b'\n') => {}
                Some(b' ') if om_exemplar_opens(c)? => {
                    head.has_exemplar = true;
                    return om_exemplar(c).map(|()| Parsed::Sample(head));
                }
                _ => return Err(c.fail(c.pos, "expected exemplar or end of line after timestamp")),
            }
        }
        _ => return Err(c.fail(c.pos, "expected timestamp, exemplar or end of line")),
    }
    c.line_break();
    Ok(Parsed::Sample(head))
}

/// OpenMetrics timestamps are seconds; Prometheus scales them to
/// milliseconds in float and truncates toward zero.
fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0) as i64
}

/// A space followed by a non-empty run of bytes other than space, newline
/// and NUL: how values and timestamps are delimited.
fn om_token<'b>(c: &mut Cursor<'b>, expected: &str) -> Result<&'b [u8], Halt> {
    let tok = c.pos;
    if c.peek()? != Some(b' ') {
        return Err(c.fail(tok, expected));
    }
    c.pos += 1;
    let raw = c.take_while(|b| !matches!(b, b' ' | b'\n' | 0))?;
    if raw.is_empty() {
        c.pos = tok;
        return Err(c.fail(tok, expected));
    }
    Ok(raw)
}

/// Whether the space at the cursor starts ` # {`, consuming it if so.
fn om_exemplar_opens(c: &mut Cursor<'_>) -> Result<bool, Halt> {
    if c.byte_at(c.pos + 1)? != Some(b'#') || c.byte_at(c.pos + 2)? != Some(b' ') {
        return Ok(false);
    }
    if c.byte_at(c.pos + 3)? != Some(b'{') {
        return Err(c.fail(c.pos + 3, "expected \"{\" opening the exemplar labels"));
    }
    c.pos += 4;
    Ok(true)
}

/// Validates the rest of an exemplar, through the newline.
fn om_exemplar(c: &mut Cursor<'_>) -> Result<(), Halt> {
    om_labels(c, None, MetricType::Unknown)?;
    let tok = c.pos + 1;
    let raw = om_token(c, "expected a space and a value after the exemplar labels")?;
    number(c, tok, raw)?;
    match c.peek()? {
        Some(b'\n') => {}
        Some(b' ') => {
            let tok = c.pos + 1;
            let raw = om_token(c, "expected exemplar timestamp or end of line")?;
            if !number(c, tok, raw)?.is_finite() {
                return Err(c.fail(tok, "expected a finite exemplar timestamp"));
            }
            if c.peek()? != Some(b'\n') {
                return Err(c.fail(c.pos, "expected end of line after exemplar timestamp"));
            }
        }
        _ => return Err(c.fail(c.pos, "expected exemplar timestamp or end of line")),
    }
    c.line_break();
    Ok(())
}

/// Destination of a sample's label set; exemplar labels go nowhere.
type LabelSink<'s, 'b> = Option<(&'s mut Option<Cow<'b, str>>, &'s mut Vec<Label<'b>>)>;

/// Label set after `{`: no blanks, commas between labels, a trailing comma
/// allowed. In an exemplar a lone quoted string (a metric name) is not.
fn om_labels<'b>(
    c: &mut Cursor<'b>,
    mut sink: LabelSink<'_, 'b>,
    mtype: MetricType,
) -> Result<(), Halt> {
    let (name_rules, value_rules) = if sink.is_some() {
        (QUOTED_NAME, OM_LABEL_VALUE)
    } else {
        (OM_EXEMPLAR_STRING, OM_EXEMPLAR_STRING)
    };
    loop {
        let (label, quoted) = match label_name_token(c, name_rules)? {
            LabelToken::Close => return Ok(()),
            LabelToken::Name(label, quoted) => (label, quoted),
        };
        let next = c.peek()?;
        if quoted && matches!(next, Some(b',' | b'}')) {
            let Some((name, _)) = sink.as_mut() else {
                return Err(c.fail(c.pos, "expected label name"));
            };
            set_metric_name(c, name, label)?;
            c.pos += 1;
            if next == Some(b'}') {
                return Ok(());
            }
            continue;
        }
        if next != Some(b'=') {
            return Err(c.fail(c.pos, "expected equal"));
        }
        c.pos += 1;
        let value = label_value(c, value_rules)?;
        if let Some((_, labels)) = sink.as_mut() {
            push_label(labels, mtype, label, value);
        }
        match c.peek()? {
            Some(b',') => c.pos += 1,
            Some(b'}') => {}
            _ => return Err(c.fail(c.pos, "expected comma or brace close")),
        }
    }
}

// ---------------------------------------------------------------------------
// Floats, as Go's strconv reads and writes them.
// ---------------------------------------------------------------------------

/// Why a float was rejected, in strconv's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatError {
    Syntax,
    Range,
    /// Prometheus refuses `p`, `P` and `_` in sample values and timestamps,
    /// keeping to the float syntax Go had before 1.13.
    Unsupported,
}

impl FloatError {
    fn describe(self) -> &'static str {
        match self {
            FloatError::Syntax => "invalid syntax",
            FloatError::Range => "value out of range",
            FloatError::Unsupported => "unsupported character in float",
        }
    }
}

/// A sample value, timestamp or exemplar number as Prometheus parses it.
fn prometheus_float(raw: &[u8]) -> Result<f64, FloatError> {
    if raw.iter().any(|&b| matches!(b, b'p' | b'P' | b'_')) {
        return Err(FloatError::Unsupported);
    }
    go_float(raw)
}

/// Go's `strconv.ParseFloat(s, 64)`: decimal and hexadecimal (`0x1.8p3`)
/// syntax, `_` digit separators, case-insensitive `inf`, `infinity` and
/// unsigned `nan`, and a range error instead of infinity on overflow.
fn go_float(raw: &[u8]) -> Result<f64, FloatError> {
    if let Some(special) = go_special_float(raw) {
        return Ok(special);
    }
    if raw.iter().any(|&b| matches!(b, b'x' | b'X' | b'_')) {
        return go_float_by_hand(raw);
    }
    let unsigned = raw
        .strip_prefix(b"+")
        .or_else(|| raw.strip_prefix(b"-"))
        .unwrap_or(raw);
    // Rust would also read a signed "nan", which Go refuses; every other word
    // is refused by both, so only digits or a point may start the number.
    if !matches!(unsigned.first(), Some(b'0'..=b'9' | b'.')) {
        return Err(FloatError::Syntax);
    }
    let text = std::str::from_utf8(raw).map_err(|_| FloatError::Syntax)?;
    finite(text.parse::<f64>().map_err(|_| FloatError::Syntax)?)
}

fn finite(value: f64) -> Result<f64, FloatError> {
    if value.is_infinite() {
        Err(FloatError::Range)
    } else {
        Ok(value)
    }
}

fn go_special_float(raw: &[u8]) -> Option<f64> {
    let (sign, rest) = match raw.first() {
        Some(b'+') => (Some(1.0), &raw[1..]),
        Some(b'-') => (Some(-1.0), &raw[1..]),
        _ => (None, raw),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(sign.unwrap_or(1.0) * f64::INFINITY);
    }
    if sign.is_none() && rest.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    None
}

/// The rarely used syntax (hex floats, digit separators) that Rust's
/// parser does not take, validated the way Go's `readFloat` does.
fn go_float_by_hand(raw: &[u8]) -> Result<f64, FloatError> {
    let (negative, mut i) = match raw.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let hex = raw.len() > i + 2 && raw[i] == b'0' && raw[i + 1].eq_ignore_ascii_case(&b'x');
    if hex {
        i += 2;
    }
    let (base, max_digits) = if hex { (16, 16) } else { (10, 19) };
    let mut mantissa = 0u64;
    // Significant digits seen, digits kept in `mantissa`, and the position of
    // the point counted in digits from the first significant one.
    let (mut seen, mut kept, mut point) = (0i64, 0i64, 0i64);
    let (mut saw_point, mut saw_digit, mut truncated) = (false, false, false);
    while let Some(&b) = raw.get(i) {
        if b == b'.' {
            if saw_point {
                break;
            }
            saw_point = true;
            point = seen;
        } else if b != b'_' {
            let Some(digit) = digit_value(b, hex) else {
                break;
            };
            saw_digit = true;
            if digit == 0 && seen == 0 {
                point -= 1;
            } else {
                seen += 1;
                if kept < max_digits {
                    mantissa = mantissa * base + digit;
                    kept += 1;
                } else if digit != 0 {
                    truncated = true;
                }
            }
        }
        i += 1;
    }
    if !saw_digit {
        return Err(FloatError::Syntax);
    }
    if !saw_point {
        point = seen;
    }
    if hex {
        point *= 4;
        kept *= 4;
    }
    let exponent_char = if hex { b'p' } else { b'e' };
    if raw
        .get(i)
        .is_some_and(|b| b.to_ascii_lowercase() == exponent_char)
    {
        let (shift, next) = read_exponent(raw, i + 1)?;
        point += shift;
        i = next;
    } else if hex {
        return Err(FloatError::Syntax);
    }
    if i != raw.len() || (raw.contains(&b'_') && !underscores_ok(raw)) {
        return Err(FloatError::Syntax);
    }
    if hex {
        let exponent = if mantissa == 0 { 0 } else { point - kept };
        return hex_float(mantissa, exponent, negative, truncated);
    }
    let digits: String = raw
        .iter()
        .filter(|&&b| b != b'_')
        .map(|&b| char::from(b))
        .collect();
    finite(digits.parse::<f64>().map_err(|_| FloatError::Syntax)?)
}

fn digit_value(b: u8, hex: bool) -> Option<u64> {
    let radix = if hex { 16 } else { 10 };
    char::from(b).to_digit(radix).map(u64::from)
}

/// Signed exponent digits (with `_`) from `i`; huge exponents saturate,
/// which is enough to overflow or underflow. Returns the exponent and the
/// index after it.
fn read_exponent(raw: &[u8], mut i: usize) -> Result<(i64, usize), FloatError> {
    let mut sign = 1;
    match raw.get(i) {
        Some(b'+') => i += 1,
        Some(b'-') => {
            sign = -1;
            i += 1;
        }
        _ => {}
    }
    if !raw.get(i).is_some_and(u8::is_ascii_digit) {
        return Err(FloatError::Syntax);
    }
    let mut exponent = 0i64;
    while let Some(&b) = raw.get(i) {
        match b {
            b'0'..=b'9' if exponent < 10_000 => exponent = exponent * 10 + i64::from(b - b'0'),
            b'0'..=b'9' | b'_' => {}
            _ => break,
        }
        i += 1;
    }
    Ok((sign * exponent, i))
}

/// Go's rule for `_`: only between digits, or between a base prefix and a
/// digit.
fn underscores_ok(raw: &[u8]) -> bool {
    #[derive(PartialEq, Eq)]
    enum Prev {
        Start,
        Digit,
        Underscore,
        Other,
    }
    let unsigned = raw
        .strip_prefix(b"+")
        .or_else(|| raw.strip_prefix(b"-"))
        .unwrap_or(raw);
    let (mut prev, hex, body) = match unsigned {
        [b'0', prefix, body @ ..] if matches!(prefix.to_ascii_lowercase(), b'b' | b'o' | b'x') => {
            (Prev::Digit, prefix.eq_ignore_ascii_case(&b'x'), body)
        }
        _ => (Prev::Start, false, unsigned),
    };
    for &b in body {
        if b.is_ascii_digit() || (hex && b.is_ascii_hexdigit()) {
            prev = Prev::Digit;
        } else if b == b'_' {
            if prev != Prev::Digit {
                return false;
            }
            prev = Prev::Underscore;
        } else if prev == Prev::Underscore {
            return false;
        } else {
            prev = Prev::Other;
        }
    }
    prev != Prev::Underscore
}

/// `mantissa * 2^exponent` rounded to nearest-even, where `truncated` says
/// non-zero digits were dropped from the mantissa.
fn hex_float(
    mantissa: u64,
    exponent: i64,
    negative: bool,
    truncated: bool,
) -> Result<f64, FloatError> {
    const FRACTION_BITS: u32 = 52;
    const MIN_NORMAL_EXP: i64 = -1022;
    const EXP_BIAS: i64 = 1023;
    let sign = if negative { 1u64 << 63 } else { 0 };
    if mantissa == 0 {
        return Ok(f64::from_bits(sign));
    }
    let shift = mantissa.leading_zeros();
    let aligned = mantissa << shift;
    // Binary exponent of the leading one.
    let top = exponent + 63 - i64::from(shift);
    // Bits that survive: 53 for normal numbers, fewer below that range.
    let keep = if top >= MIN_NORMAL_EXP {
        53
    } else {
        53 - (MIN_NORMAL_EXP - top)
    };
    if keep <= 0 {
        // Below half the smallest subnormal rounds to zero; exactly half
        // rounds to even, which is zero too.
        let above_half = keep == 0 && (aligned > 1 << 63 || truncated);
        return Ok(f64::from_bits(sign | u64::from(above_half)));
    }
    let dropped = 64 - keep as u32;
    let mut bits = aligned >> dropped;
    let rest = aligned & ((1u64 << dropped) - 1);
    let half = 1u64 << (dropped - 1);
    if rest > half || (rest == half && (truncated || bits & 1 == 1)) {
        bits += 1;
    }
    if top < MIN_NORMAL_EXP {
        // A subnormal's bits are its fraction field; a carry into bit 52
        // yields the smallest normal number, as the layout intends.
        return Ok(f64::from_bits(sign | bits));
    }
    let (bits, top) = if bits >> (FRACTION_BITS + 1) != 0 {
        (bits >> 1, top + 1)
    } else {
        (bits, top)
    };
    if top > EXP_BIAS {
        return Err(FloatError::Range);
    }
    let biased = (top + EXP_BIAS) as u64;
    Ok(f64::from_bits(
        sign | (biased << FRACTION_BITS) | (bits & ((1u64 << FRACTION_BITS) - 1)),
    ))
}

/// A float as Prometheus 3 writes it in `le`/`quantile` label values
/// (`1` → `1.0`, `0.25`, `1e+06`, `+Inf`); see [`format_openmetrics_float`].
pub fn canonical_float(value: f64) -> String {
    let mut out = SmallBuf::default();
    // 40 bytes hold any float in this form.
    let _ = format_openmetrics_float(value, &mut out);
    String::from_utf8_lossy(out.as_bytes()).into_owned()
}

/// Prometheus's `FormatOpenMetricsFloat`: Go's shortest `%g`-style
/// formatting (exponent form when the decimal exponent is below -4 or at
/// least 6, exponent with a sign and two or more digits), with `.0` added
/// when the result would read as an integer, and `+Inf`, `-Inf`, `NaN`.
fn format_openmetrics_float(value: f64, out: &mut SmallBuf) -> fmt::Result {
    if value.is_nan() {
        return out.write_str("NaN");
    }
    if value.is_infinite() {
        return out.write_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    }
    if value == 0.0 {
        // Also for -0, which compares equal.
        return out.write_str("0.0");
    }
    let mut scientific = SmallBuf::default();
    write!(scientific, "{:e}", value.abs())?;
    let (mantissa, exponent) = split_scientific(scientific.as_bytes()).ok_or(fmt::Error)?;
    let digits: SmallBuf = mantissa.iter().filter(|&&b| b != b'.').copied().collect();
    let digits = digits.as_bytes();
    if value < 0.0 {
        out.write_str("-")?;
    }
    if !(-4..6).contains(&exponent) {
        out.push(digits[0])?;
        if digits.len() > 1 {
            out.push(b'.')?;
            out.extend(&digits[1..])?;
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        return write!(out, "e{sign}{:02}", exponent.abs());
    }
    if exponent >= 0 {
        let int_len = exponent as usize + 1;
        if digits.len() <= int_len {
            out.extend(digits)?;
            for _ in digits.len()..int_len {
                out.push(b'0')?;
            }
            return out.write_str(".0");
        }
        out.extend(&digits[..int_len])?;
        out.push(b'.')?;
        return out.extend(&digits[int_len..]);
    }
    out.write_str("0.")?;
    for _ in 0..(-exponent - 1) {
        out.push(b'0')?;
    }
    out.extend(digits)
}

/// Splits Rust's `{:e}` output ("1.25e-7") into mantissa and exponent.
fn split_scientific(text: &[u8]) -> Option<(&[u8], i32)> {
    let e = text.iter().position(|&b| b == b'e')?;
    let exponent = std::str::from_utf8(&text[e + 1..]).ok()?.parse().ok()?;
    Some((&text[..e], exponent))
}

/// Fixed-capacity ASCII buffer, enough for any formatted `f64`, so that
/// checking a label value against its canonical form allocates nothing.
struct SmallBuf {
    bytes: [u8; 40],
    len: usize,
}

impl Default for SmallBuf {
    fn default() -> SmallBuf {
        SmallBuf {
            bytes: [0; 40],
            len: 0,
        }
    }
}

impl SmallBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, b: u8) -> fmt::Result {
        self.extend(&[b])
    }

    fn extend(&mut self, more: &[u8]) -> fmt::Result {
        let end = self.len + more.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(more);
        self.len = end;
        Ok(())
    }
}

impl fmt::Write for SmallBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.extend(s.as_bytes())
    }
}

impl FromIterator<u8> for SmallBuf {
    /// Bytes beyond the capacity are dropped; callers feed fewer.
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> SmallBuf {
        let mut buf = SmallBuf::default();
        for b in iter {
            if buf.push(b).is_err() {
                break;
            }
        }
        buf
    }
}

// ---------------------------------------------------------------------------
// Content-Type, as Go's mime.ParseMediaType reads it.
// ---------------------------------------------------------------------------

fn is_openmetrics_media_type(value: &str) -> bool {
    let (media_type, params) = value.split_at(value.find(';').unwrap_or(value.len()));
    media_type
        .trim()
        .eq_ignore_ascii_case("application/openmetrics-text")
        && media_params_valid(params)
}

/// Whether `params` (from the first `;`) is a well-formed parameter list
/// without repeated names; a single trailing `;` is tolerated.
fn media_params_valid(mut rest: &str) -> bool {
    let mut seen: Vec<&str> = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return true;
        }
        let Some((name, after)) = media_param(rest) else {
            return rest.trim() == ";";
        };
        if seen.iter().any(|other| other.eq_ignore_ascii_case(name)) {
            return false;
        }
        seen.push(name);
        rest = after;
    }
}

/// `; name = value` with optional white space; the value is a token or a
/// non-empty quoted string.
fn media_param(text: &str) -> Option<(&str, &str)> {
    let rest = text.trim_start().strip_prefix(';')?.trim_start();
    let (name, rest) = split_token(rest);
    if name.is_empty() {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let rest = if let Some(quoted) = rest.strip_prefix('"') {
        skip_quoted_param(quoted)?
    } else {
        let (value, rest) = split_token(rest);
        if value.is_empty() {
            return None;
        }
        rest
    };
    Some((name, rest))
}

/// The text after a quoted parameter value's closing quote, if the value
/// is non-empty and well-formed (no bare CR or LF).
fn skip_quoted_param(body: &str) -> Option<&str> {
    let mut escaped = false;
    let mut empty = true;
    for (i, ch) in body.char_indices() {
        match ch {
            _ if escaped => {
                escaped = false;
                empty = false;
            }
            '"' if empty => return None,
            '"' => return Some(&body[i + 1..]),
            '\\' => escaped = true,
            '\r' | '\n' => return None,
            _ => empty = false,
        }
    }
    None
}

fn split_token(text: &str) -> (&str, &str) {
    let end = text
        .bytes()
        .position(|b| !is_mime_token_byte(b))
        .unwrap_or(text.len());
    text.split_at(end)
}

fn is_mime_token_byte(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus's exposition payloads, beside the repository.
    const CONFORMANCE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/exposition"
    );
    const TEXT_FILE: &str = "alltypes.237mfs.prom.txt";
    const OM_FILE: &str = "alltypes.5mfs.om.txt";
    const OM_HISTOGRAM_FILE: &str = "1histogram.om.txt";

    fn conformance(name: &str) -> Vec<u8> {
        std::fs::read(format!("{CONFORMANCE}/{name}")).expect("conformance file")
    }

    type Outcome = (Vec<Entry<'static>>, Option<ParseError>);

    fn parse_whole(input: &[u8], format: Format) -> Outcome {
        let mut entries = Vec::new();
        for result in Parser::new(input, format) {
            match result {
                Ok(entry) => entries.push(entry.into_owned()),
                Err(error) => return (entries, Some(error)),
            }
        }
        (entries, None)
    }

    fn parse_pieces(pieces: &[&[u8]], format: Format) -> Outcome {
        let mut entries = Vec::new();
        let mut state = ParserState::new();
        for (i, piece) in pieces.iter().enumerate() {
            let mut parser = if i + 1 == pieces.len() {
                Parser::resume_last(piece, format, state)
            } else {
                Parser::resume(piece, format, state)
            };
            while let Some(result) = parser.next_entry() {
                match result {
                    Ok(entry) => entries.push(entry.into_owned()),
                    Err(error) => return (entries, Some(error)),
                }
            }
            state = parser.into_state();
        }
        (entries, None)
    }

    fn ok(input: &str, format: Format) -> Vec<Entry<'static>> {
        let (entries, error) = parse_whole(input.as_bytes(), format);
        assert_eq!(error, None, "input {input:?}");
        entries
    }

    fn err(input: &str, format: Format) -> ParseError {
        parse_whole(input.as_bytes(), format)
            .1
            .unwrap_or_else(|| panic!("expected an error for {input:?}"))
    }

    fn samples(entries: &[Entry<'static>]) -> Vec<Sample<'static>> {
        entries
            .iter()
            .filter_map(|entry| match entry {
                Entry::Sample(sample) => Some(sample.clone()),
                _ => None,
            })
            .collect()
    }

    fn only_sample(input: &str, format: Format) -> Sample<'static> {
        let all = samples(&ok(input, format));
        assert_eq!(all.len(), 1, "input {input:?}");
        all[0].clone()
    }

    /// The first sample, straight from the parser (not made owned).
    fn first_sample(input: &[u8], format: Format) -> Sample<'_> {
        Parser::new(input, format)
            .find_map(|entry| match entry.expect("valid input") {
                Entry::Sample(sample) => Some(sample),
                _ => None,
            })
            .expect("a sample")
    }

    fn label<'s>(sample: &'s Sample<'_>, name: &str) -> Option<&'s str> {
        sample
            .labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }

    fn find<'s>(
        all: &'s [Sample<'static>],
        name: &str,
        labels: &[(&str, &str)],
    ) -> &'s Sample<'static> {
        all.iter()
            .find(|s| s.name == name && labels.iter().all(|(n, v)| label(s, n) == Some(v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }

    /// Comparable form of an outcome in which NaN values compare by bits.
    fn canonical(outcome: &Outcome) -> Vec<String> {
        let mut out: Vec<String> = outcome
            .0
            .iter()
            .map(|entry| match entry {
                Entry::Sample(s) => format!("{s:?} bits={:x}", s.value.to_bits()),
                other => format!("{other:?}"),
            })
            .collect();
        out.push(format!("{:?}", outcome.1));
        out
    }

    fn split_every_nth_newline(input: &[u8], n: usize) -> Vec<&[u8]> {
        let mut pieces = Vec::new();
        let (mut start, mut seen) = (0, 0);
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                seen += 1;
                if seen % n == 0 {
                    pieces.push(&input[start..=i]);
                    start = i + 1;
                }
            }
        }
        pieces.push(&input[start..]);
        pieces
    }

    fn assert_pieces_match_whole(input: &[u8], format: Format) {
        let whole = canonical(&parse_whole(input, format));
        for n in [1, 2, 3, 7, 50, 100_000] {
            let pieces = split_every_nth_newline(input, n);
            assert_eq!(
                canonical(&parse_pieces(&pieces, format)),
                whole,
                "every {n} lines"
            );
        }
        for k in [1, 2, 5, 97, 4096] {
            if k < 5 && input.len() > 20_000 {
                continue;
            }
            let mut pieces: Vec<&[u8]> = input.chunks(k).collect();
            if pieces.is_empty() {
                pieces.push(input);
            }
            assert_eq!(
                canonical(&parse_pieces(&pieces, format)),
                whole,
                "every {k} bytes"
            );
        }
    }

    fn assert_all_splits_match_whole(input: &str, format: Format) {
        let input = input.as_bytes();
        let whole = canonical(&parse_whole(input, format));
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(
                canonical(&parse_pieces(&[a, b], format)),
                whole,
                "split at {at} of {:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_pieces_match_whole(input, format);
    }

    // --- Conformance payloads -------------------------------------------

    #[test]
    fn text_conformance_payload() {
        let input = conformance(TEXT_FILE);
        let mut parser = Parser::new(&input, Format::Text);
        let mut entries = Vec::new();
        while let Some(result) = parser.next_entry() {
            entries.push(result.expect("valid payload").into_owned());
        }
        assert_eq!(parser.current_type(), MetricType::Counter);
        assert_eq!(
            parser.current_family(),
            Some("promhttp_metric_handler_requests_total")
        );
        assert_eq!(parser.finish(), Ok(()));

        let types = entries
            .iter()
            .filter(|e| matches!(e, Entry::Type { .. }))
            .count();
        let helps = entries
            .iter()
            .filter(|e| matches!(e, Entry::Help { .. }))
            .count();
        assert_eq!((types, helps), (237, 237));
        let all = samples(&entries);
        assert_eq!(all.len(), 1857);
        assert!(all
            .iter()
            .all(|s| s.timestamp_ms.is_none() && !s.has_exemplar));

        assert!(entries.contains(&Entry::Type {
            metric: "go_info".into(),
            kind: MetricType::Gauge,
        }));
        assert!(entries.contains(&Entry::Help {
            metric: "go_info".into(),
            text: "Information about the Go environment.".into(),
        }));
        assert_eq!(find(&all, "go_info", &[("version", "go1.23.4")]).value, 1.0);

        // Summary quantiles and histogram buckets get Prometheus 3's
        // canonical float formatting.
        let q1 = find(&all, "go_gc_duration_seconds", &[("quantile", "1.0")]);
        assert_eq!(q1.value, 0.002389378);
        assert_eq!(q1.labels.len(), 1);
        find(&all, "go_gc_duration_seconds", &[("quantile", "0.0")]);
        find(&all, "go_gc_duration_seconds", &[("quantile", "0.25")]);
        let bucket = |le: &str| {
            find(
                &all,
                "prometheus_http_response_size_bytes_bucket",
                &[("handler", "/"), ("le", le)],
            )
            .value
        };
        assert_eq!(bucket("100.0"), 688.0);
        assert_eq!(bucket("100000.0"), 688.0);
        assert_eq!(bucket("1e+06"), 688.0);
        assert!(!all
            .iter()
            .any(|s| label(s, "le") == Some("1") || label(s, "le") == Some("100000")));

        let nan = find(
            &all,
            "prometheus_sd_consul_rpc_duration_seconds",
            &[
                ("call", "service"),
                ("endpoint", "catalog"),
                ("quantile", "0.5"),
            ],
        );
        assert_eq!(nan.value.to_bits(), NORMAL_NAN_BITS);

        let spaced = find(
            &all,
            "prometheus_rule_evaluation_failures_total",
            &[(
                "rule_group",
                "/etc/prometheus/rules/ansible_managed.rules;ansible managed alert rules",
            )],
        );
        assert_eq!(spaced.value, 0.0);
        // The payload's final "# EOF" is a plain comment in this format.
        assert_eq!(
            all.last().map(|s| s.name.as_ref()),
            Some("promhttp_metric_handler_requests_total")
        );
    }

    #[test]
    fn openmetrics_conformance_payload() {
        let input = conformance(OM_FILE);
        let (entries, error) = parse_whole(&input, Format::OpenMetrics);
        assert_eq!(error, None);
        let all = samples(&entries);
        assert_eq!(all.len(), 53);
        assert_eq!(entries.len(), 53 + 5 + 5);
        assert_eq!(all.iter().filter(|s| s.has_exemplar).count(), 6);
        assert_eq!(
            all.iter().filter(|s| s.name.ends_with("_created")).count(),
            9
        );

        let info = find(
            &all,
            "go_build_info",
            &[("checksum", ""), ("path", ""), ("version", "")],
        );
        assert_eq!(info.value, 1.0);
        let created = find(
            &all,
            "promhttp_metric_handler_errors_created",
            &[("cause", "encoding")],
        );
        assert_eq!(created.value, 1.726839813016397e9);
        assert_eq!(created.timestamp_ms, None);

        let with_exemplar = find(
            &all,
            "rpc_durations_histogram_seconds_bucket",
            &[("le", "-0.0002899999999999998")],
        );
        assert_eq!(
            (with_exemplar.value, with_exemplar.has_exemplar),
            (3.0, true)
        );
        assert_eq!(with_exemplar.labels.len(), 1);
        find(
            &all,
            "rpc_durations_histogram_seconds_bucket",
            &[("le", "-8.999999999999979e-05")],
        );
        find(
            &all,
            "rpc_durations_seconds",
            &[("service", "normal"), ("quantile", "0.99")],
        );
        assert!(entries.contains(&Entry::Type {
            metric: "rpc_durations_seconds".into(),
            kind: MetricType::Summary,
        }));
        assert_eq!(Parser::new(&input, Format::OpenMetrics).finish(), Ok(()));
    }

    #[test]
    fn openmetrics_histogram_payload_ending_without_newline() {
        let input = conformance(OM_HISTOGRAM_FILE);
        assert!(input.ends_with(b"# EOF"));
        let (entries, error) = parse_whole(&input, Format::OpenMetrics);
        assert_eq!(error, None);
        let all = samples(&entries);
        assert_eq!(all.len(), 42);
        let first = &all[0];
        assert_eq!(first.name, "golang_manual_histogram_seconds_bucket");
        let names: Vec<&str> = first.labels.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["address", "generation", "port", "le"]);
        find(
            &all,
            "golang_manual_histogram_seconds_bucket",
            &[("port", "5002"), ("le", "1.0")],
        );
        // Already canonical, so still borrowed from the input.
        let first = first_sample(&input, Format::OpenMetrics);
        assert_eq!(first.labels[3].1, "0.005");
        assert!(matches!(first.labels[3].1, Cow::Borrowed(_)));
        let inf = find(
            &all,
            "golang_manual_histogram_seconds_bucket",
            &[("port", "5003"), ("le", "+Inf")],
        );
        assert_eq!(inf.value, 1.0);
        let sum = find(
            &all,
            "golang_manual_histogram_seconds_sum",
            &[("port", "5001")],
        );
        assert_eq!(sum.value, 10.0);
    }

    #[test]
    fn pieces_match_whole_on_conformance_payloads() {
        assert_pieces_match_whole(&conformance(TEXT_FILE), Format::Text);
        assert_pieces_match_whole(&conformance(OM_FILE), Format::OpenMetrics);
        assert_pieces_match_whole(&conformance(OM_HISTOGRAM_FILE), Format::OpenMetrics);
    }

    #[test]
    fn pieces_match_whole_on_errors_and_oddities() {
        let text = [
            "a 1\n\n# comment\n  b{x=\"y\"} 2 3\n# HELP a some \\n help\n# TYPE a counter\n",
            "m{v=\"line one\nline two\",w=\"z\"} 1\nnext 2\n",
            "a 1\nb{c=\"d\n\ne\"} 2\nlast 3",
            "a 1\nb{c=\"unterminated\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nx 1\n\0ignored {{{\n",
            "ok 1\nbad{a=\"b\" 1\nnever 2\n",
            "a 1\n#x\0 rest\nb 2\n",
            "{\"my.metric\",\"label.x\"=\"v\"} 1 1000\n",
        ];
        for input in text {
            assert_all_splits_match_whole(input, Format::Text);
        }
        let openmetrics = [
            "# TYPE a counter\n# UNIT a_seconds seconds\na_total 1 1.5 # {id=\"x\"} 2 3\n# EOF\n",
            "# TYPE s summary\ns{quantile=\"1\"} 1\n# EOF",
            "a 1\n# EOF\nb 2\n",
            "a 1\n# EOF\n\n",
            "a 1\nb 2\n",
            "a 1\nb 2",
            "",
            "a 1\nb  2\n# EOF\n",
            "{\"odd\nname\",x=\"y\"} 1\n# EOF\n",
        ];
        for input in openmetrics {
            assert_all_splits_match_whole(input, Format::OpenMetrics);
        }
    }

    /// Small deterministic generator, enough to pick fragments and cuts.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    #[test]
    fn random_inputs_parse_the_same_in_random_pieces() {
        let fragments: &[&str] = &[
            "# TYPE h histogram\n",
            "# TYPE s summary\n",
            "# TYPE c counter\n",
            "# HELP c some \\\\ help \\n text\n",
            "# UNIT c_seconds seconds\n",
            "h_bucket{le=\"1\"} 1\n",
            "h_bucket{le=\"+Inf\",x=\"y\"} 2 1700000000\n",
            "s{quantile=\"0.5\"} NaN\n",
            "c_total{a=\"b\\\"c\"} 3 1.5 # {id=\"x\"} 1 2\n",
            "c_total 1 # {id=\"x\"} 1\n",
            "{\"dotted.name\",\"l.x\"=\"v\"} 4\n",
            "m{v=\"multi\nline\"} 5\n",
            "m{a=\"b\" c=\"d\"} 6\n",
            "m 1 2 3\n",
            "\n",
            "# plain comment\n",
            "  spaced  7  \n",
            "bad{=}\n",
            "a  1\n",
            "x 0x1p3\n",
            "\0nul\n",
            "# EOF\n",
            "# EOF",
            "tail_without_newline 8",
        ];
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..400 {
            let mut input = String::new();
            for _ in 0..rng.below(8) + 1 {
                input.push_str(fragments[rng.below(fragments.len())]);
            }
            let bytes = input.as_bytes();
            for format in [Format::Text, Format::OpenMetrics] {
                let whole = canonical(&parse_whole(bytes, format));
                for _ in 0..4 {
                    let mut cuts: Vec<usize> = (0..rng.below(4) + 1)
                        .map(|_| rng.below(bytes.len() + 1))
                        .collect();
                    cuts.sort_unstable();
                    let mut pieces = Vec::new();
                    let mut from = 0;
                    for cut in cuts {
                        pieces.push(&bytes[from..cut]);
                        from = cut;
                    }
                    pieces.push(&bytes[from..]);
                    assert_eq!(
                        canonical(&parse_pieces(&pieces, format)),
                        whole,
                        "{format:?} {input:?} in {pieces:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn conformance_errors_keep_their_line_numbers_in_pieces() {
        let mut input = conformance(TEXT_FILE);
        let line_1000 = input
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(998)
            .map(|(i, _)| i + 1)
            .expect("long enough");
        input.splice(line_1000..line_1000, b"broken{a=\"b\"}\n".iter().copied());
        let whole = parse_whole(&input, Format::Text);
        let error = whole.1.clone().expect("error");
        assert_eq!(error.line, 1000);
        assert!(
            error.message.starts_with("expected value after metric"),
            "{error}"
        );
        assert_pieces_match_whole(&input, Format::Text);
    }

    /// Inputs that Prometheus's own parser tests expect to fail.
    #[test]
    fn inputs_prometheus_rejects_are_rejected() {
        let text: &[&[u8]] = &[
            b"a",
            b"a{b='c'} 1\n",
            b"a{b=\n",
            b"a{\xff=\"foo\"} 1\n",
            b"a{b=\"\xff\"} 1\n",
            b"{\"a\", \"b = \"c\"}",
            b"{\"a\",b\\nc=\"d\"} 1",
            b"a true\n",
            b"something_weird{problem=\"",
            b"empty_label_name{=\"\"} 0",
            b"{A}0",
            b"foo 1_2\n",
            b"foo 0x1p-3\n",
            b"foo 0x1P-3\n",
            b"foo 0 1_2\n",
            b"{a=\"ok\"} 1",
            b"# TYPE #\n#EOF\n",
            b"# HELP #\n#EOF\n",
            b"a{b=\x00\"ssss\"} 1\n",
            b"a{b=\"\x00",
            b"a{b\x00=\"hiih\"}\t1",
            b"a\x00{b=\"ddd\"} 1",
            b"a 0 1\x00",
        ];
        for input in text {
            assert!(
                parse_whole(input, Format::Text).1.is_some(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let openmetrics: &[&[u8]] = &[
            b"",
            b"\n",
            b"metric",
            b"metric 1",
            b"metric 1\n",
            b"metric_total 1 # {aa=\"bb\"} 4",
            b"a\n#EOF\n",
            b"\n\n#EOF\n",
            b" a 1\n#EOF\n",
            b"9\n#EOF\n",
            b"# TYPE u untyped\n#EOF\n",
            b"# TYPE c counter \n#EOF\n",
            b"#  TYPE c counter\n#EOF\n",
            b"# TYPE \n#EOF\n",
            b"# TYPE m\n#EOF\n",
            b"# UNIT metric suffix\n#EOF\n",
            b"# UNIT metricsuffix suffix\n#EOF\n",
            b"# UNIT m suffix\n#EOF\n",
            b"# UNIT \n#EOF\n",
            b"# UNIT m\n#EOF\n",
            b"# HELP \n#EOF\n",
            b"# HELP m\n#EOF\n",
            b"a\t1\n#EOF\n",
            b"a 1\t2\n#EOF\n",
            b"a 1 2 \n#EOF\n",
            b"a 1 2 #\n#EOF\n",
            b"a 1 1z\n#EOF\n",
            b" # EOF\n",
            b"# EOF\na 1",
            b"# EOF\n\n",
            b"# EOFa 1",
            b"#\tTYPE c counter\n",
            b"# TYPE c  counter\n",
            b"a 1 1 1\n# EOF\n",
            b"a{b='c'} 1\n# EOF\n",
            b"a{,b=\"c\"} 1\n# EOF\n",
            b"a{b=\"c\"d=\"e\"} 1\n# EOF\n",
            b"a{b=\"c\",,d=\"e\"} 1\n# EOF\n",
            b"a{b=\n# EOF\n",
            b"a{\xff=\"foo\"} 1\n# EOF\n",
            b"a{b=\"\xff\"} 1\n# EOF\n",
            b"{\"a\",\"b = \"c\"}\n# EOF\n",
            b"{\"a\",b\\nc=\"d\"} 1\n# EOF\n",
            b"a true\n",
            b"something_weird{problem=\"\n# EOF\n",
            b"empty_label_name{=\"\"} 0\n# EOF\n",
            b"{A}0\n# EOF\n",
            b"foo 1_2\n\n# EOF\n",
            b"foo 0x1p-3\n\n# EOF\n",
            b"foo 0x1P-3\n\n# EOF\n",
            b"foo 0 1_2\n\n# EOF\n",
            b"custom_metric_total 1 # {aa=bb}\n# EOF\n",
            b"custom_metric_total 1 # {aa=\"bb\"}\n# EOF\n",
            b"custom_metric_total 1 # {aa=\"bb\"}",
            b"custom_metric_total 1 # {bb}",
            b"custom_metric_total 1 # {bb, a=\"dd\"}",
            b"custom_metric_total 1 # {aa=\"bb\",,cc=\"dd\"} 1",
            b"custom_metric_total 1 # {aa=\"bb\"} 1_2",
            b"custom_metric_total 1 # {aa=\"bb\"} 0x1p-3",
            b"custom_metric_total 1 # {aa=\"bb\"} true",
            b"custom_metric_total 1 # {aa=\"bb\",cc=}",
            b"custom_metric_total 1 # {aa=\\\"\xff\\\"} 9.0",
            b"{b=\"c\",} 1",
            b"a 1 NaN",
            b"a 1 -Inf",
            b"a 1 Inf",
            b"# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 NaN",
            b"# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 -Inf",
        ];
        for input in openmetrics {
            let outcome = parse_whole(input, Format::OpenMetrics);
            assert!(outcome.1.is_some(), "{:?}", String::from_utf8_lossy(input));
        }
        ok("# EOF", Format::OpenMetrics);
        ok("# EOF\n", Format::OpenMetrics);
    }

    /// The exposition of Prometheus's `TestPromParse`.
    #[test]
    fn prometheus_text_parser_test_payload() {
        let input = "# HELP go_gc_duration_seconds A summary of the GC invocation durations.\n\
            # \tTYPE go_gc_duration_seconds summary\n\
            go_gc_duration_seconds{quantile=\"0\"} 4.9351e-05\n\
            go_gc_duration_seconds{quantile=\"0.25\",} 7.424100000000001e-05\n\
            go_gc_duration_seconds{quantile=\"0.8\", a=\"b\"} 8.3835e-05\n\
            go_gc_duration_seconds{ quantile=\"0.9\", a=\"b\"} 8.3835e-05\n\
            # HELP prometheus_http_request_duration_seconds Histogram of latencies for HTTP requests.\n\
            # TYPE prometheus_http_request_duration_seconds histogram\n\
            prometheus_http_request_duration_seconds_bucket{handler=\"/\",le=\"1\"} 423\n\
            prometheus_http_request_duration_seconds_bucket{handler=\"/\",le=\"+Inf\"} 1423\n\
            # Hrandom comment starting with prefix of HELP\n\
            #\n\
            wind_speed{A=\"2\",c=\"3\"} 12345\n\
            # comment with escaped \\n newline\n\
            # HELP nohelp1\n\
            # HELP nohelp2 \n\
            go_gc_duration_seconds { quantile = \"2.0\" a = \"b\" } 8.3835e-05\n\
            some:aggregate:rate5m{a_b=\"c\"}\t1\n\
            # TYPE go_goroutines gauge\n\
            go_goroutines 33  \t123123\n\
            # TYPE some_counter_total counter\n\
            testmetric{label=\"\\\"bar\\\"\"} 1\n\
            testmetric{le=\"10\"} 1";
        let entries = ok(input, Format::Text);
        let all = samples(&entries);
        assert_eq!(all.len(), 12);
        assert_eq!(label(&all[0], "quantile"), Some("0.0"));
        assert_eq!(label(&all[4], "le"), Some("1.0"));
        // Still under the histogram TYPE: only `le` would be rewritten.
        assert_eq!(label(&all[7], "quantile"), Some("2.0"));
        assert_eq!(all[8].name, "some:aggregate:rate5m");
        assert_eq!((all[9].value, all[9].timestamp_ms), (33.0, Some(123_123)));
        assert_eq!(label(&all[10], "label"), Some("\"bar\""));
        assert_eq!(label(&all[11], "le"), Some("10"));
        let helps: Vec<&Entry<'static>> = entries
            .iter()
            .filter(|e| matches!(e, Entry::Help { metric, .. } if metric.starts_with("nohelp")))
            .collect();
        assert_eq!(
            helps,
            [
                &Entry::Help {
                    metric: "nohelp1".into(),
                    text: "".into()
                },
                &Entry::Help {
                    metric: "nohelp2".into(),
                    text: "".into()
                },
            ]
        );
    }

    /// The exposition of Prometheus's `TestOpenMetricsParse`.
    const PROMETHEUS_OM_PAYLOAD: &str = r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25"} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
# HELP nohelp1 
# HELP help2 escape \ \n \\ \" \x chars
# UNIT nounit 
go_gc_duration_seconds{quantile="1.0",a="b"} 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"} 1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hh histogram
hh_bucket{le="+Inf"} 1
# TYPE gh gaugehistogram
gh_bucket{le="+Inf"} 1
# TYPE hhh histogram
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {id="histogram-count-test"} 4
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123
ggh_count 1 # {id="gaugehistogram-count-test",xx="yy"} 4 123.123
# TYPE smr_seconds summary
smr_seconds_count 2.0 # {id="summary-count-test"} 1 123.321
smr_seconds_sum 42.0 # {id="summary-sum-test"} 1 123.321
# TYPE ii info
ii{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
ss{ss="bar"} 0
ss{A="a"} 0
# TYPE un unknown
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
# HELP foo Counter with and without labels to certify ST is parsed for both cases
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520872607.123
foo_total{a="b"} 17.0 1520879607.789 # {id="counter-test"} 5
foo_created{a="b"} 1520872607.123
foo_total{le="c"} 21.0
foo_created{le="c"} 1520872621.123
foo_total{le="1"} 10.0
# HELP bar Summary with ST at the end, making sure we find ST even if it's multiple lines a far
# TYPE bar summary
bar_count 17.0
bar_sum 324789.3
bar{quantile="0.95"} 123.7
bar{quantile="0.99"} 150.0
bar_created 1520872608.124
# HELP baz Histogram with the same objective as above's summary
# TYPE baz histogram
baz_bucket{le="0.0"} 0
baz_bucket{le="+Inf"} 17
baz_count 17
baz_sum 324789.3
baz_created 1520872609.125
# HELP fizz_created Gauge which shouldn't be parsed as ST
# TYPE fizz_created gauge
fizz_created 17.0
# HELP something Histogram with _created between buckets and summary
# TYPE something histogram
something_count 18
something_sum 324789.4
something_created 1520430001
something_bucket{le="0.0"} 1
something_bucket{le="1"} 2
something_bucket{le="+Inf"} 18
# HELP yum Summary with _created between sum and quantiles
# TYPE yum summary
yum_count 20
yum_sum 324789.5
yum_created 1520430003
yum{quantile="0.95"} 123.7
yum{quantile="0.99"} 150.0
# HELP foobar Summary with _created as the first line
# TYPE foobar summary
foobar_count 21
foobar_created 1520430004
foobar_sum 324789.6
foobar{quantile="0.95"} 123.8
foobar{quantile="0.99"} 150.1
# HELP nansum Summary with NaN value
# TYPE nansum summary
nansum_count 0
nansum_sum 0.0
nansum{quantile="0.95"} nan
nansum{quantile="0.99"} NaN"#;

    #[test]
    fn prometheus_openmetrics_parser_test_payload() {
        let input = format!(
            "{PROMETHEUS_OM_PAYLOAD}\n# HELP metric foo\0bar\nnull_byte_metric{{a=\"abc\0\"}} 1\n# EOF\n"
        );
        let entries = ok(&input, Format::OpenMetrics);
        let all = samples(&entries);
        assert_eq!(all.len(), 61);
        assert_eq!(all.iter().filter(|s| s.has_exemplar).count(), 8);
        assert!(entries.contains(&Entry::Help {
            metric: "help2".into(),
            text: "escape \\ \n \\ \" \\x chars".into(),
        }));
        assert!(entries.contains(&Entry::Help {
            metric: "metric".into(),
            text: "foo\0bar".into(),
        }));
        assert!(entries.contains(&Entry::Unit {
            metric: "nounit".into(),
            unit: "".into(),
        }));
        let ts = find(&all, "foo_total", &[("a", "b")]);
        assert_eq!(
            (ts.value, ts.timestamp_ms, ts.has_exemplar),
            (17.0, Some(1_520_879_607_789), true)
        );
        assert_eq!(find(&all, "go_goroutines", &[]).timestamp_ms, Some(123_123));
        // `le` is only rewritten under a histogram TYPE.
        find(&all, "foo_total", &[("le", "1")]);
        find(&all, "something_bucket", &[("le", "1.0")]);
        find(&all, "baz_bucket", &[("le", "0.0")]);
        let nan = find(&all, "nansum", &[("quantile", "0.95")]);
        assert_eq!(nan.value.to_bits(), NORMAL_NAN_BITS);
        assert_eq!(
            find(&all, "foo_created", &[("a", "b")]).value,
            1_520_872_607.123
        );
        assert_eq!(label(&all[all.len() - 1], "a"), Some("abc\0"));
    }

    /// The expositions of Prometheus's UTF-8 name tests, in both formats.
    #[test]
    fn prometheus_utf8_test_payloads() {
        let openmetrics = r#"# HELP "go.gc_duration_seconds" A summary of the GC invocation durations.
# TYPE "go.gc_duration_seconds" summary
# UNIT "go.gc_duration_seconds" seconds
{"go.gc_duration_seconds",quantile="0"} 4.9351e-05
{"go.gc_duration_seconds_created"} 1520872607.123
{q="0.9","http.status",a="b"} 8.3835e-05
{"Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}","strange©™\n'quoted' \"name\""="6"} 10.0
quotedexemplar2_count 1 # {"id.thing"="histogram-count-test",other="hello"} 4
# EOF
"#;
        let text = r#"# HELP "go.gc_duration_seconds" A summary of the GC invocation durations.
# 	TYPE "go.gc_duration_seconds" summary
{"go.gc_duration_seconds",quantile="0.25",} 7.424100000000001e-05
{ "go.gc_duration_seconds", quantile= "1.0", a= "b", } 8.3835e-05
{"go.gc_duration_seconds_count"} 99
{"Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}","strange©™\n'quoted' \"name\""="6"} 10.0"#;
        let strange =
            "Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}";
        let om = samples(&ok(openmetrics, Format::OpenMetrics));
        assert_eq!(om.len(), 5);
        assert_eq!(label(&om[0], "quantile"), Some("0.0"));
        assert_eq!(
            (om[2].name.as_ref(), label(&om[2], "q")),
            ("http.status", Some("0.9"))
        );
        assert_eq!(om[3].name, strange);
        assert_eq!(
            om[3].labels,
            vec![("strange©™\n'quoted' \"name\"".into(), "6".into())]
        );
        assert!(om[4].has_exemplar);
        let text = samples(&ok(text, Format::Text));
        assert_eq!(text.len(), 4);
        assert_eq!(label(&text[1], "quantile"), Some("1.0"));
        assert_eq!(text[3].name, strange);
    }

    // --- Text format -----------------------------------------------------

    #[test]
    fn text_basic_sample_and_metadata() {
        let entries = ok(
            "# HELP http_requests_total The total.\n# TYPE http_requests_total counter\n\
             http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n",
            Format::Text,
        );
        assert_eq!(
            entries[0],
            Entry::Help {
                metric: "http_requests_total".into(),
                text: "The total.".into()
            }
        );
        assert_eq!(
            entries[1],
            Entry::Type {
                metric: "http_requests_total".into(),
                kind: MetricType::Counter
            }
        );
        let Entry::Sample(sample) = &entries[2] else {
            panic!("not a sample");
        };
        assert_eq!(sample.name, "http_requests_total");
        assert_eq!(
            sample.labels,
            vec![
                ("method".into(), "post".into()),
                ("code".into(), "200".into())
            ]
        );
        assert_eq!(
            (sample.value, sample.timestamp_ms),
            (1027.0, Some(1_395_066_363_000))
        );
        let borrowed = first_sample(b"m{a=\"b\"} 1\n", Format::Text);
        assert!(matches!(borrowed.name, Cow::Borrowed(_)));
        assert!(matches!(
            borrowed.labels[0],
            (Cow::Borrowed(_), Cow::Borrowed(_))
        ));
    }

    #[test]
    fn text_whitespace_and_label_set_leniency() {
        let s = only_sample(
            "  foo \t{ a = \"b\" , c=\"d\" , } \t 1.5  \t 42 \t\n",
            Format::Text,
        );
        assert_eq!(
            s.labels,
            vec![("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        assert_eq!((s.value, s.timestamp_ms), (1.5, Some(42)));
        // Prometheus accepts labels without a comma between them, and a value
        // right after the closing brace.
        let s = only_sample("foo{a=\"b\" c=\"d\"}7\n", Format::Text);
        assert_eq!((s.labels.len(), s.value), (2, 7.0));
        assert_eq!(only_sample("foo{} 1", Format::Text).labels, vec![]);
        assert_eq!(
            only_sample(":colon_name:x 2\n", Format::Text).name,
            ":colon_name:x"
        );
    }

    #[test]
    fn text_comments_blank_lines_and_final_line_without_newline() {
        let entries = ok(
            "\n   \n#HELP not_meta x\n# other comment\n#\n# HELP\n# TYPEx foo\n\tfoo 1\nbar 2",
            Format::Text,
        );
        let names: Vec<String> = samples(&entries)
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["foo", "bar"]);
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn text_help_text_rules() {
        let help = |input: &str| match &ok(input, Format::Text)[0] {
            Entry::Help { text, .. } => text.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            help("# HELP m a \\\\ b \\n c \\\" d\n"),
            "a \\ b \n c \\\" d"
        );
        assert_eq!(help("# HELP m\n"), "");
        assert_eq!(help("# HELP m   \n"), "");
        assert_eq!(help("# HELP m  two spaces\n"), " two spaces");
        assert_eq!(help("#\tHELP\tm\ttabbed\n"), "tabbed");
        assert_eq!(help("# HELP \"m.x\" quoted name\n"), "quoted name");
    }

    #[test]
    fn text_types() {
        let kind = |word: &str| match &ok(&format!("# TYPE m {word}\n"), Format::Text)[0] {
            Entry::Type { kind, .. } => *kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(kind("counter"), MetricType::Counter);
        assert_eq!(kind("gauge"), MetricType::Gauge);
        assert_eq!(kind("histogram"), MetricType::Histogram);
        assert_eq!(kind("summary"), MetricType::Summary);
        assert_eq!(kind("untyped"), MetricType::Unknown);
        for word in ["unknown", "info", "Counter", "counter ", " counter", ""] {
            let error = err(&format!("a 1\n# TYPE m {word}\n"), Format::Text);
            assert_eq!(error.line, 2);
            assert!(error.message.contains("invalid metric type"), "{error}");
        }
    }

    #[test]
    fn text_label_value_escapes() {
        let s = only_sample(r#"m{a="x\\y",b="q\"r",c="n\nl",d="t\tz"} 1"#, Format::Text);
        assert_eq!(label(&s, "a"), Some("x\\y"));
        assert_eq!(label(&s, "b"), Some("q\"r"));
        assert_eq!(label(&s, "c"), Some("n\nl"));
        // Unknown escapes stay as written, as in Prometheus.
        assert_eq!(label(&s, "d"), Some("t\\tz"));
        assert!(matches!(s.labels[0].1, Cow::Owned(_)));
        // A raw newline inside a label value is accepted by the text format.
        let s = only_sample("m{a=\"one\ntwo\"} 1\n", Format::Text);
        assert_eq!(label(&s, "a"), Some("one\ntwo"));
        let (entries, error) = parse_whole(b"m{a=\"one\ntwo\"} 1\nbad\n", Format::Text);
        assert_eq!((entries.len(), error.map(|e| e.line)), (1, Some(3)));
    }

    #[test]
    fn text_values_follow_go_parse_float() {
        let value = |v: &str| only_sample(&format!("m {v}\n"), Format::Text).value;
        assert_eq!(value("+Inf"), f64::INFINITY);
        assert_eq!(value("-inf"), f64::NEG_INFINITY);
        assert_eq!(value("Infinity"), f64::INFINITY);
        assert_eq!(value("nAn").to_bits(), NORMAL_NAN_BITS);
        assert_eq!(value("1e3"), 1000.0);
        assert_eq!(value("-.5"), -0.5);
        assert_eq!(value("5."), 5.0);
        assert_eq!(value("1e-400"), 0.0);
        for bad in [
            "0x1p-2", "1_000", "0x10", "1e400", "+nan", "abc", "1e", "1.2.3", "1,5", "--1",
        ] {
            let error = err(&format!("m {bad}\n"), Format::Text);
            assert!(
                error.message.starts_with("expected a number"),
                "{bad}: {error}"
            );
        }
        assert!(err("m 1e400\n", Format::Text)
            .message
            .contains("out of range"));
        assert!(err("m 0x1p-2\n", Format::Text)
            .message
            .contains("unsupported character"));
    }

    #[test]
    fn text_errors_report_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "a 1\nb\n",
                2,
                "expected value after metric, got \"\\n\" after \"b\"",
            ),
            ("a 1\n\nb{c=\"d\"}\n", 3, "expected value after metric"),
            ("a 1\nb{c=\"d\\\ne\"} 1\n", 2, "expected label value"),
            ("a 1\nb 1 12a\n", 2, "expected end of line after timestamp"),
            ("a 1\nb 1 -5\n", 2, "expected timestamp or end of line"),
            ("b 1 99999999999999999999\n", 1, "int64"),
            ("b 1 2 3\n", 1, "expected end of line after timestamp"),
            ("b 1\r\n", 1, "expected a number"),
            (
                "a 1\n\r\n",
                2,
                "expected a metric name, a comment or a blank line",
            ),
            ("1abc 2\n", 1, "expected a metric name"),
            ("b{1=\"x\"} 1\n", 1, "expected label name"),
            ("b{c} 1\n", 1, "expected equal"),
            ("b{c=d} 1\n", 1, "expected label value"),
            ("b{c=\"d\"\n", 1, "expected label name, got \"\\n\""),
            (
                "{c=\"d\"} 1\n",
                1,
                "expected a metric name in the label set",
            ),
            ("b{\"name\"} 1\n", 1, "metric name is already set"),
            ("# TYPE 9x counter\n", 1, "expected metric name after TYPE"),
            ("# HELP \n", 1, "expected metric name after HELP"),
        ];
        for &(input, line, message) in cases {
            let error = err(input, Format::Text);
            assert_eq!(error.line, line, "{input:?}: {error}");
            assert!(error.message.contains(message), "{input:?}: {error}");
        }
        assert_eq!(
            err("b 1\nc{d=e} 1\n", Format::Text).to_string(),
            "line 2: expected label value, got \"e} 1\\n\" after \"c{d=\""
        );
    }

    #[test]
    fn invalid_utf8_is_rejected_in_values_and_help() {
        let mut input = b"a{b=\"".to_vec();
        input.extend_from_slice(&[0xff, 0xfe]);
        input.extend_from_slice(b"\"} 1\n");
        let error = parse_whole(&input, Format::Text).1.expect("error");
        assert!(
            error.message.starts_with("invalid UTF-8 label value"),
            "{error}"
        );
        let error = parse_whole(b"x 1\n# HELP a \xff\n", Format::Text)
            .1
            .expect("error");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("UTF-8"), "{error}");
        // Comments may hold anything.
        assert_eq!(parse_whole(b"# \xff\xfe\na 1\n", Format::Text).1, None);
    }

    #[test]
    fn text_nul_at_line_start_ends_the_input_like_prometheus() {
        let entries = ok("a 1\n\0garbage {{{\nb 2\n", Format::Text);
        assert_eq!(samples(&entries).len(), 1);
        let entries = ok("a 1\n  \0\nb 2\n", Format::Text);
        assert_eq!(samples(&entries).len(), 1);
        // NUL inside a label value is kept.
        assert_eq!(
            label(&only_sample("a{b=\"x\0y\"} 1\n", Format::Text), "b"),
            Some("x\0y")
        );
    }

    #[test]
    fn quoted_utf8_names() {
        let s = only_sample("{\"my.metric\",a=\"b\"} 1\n", Format::Text);
        assert_eq!((s.name.as_ref(), s.labels.len()), ("my.metric", 1));
        let s = only_sample("{ \"my.metric\" , \"lbl.x\"=\"y\" } 1\n", Format::Text);
        assert_eq!(
            (s.name.as_ref(), label(&s, "lbl.x")),
            ("my.metric", Some("y"))
        );
        let s = only_sample("{a=\"b\",\"my\\\"q\"} 1\n", Format::Text);
        assert_eq!(s.name, "my\"q");
        let s = only_sample("{\"ö.x\",\"é\"=\"v\"} 1\n# EOF\n", Format::OpenMetrics);
        assert_eq!((s.name.as_ref(), label(&s, "é")), ("ö.x", Some("v")));
        let entries = ok("# TYPE \"my.metric\" gauge\n# EOF\n", Format::OpenMetrics);
        assert_eq!(
            entries[0],
            Entry::Type {
                metric: "my.metric".into(),
                kind: MetricType::Gauge
            }
        );
        assert!(err("{\"a\",\"b\"} 1\n# EOF\n", Format::OpenMetrics)
            .message
            .contains("already set"));
        assert!(err("{a=\"b\"} 1\n# EOF\n", Format::OpenMetrics)
            .message
            .contains("metric name"));
    }

    // --- OpenMetrics -----------------------------------------------------

    #[test]
    fn openmetrics_metadata_and_samples() {
        let entries = ok(
            "# HELP foo_seconds Help with \\\"quotes\\\" and \\\\.\n# TYPE foo_seconds counter\n\
             # UNIT foo_seconds seconds\nfoo_seconds_total{a=\"b\",} 17 1520879607.789\n\
             foo_seconds_created 1520430000.123\n# EOF\n",
            Format::OpenMetrics,
        );
        assert_eq!(
            entries[0],
            Entry::Help {
                metric: "foo_seconds".into(),
                text: "Help with \"quotes\" and \\.".into()
            }
        );
        assert_eq!(
            entries[2],
            Entry::Unit {
                metric: "foo_seconds".into(),
                unit: "seconds".into()
            }
        );
        let all = samples(&entries);
        assert_eq!(all[0].labels, vec![("a".into(), "b".into())]);
        assert_eq!(
            (all[0].value, all[0].timestamp_ms),
            (17.0, Some(1_520_879_607_789))
        );
        assert_eq!(
            (all[1].name.as_ref(), all[1].value),
            ("foo_seconds_created", 1_520_430_000.123)
        );
    }

    #[test]
    fn openmetrics_timestamps_are_seconds_truncated_to_ms() {
        let ts =
            |t: &str| only_sample(&format!("m 1 {t}\n# EOF\n"), Format::OpenMetrics).timestamp_ms;
        assert_eq!(ts("1.5"), Some(1500));
        assert_eq!(ts("-1.5"), Some(-1500));
        assert_eq!(ts("1.7268398142239082e+09"), Some(1_726_839_814_223));
        assert_eq!(ts("0.0019"), Some(1));
        assert_eq!(ts("10"), Some(10_000));
        for bad in ["NaN", "+Inf", "-inf"] {
            let error = err(&format!("m 1 {bad}\n# EOF\n"), Format::OpenMetrics);
            assert!(error.message.contains("finite timestamp"), "{error}");
        }
        assert!(err("m 1 1p3\n# EOF\n", Format::OpenMetrics)
            .message
            .contains("unsupported"));
    }

    #[test]
    fn openmetrics_exemplars_are_validated_then_skipped() {
        let good = [
            "m_total 1 # {trace_id=\"abc\"} 0.5\n",
            "m_total 1 # {trace_id=\"abc\"} 0.5 1520879607.789\n",
            "m_total 1 2 # {} 0.5\n",
            "m_total 1 # {a=\"b\",c=\"d\",} NaN\n",
            "m_total 1 # {\"q.name\"=\"v\"} 1\n",
            "gauge_is_fine_too 1 # {a=\"b\"} 1\n",
        ];
        for line in good {
            let s = only_sample(&format!("{line}# EOF\n"), Format::OpenMetrics);
            assert!(s.has_exemplar, "{line}");
            assert_eq!(s.value, 1.0);
        }
        let bad: &[(&str, &str)] = &[
            ("m 1 # {a=\"b\"}\n", "value after the exemplar labels"),
            ("m 1 # {a=\"b\"} x\n", "expected a number"),
            ("m 1 # {a=\"b\"} 1 NaN\n", "finite exemplar timestamp"),
            (
                "m 1 # {a=\"b\"} 1 2 3\n",
                "end of line after exemplar timestamp",
            ),
            ("m 1 # {a=\"b\"} 1 \n", "exemplar timestamp or end of line"),
            ("m 1 # {\"only_name\"} 1\n", "expected label name"),
            ("m 1 # {a=\"b\" c=\"d\"} 1\n", "comma or brace close"),
            ("m 1 # {a=\"x\ny\"} 1\n", "expected label value"),
            ("m 1 # x\n", "exemplar labels"),
            ("m 1 2 # x\n", "exemplar labels"),
        ];
        for &(line, message) in bad {
            let error = err(
                &format!("# TYPE m counter\n{line}# EOF\n"),
                Format::OpenMetrics,
            );
            assert_eq!(error.line, 2, "{line}");
            assert!(error.message.contains(message), "{line}: {error}");
        }
    }

    #[test]
    fn openmetrics_strictness() {
        let cases: &[(&str, usize, &str)] = &[
            ("a 1\n\n# EOF\n", 2, "expected a metric name or \"# \""),
            ("a  1\n# EOF\n", 1, "expected a space and a value"),
            (
                "a 1 \n# EOF\n",
                1,
                "expected timestamp, exemplar or end of line",
            ),
            (
                "a 1  2\n# EOF\n",
                1,
                "expected timestamp, exemplar or end of line",
            ),
            (
                "a {b=\"c\"} 1\n# EOF\n",
                1,
                "expected a number, got \"{b=\\\"c\\\"}\"",
            ),
            ("a{b=\"c\" } 1\n# EOF\n", 1, "expected comma or brace close"),
            ("a{b = \"c\"} 1\n# EOF\n", 1, "expected equal"),
            ("a{,} 1\n# EOF\n", 1, "expected label name"),
            ("a{b=\"c\",,} 1\n# EOF\n", 1, "expected label name"),
            ("a{b=\"x\ny\"} 1\n# EOF\n", 1, "expected label value"),
            ("# just a comment\n# EOF\n", 1, "\"# HELP \""),
            ("#HELP a x\n# EOF\n", 1, "expected a metric name or \"# \""),
            ("# HELP a\n# EOF\n", 1, "text up to a newline in HELP"),
            ("# TYPE a untyped\n# EOF\n", 1, "invalid metric type"),
            ("# TYPE a counter \n# EOF\n", 1, "invalid metric type"),
            (
                "# UNIT a_bytes seconds\n# EOF\n",
                1,
                "suffix of the metric name",
            ),
            (
                "# UNIT seconds seconds\n# EOF\n",
                1,
                "suffix of the metric name",
            ),
            ("a 1\r\n# EOF\n", 1, "expected a number"),
            ("a 1\n# EOF\nb 1\n", 3, "after \"# EOF\""),
            ("a 1\n# EOF\n\n", 3, "after \"# EOF\""),
            ("a 1\n# EOF \n", 2, "after \"# EOF\""),
            ("a 1\n", 2, "data does not end with # EOF"),
            ("", 1, "data does not end with # EOF"),
            (
                "a 1",
                1,
                "expected timestamp, exemplar or end of line, got end of input",
            ),
            ("# TYPE a counter", 1, "text up to a newline in TYPE"),
        ];
        for &(input, line, message) in cases {
            let error = err(input, Format::OpenMetrics);
            assert_eq!(error.line, line, "{input:?}: {error}");
            assert!(error.message.contains(message), "{input:?}: {error}");
        }
        // Accepted: a trailing comma, an empty unit and help, and `# EOF`
        // without a newline.
        ok(
            "a{b=\"c\",} 1\n# UNIT a \n# HELP a \n# EOF",
            Format::OpenMetrics,
        );
        ok(
            "# UNIT \"a.b_seconds\" seconds\n# EOF\n",
            Format::OpenMetrics,
        );
        let all = samples(&ok(
            "# TYPE a gaugehistogram\na_bucket{le=\"1\"} 1\n# EOF\n",
            Format::OpenMetrics,
        ));
        assert_eq!(label(&all[0], "le"), Some("1"));
    }

    #[test]
    fn openmetrics_types() {
        let kind =
            |word: &str| match &ok(&format!("# TYPE m {word}\n# EOF\n"), Format::OpenMetrics)[0] {
                Entry::Type { kind, .. } => *kind,
                other => panic!("{other:?}"),
            };
        for expected in [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Histogram,
            MetricType::GaugeHistogram,
            MetricType::Summary,
            MetricType::Info,
            MetricType::StateSet,
            MetricType::Unknown,
        ] {
            assert_eq!(kind(expected.as_str()), expected);
            assert_eq!(expected.to_string(), expected.as_str());
        }
    }

    #[test]
    fn missing_eof_is_reported_by_iteration_and_finish_alike() {
        let input = b"# TYPE a counter\na_total 1\n";
        let (entries, error) = parse_whole(input, Format::OpenMetrics);
        assert_eq!(entries.len(), 2);
        let error = error.expect("missing EOF");
        assert_eq!(error.line, 3);
        assert_eq!(
            Parser::new(input, Format::OpenMetrics).finish(),
            Err(error.clone())
        );

        let mut parser = Parser::new(input, Format::OpenMetrics);
        let taken: Vec<_> = parser.by_ref().collect();
        assert_eq!(taken.last(), Some(&Err(error.clone())));
        assert_eq!(parser.next_entry(), None);
        assert_eq!(parser.finish(), Err(error.clone()));

        let mut state = ParserState::new();
        for piece in [&input[..5], &input[5..20], &input[20..]] {
            let mut parser = Parser::resume(piece, Format::OpenMetrics, state);
            while let Some(result) = parser.next_entry() {
                result.expect("no error before the end");
            }
            state = parser.into_state();
        }
        assert_eq!(
            Parser::resume_last(b"", Format::OpenMetrics, state.clone()).finish(),
            Err(error.clone())
        );
        assert_eq!(
            Parser::resume(b"", Format::OpenMetrics, state).finish(),
            Err(error)
        );

        let mut parser = Parser::resume(b"a 1\n# EOF\n", Format::OpenMetrics, ParserState::new());
        assert!(parser.by_ref().all(|r| r.is_ok()));
        let state = parser.into_state();
        assert_eq!(
            Parser::resume_last(b"", Format::OpenMetrics, state.clone()).finish(),
            Ok(())
        );
        let error = Parser::resume_last(b"x", Format::OpenMetrics, state).finish();
        assert_eq!(error.map_err(|e| e.line), Err(3));
    }

    #[test]
    fn text_final_line_in_a_last_piece_is_returned() {
        let mut parser = Parser::resume(b"a 1\nb", Format::Text, ParserState::new());
        assert_eq!(parser.by_ref().count(), 1);
        let state = parser.into_state();
        assert_eq!(state.line(), 2);
        let mut parser = Parser::resume_last(b" 2", Format::Text, state);
        let Some(Ok(Entry::Sample(sample))) = parser.next_entry() else {
            panic!("carried sample");
        };
        assert_eq!((sample.name.as_ref(), sample.value), ("b", 2.0));
        assert!(parser.next_entry().is_none());
        assert_eq!(parser.finish(), Ok(()));
    }

    #[test]
    fn into_state_before_the_end_loses_nothing() {
        let input = b"a 1\nb 2\nc 3\n";
        let mut parser = Parser::resume(&input[..6], Format::Text, ParserState::new());
        assert!(parser.next_entry().is_some());
        let state = parser.into_state();
        let rest: Vec<String> = Parser::resume_last(&input[6..], Format::Text, state)
            .map(|r| match r {
                Ok(Entry::Sample(s)) => s.name.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(rest, ["b", "c"]);
    }

    #[test]
    fn an_entry_left_open_across_pieces_is_bounded() {
        let mut parser = Parser::resume(
            b"ok 1\nm{a=\"never closed\n",
            Format::Text,
            ParserState::new(),
        );
        assert!(matches!(parser.next_entry(), Some(Ok(_))));
        assert_eq!(parser.next_entry(), None);
        let state = parser.into_state();
        let small = Parser::resume(b"still open\n", Format::Text, state.clone()).next_entry();
        assert_eq!(small, None);
        let huge = vec![b'x'; MAX_PENDING_ENTRY];
        let error = Parser::resume(&huge, Format::Text, state)
            .next_entry()
            .expect("an error")
            .expect_err("only an error can come out");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("64 MiB"), "{error}");
    }

    #[test]
    fn errors_end_iteration() {
        let mut parser = Parser::new(b"a 1\nb\nc 3\n", Format::Text);
        assert!(matches!(parser.next_entry(), Some(Ok(_))));
        assert!(matches!(parser.next_entry(), Some(Err(_))));
        assert_eq!(parser.next_entry(), None);
        let state = parser.into_state();
        assert_eq!(
            Parser::resume_last(b"d 4\n", Format::Text, state).next_entry(),
            None
        );
    }

    // --- Type tracking and normalization ---------------------------------

    #[test]
    fn le_and_quantile_are_normalized_per_current_type() {
        let input = "# TYPE h histogram\n\
            h_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 1\n\
            h_bucket{le=\"1e6\"} 1\nh_bucket{le=\"100000\"} 1\nh_bucket{le=\"0.00001\"} 1\n\
            h_bucket{le=\"inf\"} 1\nh_bucket{le=\"-0\"} 1\nh_bucket{le=\"0x1p-2\"} 1\n\
            h_bucket{le=\"1_0\"} 1\nh_bucket{le=\"abc\"} 1\nh_bucket{le=\"1e400\"} 1\n\
            h_bucket{\"le\"=\"2\"} 1\nh_sum{quantile=\"1\"} 1\n\
            other_family{le=\"3\"} 1\n\
            # TYPE s summary\ns{quantile=\"0\",le=\"1\"} 1\ns{quantile=\"0.99\"} 1\n\
            # TYPE g gauge\ng{le=\"1\",quantile=\"1\"} 1\n";
        let all = samples(&ok(input, Format::Text));
        let got: Vec<String> = all
            .iter()
            .map(|s| {
                let labels: Vec<String> =
                    s.labels.iter().map(|(n, v)| format!("{n}={v}")).collect();
                labels.join(",")
            })
            .collect();
        assert_eq!(
            got,
            [
                "le=1.0",
                "le=0.5",
                "le=+Inf",
                "le=1e+06",
                "le=100000.0",
                "le=1e-05",
                "le=+Inf",
                "le=0.0",
                "le=0.25",
                "le=10.0",
                "le=abc",
                "le=1e400",
                "le=2.0",
                "quantile=1",
                // Like Prometheus: the last TYPE applies whatever the family.
                "le=3.0",
                "quantile=0.0,le=1",
                "quantile=0.99",
                "le=1,quantile=1",
            ]
        );
        let borrowed = first_sample(
            b"# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\n",
            Format::Text,
        );
        assert!(matches!(borrowed.labels[0].1, Cow::Borrowed(_)));
        let rewritten = first_sample(b"# TYPE h histogram\nh_bucket{le=\"5\"} 1\n", Format::Text);
        assert!(matches!(rewritten.labels[0].1, Cow::Owned(_)));
        let om = samples(&ok(
            "# TYPE h histogram\nh_bucket{le=\"10\"} 1\n# TYPE s summary\ns{quantile=\"1\"} 1\n# EOF\n",
            Format::OpenMetrics,
        ));
        assert_eq!(
            (label(&om[0], "le"), label(&om[1], "quantile")),
            (Some("10.0"), Some("1.0"))
        );
    }

    #[test]
    fn type_tracking_survives_pieces() {
        let mut parser = Parser::resume(b"# TYPE h histogram\n", Format::Text, ParserState::new());
        assert!(parser.by_ref().all(|r| r.is_ok()));
        assert_eq!(parser.current_type(), MetricType::Histogram);
        let state = parser.into_state();
        assert_eq!(
            (state.current_type(), state.current_family()),
            (MetricType::Histogram, Some("h"))
        );
        let s = match Parser::resume_last(b"h_bucket{le=\"5\"} 1\n", Format::Text, state)
            .next_entry()
        {
            Some(Ok(Entry::Sample(s))) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(label(&s, "le"), Some("5.0"));
        assert_eq!(ParserState::default().current_family(), None);
    }

    #[test]
    fn recycled_label_vectors_are_reused() {
        let input = b"a{x=\"1\",y=\"2\",z=\"3\"} 1\nb{x=\"1\"} 2\n";
        let mut parser = Parser::new(input, Format::Text);
        let Some(Ok(Entry::Sample(first))) = parser.next_entry() else {
            panic!("sample");
        };
        let buffer = first.labels.as_ptr();
        parser.recycle(first.labels);
        let Some(Ok(Entry::Sample(second))) = parser.next_entry() else {
            panic!("sample");
        };
        assert_eq!(second.labels.as_ptr(), buffer);
        assert_eq!(second.labels.len(), 1);
    }

    // --- Floats ------------------------------------------------------------

    #[test]
    fn go_float_matches_strconv() {
        let cases: &[(&str, Result<f64, FloatError>)] = &[
            ("0", Ok(0.0)),
            ("+1.5e3", Ok(1500.0)),
            ("1E-2", Ok(0.01)),
            (".5", Ok(0.5)),
            ("5.", Ok(5.0)),
            ("00.5", Ok(0.5)),
            ("inf", Ok(f64::INFINITY)),
            ("-INFINITY", Ok(f64::NEG_INFINITY)),
            ("infinit", Err(FloatError::Syntax)),
            ("-nan", Err(FloatError::Syntax)),
            ("1e400", Err(FloatError::Range)),
            ("-1e400", Err(FloatError::Range)),
            ("1e-400", Ok(0.0)),
            ("1_000.5", Ok(1000.5)),
            ("1__0", Err(FloatError::Syntax)),
            ("_1", Err(FloatError::Syntax)),
            ("1_", Err(FloatError::Syntax)),
            ("1_.5", Err(FloatError::Syntax)),
            ("0x1p-2", Ok(0.25)),
            ("0X1.8P1", Ok(3.0)),
            ("-0x_1p0", Ok(-1.0)),
            ("0x.8p1", Ok(1.0)),
            ("0x10", Err(FloatError::Syntax)),
            ("0x", Err(FloatError::Syntax)),
            ("0x1p1024", Err(FloatError::Range)),
            ("0x1.fffffffffffffp1023", Ok(f64::MAX)),
            ("0x1.fffffffffffff8p1023", Err(FloatError::Range)),
            ("0x1p-1074", Ok(5e-324)),
            ("0x1p-1075", Ok(0.0)),
            ("0x1.0000000000001p-1075", Ok(5e-324)),
            ("0x3p-1076", Ok(5e-324 * 1.0)),
            ("0x1p-1022", Ok(f64::MIN_POSITIVE)),
            ("0x1.00000000000008p0", Ok(1.0)),
            ("0x1.00000000000018p0", Ok(1.0 + 2.0 * f64::EPSILON)),
            ("0x1.000000000000080000001p0", Ok(1.0 + f64::EPSILON)),
            ("1e", Err(FloatError::Syntax)),
            ("", Err(FloatError::Syntax)),
            (".", Err(FloatError::Syntax)),
            (" 1", Err(FloatError::Syntax)),
        ];
        for &(input, expected) in cases {
            let got = go_float(input.as_bytes());
            match (got, expected) {
                (Ok(a), Ok(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{input}"),
                (a, b) => assert_eq!(a, b, "{input}"),
            }
        }
        assert!(go_float(b"NaN").is_ok_and(f64::is_nan));
        assert_eq!(prometheus_float(b"0x1p-2"), Err(FloatError::Unsupported));
        assert_eq!(prometheus_float(b"1_0"), Err(FloatError::Unsupported));
    }

    #[test]
    fn openmetrics_float_formatting_matches_go() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (-1.0, "-1.0"),
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.5, "0.5"),
            (10.0, "10.0"),
            (123_456.0, "123456.0"),
            (999_999.0, "999999.0"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-0.00089, "-0.00089"),
            (-8.999999999999979e-05, "-8.999999999999979e-05"),
            (8.999999999999998, "8.999999999999998"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (2.5, "2.5"),
            (100_000.5, "100000.5"),
        ];
        for &(value, expected) in cases {
            let mut buf = SmallBuf::default();
            format_openmetrics_float(value, &mut buf).expect("fits");
            assert_eq!(
                String::from_utf8_lossy(buf.as_bytes()),
                expected,
                "{value:e}"
            );
        }
    }

    // --- Content type and accept header -------------------------------------

    #[test]
    fn format_from_content_type() {
        let om = Format::OpenMetrics;
        let text = Format::Text;
        let cases: &[(Option<&str>, Format)] = &[
            (
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                om,
            ),
            (Some("application/openmetrics-text;version=0.0.1"), om),
            (Some("Application/OpenMetrics-Text"), om),
            (
                Some("  application/openmetrics-text  ;  version = \"1.0.0\" "),
                om,
            ),
            (Some("application/openmetrics-text;"), om),
            (Some("text/plain; version=0.0.4; charset=utf-8"), text),
            (Some("application/vnd.google.protobuf"), text),
            (Some("application/json"), text),
            (Some(""), text),
            (None, text),
            (Some("application/openmetrics-text; version"), text),
            (
                Some("application/openmetrics-text; version=1; version=2"),
                text,
            ),
            (Some("application/openmetrics-text; version=\"\""), text),
            (Some("application/openmetrics-text; ;"), text),
            (Some("application/openmetrics-text/x"), text),
        ];
        for &(header, expected) in cases {
            assert_eq!(Format::from_content_type(header), expected, "{header:?}");
        }
        assert_eq!(
            SCRAPE_ACCEPT,
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
             text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        );
    }
}
