//! Assembles the appliance: opens the store once, creates the admin account
//! on first start, builds the fleet, the metrics registry and the router
//! (fleet API, `/api/v1`, `/metrics`, health), serves it on one listener, and
//! on shutdown stops accepting, gives in-flight requests a bounded time,
//! stops the background loops and flushes the store. The wiring lives here
//! and nowhere else; the modules it wires do not know each other's HTTP side.

mod instrument;
mod reload;
mod storage_metrics;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{middleware, Router};

use crate::api::federate::Federation;
use crate::api::query::QueryApi;
use crate::auth::http::{gate, Gate};
use crate::auth::{Auth, Role, ADMIN_PASSWORD_ENV, ADMIN_USER};
use crate::config::{Config, ConfigSource, LiveConfig};
use crate::fleet::{Fleet, UpstreamConfig};
use crate::metrics::{Format, ProcessCollector, Registry};
use crate::promql::{Engine, EngineOptions};
use crate::remote::sender::RemoteWriteManager;
use crate::scrape::ScrapeManager;
use crate::shutdown;
use crate::storage::{trees, Kv, Storage, StorageOptions};
use instrument::{instrument, HttpMetrics};
use reload::Reloader;

/// Largest request body accepted, in bytes.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// Everything `fleetmon serve` is told.
pub struct ServerOptions {
    /// `host:port` to listen on.
    pub listen_address: String,
    /// Directory of the store.
    pub storage_path: PathBuf,
    /// Settings of the time-series store.
    pub storage: StorageOptions,
    /// The loaded configuration.
    pub config: Config,
    /// Where it was loaded from, read again on reload.
    pub config_source: ConfigSource,
    /// Where fleet calls go.
    pub upstream: UpstreamConfig,
    /// How often the fleet gauges are refreshed and the fleet saved.
    pub refresh_interval: Duration,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_timeout: Duration,
    /// How long remote-write queues may keep sending at shutdown.
    pub remote_flush_deadline: Duration,
    /// The query engine's limits.
    pub query: EngineOptions,
    /// Queries evaluated at once (`--query.max-concurrency`).
    pub query_concurrency: usize,
    /// The Prometheus API's reads need no credentials (`--web.anonymous-read`).
    pub anonymous_read: bool,
    /// Every `serve` flag and its effective value (credentials masked), for
    /// `/api/v1/status/flags`.
    pub flags: std::collections::BTreeMap<String, String>,
    /// The admin password to set at first start (else one is generated).
    pub admin_password: Option<String>,
}

/// A server bound to its address, ready to run.
pub struct Server {
    listener: tokio::net::TcpListener,
    router: Router,
    fleet: Arc<Fleet>,
    storage: Arc<Storage>,
    kv: Kv,
    scrape: Arc<ScrapeManager>,
    remote: Arc<RemoteWriteManager>,
    reloader: Arc<Reloader>,
    refresh_interval: Duration,
    shutdown_timeout: Duration,
}

impl Server {
    /// Opens the store, builds every part and binds the listener.
    pub async fn bind(options: ServerOptions) -> anyhow::Result<Server> {
        let start_time_ms = crate::clock::now_ms();
        let kv = Kv::open(&options.storage_path)?;
        let (storage, replay) = Storage::open(&kv, &options.storage_path, options.storage)?;
        tracing::info!(
            series = replay.series,
            wal_records = replay.records,
            samples = replay.samples,
            late_samples = replay.late_samples,
            orphan_samples = replay.orphan_samples,
            blocks = storage.blocks().len(),
            duration_ms = replay.duration.as_millis() as u64,
            "time-series store opened; WAL replayed"
        );
        let registry = Arc::new(Registry::new());
        let auth = Arc::new(
            Auth::new(&kv)?
                .with_anonymous_read(options.anonymous_read)
                .with_metrics(&registry),
        );
        if let Some(generated) = auth.ensure_admin(options.admin_password.as_deref())? {
            tracing::warn!(
                "created user '{ADMIN_USER}' with the generated password {generated} — shown this once; set {ADMIN_PASSWORD_ENV} before the first start to choose it"
            );
        }
        tracing::info!(
            scrape_jobs = options.config.scrape_configs.len(),
            rule_files = options.config.rule_files.len(),
            "configuration loaded"
        );
        if !options.config.rule_files.is_empty() {
            tracing::warn!("rule_files are kept but not loaded or evaluated yet: the rules engine is still to come");
        }

        let build_info = registry.gauge(
            "fleetmon_build_info",
            "A metric with a constant '1' value labeled by the version and revision fleetmon was built from.",
            &["version", "revision"],
        );
        build_info
            .with(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("FLEETMON_REVISION").unwrap_or("unknown"),
            ])
            .set(1.0);
        let http_metrics = Arc::new(HttpMetrics::new(&registry));
        let fleet =
            Arc::new(Fleet::open(&kv, options.upstream, &registry).map_err(anyhow::Error::msg)?);
        registry.register_collector(Box::new(ProcessCollector::new()));
        let storage = Arc::new(storage);
        registry.register_collector(Box::new(storage_metrics::StorageCollector::new(
            storage.clone(),
            replay.duration.as_secs_f64(),
        )));

        let scrape = Arc::new(ScrapeManager::new(storage.clone(), &registry));
        let query = Arc::new(QueryApi {
            engine: Engine::new(storage.clone(), options.query),
            storage: storage.clone(),
            concurrency: Arc::new(tokio::sync::Semaphore::new(
                options.query_concurrency.max(1),
            )),
        });
        let remote = Arc::new(RemoteWriteManager::new(
            storage.clone(),
            kv.tree(trees::REMOTE_WRITE)?,
            &registry,
            options.remote_flush_deadline,
        ));
        let external_labels = Arc::new(std::sync::RwLock::new(Vec::new()));
        let federation = Arc::new(Federation {
            storage: storage.clone(),
            lookback_ms: options.query.lookback_delta_ms,
            external_labels: external_labels.clone(),
        });
        let live = Arc::new(LiveConfig::new(options.config, crate::clock::now_ms()));
        let reloader = Arc::new(Reloader::new(
            options.config_source.clone(),
            live.clone(),
            scrape.clone(),
            remote.clone(),
            external_labels,
            &registry,
        ));
        reloader.report();
        let info = Arc::new(crate::api::ServerInfo {
            config: live,
            flags: options.flags,
            start_time_ms,
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            storage: storage.clone(),
            wal_segments: replay.wal_segments,
        });
        let lifecycle = Router::new()
            .route("/-/reload", post(reload::reload_handler))
            .route_layer(middleware::from_fn_with_state(
                Gate::new(auth.clone(), Role::Admin, crate::api::error::reject),
                gate,
            ))
            .with_state(reloader.clone());

        let router = Router::new()
            .route("/", get(index))
            .route("/metrics", get(metrics).with_state(registry))
            .route("/-/healthy", get(|| async { "fleetmon is Healthy.\n" }))
            .route("/-/ready", get(|| async { "fleetmon is Ready.\n" }))
            .merge(crate::fleet::api::routes(fleet.clone(), auth.clone()))
            .merge(lifecycle)
            .merge(crate::api::routes(
                auth,
                storage.clone(),
                scrape.clone(),
                query,
                options.storage_path.join("snapshots"),
                federation,
                info,
            ))
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
            .layer(middleware::from_fn_with_state(http_metrics, instrument));

        let listener = tokio::net::TcpListener::bind(&options.listen_address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.listen_address))?;
        Ok(Server {
            listener,
            router,
            fleet,
            storage,
            kv,
            scrape,
            remote,
            reloader,
            refresh_interval: options.refresh_interval,
            shutdown_timeout: options.shutdown_timeout,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` completes, then shuts down gracefully.
    pub async fn run(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (trigger, shutdown) = shutdown::channel();
        let address = self.local_addr()?;
        tracing::info!(%address, "listening");

        let background = {
            let fleet = self.fleet.clone();
            let shutdown = shutdown.clone();
            let interval = self.refresh_interval;
            tokio::spawn(async move { fleet.run_background(interval, shutdown).await })
        };
        let compaction = tokio::spawn(run_compaction(
            self.storage.clone(),
            self.remote.clone(),
            shutdown.clone(),
        ));
        self.reloader.apply_current();
        let scraping = {
            let scrape = self.scrape.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { scrape.run(shutdown).await })
        };
        let hangups = tokio::spawn(self.reloader.clone().on_sighup(shutdown.clone()));
        let mut graceful = shutdown.clone();
        let mut http = tokio::spawn(
            axum::serve(
                self.listener,
                self.router
                    .into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { graceful.wait().await })
            .into_future(),
        );

        tokio::select! {
            _ = stop => {}
            finished = &mut http => {
                trigger.fire();
                let _ = background.await;
                let _ = compaction.await;
                let _ = scraping.await;
                let _ = hangups.await;
                let unsent = self.remote.stop().await;
                close_store(self.storage.clone(), unsent).await;
                return match finished {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(anyhow::anyhow!("HTTP server failed: {e}")),
                    Err(e) => Err(anyhow::anyhow!("HTTP server task failed: {e}")),
                };
            }
        }
        tracing::info!(timeout = ?self.shutdown_timeout, "shutting down: no new connections, finishing requests in flight");
        trigger.fire();
        if tokio::time::timeout(self.shutdown_timeout, &mut http)
            .await
            .is_err()
        {
            tracing::warn!(
                "requests still in flight after {:?}; closing them",
                self.shutdown_timeout
            );
            http.abort();
        }
        let _ = background.await;
        let _ = compaction.await;
        let _ = scraping.await;
        let _ = hangups.await;
        let unsent = self.remote.stop().await;
        close_store(self.storage.clone(), unsent).await;
        self.fleet.save()?;
        self.kv.flush()?;
        tracing::info!("stopped; store flushed");
        Ok(())
    }
}

/// Writes the head's checkpoint in place of the WAL, keeping the segments
/// from `unsent` on (the oldest remote-write cursor). A failure leaves the
/// WAL as it was: the next start replays it.
async fn close_store(storage: Arc<Storage>, unsent: Option<crate::storage::wal::WalPosition>) {
    match tokio::task::spawn_blocking(move || storage.close(unsent)).await {
        Ok(Ok(report)) => tracing::info!(
            series = report.series,
            bytes = report.checkpoint_bytes,
            duration = ?report.duration,
            "head checkpoint written in place of the WAL"
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot write the head checkpoint; the WAL stays and is replayed at the next start")
        }
        Err(e) => tracing::error!(error = %e, "the head checkpoint task failed; the WAL stays"),
    }
}

/// How often the store checks whether a head window is ready to become a block.
const COMPACTION_INTERVAL: Duration = Duration::from_secs(60);

/// Writes head windows to blocks, merges blocks, applies retention and
/// replaces a grown WAL with the head's checkpoint (keeping what the
/// remote-write queues have not sent), every [`COMPACTION_INTERVAL`] until
/// shutdown.
async fn run_compaction(
    storage: Arc<Storage>,
    remote: Arc<RemoteWriteManager>,
    mut shutdown: shutdown::Shutdown,
) {
    let mut ticker = tokio::time::interval(COMPACTION_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait() => return,
        }
        let (storage, remote) = (storage.clone(), remote.clone());
        // Several windows may be due after a long downtime: write them all.
        let done = tokio::task::spawn_blocking(move || {
            match storage.maintain(remote.oldest_cursor()) {
                Ok((0, 0)) => {}
                // Writing and merging blocks works through large buffers.
                Ok(_) => crate::memory::return_free_memory(),
                Err(e) => {
                    tracing::error!(error = %e, "store maintenance failed; the data stays where it was");
                }
            }
            match storage.checkpoint_if_log_grew(remote.oldest_cursor()) {
                Ok(None) => {}
                Ok(Some((series, bytes))) => {
                    tracing::info!(
                        series,
                        bytes,
                        "the WAL grew: the head's checkpoint replaces it"
                    );
                    crate::memory::return_free_memory();
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot checkpoint the WAL; it stays as it was");
                }
            }
        });
        let _ = done.await;
    }
}

async fn metrics(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> impl IntoResponse {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    let body = registry.encode(format);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
}

async fn index() -> &'static str {
    concat!(
        "fleetmon ",
        env!("CARGO_PKG_VERSION"),
        "\n\n",
        "GET  /api/1/vehicles                          fleet (Tesla Fleet API shapes; viewer)\n",
        "GET  /api/1/vehicles/{tag}[/vehicle_data]     one vehicle (viewer)\n",
        "POST /api/1/vehicles/{tag}/wake_up            wake a vehicle (editor)\n",
        "POST /api/1/vehicles/{tag}/command/{name}     send a command (editor)\n",
        "GET  /api/1/command_log[?vehicle=&page=]      commands sent, newest first (viewer)\n",
        "GET|POST /api/v1/admin/tokens                 list or create API tokens (admin)\n",
        "GET  /api/v1/targets                          scrape targets and their health (viewer)\n",
        "GET|POST /api/v1/query, /api/v1/query_range  PromQL, as Prometheus's API (viewer)\n",
        "GET|POST /api/v1/series, /labels, /label/{name}/values  series and labels (viewer)\n",
        "GET  /api/v1/metadata, /api/v1/targets/metadata  metric metadata (viewer)\n",
        "GET  /api/v1/status/{buildinfo,config,flags,runtimeinfo,walreplay,tsdb}  status (viewer)\n",
        "GET|POST /api/v1/format_query, /api/v1/parse_query  a query pretty-printed or as a tree (viewer)\n",
        "GET  /federate?match[]=                       latest samples, text format (viewer)\n",
        "POST /api/v1/write, /api/v1/import/prometheus  remote write in, text import (editor)\n",
        "POST /api/v1/admin/tsdb/{delete_series,clean_tombstones,snapshot}  store administration (admin)\n",
        "POST /-/reload                                reload the configuration (admin)\n",
        "GET  /metrics                                 Prometheus metrics (open)\n",
        "GET  /-/healthy, /-/ready                     health (open)\n",
    )
}
