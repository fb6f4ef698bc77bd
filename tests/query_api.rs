//! The Prometheus query API of the real binary over loopback: instant and
//! range queries by GET and form POST (as Grafana sends them), the label
//! and series endpoints, Prometheus's error types and status codes, the
//! viewer credential, and the real `promtool` as a client.

mod common;

use std::process::Command;

use common::{
    create_token, go_seconds, have_program, metrics_target, start_scraping, Client, Fleetmon,
    ADMIN_PASSWORD,
};
use serde_json::Value;

/// `demo_requests_total{code="200"}` and `{code="500"}`, as the demo
/// target serves them.
const DEMO_METRICS: &str = "# TYPE demo_requests_total counter\ndemo_requests_total{code=\"200\"} 10\ndemo_requests_total{code=\"500\"} 2\n";

/// Serves [`DEMO_METRICS`] on a loopback port.
async fn demo_target() -> String {
    metrics_target(DEMO_METRICS).await
}

/// fleetmon scraping the demo target, after its first scrape.
async fn started() -> (tempfile::TempDir, Fleetmon) {
    start_scraping(&demo_target().await, &[]).await
}

#[tokio::test]
async fn queries_answer_in_prometheus_shapes() {
    let (_dir, server) = started().await;
    let admin = Client::admin();

    // Grafana's health check: `1+1` at time 4.
    let (status, body) = admin
        .get(&server.url("/api/v1/query?query=1%2B1&time=4"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "scalar");
    assert_eq!(body["data"]["result"], serde_json::json!([4, "2"]));

    let (_, body) = admin
        .get(&server.url("/api/v1/query?query=demo_requests_total%7Bcode%3D~%225..%22%7D"))
        .await;
    let result = body["data"]["result"].as_array().expect("a vector");
    assert_eq!(result.len(), 1, "{body}");
    assert_eq!(result[0]["metric"]["code"], "500");
    assert_eq!(result[0]["metric"]["job"], "demo");
    assert_eq!(result[0]["value"][1], "2");

    // Aggregation with by, and a form POST as Grafana sends it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (status, body) = admin
        .post_form(
            &server.url("/api/v1/query_range"),
            &[
                ("query", "sum by (job) (demo_requests_total)"),
                ("start", &format!("{}", now - 30.0)),
                ("end", &format!("{now}")),
                ("step", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let series = &body["data"]["result"][0];
    assert_eq!(series["metric"], serde_json::json!({"job": "demo"}));
    let values = series["values"].as_array().expect("values");
    assert!(!values.is_empty());
    assert!(values.iter().all(|p| p[1] == "12"), "{values:?}");

    // `stats=all` and a `timeout` as Grafana sends it.
    let (status, body) = admin
        .get(&server.url("/api/v1/query?query=demo_requests_total&stats=all&timeout=30s"))
        .await;
    assert_eq!(status, 200, "{body}");
    let samples = &body["data"]["stats"]["samples"];
    assert!(
        samples["totalQueryableSamples"].as_u64().unwrap_or(0) >= 2,
        "{body}"
    );
    assert!(body["data"]["stats"]["timings"]["evalTotalTime"].is_number());
    let (status, body) = admin
        .get(&server.url("/api/v1/query?query=up&timeout=soon"))
        .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = admin
        .get(
            &server
                .url("/api/v1/format_query?query=sum(rate(demo_requests_total%5B5m%5D))by(code)"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        "sum by (code) (rate(demo_requests_total[5m]))"
    );

    // Grafana's datasource probes: buildinfo without `features` (so it is
    // taken for a Prometheus), and exemplars with millisecond times.
    let (status, body) = admin.get(&server.url("/api/v1/status/buildinfo")).await;
    assert_eq!(status, 200);
    assert!(body["data"]["version"].is_string());
    assert!(body["data"].get("features").is_none(), "{body}");
    let (status, body) = admin
        .get(
            &server.url("/api/v1/query_exemplars?query=test&start=1700000000000&end=1700000600000"),
        )
        .await;
    assert_eq!(
        (status, &body["status"]),
        (200, &Value::from("success")),
        "{body}"
    );

    // Rules and alerts: Prometheus's shapes, nothing evaluated yet.
    let (status, body) = admin.get(&server.url("/api/v1/rules?type=recording")).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["groups"], serde_json::json!([]));
    let (_, body) = admin.get(&server.url("/api/v1/alerts")).await;
    assert_eq!(body["data"]["alerts"], serde_json::json!([]));
    // A POST to a GET-only endpoint is 405, never 404 (Grafana retries as GET).
    let (status, _) = admin
        .post(&server.url("/api/v1/status/buildinfo"), None)
        .await;
    assert_eq!(status, 405);

    // Labels and series.
    let (_, body) = admin.get(&server.url("/api/v1/label/code/values")).await;
    assert_eq!(body["data"], serde_json::json!(["200", "500"]));
    let (_, body) = admin
        .get(&server.url("/api/v1/labels?match[]=demo_requests_total"))
        .await;
    assert_eq!(
        body["data"],
        serde_json::json!(["__name__", "code", "instance", "job"])
    );
    let (_, body) = admin
        .get(&server.url("/api/v1/series?match[]=demo_requests_total%7Bcode%3D%22200%22%7D"))
        .await;
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(server.stop().success());
}

#[tokio::test]
async fn errors_have_prometheus_types_and_reads_need_a_viewer() {
    let (_dir, server) = started().await;
    let admin = Client::admin();
    let (status, body) = admin.get(&server.url("/api/v1/query?query=sum(")).await;
    assert_eq!(status, 400);
    assert_eq!(body["errorType"], "bad_data");
    let (status, body) = admin
        .get(&server.url("/api/v1/query?query=up&time=yesterday"))
        .await;
    assert_eq!(status, 400);
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("invalid parameter \"time\""));
    let (status, body) = admin
        .get(&server.url("/api/v1/query_range?query=up&start=0&end=100000&step=1"))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("11,000 points"),
        "{body}"
    );
    // Two series match on `job` and `instance`: many-to-many.
    let (status, body) =
        admin
            .get(&server.url(
                "/api/v1/query?query=demo_requests_total%20%2B%20on(job)%20demo_requests_total",
            ))
            .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");

    let (status, _) = Client::anonymous()
        .get(&server.url("/api/v1/query?query=up"))
        .await;
    assert_eq!(status, 401);
    let viewer = create_token(&server, "grafana", "viewer").await;
    let (status, body) = Client::bearer(&viewer)
        .get(&server.url("/api/v1/query?query=up"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(server.stop().success());
}

#[tokio::test]
async fn promtool_queries_it_as_a_prometheus() {
    const PROMTOOL: &str = "/usr/bin/promtool";
    if !have_program(PROMTOOL) {
        return;
    }
    let (_dir, server) = started().await;
    // promtool 2.42 takes credentials in the URL (Go sends them as basic auth).
    let url = server
        .base
        .replace("http://", &format!("http://admin:{ADMIN_PASSWORD}@"));
    let promtool = |args: &[&str]| {
        let out = Command::new(PROMTOOL)
            .arg("query")
            .args(args)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let instant = promtool(&["instant", &url, "demo_requests_total"]);
    assert!(
        instant.contains("code=\"500\"") && instant.contains("=> 2 @"),
        "{instant}"
    );
    let labels = promtool(&["labels", &url, "code"]);
    assert_eq!(labels.lines().collect::<Vec<_>>(), ["200", "500"]);
    let series = promtool(&["series", &url, "--match=demo_requests_total"]);
    assert_eq!(series.lines().count(), 2, "{series}");
    let value: Value = serde_json::from_str(&promtool(&["instant", "-o", "json", &url, "1+1"]))
        .unwrap_or(Value::Null);
    // A scalar prints as `[time, "value"]`.
    assert_eq!(value[1], "2", "{value}");

    // A range query over three steps from the last scrape, which every
    // step finds (lookback; later scrapes hold the same values): promtool
    // prints each series' labels, then `value @[unix seconds]` per step,
    // times as Go prints them.
    let (_, body) = Client::admin()
        .get(&server.url("/api/v1/query?query=timestamp(up)"))
        .await;
    let last_scrape = body["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|t| t.parse::<f64>().ok())
        .expect("the last scrape's time");
    let start_ms = (last_scrape * 1000.0).round() as i64;
    let range = promtool(&[
        "range",
        &format!("--start={}", go_seconds(start_ms)),
        &format!("--end={}", go_seconds(start_ms + 2_000)),
        "--step=1s",
        &url,
        "sum by (code) (demo_requests_total)",
    ]);
    let mut expected = Vec::new();
    for (code, value) in [("200", 10), ("500", 2)] {
        expected.push(format!("{{code=\"{code}\"}} =>"));
        for step in 0..3 {
            expected.push(format!(
                "{value} @[{}]",
                go_seconds(start_ms + step * 1_000)
            ));
        }
    }
    assert_eq!(range.lines().collect::<Vec<_>>(), expected, "{range}");
    assert!(server.stop().success());
}

#[tokio::test]
async fn tsdb_status_and_administration() {
    let (_dir, server) = started().await;
    let admin = Client::admin();
    let (status, body) = admin.get(&server.url("/api/v1/status/tsdb")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]["headStats"]["numSeries"].as_u64().unwrap_or(0) >= 2,
        "{body}"
    );
    let names: Vec<&str> = body["data"]["seriesCountByMetricName"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"demo_requests_total"), "{names:?}");

    // Deleting needs the admin role.
    let viewer = create_token(&server, "reader", "viewer").await;
    let delete =
        "/api/v1/admin/tsdb/delete_series?match[]=demo_requests_total%7Bcode%3D%22500%22%7D";
    let (status, _) = Client::bearer(&viewer)
        .post(&server.url(delete), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = admin.post(&server.url(delete), None).await;
    assert_eq!(status, 204);
    let (_, body) = admin
        .get(&server.url("/api/v1/query?query=demo_requests_total%7Bcode%3D%22500%22%7D%5B1h%5D"))
        .await;
    let points: usize = body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["values"].as_array().map_or(0, Vec::len))
        .sum();
    // Scrapes after the delete add points again; the ones before are gone.
    assert!(points <= 2, "{body}");
    let (status, _) = admin
        .post(&server.url("/api/v1/admin/tsdb/clean_tombstones"), None)
        .await;
    assert_eq!(status, 204);

    let (status, body) = admin
        .post(&server.url("/api/v1/admin/tsdb/snapshot"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let name = body["data"]["name"].as_str().expect("a snapshot name");
    assert!(server.storage.join("snapshots").join(name).is_dir());
    assert!(server.stop().success());
}

#[tokio::test]
async fn the_real_prometheus_federates_from_fleetmon() {
    use common::{free_port, prometheus_query, prometheus_reaches, Program, PROMETHEUS};
    if !have_program(PROMETHEUS) {
        return;
    }
    let target = demo_target().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetmon.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  external_labels: {{site: lab}}\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .unwrap();
    let server = Fleetmon::start(
        &dir.path().join("store"),
        &["--config.file", config.to_str().unwrap()],
    );
    let (status, _, _) = Client::admin()
        .get_text(&server.url("/federate"), None)
        .await;
    assert_eq!(status, 400, "match[] is required");
    let port = free_port();
    let prometheus_config = dir.path().join("prometheus.yml");
    let address = server.base.trim_start_matches("http://");
    std::fs::write(
        &prometheus_config,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n    params:\n      'match[]': ['{{job=\"demo\"}}']\n    basic_auth:\n      username: admin\n      password: {ADMIN_PASSWORD}\n    static_configs:\n      - targets: ['{address}']\n"),
    )
    .unwrap();
    let _prometheus = Program::prometheus(
        &prometheus_config,
        &dir.path().join("prometheus"),
        port,
        &[],
    );
    prometheus_reaches(port, "count(demo_requests_total)", 2.0).await;
    let body = prometheus_query(port, "demo_requests_total{code=\"500\"}", None)
        .await
        .expect("an answer");
    let sample = &body["data"]["result"][0];
    assert_eq!(sample["metric"]["job"], "demo", "{body}");
    assert_eq!(sample["metric"]["site"], "lab", "{body}");
    assert_eq!(sample["value"][1], "2");
    assert!(server.stop().success());
}

#[tokio::test]
async fn anonymous_reads_open_queries_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(&dir.path().join("store"), &["--web.anonymous-read"]);
    let anonymous = Client::anonymous();
    let (status, body) = anonymous.get(&server.url("/api/v1/query?query=1")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = anonymous.get(&server.url("/api/v1/labels")).await;
    assert_eq!(status, 200);
    // Writes, administration and the fleet API still need credentials.
    let (status, _) = anonymous
        .post(&server.url("/api/v1/admin/tsdb/clean_tombstones"), None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = anonymous.get(&server.url("/api/1/vehicles")).await;
    assert_eq!(status, 401);
    // A wrong credential is still refused, not read as anonymous.
    let (status, _) = Client::bearer("fmt_wrong_token")
        .get(&server.url("/api/v1/query?query=1"))
        .await;
    assert_eq!(status, 401);
    assert!(server.stop().success());
}
