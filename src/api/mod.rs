//! `/api/v1/*`: the Prometheus-style HTTP API, with its envelope
//! (`{"status": "success", "data": …}` / `{"status": "error", "errorType": …,
//! "error": …}`). Today it serves token management for admins
//! (`/api/v1/admin/tokens`) and the remote-write receiver
//! (`/api/v1/write`, answering in plain text as Prometheus's does); the
//! query API joins it here.

mod admin;
pub mod error;
pub mod federate;
mod import;
pub mod query;
mod result_json;
mod status;
mod targets;
pub mod time;
mod tokens;
pub mod write;

use std::sync::Arc;

use axum::Router;

use crate::auth::Auth;
use crate::scrape::ScrapeManager;
use crate::storage::Storage;

/// The `/api/v1` routes.
pub fn routes(
    auth: Arc<Auth>,
    storage: Arc<Storage>,
    scrape: Arc<ScrapeManager>,
    query: Arc<query::QueryApi>,
    snapshots: std::path::PathBuf,
    federation: Arc<federate::Federation>,
) -> Router {
    tokens::routes(auth.clone())
        .merge(query::routes(auth.clone(), query))
        .merge(status::routes(auth.clone()))
        .merge(admin::routes(auth.clone(), storage.clone(), snapshots))
        .merge(federate::routes(auth.clone(), federation))
        .merge(write::routes(auth.clone(), storage.clone()))
        .merge(import::routes(auth.clone(), storage))
        .merge(targets::routes(auth, scrape))
}
