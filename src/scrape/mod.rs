//! Scraping: turns the config's `scrape_configs` into one loop per target
//! and keeps them in step with the config and the target files.
//!
//! [`ScrapeManager`] owns the scrape pools (one per job). Applying a config
//! keeps the loops of an unchanged job's remaining targets running, with
//! their staleness state; starts loops for new targets; and stops removed
//! targets' loops, which end their series with stale markers. A job whose
//! settings changed gets new loops (the old ones end their series; a marker
//! for a series the new loop continues is refused as out of order, so only
//! vanished series end). File discovery is polled here.
//!
//! Submodules: `discovery` (target groups), `target` (target labels and
//! URL), `exposition` (the parser),
//! `scraper` (one target's loop), `health` (what the API shows).

pub mod discovery;
pub mod exposition;
pub mod health;
pub mod metadata;
pub mod scraper;
pub mod target;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::{Config, Global, ScrapeConfig};
use crate::metrics::{CounterVec, GaugeVec, Registry};
use crate::shutdown::Shutdown;
use crate::storage::{AppendReport, Storage};
use discovery::{FileDiscovery, TargetGroup};
use health::TargetHealth;
use metadata::{Metadata, MetadataMap};
use scraper::{JobContext, ScrapeLoop, SeriesCache, Stop, DEFAULT_BODY_SIZE_LIMIT};
use target::Target;

/// How often target files are checked for changes.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The scrape metrics, under Prometheus's names.
pub struct ScrapeMetrics {
    exceeded_sample_limit: crate::metrics::Counter,
    rejected: CounterVec,
    pool_targets: GaugeVec,
}

impl ScrapeMetrics {
    fn new(registry: &Registry) -> ScrapeMetrics {
        ScrapeMetrics {
            exceeded_sample_limit: registry
                .counter(
                    "prometheus_target_scrapes_exceeded_sample_limit",
                    "Total number of scrapes that hit the sample limit and were rejected.",
                    &[],
                )
                .with(&[]),
            rejected: registry.counter(
                "fleetmon_target_scrapes_samples_rejected",
                "Scraped samples the store refused, by reason (out of order, duplicate sample for timestamp, out of bounds).",
                &["reason"],
            ),
            pool_targets: registry.gauge(
                "prometheus_target_scrape_pool_targets",
                "Current number of targets in this scrape pool.",
                &["scrape_job"],
            ),
        }
    }

    fn count_rejections(&self, report: &AppendReport) {
        for (why, count) in &report.rejected {
            self.rejected.with(&[why.reason()]).inc_by(*count as f64);
        }
    }
}

/// A running loop, as the manager holds it.
struct LoopHandle {
    target: Arc<Target>,
    health: Arc<Mutex<TargetHealth>>,
    metadata: Arc<Mutex<Arc<MetadataMap>>>,
    stop: watch::Sender<Stop>,
    task: tokio::task::JoinHandle<SeriesCache>,
}

/// One job's targets and loops.
struct Pool {
    fingerprint: String,
    config: ScrapeConfig,
    global: Global,
    context: Arc<JobContext>,
    static_groups: Vec<TargetGroup>,
    files: FileDiscovery,
    last_forced_refresh: Instant,
    loops: HashMap<u64, LoopHandle>,
    dropped: Vec<BTreeMap<String, String>>,
}

/// A target as `/api/v1/targets` shows it.
#[derive(Debug, Clone)]
pub struct TargetStatus {
    /// The job.
    pub scrape_pool: String,
    /// The target.
    pub target: Arc<Target>,
    /// Its last scrape.
    pub health: TargetHealth,
}

/// Every target, active and dropped.
#[derive(Debug, Clone, Default)]
pub struct TargetsSnapshot {
    /// Targets being scraped, by job then URL.
    pub active: Vec<TargetStatus>,
    /// Discovered labels of targets relabeling dropped, with their job.
    pub dropped: Vec<(String, BTreeMap<String, String>)>,
}

/// The scrape pools of the running config.
pub struct ScrapeManager {
    storage: Arc<Storage>,
    metrics: Arc<ScrapeMetrics>,
    pools: Mutex<BTreeMap<String, Pool>>,
}

impl ScrapeManager {
    /// A manager with no jobs yet; [`ScrapeManager::apply`] gives it some.
    pub fn new(storage: Arc<Storage>, registry: &Registry) -> ScrapeManager {
        ScrapeManager {
            storage,
            metrics: Arc::new(ScrapeMetrics::new(registry)),
            pools: Mutex::new(BTreeMap::new()),
        }
    }

    /// Brings the loops in line with `config`; relative paths in it are
    /// resolved against `base`, its file's directory. Must run inside the
    /// tokio runtime.
    pub fn apply(&self, config: &Config, base: &Path) {
        let Ok(mut pools) = self.pools.lock() else {
            return;
        };
        let names: Vec<&str> = config
            .scrape_configs
            .iter()
            .map(|j| j.job_name.value.as_str())
            .collect();
        let removed: Vec<String> = pools
            .keys()
            .filter(|name| !names.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(pool) = pools.remove(&name) {
                stop_all(pool, Stop::Removed);
                self.metrics.pool_targets.remove(&[&name]);
            }
        }
        for job in &config.scrape_configs {
            let name = job.job_name.value.clone();
            let fingerprint = fingerprint(job, &config.global);
            let unchanged = pools
                .get(&name)
                .is_some_and(|pool| pool.fingerprint == fingerprint);
            if !unchanged {
                if let Some(old) = pools.remove(&name) {
                    stop_all(old, Stop::Removed);
                }
                pools.insert(
                    name.clone(),
                    self.new_pool(job, &config.global, base, fingerprint),
                );
            }
            if let Some(pool) = pools.get_mut(&name) {
                self.sync(pool);
            }
        }
    }

    fn new_pool(
        &self,
        job: &ScrapeConfig,
        global: &Global,
        base: &Path,
        fingerprint: String,
    ) -> Pool {
        let http = job.http_client();
        let body_size_limit = match job.body_size_limit.0 {
            0 => DEFAULT_BODY_SIZE_LIMIT,
            limit => limit,
        };
        let context = Arc::new(JobContext {
            job: job.job_name.value.clone(),
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            metric_relabel: job.metric_relabel_configs.clone(),
            sample_limit: job.sample_limit,
            label_limit: job.label_limit,
            label_name_length_limit: job.label_name_length_limit,
            label_value_length_limit: job.label_value_length_limit,
            body_size_limit,
            client: crate::http_client::build(&http, base),
            http,
            base: base.to_path_buf(),
            storage: self.storage.clone(),
            metrics: self.metrics.clone(),
        });
        if let Err(e) = &context.client {
            tracing::error!(job = %job.job_name.value, error = %e, "cannot build the job's HTTP client; its scrapes fail until the config is fixed");
        }
        let mut files = FileDiscovery::new(&job.file_sd_configs, base);
        files.refresh(true);
        Pool {
            fingerprint,
            config: job.clone(),
            global: global.clone(),
            context,
            static_groups: discovery::static_groups(&job.static_configs),
            files,
            last_forced_refresh: Instant::now(),
            loops: HashMap::new(),
            dropped: Vec::new(),
        }
    }

    /// Starts and stops loops so they match the pool's discovered targets.
    fn sync(&self, pool: &mut Pool) {
        let groups = pool.static_groups.iter().chain(pool.files.groups());
        let targets = target::targets_of(&pool.config, &pool.global, groups);
        for invalid in &targets.invalid {
            tracing::warn!(job = %pool.context.job, target = %invalid, "target skipped");
        }
        let wanted: HashMap<u64, Target> =
            targets.active.into_iter().map(|t| (t.hash(), t)).collect();
        let gone: Vec<u64> = pool
            .loops
            .keys()
            .filter(|hash| !wanted.contains_key(hash))
            .copied()
            .collect();
        for hash in gone {
            if let Some(handle) = pool.loops.remove(&hash) {
                handle.stop.send_replace(Stop::Removed);
            }
        }
        for (hash, target) in wanted {
            if pool.loops.contains_key(&hash) {
                continue;
            }
            let target = Arc::new(target);
            let health = Arc::new(Mutex::new(TargetHealth::default()));
            let metadata = Arc::new(Mutex::new(Arc::new(MetadataMap::new())));
            let (stop, stopped) = watch::channel(Stop::Running);
            let scrape_loop = ScrapeLoop::new(
                target.clone(),
                pool.context.clone(),
                health.clone(),
                metadata.clone(),
                SeriesCache::default(),
            );
            let task = tokio::spawn(scrape_loop.run(stopped));
            pool.loops.insert(
                hash,
                LoopHandle {
                    target,
                    health,
                    metadata,
                    stop,
                    task,
                },
            );
        }
        pool.dropped = targets.dropped;
        self.metrics
            .pool_targets
            .with(&[&pool.context.job])
            .set(pool.loops.len() as f64);
    }

    /// Polls target files until shutdown; then stops every loop quietly
    /// (the series continue after a restart) and waits for them.
    pub async fn run(&self, mut shutdown: Shutdown) {
        let mut ticker = tokio::time::interval(FILE_POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.refresh_files(),
                _ = shutdown.wait() => break,
            }
        }
        let pools = match self.pools.lock() {
            Ok(mut pools) => std::mem::take(&mut *pools),
            Err(_) => return,
        };
        let mut tasks = Vec::new();
        for (_, pool) in pools {
            for (_, handle) in pool.loops {
                handle.stop.send_replace(Stop::Quiet);
                tasks.push(handle.task);
            }
        }
        for task in tasks {
            let _ = task.await;
        }
    }

    fn refresh_files(&self) {
        let Ok(mut pools) = self.pools.lock() else {
            return;
        };
        for pool in pools.values_mut() {
            if pool.files.is_empty() {
                continue;
            }
            let every = pool
                .config
                .file_sd_configs
                .iter()
                .map(|c| c.refresh_interval.0)
                .min()
                .unwrap_or(Duration::from_secs(300));
            let force = pool.last_forced_refresh.elapsed() >= every;
            if force {
                pool.last_forced_refresh = Instant::now();
            }
            if pool.files.refresh(force) {
                self.sync(pool);
            }
        }
    }

    /// The metadata every target exposes, by family: each distinct
    /// (type, help, unit) once, as `/api/v1/metadata` lists it.
    pub fn metadata(&self) -> BTreeMap<String, Vec<Metadata>> {
        let mut out: BTreeMap<String, Vec<Metadata>> = BTreeMap::new();
        let Ok(pools) = self.pools.lock() else {
            return out;
        };
        for handle in pools.values().flat_map(|p| p.loops.values()) {
            let map = match handle.metadata.lock() {
                Ok(map) => map.clone(),
                Err(_) => continue,
            };
            for (family, metadata) in map.iter() {
                let entries = out.entry(family.clone()).or_default();
                if !entries.contains(metadata) {
                    entries.push(metadata.clone());
                }
            }
        }
        out
    }

    /// Every active target with the metadata its last scrapes exposed,
    /// sorted by job and URL, as `/api/v1/targets/metadata` lists them.
    pub fn targets_metadata(&self) -> Vec<(Arc<Target>, Arc<MetadataMap>)> {
        let Ok(pools) = self.pools.lock() else {
            return Vec::new();
        };
        let mut out: Vec<(&str, Arc<Target>, Arc<MetadataMap>)> = Vec::new();
        for (name, pool) in pools.iter() {
            for handle in pool.loops.values() {
                // A poisoned map was replaced whole or not at all: still readable.
                let map = handle
                    .metadata
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                out.push((name, handle.target.clone(), map));
            }
        }
        out.sort_by(|a, b| (a.0, &a.1.url).cmp(&(b.0, &b.1.url)));
        out.into_iter()
            .map(|(_, target, map)| (target, map))
            .collect()
    }

    /// Every target with its last scrape, sorted by job and URL.
    pub fn targets(&self) -> TargetsSnapshot {
        let mut snapshot = TargetsSnapshot::default();
        let Ok(pools) = self.pools.lock() else {
            return snapshot;
        };
        for (name, pool) in pools.iter() {
            for handle in pool.loops.values() {
                let health = handle.health.lock().map(|h| h.clone()).unwrap_or_default();
                snapshot.active.push(TargetStatus {
                    scrape_pool: name.clone(),
                    target: handle.target.clone(),
                    health,
                });
            }
            snapshot
                .dropped
                .extend(pool.dropped.iter().map(|d| (name.clone(), d.clone())));
        }
        snapshot
            .active
            .sort_by(|a, b| (&a.scrape_pool, &a.target.url).cmp(&(&b.scrape_pool, &b.target.url)));
        snapshot
    }
}

/// Stops every loop of a pool without waiting for it.
fn stop_all(pool: Pool, how: Stop) {
    for handle in pool.loops.into_values() {
        handle.stop.send_replace(how);
    }
}

/// A job's settings as one string, to tell whether a reload changed them,
/// credentials included (see [`crate::config::fingerprint`]).
fn fingerprint(job: &ScrapeConfig, global: &Global) -> String {
    crate::config::fingerprint(&(job, global.scrape_interval, global.scrape_timeout))
}
