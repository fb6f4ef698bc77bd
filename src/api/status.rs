//! Status endpoints Grafana and Prometheus tools call, for the viewer role:
//! `status/buildinfo` (Prometheus's shape, without `features`, so Grafana
//! takes fleetmon for a Prometheus and not a Mimir), `query_exemplars`
//! (fleetmon keeps no exemplars: always an empty list, which is what
//! Grafana's exemplar probe needs, even with its millisecond times), and
//! `format_query` (the query pretty-printed, or its parse error). `rules`
//! and `alerts` answer in Prometheus's shape with what is evaluated: no
//! rule groups yet (the rules engine is still to come), so Grafana's
//! datasource, which reads `data.groups` at start, finds an empty list
//! rather than an error.

use std::sync::Arc;

use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use super::error::{reject, ApiError};
use super::query::RequestParams;
use crate::auth::http::{gate, Gate};
use crate::auth::Auth;

pub(super) fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
        .route_layer(middleware::from_fn_with_state(
            Gate::reads(auth, reject),
            gate,
        ))
}

async fn buildinfo() -> Json<Value> {
    Json(json!({
        "status": "success",
        "data": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": option_env!("FLEETMON_REVISION").unwrap_or("unknown"),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        }
    }))
}

async fn exemplars(RequestParams(params): RequestParams) -> Result<Json<Value>, ApiError> {
    let query = params.iter().find(|(k, _)| k == "query").map(|(_, v)| v);
    if let Some(query) = query {
        promql_parser::parser::parse(query).map_err(ApiError::bad_data)?;
    }
    Ok(Json(json!({"status": "success", "data": []})))
}

async fn format_query(RequestParams(params): RequestParams) -> Result<Json<Value>, ApiError> {
    let query = params
        .iter()
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let expr = promql_parser::parser::parse(query).map_err(ApiError::bad_data)?;
    Ok(Json(json!({"status": "success", "data": expr.prettify()})))
}

async fn rules() -> Json<Value> {
    Json(json!({"status": "success", "data": {"groups": []}}))
}

async fn alerts() -> Json<Value> {
    Json(json!({"status": "success", "data": {"alerts": []}}))
}
