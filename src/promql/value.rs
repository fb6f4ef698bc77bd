//! What a PromQL query returns, and what the engine reads: the result
//! types of Prometheus's API (scalar, string, instant vector, range vector),
//! the query error kinds, and the [`Queryable`] interface over a store.

use std::fmt;
use std::io::Write;

use crate::storage::{Labels, Matcher};

/// One series read from a store: its labels, and its samples to read when
/// the engine gets to it (so that a query over many series holds the
/// samples of a few at a time, not all of them).
pub struct SeriesData {
    /// The label set, `__name__` included.
    pub labels: Labels,
    /// Its samples.
    pub samples: Box<dyn SampleSource>,
}

/// The samples of one selected series, read on demand.
pub trait SampleSource: Send + Sync {
    /// `(timestamp ms, value)` in time order, stale markers included (the
    /// engine interprets them); may include samples outside the selected
    /// range.
    fn read(&self) -> Result<Vec<(i64, f64)>, String>;
}

/// Samples already in memory.
impl SampleSource for Vec<(i64, f64)> {
    fn read(&self) -> Result<Vec<(i64, f64)>, String> {
        Ok(self.clone())
    }
}

impl SampleSource for crate::storage::Series {
    fn read(&self) -> Result<Vec<(i64, f64)>, String> {
        self.samples().map_err(|e| e.to_string())
    }
}

/// What the engine reads: the series matching every matcher that have
/// samples in `[mint, maxt]` (inclusive).
pub trait Queryable: Send + Sync {
    /// Selects series; sorted by labels.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64)
        -> Result<Vec<SeriesData>, String>;
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels (without `__name__` once a function dropped it).
    pub labels: Labels,
    /// Evaluation time, ms.
    pub t: i64,
    /// The value.
    pub v: f64,
}

/// One series of a range vector.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// The series' labels.
    pub labels: Labels,
    /// `(timestamp ms, value)` in time order.
    pub points: Vec<(i64, f64)>,
}

/// A query's value, as Prometheus's API types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `scalar`: `[t, "v"]`.
    Scalar {
        /// Evaluation time, ms.
        t: i64,
        /// The value.
        v: f64,
    },
    /// `string`: `[t, "v"]`.
    String {
        /// Evaluation time, ms.
        t: i64,
        /// The string.
        v: String,
    },
    /// `vector`: the result of an instant query over a vector expression.
    Vector(Vec<Sample>),
    /// `matrix`: a range query's result, or an instant query of a range
    /// selector or subquery.
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// `scalar`, `string`, `vector` or `matrix`, as the API names the type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A query's value with the annotations Prometheus attaches.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// `warnings` of the API answer (e.g. a histogram with bad buckets).
    pub warnings: Vec<String>,
    /// `infos` of the API answer (e.g. rate over a metric not named like a counter).
    pub infos: Vec<String>,
    /// What the evaluation cost (`stats=all`).
    pub stats: QueryStats,
}

/// A query's statistics, as Prometheus reports them with `stats=all`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueryStats {
    /// Samples read from the store.
    pub total_queryable_samples: u64,
    /// Points the evaluation held (an upper bound of the peak).
    pub peak_samples: u64,
    /// Time spent evaluating, seconds.
    pub eval_seconds: f64,
}

/// Why a query failed, with the API's `errorType` and status.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// The query does not parse or is invalid (`bad_data`, 400).
    BadData(String),
    /// Evaluation failed (`execution`, 422): many-to-many matching,
    /// duplicate series, too many samples, …
    Execution(String),
    /// `--query.timeout` passed (`timeout`, 503).
    Timeout(String),
    /// Cancelled (`canceled`, 503).
    Canceled(String),
    /// The store failed (`internal`, 500).
    Internal(String),
}

impl QueryError {
    /// Prometheus's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Canceled(_) => "canceled",
            QueryError::Internal(_) => "internal",
        }
    }

    /// The HTTP status Prometheus answers with.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::BadData(_) => 400,
            QueryError::Execution(_) => 422,
            QueryError::Timeout(_) | QueryError::Canceled(_) => 503,
            QueryError::Internal(_) => 500,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            QueryError::BadData(m)
            | QueryError::Execution(m)
            | QueryError::Timeout(m)
            | QueryError::Canceled(m)
            | QueryError::Internal(m) => m,
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for QueryError {}

impl Queryable for crate::storage::Storage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<SeriesData>, String> {
        let selected = crate::storage::Storage::select(self, matchers, mint, maxt)
            .map_err(|e| e.to_string())?;
        Ok(selected
            .into_iter()
            .map(|mut series| SeriesData {
                // The engine keeps the labels; the series needs them no more.
                labels: std::mem::replace(&mut series.labels, Labels::from_sorted(Vec::new())),
                samples: Box::new(series),
            })
            .collect())
    }
}

/// A float as Prometheus writes it in label values and the API: Go's
/// shortest representation without exponent (`strconv.FormatFloat(v, 'f',
/// -1, 64)`), and `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_value(&mut out, v);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `v` as [`format_value`] writes it (without allocating, for the
/// millions of points of a large answer).
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        // Ryū, as Go's shortest formatting, rounds exact ties to even; it
        // writes `1.0` for 1 and switches to exponents far from 1, where
        // Rust's own shortest formatting writes the plain digits.
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(v);
        if text.contains('e') {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{v}");
        } else {
            out.extend_from_slice(text.strip_suffix(".0").unwrap_or(text).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shortest_digits_without_exponent() {
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-7, "0.0000001"),
            (1e21, "1000000000000000000000"),
            (123456789.0, "123456789"),
            (0.3666666666666667, "0.3666666666666667"),
            // This double is exactly -1149636667324797.25: a tie at 17
            // digits, which goes to even, as in Go.
            (-1_149_636_667_324_797.2, "-1149636667324797.2"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(format_value(v), want);
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            // xorshift: bit patterns of every magnitude.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = f64::from_bits(state);
            if !v.is_finite() {
                continue;
            }
            let text = format_value(v);
            assert!(!text.contains('e'), "{text}");
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{text}"
            );
            let digits = |s: &str| {
                s.trim_start_matches(['-', '0', '.'])
                    .replace('.', "")
                    .trim_end_matches('0')
                    .len()
            };
            assert_eq!(
                digits(&text),
                digits(&format!("{v}")),
                "{text} is not shortest"
            );
        }
    }
}
