//! Backfill by text import. `fleetmon import` of an OpenMetrics file with a
//! month of timestamps stores exactly the samples the real promtool
//! (`tsdb create-blocks-from openmetrics`) puts in Prometheus blocks, read
//! back through the real Prometheus; the same file goes into a running
//! fleetmon over HTTP (`--server`); and `POST /api/v1/import/prometheus`
//! takes text with `extra_label`, answers with a summary, names the line
//! of a parse error, and refuses viewers.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{
    comparable_bits, create_token, free_port, have_program, matrix_samples, prometheus_query,
    promtool_backfill, read_store, Client, ComparableSample, Fleetmon, Program, ADMIN_PASSWORD,
    PROMETHEUS, PROMTOOL,
};
use fleetmon::storage::{MatchOp, Matcher};
use serde_json::Value;

type Sample = ComparableSample;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A month of samples every 10 minutes, up to a minute ago, for three
/// series of two families, as OpenMetrics with second timestamps.
fn openmetrics_month(end_ms: i64) -> String {
    let mut text = String::from(
        "# HELP backfill_temperature_celsius Temperature.\n# TYPE backfill_temperature_celsius gauge\n",
    );
    let step = 600_000;
    let count = 30 * 24 * 6;
    let start = (end_ms - 60_000) - (count - 1) * step;
    for site in ["a \\\"quoted\\\" site", "b"] {
        for i in 0..count {
            let t = start + i * step;
            text.push_str(&format!(
                "backfill_temperature_celsius{{site=\"{site}\"}} {}.5 {}.{:03}\n",
                i % 40,
                t / 1000,
                t % 1000
            ));
        }
    }
    text.push_str("# TYPE backfill_events counter\n");
    for i in 0..count {
        let t = start + i * step;
        text.push_str(&format!("backfill_events_total {i} {}\n", t / 1000));
    }
    text.push_str("# EOF\n");
    text
}

fn backfill_matcher() -> Matcher {
    Matcher::new(MatchOp::Regex, "__name__", "backfill_.*").unwrap()
}

fn stored(store: &Path) -> BTreeSet<Sample> {
    let mut out = BTreeSet::new();
    for (labels, samples) in read_store(store, &[backfill_matcher()]) {
        for (t, v) in samples {
            out.insert((labels.clone(), t, comparable_bits(v)));
        }
    }
    out
}

/// The samples Prometheus holds under `data`, read through its API.
async fn prometheus_samples(data: &Path, at_ms: i64) -> BTreeSet<Sample> {
    let port = free_port();
    let config = data.with_extension("yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    let mut prometheus =
        Program::prometheus(&config, data, port, &["--storage.tsdb.retention.time=10y"]);
    let query = r#"{__name__=~"backfill_.*"}[31d]"#;
    let at = Some(at_ms as f64 / 1000.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let body = loop {
        if let Some(body) = prometheus_query(port, query, at).await {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "prometheus did not answer"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    prometheus.terminate();
    matrix_samples(&body)
}

fn fleetmon_command(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fleetmon"))
        .args(args)
        .env("FLEETMON_PASSWORD", ADMIN_PASSWORD)
        .env_remove("FLEETMON_TOKEN")
        .output()
        .expect("run fleetmon import")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openmetrics_month_imports_as_promtool_backfills_it() {
    if !have_program(PROMTOOL) || !have_program(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let end = now_ms();
    let file = dir.path().join("month.om.txt");
    std::fs::write(&file, openmetrics_month(end)).unwrap();

    // promtool's blocks, read through the real Prometheus.
    let blocks = dir.path().join("promtool");
    promtool_backfill(&file, &blocks);
    let expected = prometheus_samples(&blocks, end).await;
    assert_eq!(expected.len(), 3 * 30 * 24 * 6);

    // Offline, into a stopped store.
    let offline = dir.path().join("offline");
    let output = fleetmon_command(&[
        "import",
        file.to_str().unwrap(),
        "--storage.path",
        offline.to_str().unwrap(),
    ]);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("samples: 12960  series: 3"), "{printed}");
    let got = stored(&offline);
    let missing: Vec<_> = expected.difference(&got).take(3).collect();
    let extra: Vec<_> = got.difference(&expected).take(3).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );

    // Online, into a running fleetmon that already holds recent samples.
    let online = dir.path().join("online");
    let server = Fleetmon::start(&online, &[]);
    let output = fleetmon_command(&["import", file.to_str().unwrap(), "--server", &server.base]);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("backfilled:"), "{printed}");
    assert!(server.stop().success());
    assert_eq!(stored(&online), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_endpoint_takes_text_with_extra_labels_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(&dir.path().join("store"), &[]);
    let url = server.url("/api/v1/import/prometheus?extra_label=job=import&extra_label=env=test");
    let t = now_ms() - 86_400_000;
    let body = format!(
        "# TYPE backfill_queue_depth gauge\nbackfill_queue_depth{{queue=\"a\",job=\"x\"}} 3 {t}\nbackfill_queue_depth{{queue=\"a\"}} 4 {}\n",
        t + 60_000
    );
    let http = reqwest::Client::new();
    let answer = http
        .post(&url)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let summary: Value = answer.json().await.unwrap();
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["data"]["samples"], 2);
    assert_eq!(summary["data"]["series"], 1);
    assert_eq!(summary["data"]["backfilled"], 2);

    let broken = format!("backfill_broken 1 {t}\nbackfill_broken{{ 2 {t}\n");
    let answer = http
        .post(&url)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body(broken)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let error: Value = answer.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("line 2:"),
        "{error}"
    );
    assert_eq!(error["data"]["samples"], 1, "{error}");

    let viewer = create_token(&server, "reader", "viewer").await;
    let (status, _) = Client::bearer(&viewer).post(&url, None).await;
    assert_eq!(status, 403);
    assert!(server.stop().success());

    let series = read_store(&dir.path().join("store"), &[backfill_matcher()]);
    let labels: Vec<_> = series.iter().map(|(labels, _)| labels.clone()).collect();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        labels,
        vec![
            pairs(&[
                ("__name__", "backfill_broken"),
                ("env", "test"),
                ("job", "import")
            ]),
            pairs(&[
                ("__name__", "backfill_queue_depth"),
                ("env", "test"),
                ("job", "import"),
                ("queue", "a")
            ]),
        ]
    );
    assert_eq!(series[1].1, vec![(t, 3.0), (t + 60_000, 4.0)]);
}
