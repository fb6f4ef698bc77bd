//! `--fleet.upstream tesla` against a local server that speaks the Fleet
//! API's documented shapes (the real cloud is not reachable from here):
//! forwarding, retries on 429/5xx honouring Retry-After, error mapping,
//! timeouts, and graceful shutdown with a request in flight.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{create_token, Client, Fleetmon};
use serde_json::{json, Value};

const VIN: &str = "5YJ3E1EA7KF000001";
const UPSTREAM_TOKEN: &str = "upstream-oauth-token-xyz";

#[derive(Default)]
struct Fake {
    vehicle_data_calls: AtomicUsize,
    command_calls: AtomicUsize,
    last_endpoints: std::sync::Mutex<String>,
}

fn vehicle() -> Value {
    json!({"id": 1492931337154643_u64, "id_s": "1492931337154643", "vehicle_id": 1234, "vin": VIN,
           "display_name": "Roadrunner", "state": "online", "access_type": "OWNER"})
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {UPSTREAM_TOKEN}"))
}

/// A Fleet API stand-in: vehicle 1 is online; tag "SLEEPY" answers 408;
/// vehicle_data by id fails with 429 (Retry-After: 1) then 503 before answering;
/// honk_horn always 503; flash_lights takes 3 s; tag "REVOKED" answers 401.
async fn start_fake() -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/api/1/vehicles", get(|headers: HeaderMap| async move {
            if !authorized(&headers) {
                return (StatusCode::UNAUTHORIZED, Json(json!({"response": null, "error": "invalid bearer token", "error_description": ""}))).into_response();
            }
            Json(json!({"response": [vehicle()], "count": 1, "pagination": {"previous": null, "next": null, "current": 1, "per_page": 100, "count": 1, "pages": 1}})).into_response()
        }))
        .route("/api/1/vehicles/{tag}", get(|Path(tag): Path<String>| async move {
            if tag == "REVOKED" {
                return (StatusCode::UNAUTHORIZED, Json(json!({"response": null, "error": "token expired (401)", "error_description": ""}))).into_response();
            }
            Json(json!({"response": vehicle()})).into_response()
        }))
        .route("/api/1/vehicles/{tag}/vehicle_data", get(|State(fake): State<Arc<Fake>>, Path(tag): Path<String>, Query(q): Query<std::collections::HashMap<String, String>>| async move {
            if tag == "SLEEPY" {
                return (StatusCode::REQUEST_TIMEOUT, Json(json!({"response": null, "error": "vehicle unavailable: vehicle is offline or asleep", "error_description": ""}))).into_response();
            }
            let data = Json(json!({"response": {"vin": VIN, "state": "online", "charge_state": {"battery_level": 64, "charging_state": "Charging"}, "climate_state": {"inside_temp": 21.5}, "drive_state": {"speed": null}, "vehicle_state": {"odometer": 12345.6}}})).into_response();
            // Only calls by id fail first, so the gauge refresh (by VIN) does not disturb the sequence.
            if tag == VIN {
                return data;
            }
            *fake.last_endpoints.lock().unwrap() = q.get("endpoints").cloned().unwrap_or_default();
            match fake.vehicle_data_calls.fetch_add(1, Ordering::SeqCst) % 3 {
                0 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "Retry in 1 seconds").into_response(),
                1 => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"response": null, "error": "internal service error", "error_description": ""}))).into_response(),
                _ => data,
            }
        }))
        .route("/api/1/vehicles/{tag}/wake_up", post(|| async { Json(json!({"response": vehicle()})) }))
        .route("/api/1/vehicles/{tag}/command/{name}", post(|State(fake): State<Arc<Fake>>, Path((_tag, name)): Path<(String, String)>, Json(body): Json<Value>| async move {
            fake.command_calls.fetch_add(1, Ordering::SeqCst);
            match name.as_str() {
                "honk_horn" => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"response": null, "error": "vehicle_timeout", "error_description": "the car did not answer"}))).into_response(),
                "flash_lights" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Json(json!({"response": {"result": true, "reason": ""}})).into_response()
                }
                "set_charge_limit" if body["percent"] == 80 => Json(json!({"response": {"result": false, "reason": "already_set"}})).into_response(),
                _ => Json(json!({"response": {"result": true, "reason": ""}})).into_response(),
            }
        }))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fake)
}

fn start_fleetmon(dir: &std::path::Path, upstream: &str, timeout: &str) -> Fleetmon {
    let args = [
        "--fleet.upstream",
        "tesla",
        "--fleet.tesla.base-url",
        upstream,
        "--fleet.tesla.timeout",
        timeout,
    ];
    Fleetmon::try_start(
        dir,
        &args,
        &[("FLEETMON_TESLA_ACCESS_TOKEN", UPSTREAM_TOKEN)],
    )
    .unwrap_or_else(|log| panic!("fleetmon did not start:\n{log}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn forwards_retries_and_maps_errors() {
    let (upstream, fake) = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_fleetmon(dir.path(), &upstream, "2s");
    let client = Client::bearer(&create_token(&server, "ops", "editor").await);

    let (status, list) = client.get(&server.url("/api/1/vehicles")).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["response"][0]["vin"], VIN);
    assert_eq!(list["count"], 1);

    // 429 (Retry-After: 1) then 503, then the data: the client sees only the data.
    let start = Instant::now();
    let (status, body) = client
        .get(&server.url(
            "/api/1/vehicles/1492931337154643/vehicle_data?endpoints=charge_state;location_data",
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["charge_state"]["battery_level"], 64);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(
        *fake.last_endpoints.lock().unwrap(),
        "charge_state;location_data"
    );

    let (status, body) = client
        .get(&server.url("/api/1/vehicles/SLEEPY/vehicle_data"))
        .await;
    assert_eq!(status, 408);
    assert_eq!(
        body["error"],
        "vehicle unavailable: vehicle is offline or asleep"
    );

    let (status, body) = client
        .post(
            &server.url("/api/1/vehicles/1492931337154643/command/set_charge_limit"),
            Some(json!({"percent": 80})),
        )
        .await;
    assert_eq!(
        (status, body.clone()),
        (
            200,
            json!({"response": {"result": false, "reason": "already_set"}})
        )
    );

    // A 5xx that persists is retried, then returned in Tesla's shape.
    let before = fake.command_calls.load(Ordering::SeqCst);
    let (status, body) = client
        .post(
            &server.url(&format!("/api/1/vehicles/{VIN}/command/honk_horn")),
            None,
        )
        .await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "vehicle_timeout");
    assert_eq!(
        fake.command_calls.load(Ordering::SeqCst) - before,
        4,
        "first try and three retries"
    );

    // fleetmon's own token being refused is not the caller's fault: 502.
    let (status, body) = client.get(&server.url("/api/1/vehicles/REVOKED")).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"], "upstream_auth_failed");
    assert!(!body.to_string().contains(UPSTREAM_TOKEN));

    // A slow upstream hits the timeout (2 s per attempt).
    let (status, body) = client
        .post(
            &server.url(&format!("/api/1/vehicles/{VIN}/command/flash_lights")),
            None,
        )
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"], "upstream_timeout");

    // The command log has the VIN even for commands sent by id (learnt from the list).
    let (_, log) = client
        .get(&server.url(&format!("/api/1/command_log?vehicle={VIN}")))
        .await;
    let commands = common::logged_commands(&log);
    assert_eq!(commands, ["flash_lights", "honk_horn", "set_charge_limit"]);

    let (_, _, metrics) = Client::anonymous()
        .get_text(&server.url("/metrics"), None)
        .await;
    assert!(metrics.contains("tesla_api_call_duration_count{endpoint=\"/api/1/vehicles/{vehicle_tag}/vehicle_data\"}"), "{metrics}");
    assert!(metrics.contains("tesla_commands_total{command_type=\"honk_horn\"} 1"));
    assert!(
        !metrics.contains(UPSTREAM_TOKEN) && !server.log().contains(UPSTREAM_TOKEN),
        "the upstream token leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_requests_in_flight() {
    let (upstream, _fake) = start_fake().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start_fleetmon(dir.path(), &upstream, "10s");
    let client = Client::bearer(&create_token(&server, "ops", "editor").await);
    let url = server.url(&format!("/api/1/vehicles/{VIN}/command/flash_lights"));
    let in_flight = tokio::spawn(async move { client.post(&url, None).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = server.base.clone();
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(
        (status, body),
        (200, json!({"response": {"result": true, "reason": ""}})),
        "the request in flight was finished"
    );
    assert!(
        reqwest::get(format!("{base}/-/healthy")).await.is_err(),
        "no longer accepting"
    );
}
