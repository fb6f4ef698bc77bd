//! The status endpoints of the real binary over loopback: `status/config`
//! (credentials masked, following reloads), `status/flags`,
//! `status/runtimeinfo`, `status/walreplay` (across a restart),
//! `targets/metadata` (with a target the test serves and fleetmon's own
//! `/metrics`) and `parse_query`, with their error answers and the viewer
//! gate.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use common::{eventually, Client, Fleetmon};
use serde_json::{json, Value};

/// The basic-auth password of the `guarded` job: must never be served.
const PASSWORD: &str = "scrape-pass-4f9c1e";
/// The password after the reload.
const NEW_PASSWORD: &str = "scrape-pass-77ab20";

/// What the test target exposes, with a unit (OpenMetrics) and help texts.
const EXPOSITION: &str = "# TYPE demo_temperature_celsius gauge\n\
# UNIT demo_temperature_celsius celsius\n\
# HELP demo_temperature_celsius Temperature of the demo.\n\
demo_temperature_celsius 21.5\n\
# TYPE demo_requests counter\n\
# HELP demo_requests Requests served.\n\
demo_requests_total 7\n\
# EOF\n";

/// Serves [`EXPOSITION`] as OpenMetrics on a loopback port; `host:port`.
async fn demo_target() -> String {
    let router = Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                EXPOSITION,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// Two jobs on the demo target: `demo`, and `guarded` with basic auth
/// (the target does not check it); `extra` is appended to the jobs.
fn config_text(target: &str, password: &str, extra: &str) -> String {
    format!(
        "global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ['{target}']
  - job_name: guarded
    basic_auth: {{username: scraper, password: {password}}}
    static_configs:
      - targets: ['{target}']
{extra}"
    )
}

fn write_config(path: &Path, text: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    target: String,
    server: Fleetmon,
}

async fn started(extra_flags: &[&str]) -> Setup {
    let target = demo_target().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleetmon.yml");
    write_config(&config, &config_text(&target, PASSWORD, ""));
    let mut flags = vec!["--config.file", config.to_str().unwrap()];
    flags.extend_from_slice(extra_flags);
    let server = Fleetmon::start(&dir.path().join("store"), &flags);
    Setup {
        dir,
        config,
        target,
        server,
    }
}

/// `GET path` as admin; the body's `data` after checking the envelope.
async fn data(server: &Fleetmon, path: &str) -> Value {
    let (status, body) = Client::admin().get(&server.url(path)).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(body["status"], "success", "{path}: {body}");
    body["data"].clone()
}

/// `GET path` as admin, expecting 400 `bad_data`; the error message.
async fn bad_data(server: &Fleetmon, path: &str) -> String {
    let (status, body) = Client::admin().get(&server.url(path)).await;
    assert_eq!(status, 400, "{path}: {body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], "bad_data", "{body}");
    body["error"].as_str().unwrap_or_default().to_string()
}

/// The `targets/metadata` entries, once both jobs have exposed both families.
async fn all_metadata(server: &Fleetmon) -> Vec<Value> {
    eventually(Duration::from_secs(30), "both jobs' metadata", || async {
        let list = data(server, "/api/v1/targets/metadata").await;
        let list = list.as_array()?.clone();
        (list.len() == 4).then_some(list)
    })
    .await
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

#[tokio::test]
async fn config_is_served_masked_and_follows_reloads() {
    let setup = started(&[]).await;
    let server = &setup.server;

    let config = data(server, "/api/v1/status/config").await;
    let yaml = text(&config["yaml"]);
    assert!(yaml.contains("job_name: guarded"), "{yaml}");
    assert!(yaml.contains("username: scraper"), "{yaml}");
    assert!(yaml.contains("password: <secret>"), "{yaml}");
    assert!(!yaml.contains(PASSWORD), "{yaml}");
    assert!(yaml.contains("scrape_interval: 1s"), "{yaml}");
    let before = data(server, "/api/v1/status/runtimeinfo").await;
    assert_eq!(before["reloadConfigSuccess"], true);

    // A reload adds a job scraping fleetmon's own /metrics and changes the
    // password: both show, the new password does not.
    let own = server.base.trim_start_matches("http://").to_string();
    let self_job = format!("  - job_name: self\n    static_configs:\n      - targets: ['{own}']\n");
    write_config(
        &setup.config,
        &config_text(&setup.target, NEW_PASSWORD, &self_job),
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, body) = Client::admin().post(&server.url("/-/reload"), None).await;
    assert_eq!(status, 200, "{body}");
    let yaml = text(&data(server, "/api/v1/status/config").await["yaml"]).to_string();
    assert!(yaml.contains("job_name: self"), "{yaml}");
    assert!(
        !yaml.contains(NEW_PASSWORD) && !yaml.contains(PASSWORD),
        "{yaml}"
    );
    let reloaded = data(server, "/api/v1/status/runtimeinfo").await;
    assert_eq!(reloaded["reloadConfigSuccess"], true);
    // Same format and zone: later times sort later.
    assert!(
        text(&reloaded["lastConfigTime"]) > text(&before["lastConfigTime"]),
        "{before} then {reloaded}"
    );

    // A refused reload keeps the running config, and says so.
    write_config(&setup.config, "scrape_configs:\n  - job_nam: broken\n");
    let (status, _) = Client::admin().post(&server.url("/-/reload"), None).await;
    assert_eq!(status, 500);
    let refused = data(server, "/api/v1/status/runtimeinfo").await;
    assert_eq!(refused["reloadConfigSuccess"], false);
    assert_eq!(refused["lastConfigTime"], reloaded["lastConfigTime"]);
    assert_eq!(
        text(&data(server, "/api/v1/status/config").await["yaml"]),
        yaml
    );

    // fleetmon scraping itself: its own families, with its own target labels.
    let own_entries = eventually(Duration::from_secs(30), "self metadata", || async {
        let list = data(
            server,
            "/api/v1/targets/metadata?match_target=%7Bjob%3D%22self%22%7D&metric=prometheus_config_last_reload_successful",
        )
        .await;
        let list = list.as_array()?.clone();
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(
        own_entries,
        vec![json!({
            "target": {"instance": own, "job": "self"},
            "type": "gauge",
            "help": "Whether the last configuration reload attempt was successful.",
            "unit": "",
        })]
    );
}

#[tokio::test]
async fn flags_runtime_info_and_wal_replay() {
    let setup = started(&["--storage.retention.size", "512MB"]).await;
    let server = &setup.server;
    let store = setup.dir.path().join("store");

    let flags = data(server, "/api/v1/status/flags").await;
    let flags = flags.as_object().expect("an object of flags");
    assert_eq!(flags["web.listen-address"], "127.0.0.1:0");
    assert_eq!(flags["storage.path"], store.to_str().unwrap());
    assert_eq!(flags["config.file"], setup.config.to_str().unwrap());
    assert_eq!(flags["storage.retention.size"], "512MB");
    assert_eq!(flags["log.format"], "json");
    // Defaults are effective values too.
    assert_eq!(flags["query.timeout"], "2m");
    assert_eq!(flags["web.anonymous-read"], "false");
    assert!(flags.values().all(Value::is_string));
    assert!(flags.keys().all(|k| !k.starts_with('-')));
    assert!(!flags.contains_key("help"));

    let info = data(server, "/api/v1/status/runtimeinfo").await;
    let now = now_rfc3339();
    let start = text(&info["startTime"]);
    assert!(start.ends_with('Z') && start <= now.as_str(), "{info}");
    assert!(text(&info["serverTime"]) >= start, "{info}");
    assert_eq!(
        info["CWD"],
        std::env::current_dir().unwrap().to_str().unwrap()
    );
    assert_eq!(info["storageRetention"], "15d or 512MiB");
    assert_eq!(info["corruptionCount"], 0);
    assert_eq!(info["GOMEMLIMIT"], i64::MAX);
    assert_eq!(
        info["GOMAXPROCS"],
        std::thread::available_parallelism().unwrap().get()
    );
    assert!(info["goroutineCount"].as_u64().unwrap_or(0) >= 2, "{info}");
    assert_eq!((&info["GOGC"], &info["GODEBUG"]), (&json!(""), &json!("")));

    // A new store replays nothing: the log starts at segment 1.
    assert_eq!(
        data(server, "/api/v1/status/walreplay").await,
        json!({"min": 1, "max": 1, "current": 1})
    );
    all_metadata(server).await;

    // The stop folds segment 1 (with the scrapes) into the head's checkpoint
    // and starts segment 2; the restart reads the checkpoint, drops the empty
    // segment 2 and begins 3. A block set aside as corrupt is counted.
    assert!(setup.server.stop().success());
    assert!(store.join("wal/checkpoint.00000000000000000001").is_file());
    std::fs::create_dir_all(store.join("corrupted/01ARZ3NDEKTSV4RRFFQ69G5FAV")).unwrap();
    let server = Fleetmon::start(&store, &["--config.file", setup.config.to_str().unwrap()]);
    assert_eq!(
        data(&server, "/api/v1/status/walreplay").await,
        json!({"min": 3, "max": 3, "current": 3})
    );
    let info = data(&server, "/api/v1/status/runtimeinfo").await;
    assert_eq!(info["corruptionCount"], 1);
    assert_eq!(info["storageRetention"], "15d");
}

/// Now in the API's RFC 3339 form (whole seconds are enough to compare).
fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    fleetmon::api::time::rfc3339_ms(now.as_millis() as i64 + 1)
}

#[tokio::test]
async fn targets_metadata_filters_limits_and_refuses_bad_parameters() {
    let setup = started(&[]).await;
    let server = &setup.server;

    let all = all_metadata(server).await;
    let temperature = json!({
        "target": {"instance": setup.target, "job": "demo"},
        "metric": "demo_temperature_celsius",
        "type": "gauge",
        "help": "Temperature of the demo.",
        "unit": "celsius",
    });
    assert!(all.contains(&temperature), "{all:?}");
    assert!(all.contains(&json!({
        "target": {"instance": setup.target, "job": "guarded"},
        "metric": "demo_requests",
        "type": "counter",
        "help": "Requests served.",
        "unit": "",
    })));

    let demo = data(
        server,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22demo%22%7D",
    )
    .await;
    let demo = demo.as_array().unwrap();
    assert_eq!(demo.len(), 2, "{demo:?}");
    assert!(demo.iter().all(|e| e["target"]["job"] == "demo"));
    let none = data(
        server,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22absent%22%7D",
    )
    .await;
    assert_eq!(none, json!([]));

    // With `metric`, one entry per target and no `metric` key.
    let one = data(
        server,
        "/api/v1/targets/metadata?metric=demo_temperature_celsius",
    )
    .await;
    let one = one.as_array().unwrap();
    assert_eq!(one.len(), 2, "{one:?}");
    assert!(one
        .iter()
        .all(|e| e.get("metric").is_none() && e["unit"] == "celsius"));

    for (limit, expected) in [("1", 1), ("0", 0), ("-1", 4), ("3", 3)] {
        let list = data(server, &format!("/api/v1/targets/metadata?limit={limit}")).await;
        assert_eq!(
            list.as_array().map(Vec::len),
            Some(expected),
            "limit={limit}"
        );
    }
    let error = bad_data(server, "/api/v1/targets/metadata?limit=ten").await;
    assert!(error.contains("\"limit\""), "{error}");
    let error = bad_data(
        server,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22demo%22",
    )
    .await;
    assert!(error.contains("\"match_target\""), "{error}");
    let error = bad_data(
        server,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D~%22(%22%7D",
    )
    .await;
    assert!(error.contains("\"match_target\""), "{error}");
}

#[tokio::test]
async fn parse_query_answers_the_syntax_tree() {
    let setup = started(&[]).await;
    let server = &setup.server;

    let tree = data(
        server,
        "/api/v1/parse_query?query=sum%20by%20(job)%20(rate(demo_requests_total%5B5m%5D))",
    )
    .await;
    assert_eq!(tree["type"], "aggregation");
    assert_eq!(tree["op"], "sum");
    assert_eq!(tree["grouping"], json!(["job"]));
    assert_eq!(tree["without"], false);
    assert_eq!(tree["param"], Value::Null);
    let call = &tree["expr"];
    assert_eq!(call["type"], "call");
    assert_eq!(call["func"]["name"], "rate");
    assert_eq!(call["func"]["returnType"], "vector");
    let matrix = &call["args"][0];
    assert_eq!(matrix["type"], "matrixSelector");
    assert_eq!(matrix["range"], 300_000);
    assert_eq!(
        matrix["matchers"],
        json!([{"type": "=", "name": "__name__", "value": "demo_requests_total"}])
    );

    // POSTed as a form, as the UI sends it.
    let (status, body) = Client::admin()
        .post_form(
            &server.url("/api/v1/parse_query"),
            &[("query", "a / on (job) b > bool 1")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tree = &body["data"];
    assert_eq!(
        (&tree["type"], &tree["op"]),
        (&json!("binaryExpr"), &json!(">"))
    );
    assert_eq!(tree["bool"], true);
    assert_eq!(tree["matching"], Value::Null, "vector against scalar");
    assert_eq!(tree["lhs"]["matching"]["on"], true);
    assert_eq!(tree["lhs"]["matching"]["labels"], json!(["job"]));

    let error = bad_data(server, "/api/v1/parse_query?query=sum(").await;
    assert!(error.contains("\"query\""), "{error}");
    let error = bad_data(server, "/api/v1/parse_query").await;
    assert!(error.contains("\"query\""), "{error}");
}

#[tokio::test]
async fn status_endpoints_need_a_viewer() {
    let setup = started(&[]).await;
    let server = &setup.server;
    for path in [
        "/api/v1/status/config",
        "/api/v1/status/flags",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/walreplay",
        "/api/v1/targets/metadata",
        "/api/v1/parse_query?query=up",
    ] {
        let (status, body) = Client::anonymous().get(&server.url(path)).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["errorType"], "unauthorized", "{path}");
    }
}
