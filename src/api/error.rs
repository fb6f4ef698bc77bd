//! The one error type of `/api/v1`, rendered as Prometheus renders errors.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::http::Rejection;

/// An API failure: HTTP status, Prometheus `errorType`, message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Prometheus's `errorType` (`bad_data`, `not_found`, `internal`…).
    pub error_type: &'static str,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// 400 `bad_data`: a parameter is missing or malformed.
    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error_type: "bad_data",
            message: message.into(),
        }
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error_type: "not_found",
            message: message.into(),
        }
    }

    /// 500 `internal`.
    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_type: "internal",
            message: message.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": "error", "errorType": self.error_type, "error": self.message});
        (self.status, Json(body)).into_response()
    }
}

/// Refuses an unauthenticated or under-privileged request in Prometheus's shape.
pub fn reject(rejection: Rejection) -> Response {
    let status = StatusCode::from_u16(rejection.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let error_type = match rejection.status() {
        401 => "unauthorized",
        403 => "forbidden",
        429 => "too_many_requests",
        _ => "internal",
    };
    let mut response = ApiError {
        status,
        error_type,
        message: rejection.description(),
    }
    .into_response();
    let headers = response.headers_mut();
    if rejection.status() == 401 {
        headers.insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static(
                "Bearer realm=\"fleetmon\", Basic realm=\"fleetmon\"",
            ),
        );
    }
    if let Some(secs) = rejection.retry_after() {
        headers.insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    response
}
