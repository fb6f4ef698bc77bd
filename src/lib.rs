//! fleetmon: one binary that hosts a Tesla Fleet API backend (simulated or
//! proxied), monitors it and other targets the Prometheus way, and serves it
//! all on one listener. `ARCHITECTURE.md` maps the modules below.

pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fleet;
pub mod http_client;
pub mod import;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod parallel;
pub mod promql;
pub mod remote;
pub mod scrape;
pub mod server;
pub mod shutdown;
pub mod storage;
