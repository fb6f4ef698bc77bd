//! The read side of Prometheus's HTTP API, for the viewer role: `query`,
//! `query_range`, `series`, `labels` and `label/{name}/values`, by GET or
//! form-encoded POST as Grafana sends them. Answers in Prometheus's
//! envelope: values as `[unix_seconds, "string"]`, `warnings` and `infos`
//! (arrays, or absent; a list cut by `limit` warns as Prometheus 3 does),
//! errors with Prometheus's `errorType` and status (400 `bad_data`, 422
//! `execution`, 503 `timeout`, 500 `internal`). Queries run on blocking
//! threads, at most `--query.max-concurrency` at once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use serde_json::{json, Map, Value as Json_};

use super::error::{reject, ApiError};
use super::result_json;
use super::time::{parse_duration, parse_time};
use crate::auth::http::{gate, Gate};
use crate::auth::Auth;
use crate::clock::now_ms;
use crate::promql::{Engine, QueryError, QueryResult};
use crate::storage::{Labels, MatchOp, Matcher, Storage};

/// Most points a range query may return per series, as Prometheus.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// What the query handlers share.
pub struct QueryApi {
    /// The engine.
    pub engine: Engine,
    /// The store, for the label and series endpoints.
    pub storage: Arc<Storage>,
    /// Bounds queries running at once (`--query.max-concurrency`).
    pub concurrency: Arc<tokio::sync::Semaphore>,
}

pub(super) fn routes(auth: Arc<Auth>, api: Arc<QueryApi>) -> Router {
    Router::new()
        .route("/api/v1/query", get(instant).post(instant))
        .route("/api/v1/query_range", get(range).post(range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route_layer(middleware::from_fn_with_state(
            Gate::reads(auth, reject),
            gate,
        ))
        .with_state(api)
}

/// Request parameters, in order (`match[]` repeats).
pub(super) type Params = Vec<(String, String)>;

/// The parameters of a request as Prometheus reads them (Go's
/// `Request.Form`): a form-encoded body first, then the query string, so a
/// key given in both is read from the body. Grafana POSTs forms, and
/// forwards GETs as POSTs with everything in the query string and an empty
/// body; `curl -X POST` may do the same.
pub(super) struct RequestParams(pub Params);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RequestParams {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let from_url: Params = match request.uri().query() {
            Some(query) => serde_urlencoded::from_str(query)
                .map_err(|e| ApiError::bad_data(format!("invalid query string: {e}")))?,
            None => Vec::new(),
        };
        let is_form = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let mut params = Params::new();
        if is_form {
            let body = axum::body::Bytes::from_request(request, state)
                .await
                .map_err(|e| ApiError::bad_data(format!("cannot read the request body: {e}")))?;
            params = serde_urlencoded::from_bytes(&body)
                .map_err(|e| ApiError::bad_data(format!("invalid form body: {e}")))?;
        }
        params.extend(from_url);
        Ok(RequestParams(params))
    }
}

fn param<'p>(params: &'p Params, name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn time_param(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match param(params, name) {
        None => Ok(default),
        Some(text) => parse_time(text)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}"))),
    }
}

fn query_error(e: QueryError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError {
        status,
        error_type: e.error_type(),
        message: e.message().to_string(),
    }
}

/// The optional parameters every query takes.
struct QueryOptions {
    /// `timeout`: at most this long (the configured timeout still bounds it).
    timeout: Option<std::time::Duration>,
    /// `stats=all`: answer with the query's statistics.
    stats: bool,
}

impl QueryOptions {
    fn of(params: &Params) -> Result<QueryOptions, ApiError> {
        let timeout = match param(params, "timeout") {
            None => None,
            Some(text) => {
                let ms = parse_duration(text).map_err(|e| {
                    ApiError::bad_data(format!("invalid parameter \"timeout\": {e}"))
                })?;
                Some(std::time::Duration::from_millis(ms.max(0) as u64))
            }
        };
        Ok(QueryOptions {
            timeout,
            stats: param(params, "stats").is_some(),
        })
    }
}

/// Runs a query on a blocking thread, within the concurrency limit, and
/// writes its answer there too, streaming it to the client piece by piece
/// (a large one takes a while, and need not be held whole). The query
/// counts against the limit until its answer is written.
async fn run(
    api: Arc<QueryApi>,
    options: QueryOptions,
    query: impl FnOnce(&Engine) -> Result<QueryResult, QueryError> + Send + 'static,
) -> Result<Response, ApiError> {
    let permit = api
        .concurrency
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::internal("the query queue is closed"))?;
    let (outcome, evaluated) = tokio::sync::oneshot::channel();
    let (pieces, mut body) = tokio::sync::mpsc::channel::<Vec<u8>>(BODY_PIECES_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let result = match options.timeout {
            Some(timeout) => query(&api.engine.with_timeout(timeout)),
            None => query(&api.engine),
        };
        match result {
            Ok(result) => {
                if outcome.send(Ok(())).is_ok() {
                    result_json::write_success(&result, options.stats, &mut |piece| {
                        pieces.blocking_send(piece).is_ok()
                    });
                }
                let large = result.stats.total_queryable_samples >= TRIM_AFTER_SAMPLES;
                // The answer ends for the client here, before the trim.
                drop(pieces);
                drop(result);
                if large {
                    crate::memory::return_free_memory();
                }
            }
            Err(e) => {
                let _ = outcome.send(Err(e));
            }
        }
    });
    evaluated
        .await
        .map_err(|_| ApiError::internal("the query was abandoned"))?
        .map_err(query_error)?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        body.poll_recv(cx)
            .map(|piece| piece.map(Ok::<_, std::convert::Infallible>))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Samples a query reads from which its memory is handed back to the
/// system once it is answered (see [`crate::memory`]).
const TRIM_AFTER_SAMPLES: u64 = 1_000_000;

/// Pieces of an answer written ahead of the client reading them.
const BODY_PIECES_IN_FLIGHT: usize = 4;

fn query_param(params: &Params) -> Result<String, ApiError> {
    param(params, "query")
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": query is empty"))
}

/// A required time or duration parameter, read by `parse`.
fn required(
    params: &Params,
    name: &str,
    parse: fn(&str) -> Result<i64, String>,
) -> Result<i64, ApiError> {
    let text = param(params, name).unwrap_or("");
    parse(text).map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
}

async fn instant(
    State(api): State<Arc<QueryApi>>,
    RequestParams(params): RequestParams,
) -> Result<Response, ApiError> {
    let query = query_param(&params)?;
    let time = time_param(&params, "time", now_ms())?;
    let options = QueryOptions::of(&params)?;
    run(api, options, move |engine| engine.instant(&query, time)).await
}

async fn range(
    State(api): State<Arc<QueryApi>>,
    RequestParams(params): RequestParams,
) -> Result<Response, ApiError> {
    let query = query_param(&params)?;
    let start = required(&params, "start", parse_time)?;
    let end = required(&params, "end", parse_time)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = required(&params, "step", parse_duration)?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let options = QueryOptions::of(&params)?;
    run(api, options, move |engine| {
        engine.range(&query, start, end, step)
    })
    .await
}

fn labels_json(labels: &Labels) -> Json_ {
    let map: Map<String, Json_> = labels
        .pairs()
        .iter()
        .map(|(n, v)| (n.clone(), Json_::String(v.clone())))
        .collect();
    Json_::Object(map)
}

/// The matchers of each `match[]` selector.
pub(super) fn selectors(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    params
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, text)| selector("match[]", text))
        .collect()
}

/// The matchers of the series selector `text`, given as parameter `name`
/// (named in the error).
pub(super) fn selector(name: &str, text: &str) -> Result<Vec<Matcher>, ApiError> {
    let invalid = |why: String| ApiError::bad_data(format!("invalid parameter \"{name}\": {why}"));
    let expr = promql_parser::parser::parse(text).map_err(invalid)?;
    let promql_parser::parser::Expr::VectorSelector(selector) = expr else {
        return Err(invalid(format!("{text:?} is not a series selector")));
    };
    let matcher = |op, label: &str, value: &str| {
        Matcher::new(op, label, value).map_err(|e| invalid(e.to_string()))
    };
    let mut matchers = Vec::new();
    if let Some(metric) = &selector.name {
        matchers.push(matcher(MatchOp::Equal, "__name__", metric)?);
    }
    for m in &selector.matchers.matchers {
        use promql_parser::label::MatchOp as P;
        let op = match m.op {
            P::Equal => MatchOp::Equal,
            P::NotEqual => MatchOp::NotEqual,
            P::Re(_) => MatchOp::Regex,
            P::NotRe(_) => MatchOp::NotRegex,
        };
        matchers.push(matcher(op, &m.name, &m.value)?);
    }
    Ok(matchers)
}

pub(super) fn range_params(params: &Params) -> Result<(i64, i64), ApiError> {
    Ok((
        time_param(params, "start", i64::MIN / 2)?,
        time_param(params, "end", i64::MAX / 2)?,
    ))
}

fn limit_param(params: &Params) -> Result<usize, ApiError> {
    match param(params, "limit") {
        None => Ok(usize::MAX),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n > 0 => Ok(n as usize),
            // Zero or negative: no limit, as Prometheus.
            Ok(_) => Ok(usize::MAX),
            Err(_) => Err(ApiError::bad_data(format!(
                "invalid parameter \"limit\": cannot parse \"{text}\": must be a number"
            ))),
        },
    }
}

/// The answer of a list endpoint: `list`, the first of `total` items found
/// (`limit`). When some were left out, `warnings` says so in Prometheus's
/// words, which Grafana's metrics browser shows as "limit reached".
fn list_answer(list: Vec<Json_>, total: usize) -> Json<Json_> {
    let truncated = total > list.len();
    let mut body = json!({"status": "success", "data": list});
    if truncated {
        body["warnings"] = json!(["results truncated due to limit"]);
    }
    Json(body)
}

/// Runs a store read on a blocking thread.
async fn read<T: Send + 'static>(
    api: Arc<QueryApi>,
    f: impl FnOnce(&Storage) -> Result<T, crate::storage::StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&api.storage))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

async fn series(
    State(api): State<Arc<QueryApi>>,
    RequestParams(params): RequestParams,
) -> Result<Json<Json_>, ApiError> {
    let sets = selectors(&params)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = range_params(&params)?;
    let limit = limit_param(&params)?;
    let found = read(api, move |storage| {
        let mut all = std::collections::BTreeSet::new();
        for matchers in &sets {
            all.extend(storage.series_labels_matching(matchers, start, end)?);
        }
        Ok(all)
    })
    .await?;
    let list = found.iter().take(limit).map(labels_json).collect();
    Ok(list_answer(list, found.len()))
}

async fn labels(
    State(api): State<Arc<QueryApi>>,
    RequestParams(params): RequestParams,
) -> Result<Json<Json_>, ApiError> {
    let sets = selectors(&params)?;
    let (start, end) = range_params(&params)?;
    let limit = limit_param(&params)?;
    let names = read(api, move |storage| {
        let mut all = std::collections::BTreeSet::new();
        if sets.is_empty() {
            all.extend(storage.label_names(&[], start, end)?);
        }
        for matchers in &sets {
            all.extend(storage.label_names(matchers, start, end)?);
        }
        Ok(all)
    })
    .await?;
    let list = names.iter().take(limit).map(|n| json!(n)).collect();
    Ok(list_answer(list, names.len()))
}

async fn label_values(
    State(api): State<Arc<QueryApi>>,
    Path(name): Path<String>,
    RequestParams(params): RequestParams,
) -> Result<Json<Json_>, ApiError> {
    let sets = selectors(&params)?;
    let (start, end) = range_params(&params)?;
    let limit = limit_param(&params)?;
    let values = read(api, move |storage| {
        let mut all = std::collections::BTreeSet::new();
        if sets.is_empty() {
            all.extend(storage.label_values(&name, &[], start, end)?);
        }
        for matchers in &sets {
            all.extend(storage.label_values(&name, matchers, start, end)?);
        }
        Ok(all)
    })
    .await?;
    let list = values.iter().take(limit).map(|v| json!(v)).collect();
    Ok(list_answer(list, values.len()))
}
