//! Configuration reloads, on SIGHUP and `POST /-/reload` (admin role): the
//! file is read and validated again; a valid config is applied to the scrape
//! manager and the remote-write queues, an invalid one is refused with its
//! error and the running config stays. The outcome goes to the shared
//! [`LiveConfig`] (which `/api/v1/status/config` and `status/runtimeinfo`
//! read) and to `prometheus_config_last_reload_successful` and
//! `prometheus_config_last_reload_success_timestamp_seconds`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::config::{Config, ConfigSource, LiveConfig};
use crate::metrics::{Gauge, Registry};
use crate::remote::sender::RemoteWriteManager;
use crate::scrape::ScrapeManager;
use crate::shutdown::Shutdown;

/// Reloads the configuration, one reload at a time.
pub struct Reloader {
    source: ConfigSource,
    live: Arc<LiveConfig>,
    scrape: Arc<ScrapeManager>,
    remote: Arc<RemoteWriteManager>,
    external_labels: Arc<std::sync::RwLock<Vec<(String, String)>>>,
    running: tokio::sync::Mutex<()>,
    successful: Gauge,
    success_time: Gauge,
}

impl Reloader {
    /// A reloader of `source`, whose configuration in force is `live`,
    /// reporting in `registry`.
    pub fn new(
        source: ConfigSource,
        live: Arc<LiveConfig>,
        scrape: Arc<ScrapeManager>,
        remote: Arc<RemoteWriteManager>,
        external_labels: Arc<std::sync::RwLock<Vec<(String, String)>>>,
        registry: &Registry,
    ) -> Reloader {
        let successful = registry
            .gauge(
                "prometheus_config_last_reload_successful",
                "Whether the last configuration reload attempt was successful.",
                &[],
            )
            .with(&[]);
        let success_time = registry
            .gauge(
                "prometheus_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful configuration reload.",
                &[],
            )
            .with(&[]);
        Reloader {
            source,
            live,
            scrape,
            remote,
            external_labels,
            running: tokio::sync::Mutex::new(()),
            successful,
            success_time,
        }
    }

    /// Applies `config` to everything that runs from it.
    pub fn apply(&self, config: &Config) {
        let base = self.source.base_dir();
        self.scrape.apply(config, &base);
        self.remote.apply(config, &base);
        let external = &config.global.external_labels.value;
        if let Ok(mut labels) = self.external_labels.write() {
            *labels = external
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
        }
    }

    /// Applies the configuration in force (at start).
    pub fn apply_current(&self) {
        self.apply(&self.live.current());
    }

    /// Reports the last load, as [`LiveConfig`] holds it, in the metrics.
    pub fn report(&self) {
        let successful = self.live.last_reload_successful();
        self.successful.set(if successful { 1.0 } else { 0.0 });
        self.success_time
            .set(self.live.last_success_ms() as f64 / 1000.0);
    }

    /// Reads the configuration again and applies it; on error the running
    /// configuration stays and the error is returned.
    pub async fn reload(&self) -> Result<(), String> {
        let _one_at_a_time = self.running.lock().await;
        let source = self.source.clone();
        let loaded = tokio::task::spawn_blocking(move || source.load())
            .await
            .map_err(|e| format!("reload task failed: {e}"))?;
        match loaded {
            Ok(config) => {
                self.apply(&config);
                let scrape_jobs = config.scrape_configs.len();
                self.live.loaded(config, crate::clock::now_ms());
                self.report();
                tracing::info!(file = %self.source.path().display(), scrape_jobs, "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.live.failed();
                self.report();
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
                Err(e.to_string())
            }
        }
    }

    /// Reloads on every SIGHUP until shutdown.
    pub async fn on_sighup(self: Arc<Self>, mut shutdown: Shutdown) {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        };
        loop {
            tokio::select! {
                _ = hangups.recv() => {
                    // The outcome is logged and reported by `reload` itself.
                    let _ = self.reload().await;
                }
                _ = shutdown.wait() => return,
            }
        }
    }
}

/// `POST /-/reload`: 200 once applied, 500 with the error otherwise, as
/// Prometheus answers.
pub async fn reload_handler(State(reloader): State<Arc<Reloader>>) -> impl IntoResponse {
    match reloader.reload().await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        ),
    }
}
