//! `/api/v1/admin/tokens`: list (GET), create (POST, form or query parameters
//! `name` and `role`; the token is in the answer and nowhere else) and revoke
//! (DELETE `/api/v1/admin/tokens/{id}`). Admin role only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{delete, get};
use axum::{middleware, Extension, Form, Json, Router};
use serde_json::{json, Value};

use super::error::{reject, ApiError};
use crate::auth::http::{gate, Gate};
use crate::auth::{Auth, AuthError, Principal, Role};

pub(super) fn routes(auth: Arc<Auth>) -> Router {
    Router::new()
        .route("/api/v1/admin/tokens", get(list).post(create))
        .route("/api/v1/admin/tokens/{id}", delete(revoke))
        .route_layer(middleware::from_fn_with_state(
            Gate::new(auth.clone(), Role::Admin, reject),
            gate,
        ))
        .with_state(auth)
}

async fn list(State(auth): State<Arc<Auth>>) -> Result<Json<Value>, ApiError> {
    let tokens = auth.list_tokens().map_err(ApiError::internal)?;
    Ok(Json(json!({"status": "success", "data": tokens})))
}

async fn create(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Principal>,
    Query(query): Query<HashMap<String, String>>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Json<Value>, ApiError> {
    // Parameters may come in the query string alone, with no form body at all.
    let form = match form {
        Ok(Form(form)) => form,
        Err(FormRejection::InvalidFormContentType(_)) => HashMap::new(),
        Err(e) => return Err(ApiError::bad_data(format!("form body: {}", e.body_text()))),
    };
    let param = |name: &str| {
        form.get(name)
            .or_else(|| query.get(name))
            .map(String::as_str)
    };
    let name = param("name").ok_or_else(|| ApiError::bad_data("parameter 'name' is required"))?;
    let role: Role = param("role")
        .ok_or_else(|| {
            ApiError::bad_data("parameter 'role' is required (viewer, editor or admin)")
        })?
        .parse()
        .map_err(ApiError::bad_data)?;
    let (info, token) = auth
        .create_token(name, role, &caller.name)
        .map_err(|e| match e {
            AuthError::Invalid(why) => ApiError::bad_data(why),
            other => ApiError::internal(other),
        })?;
    tracing::info!(
        id = info.id,
        name = info.name,
        role = role.as_str(),
        by = caller.name,
        "created API token"
    );
    let mut data = serde_json::to_value(&info).map_err(ApiError::internal)?;
    data["token"] = Value::String(token);
    Ok(Json(json!({"status": "success", "data": data})))
}

async fn revoke(
    State(auth): State<Arc<Auth>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !auth.revoke_token(&id).map_err(ApiError::internal)? {
        return Err(ApiError::not_found(format!("no token with id '{id}'")));
    }
    tracing::info!(id, by = caller.name, "revoked API token");
    Ok(Json(json!({"status": "success", "data": null})))
}
