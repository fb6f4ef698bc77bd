//! The JSON body of a `query` or `query_range` answer, written straight
//! into bytes and handed out in pieces as it is written: a dashboard's
//! range query can return millions of points, and building a
//! `serde_json::Value` tree of them, or even the whole body, first costs
//! several times the time and memory of the answer itself.
//!
//! The shapes are Prometheus's: sample times as Unix seconds with at most
//! three decimals (`1435781451.781`, `1435781451`), values as strings
//! (`"1.5"`, `"NaN"`, `"+Inf"`), `metric` objects with the labels in order.

use crate::promql::{write_value, QueryResult, Value};
use crate::storage::Labels;

/// Bytes of body handed out at a time.
const PIECE_BYTES: usize = 256 << 10;

/// Collects the body and hands it to `sink` in pieces of about
/// [`PIECE_BYTES`]; stops early when `sink` returns false (the client left).
struct Pieces<'s> {
    out: Vec<u8>,
    sink: &'s mut dyn FnMut(Vec<u8>) -> bool,
    open: bool,
}

impl Pieces<'_> {
    /// Hands the bytes so far out once they make a piece; false once the
    /// receiver is gone.
    fn flush_if_full(&mut self) -> bool {
        if self.out.len() >= PIECE_BYTES && self.open {
            let piece = std::mem::replace(&mut self.out, Vec::with_capacity(PIECE_BYTES * 9 / 8));
            self.open = (self.sink)(piece);
        }
        self.open
    }
}

/// Writes the `{"status":"success","data":…}` body of a query answer, with
/// `data.stats` when `with_stats` (`stats=all`), handing it to `sink` in
/// pieces; stops when `sink` returns false.
pub fn write_success(
    result: &QueryResult,
    with_stats: bool,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) {
    let mut pieces = Pieces {
        out: Vec::with_capacity(PIECE_BYTES * 9 / 8),
        sink,
        open: true,
    };
    write_body(result, with_stats, &mut pieces);
    if pieces.open && !pieces.out.is_empty() {
        (pieces.sink)(pieces.out);
    }
}

fn write_body(result: &QueryResult, with_stats: bool, pieces: &mut Pieces<'_>) {
    let out = &mut pieces.out;
    out.extend_from_slice(b"{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.extend_from_slice(result.value.type_name().as_bytes());
    out.extend_from_slice(b"\",\"result\":");
    match &result.value {
        Value::Scalar { t, v } => point(out, *t, *v),
        Value::String { t, v } => {
            out.push(b'[');
            seconds(out, *t);
            out.push(b',');
            string(out, v);
            out.push(b']');
        }
        Value::Vector(samples) => {
            let written = series_list(pieces, samples, |out, sample| {
                labels(out, &sample.labels);
                out.extend_from_slice(b",\"value\":");
                point(out, sample.t, sample.v);
            });
            if !written {
                return;
            }
        }
        Value::Matrix(series) => {
            let written = series_list(pieces, series, |out, s| {
                labels(out, &s.labels);
                out.extend_from_slice(b",\"values\":[");
                for (j, (t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    point(out, *t, *v);
                }
                out.push(b']');
            });
            if !written {
                return;
            }
        }
    }
    let out = &mut pieces.out;
    if with_stats {
        let eval = result.stats.eval_seconds;
        out.extend_from_slice(b",\"stats\":");
        let stats = serde_json::json!({
            "timings": {
                "evalTotalTime": eval,
                "resultSortTime": 0.0,
                "queryPreparationTime": 0.0,
                "innerEvalTime": eval,
                "execQueueTime": 0.0,
                "execTotalTime": eval,
            },
            "samples": {
                "totalQueryableSamples": result.stats.total_queryable_samples,
                "peakSamples": result.stats.peak_samples,
            },
        });
        out.extend_from_slice(stats.to_string().as_bytes());
    }
    out.push(b'}');
    for (key, notes) in [("warnings", &result.warnings), ("infos", &result.infos)] {
        if !notes.is_empty() {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(
                serde_json::Value::from(notes.clone())
                    .to_string()
                    .as_bytes(),
            );
        }
    }
    out.push(b'}');
}

/// `[{"metric":…},…]`: each series' object, its labels and values
/// written by `series` after `{"metric":`, pieces handed out as they fill.
/// False once the client left.
fn series_list<T>(pieces: &mut Pieces<'_>, list: &[T], series: impl Fn(&mut Vec<u8>, &T)) -> bool {
    pieces.out.push(b'[');
    for (i, item) in list.iter().enumerate() {
        let out = &mut pieces.out;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"metric\":");
        series(out, item);
        out.push(b'}');
        if !pieces.flush_if_full() {
            return false;
        }
    }
    pieces.out.push(b']');
    true
}

/// `[seconds, "value"]`.
fn point(out: &mut Vec<u8>, t: i64, v: f64) {
    out.push(b'[');
    seconds(out, t);
    out.extend_from_slice(b",\"");
    write_value(out, v);
    out.extend_from_slice(b"\"]");
}

/// A time in ms as Unix seconds: `1435781451`, `1435781451.5`,
/// `-0.001`.
fn seconds(out: &mut Vec<u8>, t: i64) {
    if t < 0 {
        out.push(b'-');
    }
    let whole = t.unsigned_abs() / 1000;
    let millis = (t.unsigned_abs() % 1000) as usize;
    out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
    if millis > 0 {
        let digits = [
            b'.',
            b'0' + (millis / 100) as u8,
            b'0' + (millis / 10 % 10) as u8,
            b'0' + (millis % 10) as u8,
        ];
        let significant = if millis % 100 == 0 {
            2
        } else if millis % 10 == 0 {
            3
        } else {
            4
        };
        out.extend_from_slice(&digits[..significant]);
    }
}

/// A JSON string, escaped.
fn string(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `{"name":"value",…}`.
fn labels(out: &mut Vec<u8>, labels: &Labels) {
    out.push(b'{');
    for (i, (name, value)) in labels.pairs().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        string(out, value);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::{QueryStats, RangeSeries, Sample};

    fn result(value: Value) -> QueryResult {
        QueryResult {
            value,
            warnings: Vec::new(),
            infos: vec!["PromQL info: a \"note\"".into()],
            stats: QueryStats::default(),
        }
    }

    fn body(result: &QueryResult, with_stats: bool) -> Vec<u8> {
        let mut body = Vec::new();
        write_success(result, with_stats, &mut |piece| {
            body.extend(piece);
            true
        });
        body
    }

    fn parsed(result: &QueryResult, with_stats: bool) -> serde_json::Value {
        serde_json::from_slice(&body(result, with_stats)).unwrap()
    }

    #[test]
    fn large_answers_come_in_pieces_and_stop_when_the_client_leaves() {
        let series: Vec<RangeSeries> = (0..2_000)
            .map(|i| RangeSeries {
                labels: Labels::from_sorted(vec![("i".into(), i.to_string())]),
                points: (0..100).map(|t| (t * 1_000, 0.5)).collect(),
            })
            .collect();
        let result = result(Value::Matrix(series));
        let mut sizes = Vec::new();
        write_success(&result, false, &mut |piece| {
            sizes.push(piece.len());
            true
        });
        assert!(sizes.len() > 3, "{sizes:?}");
        assert!(sizes.iter().all(|s| *s <= 2 * PIECE_BYTES), "{sizes:?}");
        let whole = parsed(&result, false);
        assert_eq!(whole["data"]["result"].as_array().unwrap().len(), 2_000);
        assert_eq!(
            whole["data"]["result"][1999]["values"][99],
            serde_json::json!([99, "0.5"])
        );
        let mut calls = 0;
        write_success(&result, false, &mut |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
    }

    #[test]
    fn times_are_seconds_with_at_most_three_decimals() {
        for (t, want) in [
            (1_435_781_451_000, "1435781451"),
            (1_435_781_451_500, "1435781451.5"),
            (1_435_781_451_780, "1435781451.78"),
            (1_435_781_451_781, "1435781451.781"),
            (1_435_781_451_001, "1435781451.001"),
            (0, "0"),
            (-1, "-0.001"),
            (-1_500, "-1.5"),
        ] {
            let mut out = Vec::new();
            seconds(&mut out, t);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{t}");
        }
    }

    #[test]
    fn a_matrix_is_written_as_prometheus_writes_it() {
        let labels = Labels::from_sorted(vec![
            ("__name__".into(), "up".into()),
            ("path".into(), "/a\"b\\c\n".into()),
        ]);
        let value = Value::Matrix(vec![RangeSeries {
            labels,
            points: vec![(1_000, 1.5), (2_500, f64::NAN), (3_000, f64::INFINITY)],
        }]);
        let body = parsed(&result(value), false);
        assert_eq!(
            body,
            serde_json::json!({
                "status": "success",
                "data": {"resultType": "matrix", "result": [{
                    "metric": {"__name__": "up", "path": "/a\"b\\c\n"},
                    "values": [[1, "1.5"], [2.5, "NaN"], [3, "+Inf"]],
                }]},
                "infos": ["PromQL info: a \"note\""],
            })
        );
    }

    #[test]
    fn vectors_scalars_strings_and_stats() {
        let vector = Value::Vector(vec![Sample {
            labels: Labels::from_sorted(vec![("job".into(), "a".into())]),
            t: 4_000,
            v: -0.25,
        }]);
        let body = parsed(&result(vector), true);
        assert_eq!(
            body["data"]["result"],
            serde_json::json!([{"metric": {"job": "a"}, "value": [4, "-0.25"]}])
        );
        assert_eq!(body["data"]["stats"]["samples"]["totalQueryableSamples"], 0);
        let scalar = parsed(&result(Value::Scalar { t: 4_000, v: 2.0 }), false);
        assert_eq!(
            scalar["data"],
            serde_json::json!({"resultType": "scalar", "result": [4, "2"]})
        );
        let text = Value::String {
            t: 4_000,
            v: "x\"y".into(),
        };
        let string = parsed(&result(text), false);
        assert_eq!(string["data"]["result"], serde_json::json!([4, "x\"y"]));
        let empty = parsed(&result(Value::Vector(Vec::new())), false);
        assert_eq!(empty["data"]["result"], serde_json::json!([]));
    }
}
