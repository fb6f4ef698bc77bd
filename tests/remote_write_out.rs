//! Remote write out of fleetmon: fleetmon scrapes a counter every second and
//! forwards its samples to the real Prometheus (`--web.enable-remote-write-
//! receiver`) and the real VictoriaMetrics at once. Both receivers are
//! stopped for a while, fleetmon is restarted while they are down, then the
//! receivers come back; in the end every sample fleetmon stored for the job
//! is in both receivers, with its timestamp and value.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::{
    comparable_bits, free_port, have_program, matrix_samples, metric_labels, prometheus_query,
    read_store, Client, ComparableSample, Fleetmon, Program, PROMETHEUS,
};
use fleetmon::storage::labels::is_stale_nan;
use fleetmon::storage::{MatchOp, Matcher};
use serde_json::Value;

const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";

type Sample = ComparableSample;

/// Serves `forwarded_total N`, N counting requests, on a loopback port.
async fn counter_target() -> String {
    let count = Arc::new(AtomicU64::new(0));
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let n = count.fetch_add(1, Ordering::Relaxed);
            async move { format!("# TYPE forwarded counter\nforwarded_total {n}\n") }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

fn start_prometheus(dir: &Path, port: u16) -> Program {
    let config = dir.join("receiver.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    Program::prometheus(
        &config,
        &dir.join("prometheus"),
        port,
        &["--web.enable-remote-write-receiver"],
    )
}

fn start_victoria_metrics(dir: &Path, port: u16) -> Program {
    Program(
        Command::new(VICTORIA_METRICS)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.join("victoria").display()
            ))
            .arg("-search.latencyOffset=0s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics"),
    )
}

/// Every non-stale sample fleetmon stored for the job.
fn fleetmon_samples(store: &Path) -> BTreeSet<Sample> {
    let job = Matcher::new(MatchOp::Equal, "job", "counter").unwrap();
    let mut out = BTreeSet::new();
    for (labels, samples) in read_store(store, &[job]) {
        for (t, v) in samples {
            if !is_stale_nan(v) {
                out.insert((labels.clone(), t, comparable_bits(v)));
            }
        }
    }
    out
}

async fn prometheus_samples(port: u16) -> Option<BTreeSet<Sample>> {
    let body = prometheus_query(port, r#"{job="counter"}[1h]"#, None).await?;
    Some(matrix_samples(&body))
}

async fn victoria_samples(port: u16) -> Option<BTreeSet<Sample>> {
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/export"))
        .query(&[("match[]", r#"{job="counter"}"#)])
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let series: Value = serde_json::from_str(line).ok()?;
        let labels = metric_labels(&series["metric"]);
        let values = series["values"].as_array()?;
        let timestamps = series["timestamps"].as_array()?;
        for (v, t) in values.iter().zip(timestamps) {
            let v = v.as_f64().unwrap_or(f64::NAN);
            if !v.is_nan() {
                out.insert((labels.clone(), t.as_i64()?, comparable_bits(v)));
            }
        }
    }
    Some(out)
}

/// Waits until fleetmon's target has been scraped `n` more times.
async fn scrapes(server: &Fleetmon, n: usize) {
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() <= n {
        assert!(Instant::now() < deadline, "no {n} scrapes within a minute");
        let (_, body) = Client::admin().get(&server.url("/api/v1/targets")).await;
        if let Some(last) = body["data"]["activeTargets"][0]["lastScrape"].as_str() {
            if !last.starts_with("0001") {
                seen.insert(last.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (at most a minute) until `receiver` holds every expected sample.
async fn received(name: &str, port: u16, expected: &BTreeSet<Sample>) -> BTreeSet<Sample> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = if name == "prometheus" {
            prometheus_samples(port).await
        } else {
            victoria_samples(port).await
        }
        .unwrap_or_default();
        if expected.is_subset(&got) {
            return got;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = expected.difference(&got).take(5).collect();
            panic!(
                "{name} lacks {} of {} samples, e.g. {missing:?}",
                expected.difference(&got).count(),
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_reaches_prometheus_and_victoria_metrics_across_outages_and_a_restart() {
    if !have_program(PROMETHEUS) || !have_program(VICTORIA_METRICS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = counter_target().await;
    let (prometheus_port, victoria_port) = (free_port(), free_port());
    let config = dir.path().join("fleetmon.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: counter\n    static_configs:\n      - targets: ['{target}']\nremote_write:\n  - url: http://127.0.0.1:{prometheus_port}/api/v1/write\n    name: prometheus\n    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}\n  - url: http://127.0.0.1:{victoria_port}/api/v1/write\n    name: victoria\n    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}\n"
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    // At the stop during the outage, the queues give up after 2 s.
    let flags = [
        "--config.file",
        config.to_str().unwrap(),
        "--storage.remote.flush-deadline",
        "2s",
    ];
    let mut prometheus = start_prometheus(dir.path(), prometheus_port);
    let mut victoria = start_victoria_metrics(dir.path(), victoria_port);
    let server = Fleetmon::start(&store, &flags);
    scrapes(&server, 4).await;

    // Outage: both receivers go away; fleetmon keeps scraping, then restarts.
    prometheus.terminate();
    victoria.terminate();
    scrapes(&server, 4).await;
    let (_, _, metrics) = Client::anonymous()
        .get_text(&server.url("/metrics"), None)
        .await;
    assert!(
        metrics
            .contains("prometheus_remote_storage_samples_retried_total{remote_name=\"prometheus\""),
        "{metrics}"
    );
    assert!(server.stop().success());
    let server = Fleetmon::start(&store, &flags);
    scrapes(&server, 3).await;

    // The receivers come back with their data; fleetmon catches up.
    let _prometheus = start_prometheus(dir.path(), prometheus_port);
    let _victoria = start_victoria_metrics(dir.path(), victoria_port);
    scrapes(&server, 3).await;
    assert!(server.stop().success());
    let expected = fleetmon_samples(&store);
    assert!(expected.len() > 50, "{} samples", expected.len());
    for (name, port) in [("prometheus", prometheus_port), ("victoria", victoria_port)] {
        let got = received(name, port, &expected).await;
        let extra: Vec<_> = got.difference(&expected).take(5).collect();
        assert!(
            extra.is_empty(),
            "{name} holds samples fleetmon did not store: {extra:?}"
        );
    }
}
