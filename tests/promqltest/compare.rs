//! Result comparison with `test.go`'s semantics (`compareResult`):
//!
//! - floats are equal within a relative epsilon of 1e-6 (`almost.Equal`):
//!   any two NaNs are equal, but the stale marker only equals itself;
//! - a vector is compared as a set of label sets (the metric name part of
//!   the label set), by position too under `expect ordered`; sample
//!   timestamps are not checked;
//! - a matrix must be sorted by labels, and each series must have exactly
//!   the expected points at `start + i*step` (`_` meaning no point);
//! - the result type must fit the expectation: a bare number wants a
//!   scalar, series lines want a vector or matrix, and a string result is
//!   compared with `expect string` ("" when absent).

use fleetmon::promql::{RangeSeries, Sample, Value};
use fleetmon::storage::labels::STALE_NAN_BITS;

use super::script::{Expectations, ExpectedSeries, ExpectedValue, Steps};
use super::series::format_labels;

/// Relative error allowed between an expected and an actual value.
const EPSILON: f64 = 0.000_001;

/// `almost.Equal(a, b, EPSILON)`.
pub fn almost_equal(a: f64, b: f64) -> bool {
    let stale = |x: f64| x.to_bits() == STALE_NAN_BITS;
    if stale(a) || stale(b) {
        return stale(a) && stale(b);
    }
    if (a.is_nan() && b.is_nan()) || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

/// Where a matrix's expected points lie: the range of a range eval or of an
/// `expect range vector` line. `None` for a plain instant eval, where (as in
/// Prometheus, whose window then ends at the zero time) any expected matrix
/// point is "more than the query time range can return".
pub type MatrixWindow = Option<Steps>;

/// Compares a query's value with the expectations.
pub fn compare(expect: &Expectations, window: MatrixWindow, value: &Value) -> Result<(), String> {
    match (value, &expect.value) {
        (Value::Matrix(_), _) if expect.ordered => {
            Err("expected ordered result, but query returned a matrix".into())
        }
        (Value::Matrix(_) | Value::Vector(_), ExpectedValue::Scalar(_)) => Err(format!(
            "expected scalar result, but got {}",
            value.type_name()
        )),
        (Value::Matrix(matrix), ExpectedValue::Series(expected)) => {
            compare_matrix(expected, window, matrix)
        }
        (Value::Vector(vector), ExpectedValue::Series(expected)) => {
            compare_vector(expected, expect.ordered, vector)
        }
        (Value::Scalar { v, .. }, ExpectedValue::Scalar(expected)) => {
            if almost_equal(*expected, *v) {
                Ok(())
            } else {
                Err(format!("expected scalar {expected} but got {v}"))
            }
        }
        (Value::Scalar { v, .. }, ExpectedValue::Series(_)) => Err(format!(
            "expected vector or matrix result, but got scalar {v}"
        )),
        (Value::String { v, .. }, _) if *v == expect.string => Ok(()),
        (Value::String { v, .. }, _) => {
            Err(format!("expected string {:?} but got {v:?}", expect.string))
        }
    }
}

fn find<'e>(
    expected: &'e [ExpectedSeries],
    labels: &[(String, String)],
) -> Option<&'e ExpectedSeries> {
    expected.iter().find(|e| e.labels == labels)
}

fn compare_vector(
    expected: &[ExpectedSeries],
    ordered: bool,
    vector: &[Sample],
) -> Result<(), String> {
    for (index, sample) in vector.iter().enumerate() {
        let labels = sample.labels.pairs();
        let exp = find(expected, labels).ok_or_else(|| {
            format!(
                "unexpected metric {} in result, has value {}",
                format_labels(labels),
                sample.v
            )
        })?;
        if ordered && exp.position != index + 1 {
            return Err(format!(
                "expected metric {} at position {} but was at {}",
                format_labels(labels),
                exp.position,
                index + 1
            ));
        }
        // An omitted (`_`) expectation reads as 0 in Prometheus too.
        let want = exp
            .values
            .first()
            .ok_or("expected series line has no value")?
            .unwrap_or(0.0);
        if !almost_equal(want, sample.v) {
            return Err(format!(
                "expected {want} for {} but got {}",
                format_labels(labels),
                sample.v
            ));
        }
    }
    for exp in expected {
        if !vector.iter().any(|s| s.labels.pairs() == exp.labels) {
            return Err(format!(
                "expected metric {} not found",
                format_labels(&exp.labels)
            ));
        }
    }
    Ok(())
}

fn compare_matrix(
    expected: &[ExpectedSeries],
    window: MatrixWindow,
    matrix: &[RangeSeries],
) -> Result<(), String> {
    check_sorted(matrix)?;
    for series in matrix {
        let labels = series.labels.pairs();
        let exp = find(expected, labels).ok_or_else(|| {
            format!(
                "unexpected metric {} in result, has {}",
                format_labels(labels),
                format_points(&series.points)
            )
        })?;
        let want = expected_points(exp, window)?;
        if !points_match(&want, &series.points) {
            return Err(format!(
                "expected {} for {} but got {}",
                format_points(&want),
                format_labels(labels),
                format_points(&series.points)
            ));
        }
    }
    for exp in expected {
        if !matrix.iter().any(|s| s.labels.pairs() == exp.labels) {
            return Err(format!(
                "expected metric {} not found",
                format_labels(&exp.labels)
            ));
        }
    }
    Ok(())
}

/// `assertMatrixSorted`: a matrix comes sorted by label set.
pub fn check_sorted(matrix: &[RangeSeries]) -> Result<(), String> {
    match matrix
        .windows(2)
        .find(|pair| pair[0].labels.pairs() > pair[1].labels.pairs())
    {
        Some(pair) => Err(format!(
            "matrix results should always be sorted by labels, but {} comes before {}",
            format_labels(pair[0].labels.pairs()),
            format_labels(pair[1].labels.pairs())
        )),
        None => Ok(()),
    }
}

/// The points an expected line stands for, timed from the window.
fn expected_points(exp: &ExpectedSeries, window: MatrixWindow) -> Result<Vec<(i64, f64)>, String> {
    let too_many = || {
        format!(
            "expected {} points for {}, but query time range cannot return this many points",
            exp.values.len(),
            format_labels(&exp.labels)
        )
    };
    let mut points = Vec::new();
    for (index, value) in exp.values.iter().enumerate() {
        let steps = window.ok_or_else(too_many)?;
        let t = i64::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(steps.step_ms))
            .and_then(|offset| offset.checked_add(steps.start_ms))
            .filter(|t| *t <= steps.end_ms)
            .ok_or_else(too_many)?;
        points.extend(value.map(|v| (t, v)));
    }
    Ok(points)
}

fn points_match(want: &[(i64, f64)], got: &[(i64, f64)]) -> bool {
    want.len() == got.len()
        && want
            .iter()
            .zip(got)
            .all(|((wt, wv), (gt, gv))| wt == gt && almost_equal(*wv, *gv))
}

fn format_points(points: &[(i64, f64)]) -> String {
    let shown: Vec<String> = points.iter().map(|(t, v)| format!("{v} @[{t}]")).collect();
    format!("{} points [{}]", points.len(), shown.join(", "))
}
