//! One target's scrape loop, with Prometheus's behaviour: scrapes at a fixed
//! offset within the interval (from the target's hash), so timestamps are
//! exact multiples apart; negotiates OpenMetrics and text; enforces the
//! timeout and body limit; merges target labels (`honor_labels`, `exported_`
//! prefixes), runs `metric_relabel_configs`, applies the sample and label
//! limits; appends the samples with the synthetic `up`, `scrape_*` series;
//! and writes stale markers for series that vanish, for every series when a
//! scrape fails, and, when the target is removed, after the two intervals
//! Prometheus waits in case it comes back. It owns the per-target series
//! cache (raw series → final labels), so relabeling runs once per new series.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::config::http_client::HttpClientConfig;
use crate::config::relabel::{self, RelabelConfig};
use crate::scrape::exposition::{self, Entry, Format, Parser};
use crate::scrape::health::{Health, TargetHealth};
use crate::scrape::metadata::{MetadataCache, MetadataMap};
use crate::scrape::target::Target;
use crate::scrape::ScrapeMetrics;
use crate::storage::labels::{stale_nan, METRIC_NAME};
use crate::storage::{series_key, OfferedSeries, Storage};

/// The largest body read when `body_size_limit` is 0: a bound on memory per
/// scrape that no sane exporter reaches.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 256 * 1024 * 1024;

/// A scrape whose start is within this of its scheduled time is stamped with
/// the scheduled time, so samples of a series are exactly one interval apart
/// (Prometheus's scrape timestamp tolerance, 2 ms, with room for a busy host).
const TIMESTAMP_TOLERANCE: Duration = Duration::from_millis(25);

/// What a job's loops share: settings from the job, the client, the store.
pub struct JobContext {
    /// The job's name.
    pub job: String,
    /// Keep scraped labels on conflict.
    pub honor_labels: bool,
    /// Keep exposed timestamps.
    pub honor_timestamps: bool,
    /// `metric_relabel_configs`.
    pub metric_relabel: Vec<RelabelConfig>,
    /// 0 = none.
    pub sample_limit: u64,
    /// 0 = none.
    pub label_limit: u64,
    /// 0 = none.
    pub label_name_length_limit: u64,
    /// 0 = none.
    pub label_value_length_limit: u64,
    /// Bytes of body read at most.
    pub body_size_limit: u64,
    /// The HTTP client, or why it could not be built.
    pub client: Result<reqwest::Client, String>,
    /// Credentials and TLS settings.
    pub http: HttpClientConfig,
    /// The config file's directory, for relative credential files.
    pub base: PathBuf,
    /// Where samples go.
    pub storage: Arc<Storage>,
    /// The scrape metrics.
    pub metrics: Arc<ScrapeMetrics>,
}

/// How a loop is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep scraping.
    Running,
    /// The target is gone: write end-of-run stale markers.
    Removed,
    /// fleetmon is stopping or the loop is replaced: no stale markers (the
    /// series may continue after restart, or in the replacing loop).
    Quiet,
}

/// A series as cached between scrapes.
struct CachedSeries {
    /// The final labels; `None` when metric relabeling dropped the series.
    labels: Option<SharedLabels>,
    /// The last scrape iteration that exposed it.
    seen: u64,
    /// The iteration that first exposed it.
    added: u64,
    /// Whether its last sample carried a timestamp (such series get no
    /// stale markers, as in Prometheus).
    timestamped: bool,
}

/// The loop's memory of the last scrape: what staleness is computed from.
/// It survives a reload that keeps the target.
#[derive(Default)]
pub struct SeriesCache {
    entries: HashMap<Vec<u8>, CachedSeries>,
    iteration: u64,
}

/// A failed scrape, as `/api/v1/targets` shows it.
#[derive(Debug)]
struct ScrapeError(String);

/// A final label set and its series key, computed once per series: with
/// the key, the store finds a known series without validating and encoding
/// its labels at every scrape.
struct FinalLabels {
    pairs: Vec<(String, String)>,
    key: Vec<u8>,
}

impl FinalLabels {
    /// `pairs` sorted by name. Labels the store would still change (an
    /// empty value, a duplicate name) give a key that only misses: the
    /// store then falls back to the labels.
    fn new(pairs: Vec<(String, String)>) -> FinalLabels {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut key = Vec::new();
        series_key::encode(&refs, &mut key);
        FinalLabels { pairs, key }
    }
}

/// A final label set, shared by the cache and the batches that use it.
type SharedLabels = Arc<FinalLabels>;

/// One sample ready to append.
struct Pending {
    labels: SharedLabels,
    sample: [(i64, f64); 1],
}

impl OfferedSeries for Pending {
    fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        crate::storage::labels::as_str_pairs(&self.labels.pairs)
    }

    fn samples(&self) -> &[(i64, f64)] {
        &self.sample
    }

    fn encoded_labels(&self) -> Option<&[u8]> {
        Some(&self.labels.key)
    }
}

/// What a parsed scrape produced.
#[derive(Default)]
struct Ingested {
    samples: Vec<Pending>,
    scraped: u64,
    post_relabel: u64,
    added: u64,
}

/// One target's loop.
pub struct ScrapeLoop {
    target: Arc<Target>,
    job: Arc<JobContext>,
    health: Arc<Mutex<TargetHealth>>,
    cache: SeriesCache,
    metadata: MetadataCache,
    /// Labels of the synthetic series, one per name.
    report_labels: Vec<SharedLabels>,
}

const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

impl ScrapeLoop {
    /// A loop for `target`, continuing from `cache` when it replaces one.
    pub fn new(
        target: Arc<Target>,
        job: Arc<JobContext>,
        health: Arc<Mutex<TargetHealth>>,
        metadata: Arc<Mutex<Arc<MetadataMap>>>,
        cache: SeriesCache,
    ) -> ScrapeLoop {
        let report_labels = REPORT_SERIES
            .iter()
            .map(|name| {
                let mut labels = target.labels.clone();
                labels.push((METRIC_NAME.to_string(), (*name).to_string()));
                labels.sort();
                Arc::new(FinalLabels::new(labels))
            })
            .collect();
        ScrapeLoop {
            target,
            job,
            health,
            cache,
            metadata: MetadataCache::new(metadata),
            report_labels,
        }
    }

    /// Scrapes until told to stop; returns the cache for a replacing loop.
    pub async fn run(mut self, mut stop: watch::Receiver<Stop>) -> SeriesCache {
        let interval = self.target.interval;
        let offset_ms = (self.target.hash() % interval.as_millis().max(1) as u64) as i64;
        let interval_ms = interval.as_millis() as i64;
        let mut last_scrape: Option<i64> = None;
        loop {
            let now = wall_ms();
            // The next time t ≡ offset (mod interval) strictly after the last.
            let mut next = now - (now - offset_ms).rem_euclid(interval_ms);
            if next < now || last_scrape.is_some_and(|l| next <= l) {
                next += interval_ms;
            }
            let wait = Duration::from_millis((next - now).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s != Stop::Running) => break,
            }
            let started = wall_ms();
            let timestamp =
                if (started - next).unsigned_abs() <= TIMESTAMP_TOLERANCE.as_millis() as u64 {
                    next
                } else {
                    started
                };
            last_scrape = Some(timestamp);
            self.scrape_once(timestamp).await;
        }
        if *stop.borrow() == Stop::Removed {
            if let Some(last) = last_scrape {
                self.end_of_run_staleness(last).await;
            }
        }
        self.cache
    }

    /// One scrape: fetch, parse, append, report.
    async fn scrape_once(&mut self, timestamp: i64) {
        let started = Instant::now();
        let (mut batch, error) = match self.fetch().await {
            Ok((body, format)) => self.ingest(&body, format, timestamp),
            Err(e) => (Ingested::default(), Some(e)),
        };
        if error.is_some() {
            self.stale_all(timestamp, &mut batch.samples);
        }
        let duration = started.elapsed();
        let up = if error.is_none() { 1.0 } else { 0.0 };
        let report = [
            up,
            duration.as_secs_f64(),
            batch.scraped as f64,
            batch.post_relabel as f64,
            batch.added as f64,
        ];
        for (labels, value) in self.report_labels.iter().zip(report) {
            batch.samples.push(Pending {
                labels: labels.clone(),
                sample: [(timestamp, value)],
            });
        }
        let appended = self.job.storage.append(&batch.samples).await;
        let error = match (error, appended) {
            (Some(e), _) => Some(e.0),
            (None, Err(e)) => Some(format!("cannot store samples: {e}")),
            (None, Ok(report)) => {
                self.job.metrics.count_rejections(&report);
                None
            }
        };
        if let Ok(mut health) = self.health.lock() {
            health.record(
                Health::from_error(error.as_deref()),
                timestamp,
                duration,
                error,
            );
        }
    }

    /// GETs the target, within the timeout and body limit.
    async fn fetch(&self) -> Result<(Vec<u8>, Format), ScrapeError> {
        let client = self
            .job
            .client
            .as_ref()
            .map_err(|e| ScrapeError(e.clone()))?;
        let timeout = self.target.timeout;
        let request = client
            .get(&self.target.url)
            .header(reqwest::header::ACCEPT, exposition::SCRAPE_ACCEPT)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            )
            .timeout(timeout);
        let request = crate::http_client::authorize(request, &self.job.http, &self.job.base)
            .map_err(ScrapeError)?;
        let limit = self.job.body_size_limit;
        let read = async {
            let mut response = request.send().await.map_err(describe_request_error)?;
            if response.status() != reqwest::StatusCode::OK {
                return Err(ScrapeError(format!(
                    "server returned HTTP status {}",
                    response.status()
                )));
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            let format = Format::from_content_type(content_type);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(describe_request_error)? {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(ScrapeError(format!(
                        "body size limit exceeded: more than {limit} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((body, format))
        };
        // The request timeout covers the body too, but not a server that
        // trickles bytes forever within it; bound the whole exchange.
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| ScrapeError(format!("context deadline exceeded after {timeout:?}")))?
    }

    /// Parses a body into samples, updating the cache; on error nothing of
    /// this body is kept (Prometheus rolls the whole scrape back).
    fn ingest(
        &mut self,
        body: &[u8],
        format: Format,
        timestamp: i64,
    ) -> (Ingested, Option<ScrapeError>) {
        self.cache.iteration += 1;
        let iteration = self.cache.iteration;
        let mut out = Ingested::default();
        match self.parse_into(body, format, timestamp, iteration, &mut out) {
            Ok(()) => (out, None),
            Err(e) => {
                // Nothing of a failed scrape is stored; its counts are reported.
                self.forget(iteration);
                out.samples.clear();
                out.added = 0;
                (out, Some(e))
            }
        }
    }

    fn parse_into(
        &mut self,
        body: &[u8],
        format: Format,
        timestamp: i64,
        iteration: u64,
        out: &mut Ingested,
    ) -> Result<(), ScrapeError> {
        let mut parser = Parser::new(body, format);
        let mut key = Vec::with_capacity(128);
        while let Some(entry) = parser.next_entry() {
            let sample = match entry {
                Ok(Entry::Sample(sample)) => sample,
                Ok(metadata) => {
                    self.metadata.note(&metadata, iteration);
                    continue;
                }
                Err(e) => {
                    out.post_relabel = 0;
                    return Err(ScrapeError(format!("parse error: {e}")));
                }
            };
            out.scraped += 1;
            key.clear();
            key.extend_from_slice(sample.name.as_bytes());
            for (name, value) in &sample.labels {
                key.push(0xff);
                key.extend_from_slice(name.as_bytes());
                key.push(0xfe);
                key.extend_from_slice(value.as_bytes());
            }
            let explicit = sample.timestamp_ms.filter(|_| self.job.honor_timestamps);
            let entry = match self.cache.entries.get_mut(key.as_slice()) {
                Some(entry) => entry,
                None => {
                    let labels = self.final_labels(&sample.name, &sample.labels)?;
                    if labels.is_some() {
                        out.added += 1;
                    }
                    self.cache
                        .entries
                        .entry(key.clone())
                        .or_insert(CachedSeries {
                            labels,
                            seen: iteration,
                            added: iteration,
                            timestamped: false,
                        })
                }
            };
            entry.seen = iteration;
            entry.timestamped = explicit.is_some();
            if let Some(labels) = &entry.labels {
                out.post_relabel += 1;
                out.samples.push(Pending {
                    labels: labels.clone(),
                    sample: [(explicit.unwrap_or(timestamp), sample.value)],
                });
            }
            parser.recycle(sample.labels);
        }
        let limit = self.job.sample_limit;
        if limit > 0 && out.post_relabel > limit {
            self.job.metrics.exceeded_sample_limit.inc();
            let exposed = out.post_relabel;
            // As in Prometheus, the samples taken before the limit was hit.
            out.post_relabel = limit;
            return Err(ScrapeError(format!(
                "sample limit exceeded: {exposed} samples, limit {limit}"
            )));
        }
        // Series exposed last time but not now end here.
        self.cache.entries.retain(|_, entry| {
            if entry.seen == iteration {
                return true;
            }
            if let (Some(labels), false) = (&entry.labels, entry.timestamped) {
                out.samples.push(Pending {
                    labels: labels.clone(),
                    sample: [(timestamp, stale_nan())],
                });
            }
            false
        });
        self.metadata.publish(iteration);
        Ok(())
    }

    /// After a failed scrape: every series of the last good scrape ends.
    fn stale_all(&mut self, timestamp: i64, samples: &mut Vec<Pending>) {
        for entry in self.cache.entries.values() {
            if let (Some(labels), false) = (&entry.labels, entry.timestamped) {
                samples.push(Pending {
                    labels: labels.clone(),
                    sample: [(timestamp, stale_nan())],
                });
            }
        }
        self.cache.entries.clear();
    }

    /// Drops the series a failed scrape added, so that `stale_all` ends
    /// exactly the series of the last good scrape.
    fn forget(&mut self, iteration: u64) {
        self.cache
            .entries
            .retain(|_, entry| entry.added != iteration);
    }

    /// The labels a scraped series is stored under: scraped labels merged
    /// with the target's, then metric relabeling; `None` if dropped.
    fn final_labels(
        &self,
        name: &str,
        scraped: &[(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)],
    ) -> Result<Option<SharedLabels>, ScrapeError> {
        let mut labels: Vec<(String, String)> = Vec::with_capacity(scraped.len() + 4);
        labels.push((METRIC_NAME.to_string(), name.to_string()));
        labels.extend(scraped.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        merge_target_labels(&mut labels, &self.target.labels, self.job.honor_labels);
        if !relabel::relabel(&mut labels, &self.job.metric_relabel) {
            return Ok(None);
        }
        labels.retain(|(_, v)| !v.is_empty());
        labels.sort();
        self.check_label_limits(&labels)?;
        Ok(Some(Arc::new(FinalLabels::new(labels))))
    }

    fn check_label_limits(&self, labels: &[(String, String)]) -> Result<(), ScrapeError> {
        let job = &self.job;
        let metric = || {
            labels
                .iter()
                .find(|(n, _)| n == METRIC_NAME)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        if job.label_limit > 0 && labels.len() as u64 > job.label_limit {
            return Err(ScrapeError(format!(
                "label_limit exceeded (metric: {}, number of labels: {}, limit: {})",
                metric(),
                labels.len(),
                job.label_limit
            )));
        }
        for (name, value) in labels {
            if job.label_name_length_limit > 0 && name.len() as u64 > job.label_name_length_limit {
                return Err(ScrapeError(format!(
                    "label_name_length_limit exceeded (metric: {}, label name: {name}, limit: {})",
                    metric(),
                    job.label_name_length_limit
                )));
            }
            if job.label_value_length_limit > 0 && value.len() as u64 > job.label_value_length_limit
            {
                return Err(ScrapeError(format!(
                    "label_value_length_limit exceeded (metric: {}, label name: {name}, value: \"{value}\", limit: {})",
                    metric(),
                    job.label_value_length_limit
                )));
            }
        }
        Ok(())
    }

    /// The target is gone: waits two intervals (and a tenth) in case it
    /// comes back under a new loop, then ends every series of the target at
    /// the time its next scrape would have been.
    async fn end_of_run_staleness(&mut self, last: i64) {
        let interval = self.target.interval;
        tokio::time::sleep(interval * 2 + interval / 10).await;
        let stale_at = last + interval.as_millis() as i64;
        let mut samples = Vec::new();
        self.stale_all(stale_at, &mut samples);
        for labels in &self.report_labels {
            samples.push(Pending {
                labels: labels.clone(),
                sample: [(stale_at, stale_nan())],
            });
        }
        if let Err(e) = self.job.storage.append(&samples).await {
            tracing::warn!(url = %self.target.url, error = %e, "cannot write stale markers for a removed target");
        }
    }
}

/// Adds the target's labels to a scraped series. Without `honor_labels`
/// the target's value wins and a clashing scraped label is kept as
/// `exported_<name>` (more `exported_` prefixes while taken, shortest names
/// first); with it, the scraped value wins.
fn merge_target_labels(
    labels: &mut Vec<(String, String)>,
    target: &[(String, String)],
    honor_labels: bool,
) {
    let position =
        |labels: &[(String, String)], name: &str| labels.iter().position(|(n, _)| n == name);
    let mut clashes: Vec<(String, String)> = Vec::new();
    for (name, value) in target {
        match position(labels, name) {
            Some(i) if honor_labels => {
                if labels[i].1.is_empty() {
                    labels[i].1 = value.clone();
                }
            }
            Some(i) => {
                let exposed = std::mem::replace(&mut labels[i].1, value.clone());
                if !exposed.is_empty() {
                    clashes.push((name.clone(), exposed));
                }
            }
            None => labels.push((name.clone(), value.clone())),
        }
    }
    clashes.sort_by_key(|(name, _)| name.len());
    for (name, value) in clashes {
        let mut exported = name;
        loop {
            exported = format!("exported_{exported}");
            match position(labels, &exported) {
                Some(i) if !labels[i].1.is_empty() => continue,
                Some(i) => labels[i].1 = value,
                None => labels.push((exported, value)),
            }
            break;
        }
    }
}

fn describe_request_error(e: reqwest::Error) -> ScrapeError {
    if e.is_timeout() {
        return ScrapeError("context deadline exceeded".into());
    }
    // The chain holds the useful part (connection refused, TLS failure).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ScrapeError(message)
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// The key a scrape offers is the store's key of the same series, so
    /// known series are found by it (the store's own tests cover misses).
    #[test]
    fn final_labels_carry_the_stores_key() {
        let mut scraped = pairs(&[("le", "0.5"), ("__name__", "m_bucket"), ("job", "a")]);
        scraped.sort();
        let offered = FinalLabels::new(scraped.clone());
        let validated = crate::storage::Labels::new(scraped).unwrap();
        let mut key = Vec::new();
        series_key::encode(&validated.str_pairs(), &mut key);
        assert_eq!(offered.key, key);
        assert_eq!(series_key::decode(&offered.key), validated);
    }

    #[test]
    fn clashing_labels_become_exported() {
        let target = pairs(&[("instance", "h:1"), ("job", "node")]);
        let mut labels = pairs(&[
            ("__name__", "m"),
            ("job", "exposed"),
            ("exported_job", "taken"),
        ]);
        merge_target_labels(&mut labels, &target, false);
        labels.sort();
        assert_eq!(
            labels,
            pairs(&[
                ("__name__", "m"),
                ("exported_exported_job", "exposed"),
                ("exported_job", "taken"),
                ("instance", "h:1"),
                ("job", "node"),
            ])
        );
        let mut honored = pairs(&[("__name__", "m"), ("job", "exposed")]);
        merge_target_labels(&mut honored, &target, true);
        honored.sort();
        assert_eq!(
            honored,
            pairs(&[("__name__", "m"), ("instance", "h:1"), ("job", "exposed")])
        );
    }
}
