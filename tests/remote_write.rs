//! Remote write into fleetmon (`POST /api/v1/write`). The real Prometheus
//! (Debian's 2.42) scrapes itself every second and remote-writes to fleetmon
//! with an editor token; once both are stopped, every raw sample Prometheus
//! held for its job is found in fleetmon's store, value bits included (NaN
//! payloads aside: Prometheus's API prints them all as `NaN`). Also
//! the receiver's answers: 401 and 403 without write permission, 415 for
//! another encoding, 400 for a body that does not decode and for refused
//! samples (the good ones of the same request are kept), 204 otherwise.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{
    comparable_bits, create_token, free_port, have_program, matrix_samples, prometheus_query,
    prometheus_reaches, ComparableSample, Fleetmon, Program, PROMETHEUS,
};
use fleetmon::remote::wire::encode_request;
use fleetmon::storage::{MatchOp, Matcher};

/// Every sample of the series of `job` in a stopped store.
fn stored_samples(storage_dir: &Path, job: &str) -> BTreeSet<ComparableSample> {
    let job = Matcher::new(MatchOp::Equal, "job", job).expect("matcher");
    let mut out = BTreeSet::new();
    for (labels, samples) in common::read_store(storage_dir, &[job]) {
        for (t, v) in samples {
            out.insert((labels.clone(), t, comparable_bits(v)));
        }
    }
    out
}

#[tokio::test]
async fn every_sample_the_real_prometheus_remote_writes_is_stored() {
    if !have_program(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(&dir.path().join("fleetmon"), &[]);
    let token = create_token(&server, "prometheus", "editor").await;
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\nremote_write:\n  - url: {}\n    authorization:\n      credentials: {token}\n    queue_config:\n      batch_send_deadline: 1s\n",
            server.url("/api/v1/write")
        ),
    )
    .unwrap();
    let mut prometheus = Program::prometheus(&config, &dir.path().join("prometheus"), port, &[]);
    // Enough scrapes for a few remote-write batches.
    prometheus_reaches(port, "count_over_time(up[1m])", 8.0).await;
    let body = prometheus_query(port, r#"{job="prometheus"}[10m]"#, None)
        .await
        .expect("an answer");
    let expected = matrix_samples(&body);
    assert!(expected.len() > 500, "{} samples", expected.len());
    // SIGTERM: Prometheus sends what its queues hold before it exits.
    prometheus.terminate();
    let log = server.log();
    assert!(server.stop().success(), "{log}");

    let stored = stored_samples(&dir.path().join("fleetmon"), "prometheus");
    let missing: Vec<&ComparableSample> = expected.difference(&stored).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} samples missing, e.g. {missing:?}",
        expected.difference(&stored).count(),
        expected.len()
    );
}

async fn post(
    server: &Fleetmon,
    token: Option<&str>,
    encoding: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(server.url("/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", encoding)
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn the_receiver_answers_as_prometheus_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(dir.path(), &[]);
    let editor = create_token(&server, "writer", "editor").await;
    let viewer = create_token(&server, "reader", "viewer").await;
    let now = fleetmon_now();
    let good = encode_request(&[(
        labels(&[("__name__", "pushed"), ("job", "push")]),
        vec![(now - 2_000, 1.0), (now - 1_000, 2.5)],
    )])
    .unwrap();

    assert_eq!(post(&server, None, "snappy", good.clone()).await.0, 401);
    assert_eq!(
        post(&server, Some(&viewer), "snappy", good.clone()).await.0,
        403
    );
    let (status, text) = post(&server, Some(&editor), "gzip", good.clone()).await;
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("only snappy"), "{text}");
    let (status, text) = post(&server, Some(&editor), "snappy", b"not snappy".to_vec()).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(post(&server, Some(&editor), "snappy", good).await.0, 204);
    // The newest sample again, as a sender retrying: an exact duplicate is
    // accepted silently (an older one would be out of order, as in Prometheus).
    let again = encode_request(&[(
        labels(&[("__name__", "pushed"), ("job", "push")]),
        vec![(now - 1_000, 2.5)],
    )])
    .unwrap();
    assert_eq!(post(&server, Some(&editor), "snappy", again).await.0, 204);

    // One out-of-order sample and one invalid series beside a good sample.
    let mixed = encode_request(&[
        (
            labels(&[("__name__", "pushed"), ("job", "push")]),
            vec![(now - 5_000, 9.0), (now, 3.0)],
        ),
        (labels(&[("job", "no-name")]), vec![(now, 1.0)]),
    ])
    .unwrap();
    let (status, text) = post(&server, Some(&editor), "snappy", mixed).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("1 × out of order sample"), "{text}");
    assert!(text.contains("1 × invalid labels"), "{text}");
    assert!(text.contains("1 samples stored"), "{text}");

    // Samples more than 10 minutes ahead are refused as out of bounds; the
    // rest of the request is stored, and a series left without samples is
    // not created.
    let ahead = encode_request(&[
        (
            labels(&[("__name__", "pushed"), ("job", "push")]),
            vec![(now + 1_000, 4.0), (now + 3_600_000, 5.0)],
        ),
        (
            labels(&[("__name__", "ahead_only"), ("job", "push")]),
            vec![(now + 3_600_000, 1.0)],
        ),
    ])
    .unwrap();
    let (status, text) = post(&server, Some(&editor), "snappy", ahead).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("2 × out of bounds (more than 10m in the future)"),
        "{text}"
    );
    assert!(text.contains("1 samples stored"), "{text}");

    assert!(server.stop().success());
    let stored = stored_samples(dir.path(), "push");
    let values: Vec<(i64, f64)> = stored
        .iter()
        .map(|(_, t, v)| (*t, f64::from_bits(*v)))
        .collect();
    assert_eq!(
        values,
        vec![
            (now - 2_000, 1.0),
            (now - 1_000, 2.5),
            (now, 3.0),
            (now + 1_000, 4.0)
        ]
    );
}

fn fleetmon_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
