//! `POST /api/v1/import/prometheus`: backfill by text import, for the editor
//! role. The body is Prometheus text with optional millisecond timestamps
//! (as VictoriaMetrics's endpoint of that name takes it), or OpenMetrics
//! with second timestamps when sent as `application/openmetrics-text`;
//! `extra_label=name=value` parameters label every series, and `timestamp`
//! (ms) stamps samples that carry none (default: now). The body is streamed
//! through [`Importer`], so its size is not limited. Answers 200 with the
//! summary, or 400 naming the line that does not parse, with the summary of
//! what was imported before it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{middleware, Json, Router};
use http_body_util::BodyExt;
use serde_json::json;

use super::error::{reject, ApiError};
use crate::auth::http::{gate, Gate};
use crate::auth::{Auth, Role};
use crate::clock::now_ms;
use crate::import::{parse_extra_labels, ImportError, ImportOptions, ImportSummary, Importer};
use crate::scrape::exposition::{Format, ParseError};
use crate::storage::Storage;

pub(super) fn routes(auth: Arc<Auth>, storage: Arc<Storage>) -> Router {
    Router::new()
        .route("/api/v1/import/prometheus", post(import))
        .route_layer(middleware::from_fn_with_state(
            Gate::new(auth, Role::Editor, reject),
            gate,
        ))
        // Streamed: the request body limit of the other routes does not apply.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(storage)
}

async fn import(
    State(storage): State<Arc<Storage>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let options = match options(&params, &headers) {
        Ok(options) => options,
        Err(e) => return e.into_response(),
    };
    let mut importer = Importer::new(storage, options);
    let mut body = body;
    // What was imported before an error, for the answer.
    let before: ImportSummary;
    let outcome = loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(piece) = frame.into_data() else {
                    continue; // trailers
                };
                if let Err(e) = tokio::task::block_in_place(|| importer.feed(&piece)) {
                    before = importer.summary().clone();
                    break Err(e);
                }
            }
            Some(Err(e)) => {
                before = importer.summary().clone();
                break Err(ImportError::Parse(ParseError {
                    line: importer.line(),
                    message: format!("the request body broke off: {e}"),
                }));
            }
            None => {
                before = importer.summary().clone();
                break tokio::task::block_in_place(|| importer.finish());
            }
        }
    };
    match outcome {
        Ok(summary) => Json(json!({"status": "success", "data": summary})).into_response(),
        Err(error) => {
            let (status, error_type) = match error {
                ImportError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                _ => (StatusCode::BAD_REQUEST, "bad_data"),
            };
            let body = json!({"status": "error", "errorType": error_type, "error": error.to_string(), "data": before});
            (status, Json(body)).into_response()
        }
    }
}

fn options(params: &[(String, String)], headers: &HeaderMap) -> Result<ImportOptions, ApiError> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        return Err(ApiError::bad_data(format!(
            "content encoding {encoding:?} is not supported: send the text uncompressed"
        )));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let extra: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "extra_label")
        .map(|(_, v)| v.clone())
        .collect();
    let extra_labels = parse_extra_labels(&extra).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let default_timestamp_ms = match params.iter().find(|(k, _)| k == "timestamp") {
        Some((_, value)) => value.parse().map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"timestamp\": \"{value}\" is not milliseconds since the epoch"
            ))
        })?,
        None => now_ms(),
    };
    Ok(ImportOptions {
        format: Format::from_content_type(content_type),
        extra_labels,
        default_timestamp_ms,
        all_to_blocks: false,
    })
}
