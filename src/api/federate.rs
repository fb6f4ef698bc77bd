//! `GET /federate?match[]=…`: the newest sample of every series the
//! selectors match (within the lookback delta, stale series left out), in
//! the text exposition format with timestamps, the config's external labels
//! added where a series lacks them — what a Prometheus scraping fleetmon
//! with `honor_labels: true` expects. Viewer role.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{middleware, Router};

use super::error::{reject, ApiError};
use super::query::{selectors, RequestParams};
use crate::auth::http::{gate, Gate};
use crate::auth::Auth;
use crate::clock::now_ms;
use crate::promql::Queryable;
use crate::storage::labels::{is_stale_nan, METRIC_NAME};
use crate::storage::{Labels, Storage};

/// What `/federate` reads.
pub struct Federation {
    /// The store.
    pub storage: Arc<Storage>,
    /// How far back a series' newest sample may be.
    pub lookback_ms: i64,
    /// The config's `external_labels`, replaced on reload.
    pub external_labels: Arc<RwLock<Vec<(String, String)>>>,
}

pub(super) fn routes(auth: Arc<Auth>, federation: Arc<Federation>) -> Router {
    Router::new()
        .route("/federate", get(federate))
        .route_layer(middleware::from_fn_with_state(
            Gate::reads(auth, reject),
            gate,
        ))
        .with_state(federation)
}

async fn federate(
    State(federation): State<Arc<Federation>>,
    RequestParams(params): RequestParams,
) -> Result<impl IntoResponse, ApiError> {
    let sets = selectors(&params)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let external = federation
        .external_labels
        .read()
        .map(|l| l.clone())
        .unwrap_or_default();
    let body = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let mut latest: BTreeSet<(Labels, i64, u64)> = BTreeSet::new();
        let store: &dyn Queryable = &*federation.storage;
        for matchers in &sets {
            let found = store.select(matchers, now - federation.lookback_ms + 1, now)?;
            for series in found {
                let samples = series.samples.read()?;
                let newest = samples.iter().rev().find(|(t, _)| *t <= now);
                if let Some(&(t, v)) = newest.filter(|(_, v)| !is_stale_nan(*v)) {
                    latest.insert((series.labels, t, v.to_bits()));
                }
            }
        }
        Ok::<_, String>(render(&latest, &external))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}

/// The text format, one `# TYPE … untyped` line per metric name.
fn render(latest: &BTreeSet<(Labels, i64, u64)>, external: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for (labels, t, bits) in latest {
        let name = labels.metric_name().unwrap_or("");
        if current != Some(name) {
            out.push_str(&format!("# TYPE {name} untyped\n"));
            current = Some(name);
        }
        let mut pairs: Vec<(&str, &str)> = labels
            .pairs()
            .iter()
            .filter(|(n, _)| n != METRIC_NAME)
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        for (n, v) in external {
            if labels.get(n).is_none() {
                pairs.push((n, v));
            }
        }
        pairs.sort();
        let rendered: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
            .collect();
        out.push_str(&format!(
            "{name}{{{}}} {} {t}\n",
            rendered.join(","),
            crate::promql::format_value(f64::from_bits(*bits))
        ));
    }
    out
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
