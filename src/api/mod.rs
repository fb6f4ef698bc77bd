//! `/api/v1/*`: the Prometheus-style HTTP API, with its envelope
//! (`{"status": "success", "data": …}` / `{"status": "error", "errorType": …,
//! "error": …}`). Today it serves token management for admins
//! (`/api/v1/admin/tokens`); the query API joins it here.

pub mod error;
mod tokens;

use std::sync::Arc;

use axum::Router;

use crate::auth::Auth;

/// The `/api/v1` routes.
pub fn routes(auth: Arc<Auth>) -> Router {
    tokens::routes(auth)
}
