//! PromQL against the real Prometheus (Debian's 2.42): the same data in
//! both — Prometheus backfilled with `promtool tsdb create-blocks-from
//! openmetrics`, fleetmon with `fleetmon import` — and a generated query
//! set (functions, aggregations, operators, offsets, subqueries over
//! counters, gauges and classic histograms), as instant and range queries;
//! the answers must be equal within float tolerance.
//!
//! Where Prometheus 2.x and 3.x differ, fleetmon follows 3.x, so the
//! comparison avoids those cases: evaluation times sit 7 s off the 15 s
//! sample grid, so no sample falls on a window's left edge (3.x windows are
//! left-open, 2.x closed), and functions 2.42 lacks or renamed are left out.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{
    free_port, have_program, metric_labels, prom_value, promtool_backfill, Client, Fleetmon,
    Program, PROMETHEUS, PROMTOOL,
};
use serde_json::Value;

/// Samples every 15 s for 2 h.
const STEP_S: i64 = 15;
const POINTS: i64 = 2 * 3600 / STEP_S;

/// Counters, gauges and a classic histogram, as OpenMetrics with second
/// timestamps ending at `end_s`.
fn openmetrics(end_s: i64) -> String {
    let start = end_s - (POINTS - 1) * STEP_S;
    let mut text = String::new();
    text.push_str("# TYPE diff_requests counter\n");
    for (instance, code, slope) in [
        ("a", "200", 3.0),
        ("a", "500", 0.5),
        ("b", "200", 7.0),
        ("b", "500", 0.0),
    ] {
        let mut value = 0.0;
        for i in 0..POINTS {
            // A counter reset halfway for one series.
            if instance == "b" && code == "200" && i == POINTS / 2 {
                value = 0.0;
            }
            value += slope * (1.0 + (i % 7) as f64 / 10.0);
            text.push_str(&format!(
                "diff_requests_total{{instance=\"{instance}\",code=\"{code}\"}} {value} {}\n",
                start + i * STEP_S
            ));
        }
    }
    text.push_str("# TYPE diff_temperature gauge\n");
    for (instance, base) in [("a", 20.0), ("b", -3.5), ("c", 101.25)] {
        for i in 0..POINTS {
            let value = base + ((i as f64) / 9.0).sin() * 4.0;
            text.push_str(&format!(
                "diff_temperature{{instance=\"{instance}\"}} {value} {}\n",
                start + i * STEP_S
            ));
        }
    }
    text.push_str("# TYPE diff_latency_seconds histogram\n");
    let bounds = ["0.05", "0.1", "0.25", "0.5", "1.0", "+Inf"];
    for instance in ["a", "b"] {
        let mut counts = [0.0; 6];
        for i in 0..POINTS {
            for (b, count) in counts.iter_mut().enumerate() {
                *count +=
                    (b as f64 + 1.0) * if instance == "a" { 1.0 } else { 2.0 } + (i % 3) as f64;
            }
            // Cumulative buckets.
            let mut cumulative = 0.0;
            for (b, bound) in bounds.iter().enumerate() {
                cumulative += counts[b];
                text.push_str(&format!(
                    "diff_latency_seconds_bucket{{instance=\"{instance}\",le=\"{bound}\"}} {cumulative} {}\n",
                    start + i * STEP_S
                ));
            }
        }
    }
    text.push_str("# EOF\n");
    text
}

/// The query set: each function and operator over each kind of series.
fn queries() -> Vec<String> {
    let counters = ["diff_requests_total", "diff_requests_total{code=\"500\"}"];
    let gauges = ["diff_temperature", "diff_temperature{instance=~\"a|c\"}"];
    let mut out = Vec::new();
    for c in counters {
        for f in ["rate", "irate", "increase", "resets", "changes"] {
            for range in ["1m", "5m", "17m"] {
                out.push(format!("{f}({c}[{range}])"));
            }
        }
        out.push(format!("sum by (instance) (rate({c}[5m]))"));
        out.push(format!("sum without (code) (rate({c}[5m]))"));
        out.push(format!("rate({c}[5m] offset 10m)"));
        // Subquery steps are whole minutes, on the sample grid: the inner
        // offset keeps its windows' edges off the samples (see the top).
        out.push(format!("max_over_time(rate({c}[1m] offset 7s)[10m:1m])"));
    }
    for g in gauges {
        for f in [
            "delta",
            "idelta",
            "deriv",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "last_over_time",
            "present_over_time",
        ] {
            out.push(format!("{f}({g}[5m])"));
        }
        out.push(format!("quantile_over_time(0.3, {g}[10m])"));
        out.push(format!("predict_linear({g}[10m], 600)"));
        for f in [
            "abs",
            "ceil",
            "floor",
            "round",
            "sqrt",
            "exp",
            "ln",
            "sgn",
            "timestamp",
        ] {
            out.push(format!("{f}({g})"));
        }
        out.push(format!("clamp({g}, 0, 50)"));
        out.push(format!("{g} offset 5m"));
        for agg in [
            "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group",
        ] {
            out.push(format!("{agg}({g})"));
        }
        out.push(format!("topk(2, {g})"));
        out.push(format!("bottomk(1, {g})"));
        out.push(format!("quantile(0.75, {g})"));
        out.push(format!("count_values(\"value\", round({g}))"));
        out.push(format!("{g} > 0"));
        out.push(format!("{g} > bool 10"));
        out.push(format!("-{g} * 2 + 1"));
        out.push(format!("avg_over_time({g}[30m:5m])"));
    }
    out.extend(
        [
            "diff_temperature / on(instance) group_left sum by (instance) (rate(diff_requests_total[5m]))",
            "sum by (instance) (rate(diff_requests_total[5m])) / on(instance) diff_temperature",
            "diff_temperature and on(instance) diff_requests_total{code=\"500\"}",
            "diff_temperature unless on(instance) diff_requests_total",
            "diff_temperature or diff_requests_total",
            "histogram_quantile(0.9, rate(diff_latency_seconds_bucket[5m]))",
            "histogram_quantile(0.5, sum by (le) (rate(diff_latency_seconds_bucket[10m])))",
            "label_replace(diff_temperature, \"host\", \"h-$1\", \"instance\", \"(.*)\")",
            "label_join(diff_temperature, \"both\", \"-\", \"instance\", \"__name__\")",
            "absent(diff_nothing{job=\"x\"})",
            "vector(1) + scalar(sum(diff_temperature))",
            "time() - timestamp(diff_temperature)",
        ]
        .map(String::from),
    );
    out
}

/// A query's answer, comparable: label set → points.
type Answer = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

fn answer(body: &Value) -> Result<Answer, String> {
    if body["status"] != "success" {
        return Err(format!("{}", body["error"]));
    }
    let mut out = Answer::new();
    match body["data"]["resultType"].as_str() {
        Some("scalar") => {
            let v = &body["data"]["result"];
            out.insert(Vec::new(), vec![point(v)]);
        }
        Some("vector") | Some("matrix") => {
            for series in body["data"]["result"].as_array().into_iter().flatten() {
                let points = match series.get("values") {
                    Some(values) => values.as_array().into_iter().flatten().map(point).collect(),
                    None => vec![point(&series["value"])],
                };
                out.insert(metric_labels(&series["metric"]), points);
            }
        }
        other => return Err(format!("unexpected result type {other:?}")),
    }
    Ok(out)
}

fn point(p: &Value) -> (i64, f64) {
    let t = (p[0].as_f64().unwrap_or_default() * 1000.0).round() as i64;
    (t, prom_value(p[1].as_str().unwrap_or("NaN")))
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

fn differs(expected: &Answer, got: &Answer) -> Option<String> {
    if expected.keys().ne(got.keys()) {
        let missing: Vec<_> = expected
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(2)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .take(2)
            .collect();
        return Some(format!(
            "series differ: missing {missing:?}, extra {extra:?}"
        ));
    }
    for (labels, points) in expected {
        let other = &got[labels];
        if points.len() != other.len() {
            return Some(format!(
                "{labels:?}: {} points vs {}",
                points.len(),
                other.len()
            ));
        }
        for (p, q) in points.iter().zip(other) {
            if p.0 != q.0 || !close(p.1, q.1) {
                return Some(format!("{labels:?}: Prometheus {p:?}, fleetmon {q:?}"));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_as_the_real_prometheus_does() {
    if !have_program(PROMETHEUS) || !have_program(PROMTOOL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The data ends 2 minutes ago, on the 15 s grid.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end_s = (now_s - 120) / STEP_S * STEP_S;
    let file = dir.path().join("data.om.txt");
    std::fs::write(&file, openmetrics(end_s)).unwrap();

    let blocks = dir.path().join("prometheus");
    promtool_backfill(&file, &blocks);
    let store = dir.path().join("fleetmon");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetmon"))
        .args([
            "import",
            file.to_str().unwrap(),
            "--storage.path",
            store.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
    let _prometheus = Program::prometheus(
        &config,
        &blocks,
        port,
        &["--storage.tsdb.retention.time=10y"],
    );
    let empty = dir.path().join("fleetmon.yml");
    std::fs::write(&empty, "global:\n  scrape_interval: 1m\n").unwrap();
    let server = Fleetmon::start(&store, &["--config.file", empty.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let prometheus = format!("http://127.0.0.1:{port}/api/v1");
    common::prometheus_reaches(port, "count(diff_temperature)", 3.0).await;

    // Off the sample grid by 7 s: no sample on a window edge.
    let at = |s: i64| format!("{}", s + 7);
    let instant_times = [end_s - 3600, end_s - 600, end_s];
    let range = [
        ("start", at(end_s - 5400)),
        ("end", at(end_s)),
        ("step", "60".to_string()),
    ];
    let mut failures = Vec::new();
    let mut compared = 0;
    for query in queries() {
        let mut requests: Vec<(String, Vec<(&str, String)>)> = instant_times
            .iter()
            .map(|t| {
                (
                    "query".to_string(),
                    vec![("query", query.clone()), ("time", at(*t))],
                )
            })
            .collect();
        let mut params = vec![("query", query.clone())];
        params.extend(range.iter().cloned());
        requests.push(("query_range".to_string(), params));
        for (endpoint, params) in requests {
            let expected: Value = http
                .get(format!("{prometheus}/{endpoint}"))
                .query(&params)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let (_, got) = Client::admin()
                .get(&format!(
                    "{}?{}",
                    server.url(&format!("/api/v1/{endpoint}")),
                    serde_urlencoded::to_string(&params).unwrap()
                ))
                .await;
            compared += 1;
            let verdict = match (answer(&expected), answer(&got)) {
                (Ok(e), Ok(g)) => differs(&e, &g),
                (Err(_), Err(_)) => None,
                (Ok(_), Err(g)) => Some(format!("fleetmon failed: {g}")),
                (Err(e), Ok(_)) => Some(format!("Prometheus failed ({e}), fleetmon answered")),
            };
            if let Some(why) = verdict {
                failures.push(format!("{endpoint} {query}: {why}"));
            }
        }
    }
    assert!(server.stop().success());
    println!("compared {compared} answers; {} differ", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {compared} answers differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
