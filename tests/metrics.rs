//! `/metrics` after real traffic: accepted by the real `promtool check
//! metrics`, with the monitoring guide's series and labels, the fleet and
//! process metrics, OpenMetrics on request, and no secrets.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{create_token, eventually, Client, Fleetmon};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_after_traffic_follow_the_guide_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let server = Fleetmon::start(dir.path(), &["--fleet.refresh-interval", "1s"]);
    let token = create_token(&server, "ops", "editor").await;
    let client = Client::bearer(&token);
    let (_, list) = client.get(&server.url("/api/1/vehicles")).await;
    let vin = list["response"][0]["vin"].as_str().unwrap().to_string();
    client
        .get(&server.url(&format!("/api/1/vehicles/{vin}")))
        .await;
    client
        .post(&server.url(&format!("/api/1/vehicles/{vin}/wake_up")), None)
        .await;
    client.get(&server.url("/api/1/no/such/path")).await;
    Client::anonymous()
        .get(&server.url("/api/1/vehicles"))
        .await;

    let metrics = eventually(Duration::from_secs(20), "the fleet gauges", || async {
        let (_, _, text) = Client::anonymous()
            .get_text(&server.url("/metrics"), None)
            .await;
        text.contains("tesla_vehicle_battery_level_percent{")
            .then_some(text)
    })
    .await;

    for expected in [
        r#"http_requests_total{method="GET",endpoint="/api/1/vehicles",status_code="200"} 1"#,
        r#"http_requests_total{method="GET",endpoint="/api/1/vehicles",status_code="401"} 1"#,
        r#"http_requests_total{method="GET",endpoint="/api/1/vehicles/{tag}",status_code="200"} 1"#,
        r#"http_requests_total{method="POST",endpoint="/api/1/vehicles/{tag}/wake_up",status_code="200"} 1"#,
        r#"http_requests_total{method="GET",endpoint="none",status_code="404"} 1"#,
        r#"http_request_duration_seconds_bucket{method="GET",endpoint="/api/1/vehicles",le="+Inf"} 2"#,
        r#"http_request_duration_seconds_count{method="GET",endpoint="/api/1/vehicles"} 2"#,
        r#"http_requests_in_progress{method="GET",endpoint="/metrics"} 1"#,
        r#"http_request_size_bytes_count{method="POST",endpoint="/api/1/vehicles/{tag}/wake_up"} 1"#,
        r#"http_response_size_bytes_sum{method="GET",endpoint="/api/1/vehicles/{tag}"}"#,
        r#"tesla_commands_total{command_type="wake_up"} 1"#,
        r#"tesla_api_call_duration_bucket{endpoint="/api/1/vehicles/{vehicle_tag}/wake_up",le="+Inf"} 1"#,
        "# TYPE tesla_api_call_duration histogram",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_start_time_seconds ",
        "process_open_fds ",
        "fleetmon_build_info{version=\"",
        "prometheus_tsdb_head_series ",
        "prometheus_tsdb_blocks_loaded 0",
        "prometheus_tsdb_wal_storage_size_bytes ",
        "prometheus_tsdb_data_replay_duration_seconds ",
        &format!("tesla_vehicle_state{{vin=\"{vin}\","),
        "tesla_vehicle_odometer_meters{vin=\"",
    ] {
        assert!(
            metrics.contains(expected),
            "missing `{expected}` in\n{metrics}"
        );
    }
    assert!(!metrics.contains(&token) && !metrics.contains(common::ADMIN_PASSWORD));

    if common::have_program("/usr/bin/promtool") {
        let mut promtool = Command::new("/usr/bin/promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        promtool
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = promtool.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let (status, headers, open_metrics) = Client::anonymous()
        .get_text(
            &server.url("/metrics"),
            Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text; version=1.0.0"));
    assert!(open_metrics.ends_with("# EOF\n"));
    assert!(open_metrics.contains("# TYPE http_requests counter"));
    let (_, headers, _) = Client::anonymous()
        .get_text(&server.url("/metrics"), None)
        .await;
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
}
