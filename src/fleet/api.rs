//! `/api/1/*`: the Tesla Fleet API routes, with Tesla's envelopes
//! (`{"response": …}`, lists with `count` and `pagination`) and error bodies,
//! plus fleetmon's command log (`GET /api/1/command_log`). Reading needs the
//! viewer role; waking and commanding need editor.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use serde_json::{json, Value};

use super::command::{Command, DataEndpoint};
use super::error::FleetError;
use super::{Fleet, Pagination};
use crate::auth::http::{gate, Gate, Rejection};
use crate::auth::{Auth, Principal, Role};

type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The `/api/1` routes.
pub fn routes(fleet: Arc<Fleet>, auth: Arc<Auth>) -> Router {
    let read = Router::new()
        .route("/api/1/vehicles", get(list))
        .route("/api/1/vehicles/{tag}", get(vehicle))
        .route("/api/1/vehicles/{tag}/vehicle_data", get(vehicle_data))
        .route("/api/1/command_log", get(command_log))
        .route_layer(middleware::from_fn_with_state(
            Gate::new(auth.clone(), Role::Viewer, reject),
            gate,
        ));
    let write = Router::new()
        .route("/api/1/vehicles/{tag}/wake_up", post(wake_up))
        .route("/api/1/vehicles/{tag}/command/{name}", post(command))
        .route_layer(middleware::from_fn_with_state(
            Gate::new(auth, Role::Editor, reject),
            gate,
        ));
    read.merge(write).with_state(fleet)
}

impl IntoResponse for FleetError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = json!({
            "response": null,
            "error": self.error,
            "error_description": self.description,
        });
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Refuses an unauthenticated or under-privileged request in Tesla's shape.
fn reject(rejection: Rejection) -> Response {
    let error = match rejection.status() {
        401 => "login_required",
        403 => "Unauthorized missing scopes",
        429 => "too_many_requests",
        _ => "internal_error",
    };
    let mut failure = FleetError::new(rejection.status(), error, rejection.description());
    failure.retry_after = rejection.retry_after();
    let mut response = failure.into_response();
    if rejection.status() == 401 {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"fleetmon\", Basic realm=\"fleetmon\""),
        );
    }
    response
}

fn params(query: Params) -> Result<HashMap<String, String>, FleetError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| FleetError::invalid_request(format!("query string: {}", e.body_text())))
}

fn pagination(params: &HashMap<String, String>) -> Result<Pagination, FleetError> {
    Pagination::parse(
        params.get("page").map(String::as_str),
        params.get("per_page").map(String::as_str),
    )
}

fn respond(response: Value) -> Json<Value> {
    Json(json!({ "response": response }))
}

async fn list(State(fleet): State<Arc<Fleet>>, query: Params) -> Result<Json<Value>, FleetError> {
    let params = params(query)?;
    Ok(Json(fleet.list(pagination(&params)?).await?))
}

async fn vehicle(
    State(fleet): State<Arc<Fleet>>,
    Path(tag): Path<String>,
) -> Result<Json<Value>, FleetError> {
    Ok(respond(fleet.vehicle(&tag).await?))
}

async fn vehicle_data(
    State(fleet): State<Arc<Fleet>>,
    Path(tag): Path<String>,
    query: Params,
) -> Result<Json<Value>, FleetError> {
    let params = params(query)?;
    let endpoints = DataEndpoint::parse_list(params.get("endpoints").map(String::as_str))?;
    Ok(respond(fleet.vehicle_data(&tag, &endpoints).await?))
}

async fn wake_up(
    State(fleet): State<Arc<Fleet>>,
    Extension(caller): Extension<Principal>,
    Path(tag): Path<String>,
) -> Result<Json<Value>, FleetError> {
    Ok(respond(fleet.wake_up(&tag, &caller).await?))
}

async fn command(
    State(fleet): State<Arc<Fleet>>,
    Extension(caller): Extension<Principal>,
    Path((tag, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, FleetError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| FleetError::invalid_request(format!("the body is not JSON: {e}")))?
    };
    let command = Command::parse(&name, &body)?;
    let outcome = fleet.command(&tag, &command, &caller).await?;
    Ok(respond(
        serde_json::to_value(outcome).unwrap_or(Value::Null),
    ))
}

async fn command_log(
    State(fleet): State<Arc<Fleet>>,
    query: Params,
) -> Result<Json<Value>, FleetError> {
    let params = params(query)?;
    let vehicle = params
        .get("vehicle")
        .map(String::as_str)
        .filter(|v| !v.is_empty());
    Ok(Json(fleet.command_log(vehicle, pagination(&params)?)?))
}
