//! The remote-write sender: one queue per `remote_write` entry forwards every
//! sample appended to the store, read back from the WAL, to its receiver.
//!
//! Durability: each queue keeps a cursor (a WAL position) in the key-value
//! store. It reads the WAL from the cursor up to the durable end, sends what
//! it read, and only then moves the cursor past it. A receiver outage leaves
//! the cursor where it was while requests are retried; a fleetmon restart
//! resumes from the saved cursor. Delivery is at least once: a crash between
//! a send and the cursor's save sends those samples again, which receivers
//! take as duplicates. WAL segments a checkpoint folded away before the queue
//! read them (an outage longer than the head keeps its WAL, about 1.5 block
//! ranges) are skipped, logged and counted as dropped.
//!
//! Sending follows Prometheus's queue manager: samples are sharded by series
//! so each series stays in order, requests hold at most
//! `max_samples_per_send` samples and wait at most `batch_send_deadline` to
//! fill, 5xx, 429 (with `retry_on_http_429`) and network errors are retried
//! with exponential backoff between `min_backoff` and `max_backoff` (honouring
//! `Retry-After`), other 4xx drop the request and count its samples as
//! failed. Series go out with `write_relabel_configs` applied and the
//! global `external_labels` added. Metrics use Prometheus's
//! `prometheus_remote_storage_*` names.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::http_client::HttpClientConfig;
use crate::config::relabel;
use crate::config::{Config, RemoteWriteConfig};
use crate::metrics::{CounterVec, GaugeVec, Registry};
use crate::remote::wire;
use crate::storage::labels::stable_hash;
use crate::storage::wal::{SeriesRef, WalPosition, WalSample};
use crate::storage::{KvTree, Storage};

/// How often a queue looks for new durable samples in the WAL.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often a moving cursor is flushed to disk (it is written after every
/// batch; a crash re-sends at most this much).
const CURSOR_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Label sets cached per queue before the cache is cleared.
const MAX_CACHED_SERIES: usize = 1_000_000;

/// The `prometheus_remote_storage_*` metrics, by queue.
struct QueueMetrics {
    sent: CounterVec,
    failed: CounterVec,
    retried: CounterVec,
    dropped: CounterVec,
    bytes: CounterVec,
    pending: GaugeVec,
    shards: GaugeVec,
    highest_sent: GaugeVec,
}

impl QueueMetrics {
    fn new(registry: &Registry) -> QueueMetrics {
        let labels = &["remote_name", "url"];
        QueueMetrics {
            sent: registry.counter(
                "prometheus_remote_storage_samples",
                "Total number of samples sent to remote storage.",
                labels,
            ),
            failed: registry.counter(
                "prometheus_remote_storage_samples_failed",
                "Total number of samples which failed on send to remote storage, non-recoverable errors.",
                labels,
            ),
            retried: registry.counter(
                "prometheus_remote_storage_samples_retried",
                "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.",
                labels,
            ),
            dropped: registry.counter(
                "prometheus_remote_storage_samples_dropped",
                "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling, a missing series or a WAL segment folded away unread.",
                labels,
            ),
            bytes: registry.counter(
                "prometheus_remote_storage_bytes",
                "The total number of bytes of data (not metadata) sent by the queue after compression.",
                labels,
            ),
            pending: registry.gauge(
                "prometheus_remote_storage_samples_pending",
                "The number of samples pending in the queues shards to be sent to the remote storage.",
                labels,
            ),
            shards: registry.gauge(
                "prometheus_remote_storage_shards",
                "The number of shards used for parallel sending to the remote storage.",
                labels,
            ),
            highest_sent: registry.gauge(
                "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
                "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.",
                labels,
            ),
        }
    }
}

/// A running queue, as the manager holds it.
struct QueueHandle {
    fingerprint: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The queues of the running config.
pub struct RemoteWriteManager {
    storage: Arc<Storage>,
    cursors: KvTree,
    metrics: Arc<QueueMetrics>,
    flush_deadline: Duration,
    queues: Mutex<BTreeMap<String, QueueHandle>>,
}

impl RemoteWriteManager {
    /// A manager with no queues yet; cursors live in `cursors`. At stop, a
    /// queue sends what is durable for at most `flush_deadline`.
    pub fn new(
        storage: Arc<Storage>,
        cursors: KvTree,
        registry: &Registry,
        flush_deadline: Duration,
    ) -> RemoteWriteManager {
        RemoteWriteManager {
            storage,
            cursors,
            metrics: Arc::new(QueueMetrics::new(registry)),
            flush_deadline,
            queues: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts, keeps or stops queues to match `config`; a queue whose entry
    /// changed restarts from its saved cursor. Must run inside the runtime.
    pub fn apply(&self, config: &Config, base: &Path) {
        let external: Vec<(String, String)> = config
            .global
            .external_labels
            .value
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let Ok(mut queues) = self.queues.lock() else {
            return;
        };
        let mut wanted = BTreeMap::new();
        for entry in &config.remote_write {
            let entry = &entry.value;
            let name = queue_name(entry);
            // Credentials included, so a changed password restarts the queue.
            let fingerprint = crate::config::fingerprint(&(entry, &external));
            wanted.insert(name, (entry, fingerprint));
        }
        let stale: Vec<String> = queues
            .iter()
            .filter(|(name, handle)| {
                wanted
                    .get(*name)
                    .is_none_or(|(_, fingerprint)| *fingerprint != handle.fingerprint)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(handle) = queues.remove(&name) {
                handle.stop.send_replace(true);
                // The old task saves its cursor before it ends; the new one
                // must start after, so it is chained behind it.
                let previous = handle.task;
                if let Some((entry, fingerprint)) = wanted.get(&name) {
                    let queue = self.queue(name.clone(), entry, &external, base);
                    let (stop, stopped) = watch::channel(false);
                    let task = tokio::spawn(async move {
                        let _ = previous.await;
                        queue.run(stopped).await;
                    });
                    queues.insert(
                        name,
                        QueueHandle {
                            fingerprint: fingerprint.clone(),
                            stop,
                            task,
                        },
                    );
                }
            }
        }
        for (name, (entry, fingerprint)) in wanted {
            if queues.contains_key(&name) {
                continue;
            }
            let queue = self.queue(name.clone(), entry, &external, base);
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(queue.run(stopped));
            queues.insert(
                name,
                QueueHandle {
                    fingerprint,
                    stop,
                    task,
                },
            );
        }
    }

    fn queue(
        &self,
        name: String,
        entry: &RemoteWriteConfig,
        external: &[(String, String)],
        base: &Path,
    ) -> Queue {
        let http = entry.http_client();
        Queue {
            client: crate::http_client::build(&http, base),
            labels: [name.clone(), entry.url.clone()],
            name,
            config: entry.clone(),
            http,
            base: base.to_path_buf(),
            external: external.to_vec(),
            storage: self.storage.clone(),
            cursors: self.cursors.clone(),
            metrics: self.metrics.clone(),
            flush_deadline: self.flush_deadline,
            series: HashMap::new(),
        }
    }

    /// Stops every queue, each saving its cursor, and waits for them;
    /// returns the oldest saved cursor: the WAL must keep what follows it.
    pub async fn stop(&self) -> Option<WalPosition> {
        let mut queues = match self.queues.lock() {
            Ok(mut queues) => std::mem::take(&mut *queues),
            Err(_) => return None,
        };
        for handle in queues.values() {
            handle.stop.send_replace(true);
        }
        for handle in queues.values_mut() {
            let _ = (&mut handle.task).await;
        }
        self.oldest_of(queues.keys())
    }

    /// The oldest saved cursor of the running queues: the WAL must keep
    /// what follows it.
    pub fn oldest_cursor(&self) -> Option<WalPosition> {
        let names: Vec<String> = match self.queues.lock() {
            Ok(queues) => queues.keys().cloned().collect(),
            // Unknown: the WAL keeps everything.
            Err(_) => return Some(WalPosition::default()),
        };
        self.oldest_of(names.iter())
    }

    fn oldest_of<'n>(&self, names: impl Iterator<Item = &'n String>) -> Option<WalPosition> {
        let mut oldest: Option<WalPosition> = None;
        for name in names {
            let cursor = self
                .cursors
                .get::<WalPosition>(name.as_bytes())
                .unwrap_or_else(|e| {
                    // Unknown: the WAL keeps everything.
                    tracing::error!(queue = %name, error = %e, "cannot read the remote-write cursor");
                    Some(WalPosition::default())
                });
            if let Some(cursor) = cursor {
                oldest = Some(oldest.map_or(cursor, |o| o.min(cursor)));
            }
        }
        oldest
    }
}

/// The queue's name: its `name`, or a hash of its URL (as Prometheus names
/// unnamed queues by a hash of their config).
fn queue_name(entry: &RemoteWriteConfig) -> String {
    if entry.name.is_empty() {
        format!(
            "{:06x}",
            stable_hash(std::iter::once(("url", entry.url.as_str()))) & 0xff_ffff
        )
    } else {
        entry.name.clone()
    }
}

/// A series' labels as sent, shared by the requests that carry it.
type SentLabels = Arc<[(String, String)]>;

/// One remote-write queue.
struct Queue {
    name: String,
    labels: [String; 2],
    config: RemoteWriteConfig,
    client: Result<reqwest::Client, String>,
    http: HttpClientConfig,
    base: PathBuf,
    external: Vec<(String, String)>,
    storage: Arc<Storage>,
    cursors: KvTree,
    metrics: Arc<QueueMetrics>,
    flush_deadline: Duration,
    /// Series labels as sent (relabeled, external labels added); `None`
    /// when relabeling drops the series.
    series: HashMap<SeriesRef, Option<SentLabels>>,
}

/// Why a request was given up on.
enum SendError {
    /// fleetmon is stopping and the flush deadline passed: the batch stays
    /// unsent (the cursor does not move).
    Stopped,
}

impl Queue {
    fn metric_labels(&self) -> [&str; 2] {
        [&self.labels[0], &self.labels[1]]
    }

    /// Forwards samples until told to stop.
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let key = self.name.as_bytes().to_vec();
        let saved: Option<WalPosition> = self.cursors.get(&key).unwrap_or_else(|e| {
            tracing::error!(queue = %self.name, error = %e, "cannot read the remote-write cursor; starting at the end of the WAL");
            None
        });
        let start = saved.unwrap_or_else(|| self.storage.wal_durable_position());
        if saved.is_none() {
            // Saved at once, so that what this queue has yet to send is kept
            // in the WAL even if it never gets to send anything.
            if let Err(e) = self.cursors.put(&key, &start) {
                tracing::error!(queue = %self.name, error = %e, "cannot save the remote-write cursor");
            }
        }
        tracing::info!(queue = %self.name, url = %self.config.url, resumed = saved.is_some(), "remote-write queue started");
        let mut tail = self.storage.wal_tail(start);
        let queue = self.config.queue_config.clone();
        let batch_limit = queue.max_samples_per_send * queue.max_shards;
        let mut pending: Vec<WalSample> = Vec::new();
        let mut oldest_pending: Option<Instant> = None;
        let mut last_flush = Instant::now();
        // Once stopped, the queue drains what is durable, for at most the
        // flush deadline; requests still failing then are given up on (the
        // cursor stays before them, so they go out after the next start).
        let (give_up_now, mut give_up) = watch::channel(false);
        let flush_deadline = self.flush_deadline;
        let mut stopped = stop.clone();
        let deadline = tokio::spawn(async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(flush_deadline).await;
            give_up_now.send_replace(true);
        });
        let mut draining = false;
        loop {
            let until = self.storage.wal_durable_position();
            let room = batch_limit.saturating_sub(pending.len());
            match tail.read(until, room, &mut pending) {
                Ok(read) => {
                    if read.skipped_segments > 0 {
                        tracing::warn!(queue = %self.name, segments = read.skipped_segments, "WAL segments were folded into a checkpoint before this queue sent them; their samples are lost to the receiver");
                        self.metrics.dropped.with(&self.metric_labels()).inc();
                    }
                }
                Err(e) => {
                    tracing::error!(queue = %self.name, error = %e, "cannot read the WAL; retrying");
                }
            }
            if !pending.is_empty() && oldest_pending.is_none() {
                oldest_pending = Some(Instant::now());
            }
            self.metrics
                .pending
                .with(&self.metric_labels())
                .set(pending.len() as f64);
            let full = pending.len() >= queue.max_samples_per_send;
            let due = oldest_pending.is_some_and(|t| t.elapsed() >= queue.batch_send_deadline.0);
            if !pending.is_empty() && (full || due || draining) {
                match self.send_batch(&pending, &mut give_up).await {
                    Ok(()) => {
                        pending.clear();
                        oldest_pending = None;
                        if let Err(e) = self.cursors.put(&key, &tail.position()) {
                            tracing::error!(queue = %self.name, error = %e, "cannot save the remote-write cursor");
                        }
                        if last_flush.elapsed() >= CURSOR_FLUSH_INTERVAL {
                            last_flush = Instant::now();
                            self.flush_cursor();
                        }
                    }
                    Err(SendError::Stopped) => break,
                }
                if pending.is_empty() && tail.position() < self.storage.wal_durable_position() {
                    continue; // more is waiting: no pause
                }
            }
            if draining && pending.is_empty() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.wait_for(|s| *s), if !draining => draining = true,
            }
        }
        deadline.abort();
        self.flush_cursor();
        tracing::info!(queue = %self.name, "remote-write queue stopped");
    }

    fn flush_cursor(&self) {
        if let Err(e) = tokio::task::block_in_place(|| self.cursors.flush()) {
            tracing::error!(queue = %self.name, error = %e, "cannot flush the remote-write cursor");
        }
    }

    /// Sends one batch: sharded by series, each shard's requests in order,
    /// shards concurrently. Returns once every request succeeded or was
    /// dropped for good.
    async fn send_batch(
        &mut self,
        samples: &[WalSample],
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), SendError> {
        let queue = &self.config.queue_config;
        let needed = samples.len().div_ceil(queue.max_samples_per_send);
        let shards = needed.clamp(queue.min_shards, queue.max_shards);
        self.metrics
            .shards
            .with(&self.metric_labels())
            .set(shards as f64);
        let mut by_shard: Vec<BTreeMap<SeriesRef, Vec<(i64, f64)>>> = vec![BTreeMap::new(); shards];
        let mut dropped = 0u64;
        for sample in samples {
            if !self.labels_of(sample.series) {
                dropped += 1;
                continue;
            }
            let shard = (sample.series % shards as u64) as usize;
            by_shard[shard]
                .entry(sample.series)
                .or_default()
                .push((sample.t, sample.v));
        }
        if dropped > 0 {
            self.metrics
                .dropped
                .with(&self.metric_labels())
                .inc_by(dropped as f64);
        }
        let mut tasks = Vec::with_capacity(shards);
        for shard in by_shard.into_iter().filter(|s| !s.is_empty()) {
            let requests = self.requests(shard);
            let sender = Sender {
                client: self.client.clone(),
                config: self.config.clone(),
                http: self.http.clone(),
                base: self.base.clone(),
                labels: self.labels.clone(),
                metrics: self.metrics.clone(),
            };
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                sender.send_all(requests, stop).await
            }));
        }
        let mut stopped = false;
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(SendError::Stopped)) => stopped = true,
                Err(e) => {
                    tracing::error!(queue = %self.name, error = %e, "a remote-write shard failed");
                    stopped = true;
                }
            }
        }
        if stopped {
            return Err(SendError::Stopped);
        }
        if let Some(max_t) = samples.iter().map(|s| s.t).max() {
            self.metrics
                .highest_sent
                .with(&self.metric_labels())
                .set(max_t as f64 / 1000.0);
        }
        Ok(())
    }

    /// Whether the series is sent (looking its labels up once).
    fn labels_of(&mut self, series: SeriesRef) -> bool {
        if self.series.len() > MAX_CACHED_SERIES {
            self.series.clear();
        }
        if let Some(known) = self.series.get(&series) {
            return known.is_some();
        }
        let labels = self.storage.series_labels(series).and_then(|labels| {
            let mut pairs = labels.pairs().to_vec();
            for (name, value) in &self.external {
                if !pairs.iter().any(|(n, _)| n == name) {
                    pairs.push((name.clone(), value.clone()));
                }
            }
            if !relabel::relabel(&mut pairs, &self.config.write_relabel_configs) {
                return None;
            }
            pairs.retain(|(_, v)| !v.is_empty());
            pairs.sort();
            Some(Arc::from(pairs))
        });
        let sent = labels.is_some();
        self.series.insert(series, labels);
        sent
    }

    /// Cuts a shard's series into requests of at most `max_samples_per_send`.
    fn requests(&self, shard: BTreeMap<SeriesRef, Vec<(i64, f64)>>) -> Vec<Vec<wire::Series>> {
        let limit = self.config.queue_config.max_samples_per_send;
        let mut requests = Vec::new();
        let mut current: Vec<wire::Series> = Vec::new();
        let mut count = 0;
        for (series, samples) in shard {
            let Some(Some(labels)) = self.series.get(&series) else {
                continue;
            };
            for part in samples.chunks(limit) {
                if count + part.len() > limit && !current.is_empty() {
                    requests.push(std::mem::take(&mut current));
                    count = 0;
                }
                count += part.len();
                current.push((labels.to_vec(), part.to_vec()));
            }
        }
        if !current.is_empty() {
            requests.push(current);
        }
        requests
    }
}

/// What a shard task needs to send.
struct Sender {
    client: Result<reqwest::Client, String>,
    config: RemoteWriteConfig,
    http: HttpClientConfig,
    base: PathBuf,
    labels: [String; 2],
    metrics: Arc<QueueMetrics>,
}

/// How one attempt ended.
enum Attempt {
    Sent,
    Retry(Option<Duration>, String),
    Drop(String),
}

impl Sender {
    async fn send_all(
        &self,
        requests: Vec<Vec<wire::Series>>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), SendError> {
        let labels = [self.labels[0].as_str(), self.labels[1].as_str()];
        for series in requests {
            let count: usize = series.iter().map(|(_, s)| s.len()).sum();
            let body = match wire::encode_request(&series) {
                Ok(body) => body,
                Err(e) => {
                    tracing::error!(url = %self.config.url, error = %e, "cannot encode a remote-write request; its samples are dropped");
                    self.metrics.failed.with(&labels).inc_by(count as f64);
                    continue;
                }
            };
            let mut backoff = self.config.queue_config.min_backoff.0;
            loop {
                match self.attempt(&body).await {
                    Attempt::Sent => {
                        self.metrics.sent.with(&labels).inc_by(count as f64);
                        self.metrics.bytes.with(&labels).inc_by(body.len() as f64);
                        break;
                    }
                    Attempt::Drop(why) => {
                        tracing::error!(url = %self.config.url, samples = count, error = %why, "remote write refused a batch; its samples are dropped");
                        self.metrics.failed.with(&labels).inc_by(count as f64);
                        break;
                    }
                    Attempt::Retry(after, why) => {
                        tracing::warn!(url = %self.config.url, samples = count, error = %why, "remote write failed; retrying");
                        self.metrics.retried.with(&labels).inc_by(count as f64);
                        let wait = after.unwrap_or(backoff);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.wait_for(|s| *s) => return Err(SendError::Stopped),
                        }
                        backoff = (backoff * 2).min(self.config.queue_config.max_backoff.0);
                    }
                }
            }
        }
        Ok(())
    }

    async fn attempt(&self, body: &[u8]) -> Attempt {
        let client = match &self.client {
            Ok(client) => client,
            Err(e) => return Attempt::Retry(None, e.clone()),
        };
        let mut request = client
            .post(&self.config.url)
            .timeout(self.config.remote_timeout.0)
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.to_vec());
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        let request = match crate::http_client::authorize(request, &self.http, &self.base) {
            Ok(request) => request,
            Err(e) => return Attempt::Retry(None, e),
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Attempt::Retry(None, e.to_string()),
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Sent;
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let why = format!("server returned HTTP status {status}: {}", text.trim());
        let retry_429 = self.config.queue_config.retry_on_http_429;
        if status.is_server_error()
            || (status == reqwest::StatusCode::TOO_MANY_REQUESTS && retry_429)
        {
            Attempt::Retry(retry_after, why)
        } else {
            Attempt::Drop(why)
        }
    }
}
