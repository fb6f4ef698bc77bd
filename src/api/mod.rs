//! `/api/v1/*`: the Prometheus-style HTTP API, with its envelope
//! (`{"status": "success", "data": …}` / `{"status": "error", "errorType": …,
//! "error": …}`). It serves token management for admins
//! (`/api/v1/admin/tokens`), the remote-write receiver (`/api/v1/write`,
//! answering in plain text as Prometheus's does), import, the query API,
//! the scrape state (`targets.rs`) and the server's status (`status.rs`,
//! with `runtime_info.rs` and the `parse_query` tree in `ast.rs`).

mod admin;
mod ast;
pub mod error;
pub mod federate;
mod import;
pub mod query;
mod result_json;
mod runtime_info;
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
pub use status::ServerInfo;

/// The `/api/v1` routes.
pub fn routes(
    auth: Arc<Auth>,
    storage: Arc<Storage>,
    scrape: Arc<ScrapeManager>,
    query: Arc<query::QueryApi>,
    snapshots: std::path::PathBuf,
    federation: Arc<federate::Federation>,
    info: Arc<ServerInfo>,
) -> Router {
    tokens::routes(auth.clone())
        .merge(query::routes(auth.clone(), query))
        .merge(status::routes(auth.clone(), info))
        .merge(admin::routes(auth.clone(), storage.clone(), snapshots))
        .merge(federate::routes(auth.clone(), federation))
        .merge(write::routes(auth.clone(), storage.clone()))
        .merge(import::routes(auth.clone(), storage))
        .merge(targets::routes(auth, scrape))
}
