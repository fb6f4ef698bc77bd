//! Status endpoints Grafana, Prometheus's UI and tools call, for the viewer
//! role:
//! - `status/buildinfo` (Prometheus's shape, without `features`, so Grafana
//!   takes fleetmon for a Prometheus and not a Mimir);
//! - `status/config` (the configuration in force as YAML, credentials shown
//!   as `<secret>`), `status/flags` (every `serve` flag's effective value),
//!   `status/runtimeinfo` (`runtime_info.rs`) and `status/walreplay` (the
//!   WAL segments replayed at start; replay ends before the API serves, so
//!   `current` is `max`);
//! - `query_exemplars` (fleetmon keeps no exemplars: an empty list for any
//!   valid request, which is what Grafana's exemplar probe needs, even with
//!   its millisecond times; a bad time or query is `bad_data`, as in
//!   Prometheus);
//! - `format_query` (the query pretty-printed, or its parse error) and
//!   `parse_query` (its syntax tree, `ast.rs`);
//! - `rules` and `alerts` in Prometheus's shape with what is evaluated: no
//!   rule groups yet (the rules engine is still to come), so Grafana's
//!   datasource, which reads `data.groups` at start, finds an empty list
//!   rather than an error.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use super::error::{reject, ApiError};
use super::query::{range_params, RequestParams};
use crate::auth::http::{gate, Gate};
use crate::auth::Auth;
use crate::config::LiveConfig;
use crate::storage::Storage;

/// What the status endpoints show of the running server; the server fills
/// it once at start.
pub struct ServerInfo {
    /// The configuration in force and how its last load went.
    pub config: Arc<LiveConfig>,
    /// Every `serve` flag and its effective value, credentials masked.
    pub flags: BTreeMap<String, String>,
    /// When the server started, in Unix ms.
    pub start_time_ms: i64,
    /// The working directory at start.
    pub cwd: String,
    /// The store: its retention and the blocks it set aside.
    pub storage: Arc<Storage>,
    /// The first and last WAL segment of the replay at start.
    pub wal_segments: (u64, u64),
}

pub(super) fn routes(auth: Arc<Auth>, info: Arc<ServerInfo>) -> Router {
    Router::new()
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/status/config", get(config))
        .route("/api/v1/status/flags", get(flags))
        .route("/api/v1/status/runtimeinfo", get(runtime_info))
        .route("/api/v1/status/walreplay", get(wal_replay))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/v1/parse_query", get(parse_query).post(parse_query))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route_layer(middleware::from_fn_with_state(
            Gate::reads(auth, reject),
            gate,
        ))
        .with_state(info)
}

fn success(data: Value) -> Json<Value> {
    Json(json!({"status": "success", "data": data}))
}

async fn buildinfo() -> Json<Value> {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("FLEETMON_REVISION").unwrap_or("unknown"),
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

async fn config(State(info): State<Arc<ServerInfo>>) -> Result<Json<Value>, ApiError> {
    let config = info.config.current();
    // Secrets serialize as `<secret>` (see `config::secret`).
    let yaml = serde_saphyr::to_string(&*config)
        .map_err(|e| ApiError::internal(format!("cannot serialize the configuration: {e}")))?;
    Ok(success(json!({ "yaml": yaml })))
}

async fn flags(State(info): State<Arc<ServerInfo>>) -> Json<Value> {
    success(json!(info.flags))
}

async fn runtime_info(State(info): State<Arc<ServerInfo>>) -> Json<Value> {
    success(super::runtime_info::runtime_info(
        &info,
        crate::clock::now_ms(),
    ))
}

async fn wal_replay(State(info): State<Arc<ServerInfo>>) -> Json<Value> {
    let (min, max) = info.wal_segments;
    success(json!({"min": min, "max": max, "current": max}))
}

fn query_param(params: &[(String, String)]) -> Option<&str> {
    params
        .iter()
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.as_str())
}

/// No exemplars are kept, but the request is checked as Prometheus checks
/// it: `start` and `end` (Grafana's probe sends milliseconds, read as
/// seconds far in the future), then the query, which is required.
async fn exemplars(RequestParams(params): RequestParams) -> Result<Json<Value>, ApiError> {
    let (start, end) = range_params(&params)?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    promql_parser::parser::parse(query_param(&params).unwrap_or("")).map_err(ApiError::bad_data)?;
    Ok(success(json!([])))
}

async fn format_query(RequestParams(params): RequestParams) -> Result<Json<Value>, ApiError> {
    let query = query_param(&params).unwrap_or("");
    let expr = promql_parser::parser::parse(query).map_err(ApiError::bad_data)?;
    Ok(success(json!(expr.prettify())))
}

async fn parse_query(RequestParams(params): RequestParams) -> Result<Json<Value>, ApiError> {
    let query = query_param(&params).unwrap_or("");
    let expr = promql_parser::parser::parse(query)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
    Ok(success(super::ast::tree(&expr)))
}

async fn rules() -> Json<Value> {
    success(json!({"groups": []}))
}

async fn alerts() -> Json<Value> {
    success(json!({"alerts": []}))
}
