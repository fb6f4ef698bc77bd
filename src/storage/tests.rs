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
    Storage::open(&kv, dir, StorageOptions::default())
        .unwrap()
        .0
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

    let selected = storage
        .select(&[m(MatchOp::Equal, "__name__", "up")], i64::MIN, i64::MAX)
        .unwrap();
    let samples = selected[0].samples().unwrap();
    assert_eq!(samples.len(), 3);
    assert_eq!(
        samples[2].1.to_bits(),
        labels::STALE_NAN_BITS,
        "stale marker kept bit for bit"
    );
}

/// A batch over many series, new and known, spread over every shard and
/// with more series per shard than the append pipeline holds in flight: a
/// series given twice in one batch (the second time with its labels in
/// another order) is created once, and every sample lands in its series,
/// in the batch's order.
#[test]
fn a_batch_over_many_series_finds_each_series_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let n = 2_000;
    let ids: Vec<String> = (0..n).map(|i| format!("{i:05}")).collect();
    // Each new series twice in a row: the second is looked up before the
    // first has created it.
    let batch: Vec<SeriesSamples> = ids
        .iter()
        .flat_map(|id| {
            [
                series(&[("__name__", "m"), ("id", id)], &[(T0, 1.0)]),
                series(&[("id", id), ("__name__", "m")], &[(T0 + 1, 2.0)]),
            ]
        })
        .collect();
    let report = storage.append_blocking(&batch).unwrap();
    assert_eq!((report.stored, report.new_series), (2 * n as u64, n as u64));

    let known: Vec<SeriesSamples> = ids
        .iter()
        .rev()
        .map(|id| series(&[("__name__", "m"), ("id", id)], &[(T0 + 2, 3.0)]))
        .collect();
    let report = storage.append_blocking(&known).unwrap();
    assert_eq!((report.stored, report.new_series), (n as u64, 0));

    let selected = storage
        .select(&[m(MatchOp::Equal, "__name__", "m")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(selected.len(), n);
    for (s, id) in selected.iter().zip(&ids) {
        assert_eq!(s.labels.get("id"), Some(id.as_str()));
        assert_eq!(
            s.samples().unwrap(),
            vec![(T0, 1.0), (T0 + 1, 2.0), (T0 + 2, 3.0)]
        );
    }
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
            .unwrap()
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
        storage
            .label_values("status_code", &[], i64::MIN, i64::MAX)
            .unwrap(),
        ["200", "500", "503"]
    );
    assert_eq!(
        storage
            .label_names(&[m(MatchOp::Equal, "__name__", "up")], i64::MIN, i64::MAX)
            .unwrap(),
        ["__name__", "job"]
    );
    // Time ranges are honoured.
    assert!(storage
        .select(&[m(MatchOp::Equal, "__name__", "up")], T0 + 1, T0 + 10)
        .unwrap()
        .is_empty());
    let top = storage.head().cardinality_by_value("__name__", 10);
    assert_eq!(top[0], ("http_requests_total".to_string(), 3));
    let pairs = storage.head().cardinality_by_pair(2);
    assert_eq!(
        pairs,
        [
            ("__name__=http_requests_total".to_string(), 3),
            ("endpoint=/a".to_string(), 2)
        ]
    );
    let names = storage.head().value_counts_by_name(1);
    assert_eq!(names, [("status_code".to_string(), 3)]);
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
    let before = {
        let storage = open(dir.path());
        for batch in &batches {
            assert_eq!(storage.append_blocking(batch).unwrap().stored, 1000);
        }
        everything(&storage)
    };
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, replay) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    assert_eq!((replay.series, replay.samples), (50, 15_000));
    // The first start logged into segment 1; this one replays it and starts 2.
    assert_eq!(replay.wal_segments, (1, 2));
    assert_eq!(before, everything(&storage));
    assert_eq!(storage.head_stats().samples, 15_000);
    // New series after a restart get fresh refs, not reused ones.
    let report = storage
        .append_blocking(&[series(&[("__name__", "new")], &[(T0 + 5_000_000, 1.0)])])
        .unwrap();
    assert_eq!(report.new_series, 1);
    assert_eq!(storage.select(&[], i64::MIN, i64::MAX).unwrap().len(), 51);
}

#[test]
fn a_schema_3_series_table_moves_into_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What a schema-3 store holds: the series in the key-value store,
        // only samples in the WAL.
        let kv = Kv::open(dir.path()).unwrap();
        let legacy = kv.tree(kv::trees::SERIES).unwrap();
        // Schema 3 numbered refs so that their shard was the labels' old
        // hash modulo 16.
        let series_ref = 16
            + Labels::new([("__name__", "m"), ("job", "a")])
                .unwrap()
                .stable_hash()
                % 16;
        let mut record = vec![2];
        for s in ["__name__", "m", "job", "a"] {
            record.push(s.len() as u8);
            record.extend_from_slice(s.as_bytes());
        }
        legacy.put_raw(&series_ref.to_be_bytes(), &record).unwrap();
        kv.flush().unwrap();
        let wal = Wal::open(dir.path(), false).unwrap();
        let samples: Vec<WalSample> = (0..10)
            .map(|i| WalSample {
                series: series_ref,
                t: T0 + i * 15_000,
                v: i as f64,
            })
            .collect();
        wal.log_samples(&samples).unwrap();
        wal.commit_blocking().unwrap();
    }
    let expected = vec![(
        r#"m{job="a"}"#.to_string(),
        (0..10)
            .map(|i| (T0 + i * 15_000, i as f64))
            .collect::<Vec<_>>(),
    )];
    {
        let storage = open(dir.path());
        assert_eq!(everything(&storage), expected);
        assert!(kv::Kv::open(dir.path()).is_err(), "held by the storage");
    }
    let kv = Kv::open(dir.path()).unwrap();
    assert!(kv.tree(kv::trees::SERIES).unwrap().is_empty());
    drop(kv);
    // The series now comes from the WAL's own record.
    let storage = open(dir.path());
    assert_eq!(everything(&storage), expected);
    let report = storage
        .append_blocking(&[series(
            &[("__name__", "m"), ("job", "a")],
            &[(T0 + 200_000, 1.0)],
        )])
        .unwrap();
    assert_eq!((report.stored, report.new_series), (1, 0));
}

/// A series offered with bytes that may be its key, as the remote-write
/// receiver offers them.
struct Hinted(SeriesSamples, Vec<u8>);

impl OfferedSeries for Hinted {
    fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.labels()
    }

    fn samples(&self) -> &[(i64, f64)] {
        self.0.samples()
    }

    fn encoded_labels(&self) -> Option<&[u8]> {
        Some(&self.1)
    }
}

#[test]
fn hints_find_series_by_key_and_anything_else_falls_back_to_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let key_of = |pairs: &[(&str, &str)]| {
        let mut key = Vec::new();
        series_key::encode(pairs, &mut key);
        key
    };
    let sorted = [("__name__", "m"), ("job", "a")];
    let unsorted = [("job", "a"), ("__name__", "m")];
    let offer =
        |labels: &[(&str, &str)], hint: Vec<u8>, t: i64| Hinted(series(labels, &[(t, 1.0)]), hint);
    // A new series: its hint misses, its labels create it.
    let report = storage
        .append_blocking(&[offer(&sorted, key_of(&sorted), T0)])
        .unwrap();
    assert_eq!((report.stored, report.new_series), (1, 1));
    // Its key finds it; so do labels in another order with their own bytes,
    // and bytes that are no key at all.
    let report = storage
        .append_blocking(&[
            offer(&sorted, key_of(&sorted), T0 + 1),
            offer(&unsorted, key_of(&unsorted), T0 + 2),
            offer(&sorted, b"not a key".to_vec(), T0 + 3),
        ])
        .unwrap();
    assert_eq!((report.stored, report.new_series), (3, 0));
    // Another series' hint misses and creates it.
    let other = [("__name__", "m"), ("job", "b")];
    let report = storage
        .append_blocking(&[offer(&other, key_of(&other), T0 + 4)])
        .unwrap();
    assert_eq!((report.stored, report.new_series), (1, 1));
    // Invalid labels are refused whatever the bytes say.
    let report = storage
        .append_blocking(&[offer(&[("job", "a")], b"junk".to_vec(), T0 + 5)])
        .unwrap();
    assert_eq!(report.stored, 0);
    assert_eq!(report.rejected_total(), 1);
    let all = storage.select(&[], i64::MIN, i64::MAX).unwrap();
    let found: Vec<(String, usize)> = all
        .iter()
        .map(|s| (s.labels.to_string(), s.samples().unwrap().len()))
        .collect();
    assert_eq!(
        found,
        [
            (r#"m{job="a"}"#.to_string(), 4),
            (r#"m{job="b"}"#.to_string(), 1)
        ]
    );
}

#[test]
fn series_of_a_schema_4_store_keep_their_refs_in_their_new_shards() {
    let dir = tempfile::tempdir().unwrap();
    let labels_of = |i: u64| {
        vec![
            ("__name__".to_string(), "m".to_string()),
            ("i".to_string(), i.to_string()),
        ]
    };
    // Schema 4's refs named the shard of another hash: give every series
    // a ref whose shard is its key hash's plus one, so none is in place.
    let refs: Vec<wal::SeriesRef> = (0..40u64)
        .map(|i| {
            let labels = Labels::from_sorted(labels_of(i));
            let mut key = Vec::new();
            series_key::encode(&labels.str_pairs(), &mut key);
            let shard = (series_key::hash(&key) + 1) % head::SHARDS as u64;
            (i + 1) * head::SHARDS as u64 + shard
        })
        .collect();
    {
        let wal = Wal::open(dir.path(), false).unwrap();
        for (i, &series) in refs.iter().enumerate() {
            let labels = Labels::from_sorted(labels_of(i as u64));
            wal.log_series(series, &labels.str_pairs()).unwrap();
        }
        let samples: Vec<WalSample> = refs
            .iter()
            .enumerate()
            .map(|(i, &series)| WalSample {
                series,
                t: T0,
                v: i as f64,
            })
            .collect();
        wal.log_samples(&samples).unwrap();
        wal.commit_blocking().unwrap();
    }
    let offer = |t: i64| -> Vec<SeriesSamples> {
        (0..40u64)
            .map(|i| SeriesSamples {
                labels: labels_of(i),
                samples: vec![(t, i as f64)],
            })
            .collect()
    };
    {
        let storage = open(dir.path());
        // Found by labels: no series is created twice.
        let report = storage.append_blocking(&offer(T0 + 15_000)).unwrap();
        assert_eq!((report.stored, report.new_series), (40, 0));
        // Found by ref: reads, the WAL's labels and deletes.
        for (i, &series) in refs.iter().enumerate() {
            let labels = storage.series_labels(series).unwrap();
            assert_eq!(labels.get("i"), Some(i.to_string().as_str()));
        }
        let all = storage.select(&[], i64::MIN, i64::MAX).unwrap();
        assert_eq!(all.len(), 40);
        assert!(all.iter().all(|s| s.samples().unwrap().len() == 2));
        assert_eq!(
            storage
                .delete(&[m(MatchOp::Equal, "i", "7")], T0, T0)
                .unwrap(),
            1
        );
    }
    let storage = open(dir.path());
    let report = storage.append_blocking(&offer(T0 + 30_000)).unwrap();
    assert_eq!((report.stored, report.new_series), (40, 0));
    let all = storage.select(&[], i64::MIN, i64::MAX).unwrap();
    let counts: Vec<usize> = all.iter().map(|s| s.samples().unwrap().len()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 40 * 3 - 1, "{counts:?}");
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
    let kept = shared_samples(&storage);
    assert_eq!(
        kept, acknowledged,
        "exactly the acknowledged samples are stored"
    );
    drop(storage);
    let reopened = open(dir.path());
    let replayed = shared_samples(&reopened);
    assert_eq!(replayed, acknowledged, "and they survive a restart");
}

fn shared_samples(storage: &Storage) -> Vec<(i64, f64)> {
    storage
        .select(
            &[m(MatchOp::Equal, "__name__", "shared")],
            i64::MIN,
            i64::MAX,
        )
        .unwrap()[0]
        .samples()
        .unwrap()
}

/// Appends `hours` of 15 s samples for `n` series, as a scraper would.
fn fill(storage: &Storage, n: i64, from: i64, hours: i64) {
    let steps = hours * 240;
    for slice in (0..steps).step_by(40) {
        let batch: Vec<SeriesSamples> = (0..n)
            .map(|i| {
                let samples = (slice..(slice + 40).min(steps))
                    .map(|j| (from + j * 15_000, (i * 1000 + j) as f64))
                    .collect::<Vec<_>>();
                series(&[("__name__", "m"), ("i", &i.to_string())], &samples)
            })
            .collect();
        let report = storage.append_blocking(&batch).unwrap();
        assert_eq!(report.rejected_total(), 0, "{:?}", report.examples);
    }
}

fn everything(storage: &Storage) -> Vec<(String, Vec<(i64, f64)>)> {
    storage
        .select(&[m(MatchOp::Equal, "__name__", "m")], i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|s| (s.labels.to_string(), s.samples().unwrap()))
        .collect()
}

const HOUR: i64 = 3_600_000;
/// [`T0`] rounded down to the start of a 2 h block window.
const WINDOW_START: i64 = T0 / (2 * HOUR) * (2 * HOUR);

#[test]
fn a_block_from_the_head_is_in_label_order_not_key_order() {
    // Keys start with each message's length, so their bytes sort "b" (a
    // shorter message) before "ab"; labels sort "ab" first. The block writer
    // refuses series out of label order.
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    let start = WINDOW_START;
    let names = ["b", "ab", "a", "a\u{e9}", "aa", "B"];
    let batch: Vec<SeriesSamples> = names
        .iter()
        .map(|name| series(&[("__name__", "m"), ("x", name)], &[(start, 1.0)]))
        .collect();
    storage.append_blocking(&batch).unwrap();
    storage
        .append_blocking(&[series(&[("__name__", "late")], &[(start + 3 * HOUR, 1.0)])])
        .unwrap();
    let block = storage.compact(None).unwrap().expect("a block");
    assert_eq!(block.stats.num_series, names.len() as u64);
    let mut expected: Vec<String> = names.iter().map(|n| format!(r#"m{{x="{n}"}}"#)).collect();
    expected.sort();
    let found: Vec<String> = everything(&storage).into_iter().map(|(l, _)| l).collect();
    assert_eq!(found, expected);
}

#[test]
fn refs_of_series_dropped_before_a_restart_are_not_handed_out_again() {
    let dir = tempfile::tempdir().unwrap();
    let start = WINDOW_START;
    let handed_out = {
        let storage = open(dir.path());
        fill(&storage, 3, start, 4);
        // The newest series has samples in the first window only: compaction
        // drops it from the head, and the checkpoint drops its WAL record.
        let newest = series(&[("__name__", "gone")], &[(start + HOUR, 1.0)]);
        storage.append_blocking(&[newest]).unwrap();
        let handed_out = storage.head.next_ref();
        assert!(storage.compact(None).unwrap().is_some());
        assert_eq!(storage.head_stats().series, 3, "the series was dropped");
        handed_out
    };
    let storage = open(dir.path());
    assert!(
        storage.head.next_ref() >= handed_out,
        "{} < {handed_out}",
        storage.head.next_ref()
    );
}

#[test]
fn compaction_moves_old_windows_to_blocks_and_answers_stay_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_700_000_000_000 / (2 * HOUR) * (2 * HOUR);
    let before = {
        let storage = open(dir.path());
        fill(&storage, 20, start, 7);
        let before = everything(&storage);
        let head_samples = storage.head_stats().samples;
        let wal_bytes = storage.wal.size_bytes();
        // 7 h of data: windows [0,2h) and [2h,4h) are more than half a range old; [4h,6h) is not.
        let first = storage.compact(None).unwrap().expect("a block");
        assert_eq!(
            (first.min_time, first.max_time),
            (start, start + 2 * HOUR - 1)
        );
        assert_eq!(first.stats.num_series, 20);
        assert_eq!(first.stats.num_samples, 20 * 480);
        assert!(storage.compact(None).unwrap().is_some());
        assert!(
            storage.compact(None).unwrap().is_none(),
            "the window still being written stays in the head"
        );
        assert_eq!(storage.blocks().len(), 2);
        assert_eq!(storage.head_stats().samples, head_samples - 2 * 20 * 480);
        assert!(
            storage.wal.size_bytes() < wal_bytes,
            "the WAL was checkpointed"
        );
        assert_eq!(
            everything(&storage),
            before,
            "blocks and head together answer as the head did"
        );
        // Label values come from block indexes alone for a range only blocks cover.
        let values = storage.label_values("i", &[], start, start + HOUR).unwrap();
        assert_eq!(values.len(), 20);
        assert!(storage
            .label_names(&[], start + 20 * HOUR, start + 30 * HOUR)
            .unwrap()
            .is_empty());
        // Samples for a window already in a block are refused, not silently lost.
        let late = storage
            .append_blocking(&[series(
                &[("__name__", "m"), ("i", "0")],
                &[(start + 10, 1.0)],
            )])
            .unwrap();
        assert_eq!(late.rejected[&Rejection::TooOld], 1);
        before
    };
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, replay) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(
        replay.samples,
        20 * (7 * 240 - 2 * 480),
        "only what is not in blocks is replayed"
    );
    assert_eq!(
        everything(&storage),
        before,
        "and the same answers after a restart"
    );
    let narrow = storage
        .select(
            &[m(MatchOp::Equal, "i", "3")],
            start + HOUR,
            start + 3 * HOUR,
        )
        .unwrap();
    assert_eq!(
        narrow[0].samples().unwrap().len(),
        2 * 240 + 1,
        "a range across the block boundary"
    );
}

#[test]
fn retention_deletes_whole_blocks_by_time_and_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_700_000_000_000 / (2 * HOUR) * (2 * HOUR);
    let kv = Kv::open(dir.path()).unwrap();
    let options = StorageOptions {
        retention_time: Duration::from_secs(5 * 3600),
        ..StorageOptions::default()
    };
    let (storage, _) = Storage::open(&kv, dir.path(), options).unwrap();
    fill(&storage, 5, start, 11);
    storage.maintain(None).unwrap();
    // Newest sample at 11 h − 15 s: with 5 h of retention, blocks ending
    // before 6 h − 15 s go ([0,2h) and [2h,4h)); [4h,6h) still holds samples within 5 h.
    let blocks = storage.blocks();
    assert_eq!(
        blocks
            .iter()
            .map(|b| (b.min_time - start) / HOUR)
            .collect::<Vec<_>>(),
        [4, 6]
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join(BLOCKS_DIR))
            .unwrap()
            .count(),
        2,
        "deleted from disk too"
    );
    let oldest = storage
        .select(&[m(MatchOp::Equal, "i", "0")], i64::MIN, i64::MAX)
        .unwrap()[0]
        .samples()
        .unwrap()[0]
        .0;
    assert_eq!(oldest, start + 4 * HOUR);
    drop(storage);

    let dir = tempfile::tempdir().unwrap();
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, _) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    fill(&storage, 5, start, 9);
    while storage.compact(None).unwrap().is_some() {}
    assert_eq!(storage.blocks().len(), 3);
    let one_block = storage.blocks_size() / 3;
    drop((storage, kv));
    let kv = Kv::open(dir.path()).unwrap();
    let options = StorageOptions {
        retention_size: Some(one_block * 2),
        ..StorageOptions::default()
    };
    let (storage, _) = Storage::open(&kv, dir.path(), options).unwrap();
    fill(&storage, 5, start + 9 * HOUR, 2);
    storage.maintain(None).unwrap();
    assert!(
        storage.blocks_size() <= one_block * 2 + one_block / 2,
        "{} > {}",
        storage.blocks_size(),
        one_block * 2
    );
    assert_eq!(
        storage.blocks()[0].min_time,
        start + 4 * HOUR,
        "the oldest went first"
    );
}

#[test]
fn a_corrupted_block_is_set_aside_and_the_rest_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_700_000_000_000 / (2 * HOUR) * (2 * HOUR);
    {
        let storage = open(dir.path());
        fill(&storage, 5, start, 7);
        while storage.compact(None).unwrap().is_some() {}
        assert_eq!(storage.blocks().len(), 2);
    }
    let blocks = {
        let mut b: Vec<_> = std::fs::read_dir(dir.path().join(BLOCKS_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        b.sort();
        b
    };
    // A flipped byte in the first block's chunk data: found when read.
    let chunks = blocks[0].join("chunks");
    let mut bytes = std::fs::read(&chunks).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&chunks, bytes).unwrap();
    // A flipped byte in the second block's index: found at open.
    let index = blocks[1].join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[20] ^= 0x01;
    std::fs::write(&index, bytes).unwrap();

    let kv = Kv::open(dir.path()).unwrap();
    let (storage, _) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(
        storage.blocks().len(),
        1,
        "the block with a bad index was set aside at open"
    );
    let err = storage
        .select(&[m(MatchOp::Equal, "__name__", "m")], i64::MIN, i64::MAX)
        .unwrap_err();
    assert!(matches!(err, StorageError::CorruptBlock { .. }), "{err}");
    assert!(err.to_string().contains("chunks"), "{err}");
    // The rest keeps serving: the head's samples (from 4 h on) are all there.
    let rest = everything(&storage);
    assert_eq!(rest.len(), 5);
    assert_eq!(rest[0].1.first().unwrap().0, start + 4 * HOUR);
    assert_eq!(
        std::fs::read_dir(dir.path().join(CORRUPTED_DIR))
            .unwrap()
            .count(),
        2
    );
    assert_eq!(storage.corrupted_blocks(), 2);
}

#[test]
fn deletes_hold_in_the_head_in_blocks_across_restarts_and_after_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_700_000_000_000 / (2 * HOUR) * (2 * HOUR);
    let victim = [m(MatchOp::Regex, "i", "1|3")];
    let in_window = |samples: &[(i64, f64)], lo: i64, hi: i64| {
        samples.iter().filter(|(t, _)| *t >= lo && *t <= hi).count()
    };
    let check = |storage: &Storage, when: &str| {
        for s in storage
            .select(&[m(MatchOp::Equal, "__name__", "m")], i64::MIN, i64::MAX)
            .unwrap()
        {
            let samples = s.samples().unwrap();
            let deleted = matches!(s.labels.get("i"), Some("1") | Some("3"));
            // From 1 h to 5 h: a block window and the head both.
            let expected = if deleted { 0 } else { 4 * 240 + 1 };
            assert_eq!(
                in_window(&samples, start + HOUR, start + 5 * HOUR),
                expected,
                "{when}: {}",
                s.labels
            );
            assert_eq!(
                samples.len(),
                if deleted {
                    7 * 240 - (4 * 240 + 1)
                } else {
                    7 * 240
                },
                "{when}: {}",
                s.labels
            );
        }
    };
    {
        let storage = open(dir.path());
        fill(&storage, 5, start, 7);
        assert!(storage.compact(None).unwrap().is_some());
        assert_eq!(
            storage
                .delete(&victim, start + HOUR, start + 5 * HOUR)
                .unwrap(),
            4,
            "2 series in a block, 2 in the head"
        );
        check(&storage, "after delete");
        // New samples after the delete are not covered by it.
        let report = storage
            .append_blocking(&[series(
                &[("__name__", "m"), ("i", "1")],
                &[(start + 7 * HOUR, 1.0)],
            )])
            .unwrap();
        assert_eq!(report.stored, 1);
    }
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, _) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    let extra = storage
        .select(&[m(MatchOp::Equal, "i", "1")], start + 7 * HOUR, i64::MAX)
        .unwrap();
    assert_eq!(
        extra[0].samples().unwrap(),
        [(start + 7 * HOUR, 1.0)],
        "the later sample survives the replayed delete"
    );
    let cleaned = |storage: &Storage| {
        storage
            .select(
                &[m(MatchOp::Equal, "__name__", "m")],
                i64::MIN,
                start + 7 * HOUR - 1,
            )
            .unwrap()
            .iter()
            .map(|s| (s.labels.to_string(), s.samples().unwrap()))
            .collect::<Vec<_>>()
    };
    let before_clean = cleaned(&storage);
    check_windows(&before_clean, start);
    assert_eq!(storage.clean_tombstones().unwrap(), 1);
    assert_eq!(
        storage.clean_tombstones().unwrap(),
        0,
        "nothing left to clean"
    );
    assert_eq!(
        cleaned(&storage),
        before_clean,
        "the rewritten block answers the same"
    );
    assert_eq!(storage.blocks()[0].compaction.sources.len(), 1);
    assert!(!storage
        .tombstones
        .block_has_marks(&storage.blocks()[0].id)
        .unwrap());
}

/// Series 1 and 3 have nothing between 1 h and 5 h; the others are whole.
fn check_windows(series: &[(String, Vec<(i64, f64)>)], start: i64) {
    for (labels, samples) in series {
        let gap = samples
            .iter()
            .filter(|(t, _)| *t >= start + HOUR && *t <= start + 5 * HOUR)
            .count();
        let deleted = labels.contains("i=\"1\"") || labels.contains("i=\"3\"");
        assert_eq!(gap == 0, deleted, "{labels}");
    }
}

#[test]
fn a_snapshot_opens_as_a_store_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_700_000_000_000 / (2 * HOUR) * (2 * HOUR);
    let kv = Kv::open(dir.path()).unwrap();
    kv.tree(trees::USERS)
        .unwrap()
        .put(b"alice", &"account")
        .unwrap();
    let (storage, _) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    fill(&storage, 5, start, 5);
    assert!(storage.compact(None).unwrap().is_some());
    storage
        .delete(
            &[m(MatchOp::Equal, "i", "2")],
            start + 4 * HOUR,
            start + 5 * HOUR,
        )
        .unwrap();
    let original = everything(&storage);

    let target = tempfile::tempdir().unwrap();
    let snapshot = target.path().join("snap");
    // One block already, and the head's [2h,4h) and [4h,6h) windows.
    assert_eq!(storage.snapshot(&snapshot).unwrap(), 3);
    assert!(
        storage.snapshot(&snapshot).is_err(),
        "never over an existing snapshot"
    );

    let snap_kv = Kv::open(&snapshot).unwrap();
    let (copy, replay) = Storage::open(&snap_kv, &snapshot, StorageOptions::default()).unwrap();
    assert_eq!(replay.samples, 0, "everything is in blocks");
    assert_eq!(copy.blocks().len(), 3);
    assert_eq!(everything(&copy), original);
    let alice: Option<String> = snap_kv.tree(trees::USERS).unwrap().get(b"alice").unwrap();
    assert_eq!(alice.as_deref(), Some("account"));
    // The original keeps working.
    fill(&storage, 5, start + 5 * HOUR, 1);
}

#[test]
fn adjacent_blocks_merge_into_larger_ones_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let start = 1_700_000_000_000 / (18 * HOUR) * (18 * HOUR);
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, _) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    fill(&storage, 4, start, 21);
    storage
        .delete(
            &[m(MatchOp::Equal, "i", "0")],
            start + HOUR,
            start + 2 * HOUR,
        )
        .unwrap();
    let before = everything(&storage);
    let (written, merged) = storage.maintain(None).unwrap();
    // 21 h: nine 2 h blocks; [0,6h), [6h,12h), [12h,18h) merge, then those three into [0,18h).
    assert_eq!(written, 9);
    assert_eq!(merged, 4);
    let blocks = storage.blocks();
    let spans: Vec<(i64, i64, u32)> = blocks
        .iter()
        .map(|b| {
            (
                (b.min_time - start) / HOUR,
                (b.max_time + 1 - start) / HOUR,
                b.compaction.level,
            )
        })
        .collect();
    assert_eq!(spans, [(0, 18, 3)]);
    assert_eq!(blocks[0].compaction.sources.len(), 3);
    assert_eq!(
        everything(&storage),
        before,
        "merged blocks answer as the small ones did, deletions included"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join(BLOCKS_DIR))
            .unwrap()
            .count(),
        1,
        "sources deleted"
    );
}

#[test]
fn backfilled_samples_land_in_blocks_beside_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open(dir.path());
    // Appended while the head was young: older than the head now accepts.
    let live: Vec<(i64, f64)> = (0..9)
        .map(|i| (T0 - 80 * 60_000 + i * 600_000, i as f64))
        .collect();
    storage
        .append_blocking(&[series(&[("__name__", "live")], &live)])
        .unwrap();
    let name = [("__name__", "temp"), ("site", "a")];
    storage
        .append_blocking(&[series(&name, &[(T0, 20.0)])])
        .unwrap();
    let labels = Labels::new(name).unwrap();
    let old: Vec<(i64, f64)> = (0..100)
        .rev()
        .map(|i| (T0 - 24 * 3_600_000 + i * 600_000, i as f64))
        .collect();
    assert!(old.iter().all(|(t, _)| *t < storage.backfill_boundary(T0)));
    let report = storage
        .backfill(vec![(labels.clone(), old.clone())])
        .unwrap();
    assert_eq!(report.samples, 100);
    // 100 samples 10 min apart span 16.5 h: nine 2 h windows.
    assert_eq!(report.blocks.len(), 9);

    // A backfill right behind the head's window hides none of the head's
    // samples after a restart, even those older than the backfill.
    let boundary = storage.backfill_boundary(T0);
    let behind = Labels::new([("__name__", "behind")]).unwrap();
    storage
        .backfill(vec![(behind, vec![(boundary - 1, 1.0)])])
        .unwrap();

    let mut expected = old;
    expected.sort_by_key(|s| s.0);
    expected.push((T0, 20.0));
    drop(storage);
    let storage = open(dir.path());
    let found_live = storage
        .select(&[m(MatchOp::Equal, "__name__", "live")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(found_live[0].samples().unwrap(), live);
    let found = storage
        .select(&[m(MatchOp::Equal, "site", "a")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].samples().unwrap(), expected);
}

/// The samples of [`everything`] by their bits, so NaNs compare.
fn everything_bits(storage: &Storage) -> Vec<(String, Vec<(i64, u64)>)> {
    everything(storage)
        .into_iter()
        .map(|(labels, samples)| {
            (
                labels,
                samples.iter().map(|(t, v)| (*t, v.to_bits())).collect(),
            )
        })
        .collect()
}

/// A stop writes the head as a checkpoint in place of the log: the next
/// start reads it, answers the same, keeps each series' newest sample (late
/// ones are still refused) and the deletes, and compacts as before.
#[test]
fn a_stopped_store_starts_again_from_its_head_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let start = WINDOW_START;
    let stale = f64::from_bits(labels::STALE_NAN_BITS);
    let (before, head_samples) = {
        let storage = open(dir.path());
        fill(&storage, 20, start, 3);
        // Values the columnar codec keeps as exceptions.
        let odd = [
            (start, f64::NAN),
            (start + 1, stale),
            (start + 2, f64::NEG_INFINITY),
            (start + 3, -0.0),
            (start + 4, 0.1),
            (start + 5, 1e300),
        ];
        storage
            .append_blocking(&[series(&[("__name__", "m"), ("i", "odd")], &odd)])
            .unwrap();
        storage
            .delete(
                &[m(MatchOp::Equal, "i", "2")],
                start + HOUR,
                start + 2 * HOUR,
            )
            .unwrap();
        let before = everything_bits(&storage);
        let head_samples = storage.head_stats().samples;
        let wal_bytes = storage.wal_size_bytes();
        let report = storage.close(None).unwrap();
        assert_eq!(report.series, 21);
        assert!(
            report.checkpoint_bytes * 3 < wal_bytes,
            "checkpoint {} B, log {wal_bytes} B",
            report.checkpoint_bytes
        );
        let chunk_files = std::fs::read_dir(dir.path().join(HEAD_CHUNKS_DIR)).unwrap();
        assert_eq!(chunk_files.count(), 0, "the chunk files are gone");
        (before, head_samples)
    };
    let wal_files: Vec<String> = std::fs::read_dir(dir.path().join(wal::WAL_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        wal_files.len(),
        2,
        "the checkpoint and the new segment: {wal_files:?}"
    );
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, replay) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    assert_eq!((replay.series, replay.samples), (21, head_samples));
    assert_eq!(replay.late_samples, 0);
    assert_eq!(everything_bits(&storage), before);
    let late = storage
        .append_blocking(&[series(
            &[("__name__", "m"), ("i", "0")],
            &[(start + 5 * HOUR / 2, 1.0)],
        )])
        .unwrap();
    assert_eq!(
        late.rejected.get(&Rejection::OutOfOrder),
        Some(&1),
        "{late:?}"
    );

    // Appends and compaction go on from there; the checkpoint's samples are
    // folded into the next one.
    fill(&storage, 20, start + 3 * HOUR, 2);
    let expected = everything_bits(&storage);
    assert!(storage.compact(None).unwrap().is_some());
    assert_eq!(everything_bits(&storage), expected);
    drop(storage);
    let (storage, _) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(everything_bits(&storage), expected);
}

/// Log segments a remote-write queue has not sent stay readable after a
/// stop, without being replayed on top of the checkpoint; the next stop
/// with nothing unsent removes them.
#[test]
fn a_stop_keeps_the_log_a_queue_has_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let start = WINDOW_START;
    let unsent = {
        let storage = open(dir.path());
        fill(&storage, 3, start, 1);
        let unsent = storage.wal_durable_position();
        fill(&storage, 3, start + HOUR, 1);
        storage.close(Some(unsent)).unwrap();
        unsent
    };
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, replay) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    assert_eq!(replay.samples, 3 * 480, "nothing replayed twice");
    assert_eq!(replay.late_samples, 0);
    let mut tail = storage.wal_tail(unsent);
    let mut read = Vec::new();
    let done = tail
        .read(storage.wal_durable_position(), usize::MAX, &mut read)
        .unwrap();
    assert_eq!(done.skipped_segments, 0);
    assert_eq!(read.len(), 3 * 240, "the unsent hour");
    assert!(read.iter().all(|s| s.t >= start + HOUR));

    storage.close(None).unwrap();
    let wal_files = std::fs::read_dir(dir.path().join(wal::WAL_DIR)).unwrap();
    assert_eq!(wal_files.count(), 2, "the checkpoint and the new segment");
}

/// A compaction's checkpoint keeps the log a queue has not sent, as a stop's
/// does: a receiver outage across a head window's end loses nothing.
#[test]
fn compaction_keeps_the_log_a_queue_has_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let start = WINDOW_START;
    let storage = open(dir.path());
    fill(&storage, 3, start, 1);
    let unsent = storage.wal_durable_position();
    fill(&storage, 3, start + HOUR, 3);
    assert!(storage.compact(Some(unsent)).unwrap().is_some());
    let mut read = Vec::new();
    let done = storage
        .wal_tail(unsent)
        .read(storage.wal_durable_position(), usize::MAX, &mut read)
        .unwrap();
    assert_eq!(done.skipped_segments, 0);
    assert_eq!(read.len(), 3 * 3 * 240, "the unsent three hours");
    assert!(read.iter().all(|s| s.t >= start + HOUR));
}

/// Between compactions, a log past its bound is replaced by the head's
/// checkpoint, keeping what a queue has not sent; a smaller one stays.
#[test]
fn a_grown_log_is_replaced_by_the_heads_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let start = WINDOW_START;
    let options = StorageOptions {
        wal_checkpoint_bytes: 2 * 1024,
        ..StorageOptions::default()
    };
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, _) = Storage::open(&kv, dir.path(), options.clone()).unwrap();
    storage
        .append_blocking(&[series(
            &[("__name__", "m"), ("i", "first")],
            &[(start, 1.0)],
        )])
        .unwrap();
    assert_eq!(storage.checkpoint_if_log_grew(None).unwrap(), None);
    let unsent = storage.wal_durable_position();
    fill(&storage, 20, start, 1);
    let before = everything_bits(&storage);
    let (series, bytes) = storage
        .checkpoint_if_log_grew(Some(unsent))
        .unwrap()
        .expect("past the bound");
    assert!(series == 21 && bytes > 0);
    assert_eq!(storage.wal.bytes_since_checkpoint().unwrap(), 0);
    assert_eq!(storage.checkpoint_if_log_grew(None).unwrap(), None);
    // The head still reads, and the queue's samples are still there.
    assert_eq!(everything_bits(&storage), before);
    let mut read = Vec::new();
    let done = storage
        .wal_tail(unsent)
        .read(storage.wal_durable_position(), usize::MAX, &mut read)
        .unwrap();
    assert_eq!((read.len(), done.skipped_segments), (20 * 240, 0));
    drop(storage);
    let (storage, replay) = Storage::open(&kv, dir.path(), options).unwrap();
    assert_eq!((replay.samples, replay.late_samples), (20 * 240 + 1, 0));
    assert_eq!(everything_bits(&storage), before);
}

#[test]
fn head_chunks_are_cut_before_they_span_more_than_their_span_field_holds() {
    let dir = tempfile::tempdir().unwrap();
    let kv = Kv::open(dir.path()).unwrap();
    // Windows longer than any span below, so that only the span limit cuts.
    let options = StorageOptions {
        block_range: Duration::from_secs(400 * 24 * 3600),
        ..StorageOptions::default()
    };
    let (storage, _) = Storage::open(&kv, dir.path(), options).unwrap();
    const STEP: i64 = 1_000_000_000; // 11.6 days: u32 milliseconds hold 4 steps
    let samples: Vec<(i64, f64)> = (0..12).map(|i| (T0 + i * STEP, i as f64)).collect();
    for &sample in &samples {
        let report = storage
            .append_blocking(&[series(&[("__name__", "m")], &[sample])])
            .unwrap();
        assert_eq!(report.stored, 1);
    }
    // Chunks from T0, T0 + 5 steps and T0 + 10 steps.
    assert_eq!(storage.head_stats().chunks, 3);
    let all = storage
        .select(&[m(MatchOp::Equal, "__name__", "m")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(all[0].samples().unwrap(), samples);
    // The first chunk ends at T0 + 4 steps, the second starts one later.
    let around_the_cut = storage
        .select(
            &[m(MatchOp::Equal, "__name__", "m")],
            T0 + 4 * STEP,
            T0 + 5 * STEP,
        )
        .unwrap();
    assert_eq!(around_the_cut[0].samples().unwrap(), samples[4..6]);
}

#[test]
fn series_in_step_seal_their_chunks_at_points_spread_over_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let kv = Kv::open(dir.path()).unwrap();
    let (storage, _) = Storage::open(&kv, dir.path(), StorageOptions::default()).unwrap();
    const SERIES: u64 = 200;
    const STEP: i64 = 15_000;
    let names: Vec<String> = (0..SERIES).map(|i| format!("s{i}")).collect();
    // One window of samples (480 at 15 s), every series scraped together.
    let mut sealed_per_step = Vec::new();
    let mut chunks_before = 0;
    for step in 0..(2 * HOUR / STEP) {
        let t = WINDOW_START + step * STEP;
        let batch: Vec<SeriesSamples> = names
            .iter()
            .map(|name| series(&[("__name__", "m"), ("s", name)], &[(t, step as f64)]))
            .collect();
        assert_eq!(storage.append_blocking(&batch).unwrap().stored, SERIES);
        // Counted as chunks holding samples: a chunk sealed at this step
        // shows with the next sample.
        let chunks = storage.head_stats().chunks;
        sealed_per_step.push(chunks - chunks_before.max(SERIES));
        chunks_before = chunks;
    }
    // Without the spread, every series would seal at samples 120, 240 and
    // 360, all at once; with it, each step seals a few.
    let most = sealed_per_step.iter().max().copied().unwrap_or_default();
    assert!(most <= SERIES / 10, "{most} sealed at one step");
    // Four chunks of a window, the first cut early, so a fifth; the
    // samples read back whole.
    let chunks = storage.head_stats().chunks;
    assert!(
        (4 * SERIES..=5 * SERIES).contains(&chunks),
        "{chunks} chunks"
    );
    assert!(chunks > 4 * SERIES + SERIES / 2, "{chunks} chunks");
    let all = storage
        .select(&[m(MatchOp::Equal, "__name__", "m")], i64::MIN, i64::MAX)
        .unwrap();
    assert_eq!(all.len() as u64, SERIES);
    for s in &all {
        let samples = s.samples().unwrap();
        assert_eq!(samples.len(), 480);
        assert!(samples
            .iter()
            .enumerate()
            .all(|(i, &(t, v))| t == WINDOW_START + i as i64 * STEP && v == i as f64));
    }
}
