//! What the scrape manager knows, in Prometheus's shapes, for the viewer
//! role: `GET /api/v1/targets` (targets, active and dropped, with their
//! health; `state=active|dropped|any`, `scrapePool`),
//! `GET /api/v1/metadata` (the families' type, help and unit as targets
//! expose them; `metric`, `limit`, `limit_per_metric`) and
//! `GET /api/v1/targets/metadata` (the same per active target, with the
//! target's labels; `match_target`, `metric`, `limit`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Map, Value};

use super::error::{reject, ApiError};
use super::time::rfc3339_ms;
use crate::auth::http::{gate, Gate};
use crate::auth::Auth;
use crate::config::PromDuration;
use crate::scrape::ScrapeManager;

pub(super) fn routes(auth: Arc<Auth>, scrape: Arc<ScrapeManager>) -> Router {
    Router::new()
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/targets/metadata", get(targets_metadata))
        .route_layer(middleware::from_fn_with_state(
            Gate::reads(auth, reject),
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

/// A limit parameter; Prometheus reads a negative or absent limit as "no limit".
fn limit(query: &HashMap<String, String>, name: &str) -> Result<Option<usize>, ApiError> {
    match query.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(|n| usize::try_from(n).ok())
            .map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"{name}\": \"{v}\" is not a number"
                ))
            }),
    }
}

async fn metadata(
    State(scrape): State<Arc<ScrapeManager>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let (limit, per_metric) = (limit(&query, "limit")?, limit(&query, "limit_per_metric")?);
    let wanted = query.get("metric").filter(|m| !m.is_empty());
    let mut data = Map::new();
    for (family, entries) in scrape.metadata() {
        if wanted.is_some_and(|w| *w != family) {
            continue;
        }
        if limit.is_some_and(|l| data.len() >= l) {
            break;
        }
        let list: Vec<Value> = entries
            .iter()
            .take(per_metric.unwrap_or(usize::MAX))
            .map(|m| json!({"type": m.kind.as_str(), "help": m.help, "unit": m.unit}))
            .collect();
        data.insert(family, Value::Array(list));
    }
    Ok(Json(json!({"status": "success", "data": data})))
}

/// One entry per (active target, family), in target order then family name.
/// With `metric`, only that family, and (as Prometheus) without a `metric`
/// key since the request named it. `limit` caps the entries.
async fn targets_metadata(
    State(scrape): State<Arc<ScrapeManager>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(&query, "limit")?.unwrap_or(usize::MAX);
    let matchers = match query.get("match_target").filter(|m| !m.is_empty()) {
        Some(text) => super::query::selector("match_target", text)?,
        None => Vec::new(),
    };
    let wanted = query.get("metric").filter(|m| !m.is_empty());
    let mut list = Vec::new();
    for (target, families) in scrape.targets_metadata() {
        if list.len() >= limit {
            break;
        }
        let label = |name: &str| target.label(name).unwrap_or("");
        if !matchers.iter().all(|m| m.matches(label(&m.name))) {
            continue;
        }
        let labels: BTreeMap<&str, &str> = target
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut entries: Vec<(&String, &crate::scrape::metadata::Metadata)> = match wanted {
            Some(metric) => families
                .get_key_value(metric.as_str())
                .into_iter()
                .collect(),
            None => families.iter().collect(),
        };
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (family, m) in entries {
            if list.len() >= limit {
                break;
            }
            let mut entry = json!({
                "target": labels,
                "type": m.kind.as_str(),
                "help": m.help,
                "unit": m.unit,
            });
            if wanted.is_none() {
                entry["metric"] = json!(family);
            }
            list.push(entry);
        }
    }
    Ok(Json(json!({"status": "success", "data": list})))
}
