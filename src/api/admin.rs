//! The store's status and administration, in Prometheus's shapes:
//! `status/tsdb` (head statistics and cardinality, viewer role) and, for
//! the admin role, `admin/tsdb/delete_series`, `admin/tsdb/clean_tombstones`
//! and `admin/tsdb/snapshot` (into `<storage>/snapshots/<name>`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::{json, Value};

use super::error::{reject, ApiError};
use super::query::{range_params, selectors, RequestParams};
use crate::auth::http::{gate, Gate};
use crate::auth::{Auth, Role};
use crate::storage::Storage;

/// Entries listed per cardinality table of `status/tsdb` (Prometheus's
/// default `limit`).
const DEFAULT_TSDB_LIMIT: usize = 10;

pub(super) fn routes(
    auth: Arc<Auth>,
    storage: Arc<Storage>,
    snapshots: std::path::PathBuf,
) -> Router {
    let viewer = Router::new()
        .route("/api/v1/status/tsdb", get(tsdb))
        .route_layer(middleware::from_fn_with_state(
            Gate::reads(auth.clone(), reject),
            gate,
        ))
        .with_state(storage.clone());
    let admin = Router::new()
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(delete_series).put(delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(clean_tombstones).put(clean_tombstones),
        )
        .route("/api/v1/admin/tsdb/snapshot", post(snapshot).put(snapshot))
        .route_layer(middleware::from_fn_with_state(
            Gate::new(auth, Role::Admin, reject),
            gate,
        ))
        .with_state((storage, snapshots));
    viewer.merge(admin)
}

/// Runs a store operation on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::storage::StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

async fn tsdb(
    State(storage): State<Arc<Storage>>,
    RequestParams(params): RequestParams,
) -> Result<Json<Value>, ApiError> {
    let limit = match params.iter().find(|(k, _)| k == "limit") {
        None => DEFAULT_TSDB_LIMIT,
        Some((_, v)) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_data(format!(
                "invalid parameter \"limit\": {v:?} is not a positive number"
            ))
        })?,
    };
    let data = tokio::task::spawn_blocking(move || {
        let head = storage.head();
        let stats = storage.head_stats();
        let table = |rows: Vec<(String, u64)>| -> Value {
            Value::Array(
                rows.into_iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect(),
            )
        };
        json!({
            "headStats": {
                "numSeries": stats.series,
                "chunkCount": stats.chunks,
                "minTime": stats.min_t.unwrap_or(i64::MAX),
                "maxTime": stats.max_t.unwrap_or(i64::MIN),
            },
            "seriesCountByMetricName": table(head.cardinality_by_value("__name__", limit)),
            "labelValueCountByLabelName": table(head.value_counts_by_name(limit)),
            "seriesCountByLabelValuePair": table(head.cardinality_by_pair(limit)),
        })
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(json!({"status": "success", "data": data})))
}

async fn delete_series(
    State((storage, _)): State<(Arc<Storage>, std::path::PathBuf)>,
    RequestParams(params): RequestParams,
) -> Result<Response, ApiError> {
    let sets = selectors(&params)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = range_params(&params)?;
    blocking(move || {
        for matchers in &sets {
            storage.delete(matchers, start, end)?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn clean_tombstones(
    State((storage, _)): State<(Arc<Storage>, std::path::PathBuf)>,
) -> Result<Response, ApiError> {
    blocking(move || storage.clean_tombstones()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn snapshot(
    State((storage, snapshots)): State<(Arc<Storage>, std::path::PathBuf)>,
) -> Result<Json<Value>, ApiError> {
    let name = format!(
        "{}-{:016x}",
        crate::api::time::rfc3339_ms(crate::clock::now_ms()).replace([':', '.'], ""),
        rand::random::<u64>()
    );
    let target = snapshots.join(&name);
    blocking(move || storage.snapshot(&target)).await?;
    Ok(Json(json!({"status": "success", "data": {"name": name}})))
}
