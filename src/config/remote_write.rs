//! `remote_write:` entries: where appended samples are forwarded, with
//! Prometheus's keys and defaults (`queue_config` as in Prometheus 2.42).
//! Metadata and exemplars are not forwarded: `metadata_config` and
//! `send_exemplars` are read and accepted, and have nothing to send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::http_client::section_with_http_client;
use super::relabel::RelabelConfig;
use super::PromDuration;

section_with_http_client! {
/// One entry of `remote_write:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver's URL.
    pub url: String,
    /// A name for the queue's metrics and logs (default: a hash of the entry).
    #[serde(default)]
    pub name: String,
    /// Timeout of one request.
    #[serde(default = "thirty_seconds")]
    pub remote_timeout: PromDuration,
    /// Extra HTTP headers of every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Relabeling of each series before it is sent; dropped series are not sent.
    #[serde(default)]
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// Batching, sharding and retries.
    #[serde(default)]
    pub queue_config: QueueConfig,
    /// Accepted for compatibility; fleetmon sends no metadata.
    #[serde(default)]
    pub metadata_config: MetadataConfig,
    /// Accepted for compatibility; fleetmon stores no exemplars to send.
    #[serde(default)]
    pub send_exemplars: bool,
    /// Accepted for compatibility; fleetmon stores no native histograms.
    #[serde(default)]
    pub send_native_histograms: bool,
}
}

fn thirty_seconds() -> PromDuration {
    PromDuration(std::time::Duration::from_secs(30))
}

/// `queue_config:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Samples buffered per shard.
    pub capacity: usize,
    /// Most concurrent requests.
    pub max_shards: usize,
    /// Fewest concurrent requests.
    pub min_shards: usize,
    /// Most samples in one request.
    pub max_samples_per_send: usize,
    /// Longest a sample waits for its request to fill.
    pub batch_send_deadline: PromDuration,
    /// First retry delay.
    pub min_backoff: PromDuration,
    /// Longest retry delay.
    pub max_backoff: PromDuration,
    /// Retry on 429 Too Many Requests (otherwise such a batch is dropped).
    pub retry_on_http_429: bool,
    /// Samples older than this are dropped instead of sent; 0 sends all.
    pub sample_age_limit: PromDuration,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        let ms = |n| PromDuration(std::time::Duration::from_millis(n));
        QueueConfig {
            capacity: 10_000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2_000,
            batch_send_deadline: ms(5_000),
            min_backoff: ms(30),
            max_backoff: ms(5_000),
            retry_on_http_429: true,
            sample_age_limit: ms(0),
        }
    }
}

/// `metadata_config:`; read, not acted on.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetadataConfig {
    /// Whether metadata would be sent.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send: Option<bool>,
    /// How often.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_interval: Option<PromDuration>,
    /// Most metadata per request.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_samples_per_send: Option<usize>,
}

impl RemoteWriteConfig {
    /// Checks what Prometheus checks, with its wording.
    pub fn validate(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("invalid remote_write url \"{}\": {e}", self.url))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!(
                "remote_write url \"{}\" must be http or https",
                self.url
            ));
        }
        for name in self.headers.keys() {
            let reserved = [
                "authorization",
                "host",
                "content-encoding",
                "content-length",
                "content-type",
                "user-agent",
                "connection",
                "keep-alive",
                "proxy-authenticate",
                "proxy-authorization",
                "www-authenticate",
                "retry-after",
                "x-prometheus-remote-write-version",
            ];
            if reserved.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "{name} is a reserved header. It must not be changed"
                ));
            }
        }
        let queue = &self.queue_config;
        if queue.max_samples_per_send == 0 {
            return Err("max_samples_per_send must be greater than 0".into());
        }
        if queue.max_shards == 0 || queue.min_shards > queue.max_shards {
            return Err("queue_config needs 1 <= min_shards <= max_shards".into());
        }
        if queue.min_backoff > queue.max_backoff {
            return Err("queue_config min_backoff must not exceed max_backoff".into());
        }
        for (i, config) in self.write_relabel_configs.iter().enumerate() {
            config
                .validate()
                .map_err(|m| format!("write_relabel_configs[{i}]: {m}"))?;
        }
        self.http_client().validate()
    }
}
