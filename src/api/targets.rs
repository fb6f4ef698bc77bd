//! `GET /api/v1/targets`: the scrape targets, active and dropped, with their
//! health, in Prometheus's shape (`state=active|dropped|any`, `scrapePool`).
//! Viewer role.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Map, Value};

use super::error::{reject, ApiError};
use super::time::rfc3339_ms;
use crate::auth::http::{gate, Gate};
use crate::auth::{Auth, Role};
use crate::config::PromDuration;
use crate::scrape::ScrapeManager;

pub(super) fn routes(auth: Arc<Auth>, scrape: Arc<ScrapeManager>) -> Router {
    Router::new()
        .route("/api/v1/targets", get(targets))
        .route_layer(middleware::from_fn_with_state(
            Gate::new(auth, Role::Viewer, reject),
            gate,
        ))
        .with_state(scrape)
}

async fn targets(
    State(scrape): State<Arc<ScrapeManager>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let state = query.get("state").map(String::as_str).unwrap_or("any");
    let (active, dropped) = match state {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        other => {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"state\": \"{other}\" is not one of active, dropped, any"
            )))
        }
    };
    let pool = query.get("scrapePool").filter(|p| !p.is_empty());
    let in_pool = |name: &str| pool.is_none_or(|p| p == name);
    let snapshot = scrape.targets();
    let mut data = Map::new();
    if active {
        let list: Vec<Value> = snapshot
            .active
            .iter()
            .filter(|t| in_pool(&t.scrape_pool))
            .map(|t| {
                let labels: BTreeMap<&str, &str> = t
                    .target
                    .labels
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                json!({
                    "discoveredLabels": t.target.discovered_labels,
                    "labels": labels,
                    "scrapePool": t.scrape_pool,
                    "scrapeUrl": t.target.url,
                    "globalUrl": t.target.url,
                    "lastError": t.health.last_error,
                    "lastScrape": rfc3339_ms(t.health.last_scrape_ms),
                    "lastScrapeDuration": t.health.last_duration.as_secs_f64(),
                    "health": t.health.health.as_str(),
                    "scrapeInterval": PromDuration(t.target.interval).to_string(),
                    "scrapeTimeout": PromDuration(t.target.timeout).to_string(),
                })
            })
            .collect();
        data.insert("activeTargets".into(), Value::Array(list));
    }
    if dropped {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let list: Vec<Value> = snapshot
            .dropped
            .iter()
            .filter(|(name, _)| in_pool(name))
            .map(|(name, labels)| {
                *counts.entry(name).or_default() += 1;
                json!({ "discoveredLabels": labels })
            })
            .collect();
        data.insert("droppedTargets".into(), Value::Array(list));
        data.insert("droppedTargetCounts".into(), json!(counts));
    }
    Ok(Json(json!({"status": "success", "data": data})))
}
