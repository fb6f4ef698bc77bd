//! Scraping, end to end: the real fleetmon binary scrapes targets served by
//! this test over loopback (and the real `prometheus-node-exporter`), with
//! the same config the real Prometheus reads; the series both stores hold
//! for Prometheus's conformance payloads are compared. Also staleness, the
//! sample limit, `honor_labels`, target authentication, file discovery,
//! `/api/v1/targets` and reloads (SIGHUP and `POST /-/reload`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use common::{
    eventually, free_port, have_program, metric_labels, prom_value, prometheus_query,
    prometheus_reaches, read_store, Client, Fleetmon, Program, StoredSeries, PROMETHEUS,
};
use fleetmon::storage::labels::is_stale_nan;
use fleetmon::storage::{MatchOp, Matcher};
use serde_json::Value;

const CONFORMANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/exposition"
);
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one test endpoint answers: status, content type and body.
type Answer = (StatusCode, &'static str, String);

/// Test targets: `/conformance/{file}` serves a conformance payload, and
/// `/dynamic/{name}` answers what the test last set for `name`; requests
/// must carry `authorization` when it is set.
#[derive(Clone, Default)]
struct Targets {
    dynamic: Arc<Mutex<BTreeMap<String, Answer>>>,
    authorization: Arc<Mutex<Option<String>>>,
}

impl Targets {
    fn set(&self, name: &str, status: StatusCode, body: &str) {
        self.dynamic
            .lock()
            .unwrap()
            .insert(name.to_string(), (status, TEXT, body.to_string()));
    }

    /// Serves the targets on a loopback port; returns `host:port`.
    async fn serve(&self) -> String {
        let router = Router::new()
            .route("/conformance/{file}", get(conformance))
            .route("/dynamic/{name}", get(dynamic))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, router).await });
        address
    }

    fn refused(&self, headers: &HeaderMap) -> bool {
        let wanted = self.authorization.lock().unwrap().clone();
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        wanted.is_some_and(|w| given != Some(w.as_str()))
    }
}

async fn conformance(UrlPath(file): UrlPath<String>) -> impl IntoResponse {
    let body = std::fs::read_to_string(format!("{CONFORMANCE}/{file}")).unwrap_or_default();
    let content_type = if file.contains(".om.") {
        OPENMETRICS
    } else {
        TEXT
    };
    ([(header::CONTENT_TYPE, content_type)], body)
}

async fn dynamic(
    State(targets): State<Targets>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    if targets.refused(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, TEXT)],
            String::new(),
        );
    }
    let answer = targets.dynamic.lock().unwrap().get(&name).cloned();
    let (status, content_type, body) =
        answer.unwrap_or((StatusCode::NOT_FOUND, TEXT, String::new()));
    (status, [(header::CONTENT_TYPE, content_type)], body)
}

fn job(name: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, "job", name).unwrap()
}

fn metric(name: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, "__name__", name).unwrap()
}

/// The targets fleetmon reports, by scrape pool.
async fn active_targets(server: &Fleetmon) -> Vec<Value> {
    let (status, body) = Client::admin()
        .get(&server.url("/api/v1/targets?state=active"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The active targets by scrape pool (one target per pool in these tests).
async fn targets_by_pool(server: &Fleetmon) -> BTreeMap<String, Value> {
    active_targets(server)
        .await
        .into_iter()
        .map(|t| (t["scrapePool"].as_str().unwrap_or_default().to_string(), t))
        .collect()
}

/// Waits until every active target of fleetmon has been scraped `n` times
/// (judged by `lastScrape` changing), at most a minute.
async fn scraped_times(server: &Fleetmon, n: usize) {
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let targets = active_targets(server).await;
        // A target is its pool and URL: jobs may share a URL.
        let key = |t: &Value| format!("{}|{}", t["scrapePool"], t["scrapeUrl"]);
        for t in &targets {
            let url = key(t);
            let last = t["lastScrape"].as_str().unwrap_or_default().to_string();
            if !last.starts_with("0001") {
                seen.entry(url).or_default().insert(last);
            }
        }
        let done = !targets.is_empty()
            && targets
                .iter()
                .all(|t| seen.get(&key(t)).is_some_and(|s| s.len() >= n));
        if done {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "targets not scraped {n} times within a minute: {targets:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prometheus 3 writes `le` and `quantile` values as canonical floats
/// (`1` → `1.0`); Prometheus 2.42 keeps them as exposed. The comparison
/// applies the newer rule to the older Prometheus's labels.
fn normalized(labels: Vec<(String, String)>) -> Vec<(String, String)> {
    labels
        .into_iter()
        .map(|(name, value)| {
            let integral = value
                .parse::<f64>()
                .is_ok_and(|f| f.is_finite() && f.fract() == 0.0)
                && !value.contains(['.', 'e', 'E']);
            if (name == "le" || name == "quantile") && integral {
                let canonical = format!("{:.1}", value.parse::<f64>().unwrap_or_default());
                (name, canonical)
            } else {
                (name, value)
            }
        })
        .collect()
}

/// The synthetic series of every scrape, whose values (durations, counts
/// of new series) differ between two scrapers.
const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Latest samples by label set; values of synthetic series are left out.
type Latest = BTreeMap<Vec<(String, String)>, Option<u64>>;

fn latest_entry(labels: Vec<(String, String)>, value: f64) -> (Vec<(String, String)>, Option<u64>) {
    let synthetic = labels
        .iter()
        .any(|(n, v)| n == "__name__" && SYNTHETIC.contains(&v.as_str()));
    // Prometheus's API prints every NaN alike, so NaNs compare as one value.
    let bits = if value.is_nan() {
        f64::NAN.to_bits()
    } else {
        value.to_bits()
    };
    (labels, (!synthetic).then_some(bits))
}

/// The latest sample of every series Prometheus holds for `job`.
async fn prometheus_latest(port: u16, job: &str) -> Latest {
    let body = prometheus_query(port, &format!("{{job=\"{job}\"}}"), None)
        .await
        .expect("an answer");
    body["data"]["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|series| {
            let labels = normalized(metric_labels(&series["metric"]));
            let value = prom_value(series["value"][1].as_str().expect("value"));
            latest_entry(labels, value)
        })
        .collect()
}

/// The latest non-stale sample of every series fleetmon stored.
fn fleetmon_latest(stored: Vec<StoredSeries>) -> Latest {
    stored
        .into_iter()
        .filter_map(|(labels, samples)| {
            let (_, value) = samples.iter().rev().find(|(_, v)| !is_stale_nan(*v))?;
            Some(latest_entry(labels, *value))
        })
        .collect()
}

#[tokio::test]
async fn conformance_payloads_are_stored_as_the_real_prometheus_stores_them() {
    if !have_program(PROMETHEUS) {
        return;
    }
    let targets = Targets::default();
    let address = targets.serve().await;
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("text", "alltypes.237mfs.prom.txt"),
        ("openmetrics", "alltypes.5mfs.om.txt"),
        ("histogram", "1histogram.om.txt"),
    ];
    let mut config =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for (name, file) in files {
        config.push_str(&format!(
            "  - job_name: {name}\n    metrics_path: /conformance/{file}\n    static_configs:\n      - targets: ['{address}']\n"
        ));
    }
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, &config).unwrap();
    let port = free_port();
    let mut prometheus =
        Program::prometheus(&config_path, &dir.path().join("prometheus"), port, &[]);
    let server = Fleetmon::start(
        &dir.path().join("fleetmon"),
        &["--config.file", config_path.to_str().unwrap()],
    );
    scraped_times(&server, 3).await;
    prometheus_reaches(port, "min(count_over_time(up[1m]))", 3.0).await;
    for t in active_targets(&server).await {
        assert_eq!(t["health"], "up", "{t}");
    }
    let mut expected = Latest::new();
    for (name, _) in files {
        expected.extend(prometheus_latest(port, name).await);
    }
    // Metadata: the same families with the same type, help and unit.
    let prometheus_metadata: Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/metadata"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, fleetmon_metadata) = Client::admin().get(&server.url("/api/v1/metadata")).await;
    assert_eq!(status, 200);
    let families = |body: &Value| -> BTreeMap<String, BTreeSet<String>> {
        body["data"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(family, entries)| {
                let entries = entries
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| format!("{}|{}|{}", e["type"], e["help"], e["unit"]))
                    .collect();
                (family.clone(), entries)
            })
            .collect()
    };
    let (want, have) = (families(&prometheus_metadata), families(&fleetmon_metadata));
    assert!(want.len() > 200, "{} families", want.len());
    let differing: Vec<_> = want
        .iter()
        .filter(|(family, entries)| have.get(*family) != Some(entries))
        .take(5)
        .map(|(family, entries)| (family, entries, have.get(family)))
        .collect();
    assert!(differing.is_empty(), "metadata differs: {differing:?}");
    assert_eq!(want.len(), have.len());
    prometheus.terminate();
    assert!(server.stop().success());
    let mut got = Latest::new();
    for (name, _) in files {
        got.extend(fleetmon_latest(read_store(
            &dir.path().join("fleetmon"),
            &[job(name)],
        )));
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|l| !got.contains_key(*l))
        .take(10)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|l| !expected.contains_key(*l))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "missing from fleetmon: {missing:?}");
    assert!(extra.is_empty(), "only in fleetmon: {extra:?}");
    let different: Vec<_> = expected
        .iter()
        .filter(|(labels, value)| got[*labels] != **value)
        .take(5)
        .collect();
    assert!(different.is_empty(), "values differ: {different:?}");
    // 237 + 5 + 1 metric families: 1,967 series with the synthetic ones.
    assert!(got.len() > 1900, "{} series", got.len());
}

fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn staleness_limits_and_label_clashes_follow_prometheus() {
    let targets = Targets::default();
    let address = targets.serve().await;
    targets.set(
        "a",
        StatusCode::OK,
        "kept 1\ngoes_away 2\nclash{job=\"exposed\"} 3\n",
    );
    targets.set("limited", StatusCode::OK, "one 1\ntwo 2\n");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetmon.yml");
    write_config(
        &config,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: a\n    metrics_path: /dynamic/a\n    static_configs:\n      - targets: ['{address}']\n  - job_name: limited\n    sample_limit: 1\n    metrics_path: /dynamic/limited\n    static_configs:\n      - targets: ['{address}']\n"
        ),
    );
    let server = Fleetmon::start(
        &dir.path().join("store"),
        &["--config.file", config.to_str().unwrap()],
    );
    scraped_times(&server, 2).await;
    targets.set("a", StatusCode::OK, "kept 1\nclash{job=\"exposed\"} 3\n");
    scraped_times(&server, 4).await;
    targets.set("a", StatusCode::INTERNAL_SERVER_ERROR, "");
    scraped_times(&server, 6).await;
    let by_job = targets_by_pool(&server).await;
    assert_eq!(by_job["a"]["health"], "down");
    assert_eq!(
        by_job["a"]["lastError"],
        "server returned HTTP status 500 Internal Server Error"
    );
    assert_eq!(by_job["limited"]["health"], "down");
    assert!(
        by_job["limited"]["lastError"]
            .as_str()
            .unwrap_or_default()
            .contains("sample limit exceeded"),
        "{}",
        by_job["limited"]
    );
    assert!(server.stop().success());

    let store = dir.path().join("store");
    let last = |name: &str, job_name: &str| -> Vec<(i64, f64)> {
        let series = read_store(&store, &[metric(name), job(job_name)]);
        assert_eq!(series.len(), 1, "{name}: {series:?}");
        series[0].1.clone()
    };
    // The series that vanished ends with a stale marker, one interval after its last sample.
    let gone = last("goes_away", "a");
    let (stale_at, _) = *gone.last().unwrap();
    assert!(is_stale_nan(gone.last().unwrap().1), "{gone:?}");
    assert_eq!(stale_at - gone[gone.len() - 2].0, 1000, "{gone:?}");
    // The failed scrape ends every series; `up` records it.
    let kept = last("kept", "a");
    assert!(is_stale_nan(kept.last().unwrap().1), "{kept:?}");
    assert!(kept[..kept.len() - 1].iter().all(|(_, v)| *v == 1.0));
    // Scrapes are exactly one interval apart.
    assert!(kept.windows(2).all(|w| w[1].0 - w[0].0 == 1000), "{kept:?}");
    let up = last("up", "a");
    assert_eq!(up.last().unwrap().1, 0.0);
    assert!(up.iter().any(|(_, v)| *v == 1.0));
    // Without honor_labels the target's job wins and the exposed one is kept aside.
    let clash = read_store(&store, &[metric("clash")]);
    assert_eq!(clash.len(), 1);
    let labels: BTreeMap<_, _> = clash[0].0.iter().cloned().collect();
    assert_eq!(labels["job"], "a");
    assert_eq!(labels["exported_job"], "exposed");
    // Over the sample limit nothing of the scrape is kept, and up is 0.
    assert!(read_store(&store, &[metric("one"), job("limited")]).is_empty());
    assert!(last("up", "limited").iter().all(|(_, v)| *v == 0.0));
    // Reported as Prometheus reports it: all samples scraped, those under the limit kept.
    let scraped = last("scrape_samples_scraped", "limited");
    assert_eq!(scraped.last().unwrap().1, 2.0);
    let post = last("scrape_samples_post_metric_relabeling", "limited");
    assert_eq!(post.last().unwrap().1, 1.0);
}

#[tokio::test]
async fn reloads_keep_unchanged_targets_and_end_removed_ones() {
    let targets = Targets::default();
    let address = targets.serve().await;
    targets.set("stays", StatusCode::OK, "steady 1\n");
    targets.set("leaves", StatusCode::OK, "leaving 1\n");
    targets.set("filed", StatusCode::OK, "from_file 1\n");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetmon.yml");
    let job_yaml = |name: &str| {
        format!("  - job_name: {name}\n    metrics_path: /dynamic/{name}\n    static_configs:\n      - targets: ['{address}']\n")
    };
    let header = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n";
    let file_job = "  - job_name: filed\n    metrics_path: /dynamic/filed\n    file_sd_configs:\n      - files: ['targets/*.json']\n";
    write_config(
        &config,
        &format!(
            "{header}{}{}{file_job}",
            job_yaml("stays"),
            job_yaml("leaves")
        ),
    );
    let server = Fleetmon::start(
        &dir.path().join("store"),
        &["--config.file", config.to_str().unwrap()],
    );
    scraped_times(&server, 2).await;
    assert_eq!(active_targets(&server).await.len(), 2);

    // A target file appears: its target is scraped, with __meta_filepath discovered.
    std::fs::create_dir(dir.path().join("targets")).unwrap();
    std::fs::write(
        dir.path().join("targets/one.json"),
        format!(r#"[{{"targets": ["{address}"], "labels": {{"team": "blue"}}}}]"#),
    )
    .unwrap();
    let filed = eventually(Duration::from_secs(20), "the file target", || async {
        active_targets(&server)
            .await
            .into_iter()
            .find(|t| t["scrapePool"] == "filed")
    })
    .await;
    assert_eq!(filed["labels"]["team"], "blue");
    assert!(filed["discoveredLabels"]["__meta_filepath"]
        .as_str()
        .unwrap_or_default()
        .ends_with("one.json"));

    // An invalid config is refused; the running one stays.
    write_config(
        &config,
        "scrape_configs:\n  - job_name: broken\n    scrape_intervall: 1s\n",
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    eventually(Duration::from_secs(10), "the refused reload", || async {
        server
            .log()
            .contains("configuration reload refused")
            .then_some(())
    })
    .await;
    assert!(server.log().contains("scrape_intervall"));
    let (_, _, metrics) = Client::anonymous()
        .get_text(&server.url("/metrics"), None)
        .await;
    assert!(
        metrics.contains("prometheus_config_last_reload_successful 0"),
        "{metrics}"
    );
    assert_eq!(active_targets(&server).await.len(), 3);

    // `leaves` is removed by a reload over HTTP, which needs the admin role.
    write_config(&config, &format!("{header}{}{file_job}", job_yaml("stays")));
    let (status, _) = Client::anonymous()
        .post(&server.url("/-/reload"), None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = Client::admin().post(&server.url("/-/reload"), None).await;
    assert_eq!(status, 200, "{body}");
    let pools: BTreeSet<String> = active_targets(&server)
        .await
        .iter()
        .map(|t| t["scrapePool"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        pools,
        BTreeSet::from(["filed".to_string(), "stays".to_string()])
    );
    // Removed targets' series end after two intervals and a tenth.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(server.stop().success());

    let store = dir.path().join("store");
    let leaving = read_store(&store, &[metric("leaving")]);
    let samples = &leaving[0].1;
    assert!(is_stale_nan(samples.last().unwrap().1), "{samples:?}");
    let up = read_store(&store, &[metric("up"), job("leaves")]);
    assert!(is_stale_nan(up[0].1.last().unwrap().1));
    // The unchanged target kept its loop: one series, no stale marker, no gap.
    let steady = read_store(&store, &[metric("steady")]);
    let samples = &steady[0].1;
    assert!(samples.iter().all(|(_, v)| *v == 1.0), "{samples:?}");
    assert!(
        samples.windows(2).all(|w| w[1].0 - w[0].0 == 1000),
        "{samples:?}"
    );
}

#[tokio::test]
async fn authenticated_targets_get_their_credentials() {
    let targets = Targets::default();
    let address = targets.serve().await;
    targets.set("secret", StatusCode::OK, "guarded 1\n");
    *targets.authorization.lock().unwrap() = Some("Bearer file-token".to_string());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "file-token\n").unwrap();
    let config = dir.path().join("fleetmon.yml");
    write_config(
        &config,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: secret\n    metrics_path: /dynamic/secret\n    authorization:\n      credentials_file: token\n    static_configs:\n      - targets: ['{address}']\n  - job_name: wrong\n    metrics_path: /dynamic/secret\n    basic_auth:\n      username: u\n      password: p\n    static_configs:\n      - targets: ['{address}']\n"
        ),
    );
    let server = Fleetmon::start(
        &dir.path().join("store"),
        &["--config.file", config.to_str().unwrap()],
    );
    scraped_times(&server, 2).await;
    let by_job = targets_by_pool(&server).await;
    assert_eq!(by_job["secret"]["health"], "up", "{}", by_job["secret"]);
    assert_eq!(by_job["wrong"]["health"], "down");
    assert!(by_job["wrong"]["lastError"]
        .as_str()
        .unwrap_or_default()
        .contains("401"));
    assert!(!server.log().contains("file-token"));
    assert!(server.stop().success());
}

#[tokio::test]
async fn the_real_node_exporter_is_scraped() {
    const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
    if !have_program(NODE_EXPORTER) {
        return;
    }
    let port = free_port();
    let _exporter = Program(
        std::process::Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start node exporter"),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetmon.yml");
    write_config(
        &config,
        &format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
    );
    let server = Fleetmon::start(
        &dir.path().join("store"),
        &["--config.file", config.to_str().unwrap()],
    );
    scraped_times(&server, 2).await;
    let target = active_targets(&server).await.remove(0);
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["labels"]["instance"], format!("127.0.0.1:{port}"));
    assert!(server.stop().success());
    let store = dir.path().join("store");
    let scraped = read_store(&store, &[metric("scrape_samples_scraped")]);
    let count = scraped[0].1.last().unwrap().1;
    assert!(count > 100.0, "{count} samples");
    let series = read_store(&store, &[job("node")]);
    assert!(
        series.len() as f64 >= count,
        "{} series for {count} samples",
        series.len()
    );
    assert!(read_store(&store, &[metric("node_cpu_seconds_total")]).len() >= 2);
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn tls_targets_are_checked_against_the_configured_ca() {
    const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
    if !have_program(NODE_EXPORTER) || !have_program("/usr/bin/openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A CA, and a certificate it signs for 127.0.0.1.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=fleetmon test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    .unwrap();
    let port = free_port();
    let _exporter = Program(
        std::process::Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.config.file=web.yml")
            .current_dir(d)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start node exporter"),
    );
    let job = |name: &str, tls: &str| {
        format!("  - job_name: {name}\n    scheme: https\n    tls_config: {tls}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
    };
    let config = d.join("fleetmon.yml");
    write_config(
        &config,
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{}{}{}",
            job("trusted", "{ca_file: ca.crt}"),
            job("untrusted", "{}"),
            job("insecure", "{insecure_skip_verify: true}")
        ),
    );
    let server = Fleetmon::start(
        &d.join("store"),
        &["--config.file", config.to_str().unwrap()],
    );
    scraped_times(&server, 2).await;
    let by_job = targets_by_pool(&server).await;
    assert_eq!(by_job["trusted"]["health"], "up", "{}", by_job["trusted"]);
    assert_eq!(by_job["insecure"]["health"], "up", "{}", by_job["insecure"]);
    assert_eq!(by_job["untrusted"]["health"], "down");
    let error = by_job["untrusted"]["lastError"]
        .as_str()
        .unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(server.stop().success());
}
