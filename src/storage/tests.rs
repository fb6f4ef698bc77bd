//! Behaviour of the store through its interface: append outcomes, selection
//! by matchers, label APIs, restart, and concurrent appenders.

use std::sync::Arc;

use super::*;

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        samples: samples.to_vec(),
    }
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).unwrap()
}

fn open(dir: &std::path::Path) -> Storage {
    let kv = Kv::open(dir).unwrap();
    Storage::open(&kv, StorageOptions::default()).unwrap().0
}

const T0: i64 = 1_700_000_000_000;

#[test]
fn every_sample_gets_an_outcome_and_good_ones_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let up = &[("__name__", "up"), ("job", "a")];
    let report = storage
        .append_blocking(&[series(up, &[(T0, 1.0), (T0 + 15_000, 1.0)])])
        .unwrap();
    assert_eq!((report.stored, report.new_series), (2, 1));

    let report = storage
        .append_blocking(&[
            series(up, &[(T0 + 15_000, 1.0)]),        // same value: duplicate
            series(up, &[(T0 + 15_000, 2.0)]),        // other value: conflict
            series(up, &[(T0 + 5_000, 1.0)]),         // older than newest: out of order
            series(up, &[(T0 - 3 * 3_600_000, 1.0)]), // before the head window: too old
            series(&[("job", "no-name")], &[(T0, 1.0)]), // no metric name
            series(
                &[("__name__", "x"), ("a", "1"), ("a", "2")],
                &[(T0, 1.0), (T0 + 1, 1.0)],
            ),
            series(up, &[(T0 + 30_000, f64::from_bits(labels::STALE_NAN_BITS))]),
        ])
        .unwrap();
    assert_eq!(report.stored, 1);
    assert_eq!(report.duplicates, 1);
    assert_eq!(report.rejected[&Rejection::ConflictingDuplicate], 1);
    assert_eq!(report.rejected[&Rejection::OutOfOrder], 1);
    assert_eq!(report.rejected[&Rejection::TooOld], 1);
    assert_eq!(report.rejected[&Rejection::InvalidLabels], 3);
    assert!(
        report
            .examples
            .iter()
            .any(|e| e.contains("duplicate label name \"a\"")),
        "{:?}",
        report.examples
    );

    let selected = storage.select(&[m(MatchOp::Equal, "__name__", "up")], i64::MIN, i64::MAX);
    let samples = selected[0].samples().unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(
        samples[2].1.to_bits(),
        labels::STALE_NAN_BITS,
        "stale marker kept bit for bit"
    );
}

#[test]
fn matchers_follow_prometheus_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let batch = [
        series(
            &[
                ("__name__", "http_requests_total"),
                ("status_code", "200"),
                ("endpoint", "/a"),
            ],
            &[(T0, 1.0)],
        ),
        series(
            &[
                ("__name__", "http_requests_total"),
                ("status_code", "503"),
                ("endpoint", "/a"),
            ],
            &[(T0, 2.0)],
        ),
        series(
            &[("__name__", "http_requests_total"), ("status_code", "500")],
            &[(T0, 3.0)],
        ),
        series(&[("__name__", "up"), ("job", "x")], &[(T0, 1.0)]),
    ];
    storage.append_blocking(&batch).unwrap();
    let names = |matchers: &[Matcher]| -> Vec<String> {
        storage
            .select(matchers, i64::MIN, i64::MAX)
            .iter()
            .map(|s| s.labels.to_string())
            .collect()
    };
    let errors = names(&[
        m(MatchOp::Equal, "__name__", "http_requests_total"),
        m(MatchOp::Regex, "status_code", "5.."),
    ]);
    // Sorted as Prometheus compares label sets: pair by pair, so `endpoint` before `status_code`.
    assert_eq!(
        errors,
        [
            r#"http_requests_total{endpoint="/a",status_code="503"}"#,
            r#"http_requests_total{status_code="500"}"#
        ]
    );
    // Anchored: "5" alone matches nothing.
    assert!(names(&[m(MatchOp::Regex, "status_code", "5")]).is_empty());
    // An empty value means "absent".
    let without_endpoint = names(&[
        m(MatchOp::Equal, "__name__", "http_requests_total"),
        m(MatchOp::Equal, "endpoint", ""),
    ]);
    assert_eq!(
        without_endpoint,
        [r#"http_requests_total{status_code="500"}"#]
    );
    let not_a = names(&[
        m(MatchOp::Regex, "__name__", ".+"),
        m(MatchOp::NotEqual, "endpoint", "/a"),
    ]);
    assert_eq!(
        not_a.len(),
        2,
        "series without the label match !=: {not_a:?}"
    );
    assert_eq!(
        names(&[m(MatchOp::NotRegex, "__name__", "http.*")]),
        [r#"up{job="x"}"#]
    );
    assert_eq!(
        storage.label_values("status_code", &[], i64::MIN, i64::MAX),
        ["200", "500", "503"]
    );
    assert_eq!(
        storage.label_names(&[m(MatchOp::Equal, "__name__", "up")], i64::MIN, i64::MAX),
        ["__name__", "job"]
    );
    // Time ranges are honoured.
    assert!(storage
        .select(&[m(MatchOp::Equal, "__name__", "up")], T0 + 1, T0 + 10)
        .is_empty());
    let top = storage.head().cardinality_by_value("__name__", 10);
    assert_eq!(top[0], ("http_requests_total".to_string(), 3));
}

#[test]
fn a_reopened_store_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    // 50 series × 300 samples, sent as a scraper would: 20 samples of every series per batch.
    let batches: Vec<Vec<SeriesSamples>> = (0..15i64)
        .map(|slice| {
            (0..50i64)
                .map(|i| {
                    let samples: Vec<(i64, f64)> = (slice * 20..slice * 20 + 20)
                        .map(|j| (T0 + j * 15_000, (i * j) as f64))
                        .collect();
                    series(&[("__name__", "m"), ("i", &i.to_string())], &samples)
                })
                .collect()
        })
        .collect();
    let before: Vec<(String, Vec<(i64, f64)>)> = {
        let storage = open(dir.path());
        for batch in &batches {
            assert_eq!(storage.append_blocking(batch).unwrap().stored, 1000);
        }
        storage
            .select(&[m(MatchOp::Equal, "__name__", "m")], i64::MIN, i64::MAX)
            .iter()
            .map(|s| (s.labels.to_string(), s.samples().unwrap()))
            .collect()
    };
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, replay) = Storage::open(&kv, StorageOptions::default()).unwrap();
    assert_eq!((replay.series, replay.samples), (50, 15_000));
    let after: Vec<(String, Vec<(i64, f64)>)> = storage
        .select(&[m(MatchOp::Equal, "__name__", "m")], i64::MIN, i64::MAX)
        .iter()
        .map(|s| (s.labels.to_string(), s.samples().unwrap()))
        .collect();
    assert_eq!(before, after);
    assert_eq!(storage.head_stats().samples, 15_000);
    // New series after a restart get fresh refs, not reused ones.
    let report = storage
        .append_blocking(&[series(&[("__name__", "new")], &[(T0 + 5_000_000, 1.0)])])
        .unwrap();
    assert_eq!(report.new_series, 1);
    assert_eq!(storage.select(&[], i64::MIN, i64::MAX).len(), 51);
}

#[test]
fn concurrent_appenders_of_the_same_series_lose_nothing_they_were_told_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let storage = storage.clone();
            std::thread::spawn(move || {
                let mut stored = Vec::new();
                for round in 0..200i64 {
                    // Every thread offers the same timestamps, with its own value.
                    let t = T0 + round * 1000;
                    let report = storage
                        .append_blocking(&[series(
                            &[("__name__", "shared")],
                            &[(t, thread as f64)],
                        )])
                        .unwrap();
                    if report.stored == 1 {
                        stored.push((t, thread as f64));
                    }
                }
                stored
            })
        })
        .collect();
    let mut acknowledged: Vec<(i64, f64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acknowledged.sort_by_key(|s| s.0);
    let kept = storage.select(
        &[m(MatchOp::Equal, "__name__", "shared")],
        i64::MIN,
        i64::MAX,
    )[0]
    .samples()
    .unwrap();
    assert_eq!(
        kept, acknowledged,
        "exactly the acknowledged samples are stored"
    );
    drop(storage);
    let reopened = open(dir.path());
    let replayed = reopened.select(
        &[m(MatchOp::Equal, "__name__", "shared")],
        i64::MIN,
        i64::MAX,
    )[0]
    .samples()
    .unwrap();
    assert_eq!(replayed, acknowledged, "and they survive a restart");
}
