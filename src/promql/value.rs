//! What a PromQL query returns, and what the engine reads: the result
//! types of Prometheus's API (scalar, string, instant vector, range vector),
//! the query error kinds, and the [`Queryable`] interface over a store.

use std::fmt;

use crate::storage::{Labels, Matcher};

/// One series read from a store: its labels and samples in time order
/// (stale markers included; the engine interprets them).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    /// The label set, `__name__` included.
    pub labels: Labels,
    /// `(timestamp ms, value)` in time order.
    pub samples: Vec<(i64, f64)>,
}

/// What the engine reads: the series matching every matcher that have
/// samples in `[mint, maxt]` (inclusive), with those samples.
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
        selected
            .into_iter()
            .map(|series| {
                let samples = series.samples().map_err(|e| e.to_string())?;
                Ok(SeriesData {
                    labels: series.labels,
                    samples,
                })
            })
            .collect()
    }
}

/// A float as Prometheus writes it in label values and the API: Go's
/// shortest representation without exponent (`strconv.FormatFloat(v, 'f',
/// -1, 64)`), and `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        // Rust's shortest round-trip formatting never uses an exponent
        // either, and prints the same digits.
        format!("{v}")
    }
}
