//! The one config loader: Prometheus's `prometheus.yml` format, read strictly.
//! Every key fleetmon does not implement is an error naming the key, its file,
//! line and column, never silently ignored; semantic mistakes (duplicate job
//! names, a timeout longer than its interval, a URL where `host:port` belongs)
//! are reported at the line that holds them. It owns the configuration's
//! types and validation, not what the scraper or rule engine do with them.
//! The types also serialize back to YAML (for `/api/v1/status/config`),
//! with credentials masked (`secret.rs`); `live.rs` holds the configuration
//! in force between reloads.

pub mod duration;
pub mod http_client;
pub mod live;
pub mod relabel;
pub mod remote_write;
pub mod secret;
pub mod size;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::{Location, Spanned};

pub use duration::PromDuration;
use http_client::section_with_http_client;
pub use http_client::HttpClientConfig;
pub use live::LiveConfig;
use relabel::RelabelConfig;
pub use remote_write::RemoteWriteConfig;
pub use secret::{fingerprint, Secret};
pub use size::ByteSize;

/// The configuration embedded in the binary, used when no file is given and
/// `monitoring/fleetmon.yml` does not exist.
pub const EMBEDDED: &str = include_str!("../../monitoring/fleetmon.yml");

/// Top-level keys of Prometheus's configuration that fleetmon does not
/// implement yet; named in the error so the user knows it is not a typo.
const PROMETHEUS_KEYS_NOT_SUPPORTED: &[&str] = &[
    "remote_read",
    "storage",
    "tracing",
    "otlp",
    "runtime",
    "scrape_config_files",
    "kubernetes_sd_configs",
    "consul_sd_configs",
    "dns_sd_configs",
    "ec2_sd_configs",
    "http_sd_configs",
    "oauth2",
    "proxy_url",
    "target_limit",
    "query_log_file",
    "scrape_protocols",
    "enable_compression",
    "enable_http2",
    "http_headers",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "server_name",
    "sigv4",
    "azuread",
    "alert_relabel_configs",
    "keep_dropped_targets",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "scrape_classic_histograms",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
    "track_timestamps_staleness",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "fallback_scrape_protocol",
];

/// A configuration error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// The file (or `<embedded>`).
    pub path: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(u64, u64)>,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => {
                write!(
                    f,
                    "{}:{line}:{column}: {}",
                    self.path.display(),
                    self.message
                )
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The whole configuration. It serializes (with [`Secret`]s masked) to
/// YAML that reads back as the same configuration.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Defaults for every scrape job and for rules.
    #[serde(default)]
    pub global: Global,
    /// Rule files (globs), kept for the rule engine.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// The scrape jobs.
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Where alerts go; kept for the rule engine.
    #[serde(default)]
    pub alerting: Alerting,
    /// Receivers every appended sample is forwarded to.
    #[serde(default)]
    pub remote_write: Vec<Spanned<RemoteWriteConfig>>,
}

/// `global:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    /// Default interval between scrapes.
    #[serde(default = "one_minute")]
    pub scrape_interval: PromDuration,
    /// Default scrape timeout.
    #[serde(default = "ten_seconds")]
    pub scrape_timeout: PromDuration,
    /// Interval between rule evaluations.
    #[serde(default = "one_minute")]
    pub evaluation_interval: PromDuration,
    /// Labels added to every series and alert sent elsewhere.
    #[serde(default = "no_labels")]
    pub external_labels: Spanned<BTreeMap<String, String>>,
}

impl Default for Global {
    fn default() -> Global {
        Global {
            scrape_interval: one_minute(),
            scrape_timeout: ten_seconds(),
            evaluation_interval: one_minute(),
            external_labels: no_labels(),
        }
    }
}

fn one_minute() -> PromDuration {
    PromDuration(std::time::Duration::from_secs(60))
}

fn ten_seconds() -> PromDuration {
    PromDuration(std::time::Duration::from_secs(10))
}

fn no_labels() -> Spanned<BTreeMap<String, String>> {
    Spanned::new(BTreeMap::new(), Location::UNKNOWN, Location::UNKNOWN)
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

pub(crate) fn yes() -> bool {
    true
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    #[default]
    Http,
    /// HTTP over TLS.
    Https,
}

section_with_http_client! {
/// One entry of `scrape_configs:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// The `job` label of the job's series; unique.
    pub job_name: Spanned<String>,
    /// Overrides `global.scrape_interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<PromDuration>,
    /// Overrides `global.scrape_timeout`; at most the interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<Spanned<PromDuration>>,
    /// HTTP path of the metrics.
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Scheme,
    /// Keep the target's labels when they clash with fleetmon's.
    #[serde(default)]
    pub honor_labels: bool,
    /// Keep the timestamps the target exposes.
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// URL parameters of the scrape request.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Targets listed in the file.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Relabeling of discovered targets, before scraping.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped series, before storing.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Targets listed in JSON or YAML files, re-read when they change.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Most samples a scrape may keep after metric relabeling; 0 is no limit.
    #[serde(default)]
    pub sample_limit: u64,
    /// Most labels a sample may have; 0 is no limit.
    #[serde(default)]
    pub label_limit: u64,
    /// Longest label name, in bytes; 0 is no limit.
    #[serde(default)]
    pub label_name_length_limit: u64,
    /// Longest label value, in bytes; 0 is no limit.
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// Largest uncompressed body; 0 means fleetmon's ceiling.
    #[serde(default)]
    pub body_size_limit: ByteSize,
}
}

/// One entry of `file_sd_configs:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Paths of target files; the last element may hold a `*` glob.
    pub files: Vec<Spanned<String>>,
    /// How often the files are re-read even without a change event.
    #[serde(default = "five_minutes")]
    pub refresh_interval: PromDuration,
}

fn five_minutes() -> PromDuration {
    PromDuration(std::time::Duration::from_secs(300))
}

/// `alerting:`; parsed, checked and kept for the rule engine.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Alerting {
    /// The Alertmanagers alerts are sent to.
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

section_with_http_client! {
/// One entry of `alerting.alertmanagers:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// `http` or `https`.
    #[serde(default)]
    pub scheme: Scheme,
    /// Prefix of the Alertmanager API path.
    #[serde(default = "root_path")]
    pub path_prefix: String,
    /// Timeout of one notification request.
    #[serde(default = "ten_seconds")]
    pub timeout: PromDuration,
    /// The Alertmanager API version; only `v2` exists today.
    #[serde(default = "api_v2")]
    pub api_version: String,
    /// Alertmanagers listed in the file.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Alertmanagers listed in files.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
}
}

fn root_path() -> String {
    "/".to_string()
}

fn api_v2() -> String {
    "v2".to_string()
}

/// One entry of `static_configs:`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` of each target.
    #[serde(default)]
    pub targets: Vec<Spanned<String>>,
    /// Labels added to the targets' series.
    #[serde(default = "no_labels")]
    pub labels: Spanned<BTreeMap<String, String>>,
}

impl ScrapeConfig {
    /// The job's interval, its own or the global one.
    pub fn interval(&self, global: &Global) -> PromDuration {
        self.scrape_interval.unwrap_or(global.scrape_interval)
    }
}

/// Where the configuration comes from, so that a reload reads it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file.
    File(PathBuf),
    /// The copy embedded in the binary ([`EMBEDDED`]).
    Embedded,
}

impl ConfigSource {
    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Embedded => Config::parse(EMBEDDED, &self.path()),
        }
    }

    /// The file's path (a descriptive name for the embedded copy).
    pub fn path(&self) -> PathBuf {
        match self {
            ConfigSource::File(path) => path.clone(),
            ConfigSource::Embedded => PathBuf::from("<embedded monitoring/fleetmon.yml>"),
        }
    }

    /// The directory relative paths in the file are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            ConfigSource::File(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            ConfigSource::Embedded => PathBuf::new(),
        }
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            position: None,
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        // An empty file is a valid, empty Prometheus configuration.
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config = serde_saphyr::from_str(text).map_err(|e| yaml_error(&e, path))?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let at = |spanned_line: u64, column: u64, message: String| ConfigError {
            path: path.to_path_buf(),
            position: Some((spanned_line, column)),
            message,
        };
        let labels = &self.global.external_labels;
        for name in labels.value.keys() {
            check_label_name(name)
                .map_err(|m| at(labels.referenced.line(), labels.referenced.column(), m))?;
        }
        let mut seen: Vec<&str> = Vec::new();
        for job in &self.scrape_configs {
            let name = &job.job_name;
            let (line, column) = (name.referenced.line(), name.referenced.column());
            if name.value.is_empty() {
                return Err(at(line, column, "job_name must not be empty".into()));
            }
            if seen.contains(&name.value.as_str()) {
                return Err(at(
                    line,
                    column,
                    format!(
                        "found multiple scrape configs with job name \"{}\"",
                        name.value
                    ),
                ));
            }
            seen.push(&name.value);
            let interval = job.interval(&self.global);
            if let Some(timeout) = &job.scrape_timeout {
                if timeout.value > interval {
                    return Err(at(
                        timeout.referenced.line(),
                        timeout.referenced.column(),
                        format!(
                            "scrape timeout greater than scrape interval for scrape config with job name \"{}\" ({} > {interval})",
                            name.value, timeout.value
                        ),
                    ));
                }
            } else if self.global.scrape_timeout > interval {
                return Err(at(line, column, format!(
                    "the global scrape_timeout ({}) is greater than the scrape interval ({interval}) of job \"{}\": set scrape_timeout in the job",
                    self.global.scrape_timeout, name.value
                )));
            }
            if !job.metrics_path.starts_with('/') {
                return Err(at(
                    line,
                    column,
                    format!(
                        "metrics_path \"{}\" of job \"{}\" must start with '/'",
                        job.metrics_path, name.value
                    ),
                ));
            }
            job.http_client()
                .validate()
                .map_err(|m| at(line, column, format!("job \"{}\": {m}", name.value)))?;
            check_file_sd(&job.file_sd_configs).map_err(|(l, c, m)| at(l, c, m))?;
            let relabelings = [
                ("relabel_configs", &job.relabel_configs),
                ("metric_relabel_configs", &job.metric_relabel_configs),
            ];
            for (key, configs) in relabelings {
                for (i, config) in configs.iter().enumerate() {
                    config.validate().map_err(|m| {
                        at(
                            line,
                            column,
                            format!("job \"{}\": {key}[{i}]: {m}", name.value),
                        )
                    })?;
                }
            }
            for group in &job.static_configs {
                for target in &group.targets {
                    check_target(&target.value)
                        .map_err(|m| at(target.referenced.line(), target.referenced.column(), m))?;
                }
                let labels = &group.labels;
                for name in labels.value.keys() {
                    check_label_name(name)
                        .map_err(|m| at(labels.referenced.line(), labels.referenced.column(), m))?;
                }
            }
        }
        let mut queue_names = Vec::new();
        for queue in &self.remote_write {
            let (line, column) = (queue.referenced.line(), queue.referenced.column());
            queue.value.validate().map_err(|m| at(line, column, m))?;
            let name = &queue.value.name;
            if !name.is_empty() {
                if queue_names.contains(&name) {
                    return Err(at(
                        line,
                        column,
                        format!("found multiple remote write configs with job name \"{name}\""),
                    ));
                }
                queue_names.push(name);
            }
        }
        for (i, manager) in self.alerting.alertmanagers.iter().enumerate() {
            let context = |m: String| ConfigError {
                path: path.to_path_buf(),
                position: None,
                message: format!("alerting.alertmanagers[{i}]: {m}"),
            };
            manager.http_client().validate().map_err(context)?;
            if manager.api_version != "v2" {
                return Err(context(format!(
                    "api_version \"{}\" is not supported: Alertmanager's API is v2",
                    manager.api_version
                )));
            }
            check_file_sd(&manager.file_sd_configs).map_err(|(l, c, m)| at(l, c, m))?;
            for target in manager.static_configs.iter().flat_map(|g| &g.targets) {
                check_target(&target.value)
                    .map_err(|m| at(target.referenced.line(), target.referenced.column(), m))?;
            }
        }
        Ok(())
    }
}

/// Checks file SD paths as Prometheus does: a JSON or YAML extension, and a
/// `*` only in the last path element.
fn check_file_sd(configs: &[FileSdConfig]) -> Result<(), (u64, u64, String)> {
    for file in configs.iter().flat_map(|c| &c.files) {
        let (dir, last) = match file.value.rsplit_once('/') {
            Some((dir, last)) => (dir, last),
            None => ("", file.value.as_str()),
        };
        let extension = last.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        let valid =
            !dir.contains('*') && matches!(extension.as_deref(), Some("json" | "yml" | "yaml"));
        if !valid {
            return Err((
                file.referenced.line(),
                file.referenced.column(),
                format!(
                    "path name \"{}\" is not valid for file discovery: it needs a .json, .yml or .yaml extension, and a * only in its last element",
                    file.value
                ),
            ));
        }
    }
    Ok(())
}

/// Turns a YAML or type error into a [`ConfigError`], explaining keys that
/// Prometheus knows but fleetmon does not implement.
fn yaml_error(error: &serde_saphyr::Error, path: &Path) -> ConfigError {
    let mut message = error.without_snippet().to_string();
    // The position is reported apart; drop the parser's own "error: line N column M: " prefix.
    if let Some(rest) = message.strip_prefix("error: ") {
        message = rest.to_string();
    }
    if message.starts_with("line ") {
        if let Some((_, rest)) = message.split_once(": ") {
            message = rest.to_string();
        }
    }
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_string());
    if let Some(key) = unknown.filter(|k| PROMETHEUS_KEYS_NOT_SUPPORTED.contains(&k.as_str())) {
        message = format!("`{key}` is a Prometheus setting that this version of fleetmon does not support; remove it or run a real Prometheus for it");
    }
    ConfigError {
        path: path.to_path_buf(),
        position: error.location().map(|l| (l.line(), l.column())),
        message,
    }
}

/// Deserializes a setting written as a string that `T` parses, such as a
/// duration or a size, with `T`'s error message.
fn deserialize_parsed<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn check_label_name(name: &str) -> Result<(), String> {
    let valid = name
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
        && !name.is_empty();
    if !valid {
        return Err(format!(
            "\"{}\" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)",
            name
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "label name \"{name}\" is reserved (names starting with __ are internal)"
        ));
    }
    Ok(())
}

fn check_target(target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("a target must not be empty".into());
    }
    if target.contains("://") || target.contains('/') {
        return Err(format!(
            "\"{target}\" is not a valid target: write host:port; the scheme and path go in `scheme` and `metrics_path`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("prometheus.yml"))
    }

    #[test]
    fn the_embedded_config_is_valid() {
        let config = Config::parse(EMBEDDED, Path::new("<embedded>")).unwrap();
        assert!(config
            .scrape_configs
            .iter()
            .any(|j| j.job_name.value == "fleetmon"));
    }

    #[test]
    fn defaults_follow_prometheus() {
        let config = parse("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['localhost:9100']\n").unwrap();
        assert_eq!(config.global.scrape_interval.to_string(), "1m");
        let job = &config.scrape_configs[0];
        assert_eq!(job.metrics_path, "/metrics");
        assert!(job.honor_timestamps);
        assert_eq!(job.scheme, Scheme::Http);
    }

    #[test]
    fn unsupported_prometheus_keys_are_named_with_their_line() {
        let err = parse("global:\n  scrape_interval: 15s\nremote_read:\n  - url: http://x\n")
            .unwrap_err();
        assert_eq!(err.position, Some((3, 1)));
        assert!(
            err.message
                .contains("`remote_read` is a Prometheus setting"),
            "{err}"
        );
        let err =
            parse("scrape_configs:\n  - job_name: a\n    kubernetes_sd_configs: []\n").unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(3));
        assert!(err.to_string().starts_with("prometheus.yml:3:"), "{err}");
    }

    #[test]
    fn typos_are_unknown_fields() {
        let err =
            parse("scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n").unwrap_err();
        assert!(
            err.message.contains("unknown field `scrape_intervall`"),
            "{err}"
        );
    }

    #[test]
    fn semantic_errors_point_at_their_line() {
        let dup = parse("scrape_configs:\n  - job_name: a\n  - job_name: a\n").unwrap_err();
        assert_eq!(dup.position.map(|p| p.0), Some(3));
        assert!(dup
            .message
            .contains("multiple scrape configs with job name \"a\""));
        let timeout = parse(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
        )
        .unwrap_err();
        assert_eq!(timeout.position.map(|p| p.0), Some(4));
        let url = parse("scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://x:1/metrics']\n").unwrap_err();
        assert_eq!(url.position.map(|p| p.0), Some(4));
        assert!(url.message.contains("host:port"));
        let duration = parse("global:\n  scrape_interval: 15 seconds\n").unwrap_err();
        assert_eq!(duration.position.map(|p| p.0), Some(2));
        assert!(duration.message.contains("not a duration"), "{duration}");
        let label = parse("global:\n  external_labels:\n    bad-name: x\n").unwrap_err();
        assert!(label.message.contains("bad-name"), "{label}");
    }

    #[test]
    fn scrape_jobs_read_every_supported_key() {
        let config = parse(
            r#"global:
  external_labels: {site: lab}
scrape_configs:
  - job_name: node
    scheme: https
    honor_labels: true
    sample_limit: 1000
    label_limit: 30
    body_size_limit: 10MB
    basic_auth: {username: u, password_file: secret}
    tls_config: {ca_file: ca.pem, insecure_skip_verify: false, min_version: TLS12}
    relabel_configs:
      - {source_labels: [__address__], target_label: instance}
    metric_relabel_configs:
      - {source_labels: [__name__], regex: 'go_.*', action: drop}
    file_sd_configs:
      - files: ['targets/*.json']
        refresh_interval: 1m
remote_write:
  - url: http://vm:8428/api/v1/write
    write_relabel_configs:
      - {source_labels: [__name__], regex: 'up', action: keep}
    queue_config: {max_samples_per_send: 500}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['am:9093']
"#,
        )
        .unwrap();
        let job = &config.scrape_configs[0];
        assert_eq!(job.body_size_limit, ByteSize(10 * 1024 * 1024));
        assert_eq!(job.metric_relabel_configs.len(), 1);
        assert_eq!(job.file_sd_configs[0].refresh_interval.to_string(), "1m");
        assert_eq!(
            config.remote_write[0]
                .value
                .queue_config
                .max_samples_per_send,
            500
        );
        assert_eq!(config.remote_write[0].value.queue_config.capacity, 10_000);
        assert_eq!(config.alerting.alertmanagers[0].api_version, "v2");
    }

    #[test]
    fn section_errors_name_the_job_and_line() {
        let relabel = parse("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: x\n").unwrap_err();
        assert_eq!(relabel.position.map(|p| p.0), Some(2));
        assert!(relabel.message.contains("relabel_configs[0]"), "{relabel}");
        let auth = parse("scrape_configs:\n  - job_name: a\n    bearer_token: t\n    basic_auth: {username: u}\n").unwrap_err();
        assert!(auth.message.contains("at most one of basic_auth"), "{auth}");
        let glob = parse(
            "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['*/t.json']\n",
        )
        .unwrap_err();
        assert_eq!(glob.position.map(|p| p.0), Some(4));
        let header = parse(
            "remote_write:\n  - url: http://x/api/v1/write\n    headers: {Authorization: x}\n",
        )
        .unwrap_err();
        assert!(header.message.contains("reserved header"), "{header}");
        let url = parse("remote_write:\n  - url: not a url\n").unwrap_err();
        assert_eq!(url.position.map(|p| p.0), Some(2));
    }

    const WITH_SECRETS: &str = r#"scrape_configs:
  - job_name: basic
    basic_auth: {username: u, password: basic-pass-1}
  - job_name: authorization
    authorization: {type: Token, credentials: auth-cred-1}
  - job_name: bearer
    bearer_token: bearer-token-1
    tls_config:
      cert: "-----BEGIN CERTIFICATE-----"
      key: tls-key-1
remote_write:
  - url: http://vm:8428/api/v1/write
    basic_auth: {username: w, password: remote-pass-1}
"#;

    #[test]
    fn serialized_configs_mask_every_secret() {
        let config = parse(WITH_SECRETS).unwrap();
        let yaml = serde_saphyr::to_string(&config).unwrap();
        for clear in [
            "basic-pass-1",
            "auth-cred-1",
            "bearer-token-1",
            "tls-key-1",
            "remote-pass-1",
        ] {
            assert!(!yaml.contains(clear), "{clear} in\n{yaml}");
        }
        assert_eq!(yaml.matches("<secret>").count(), 5, "{yaml}");
        // What is not secret stays readable, and absent keys stay absent.
        assert!(yaml.contains("username: u"), "{yaml}");
        assert!(yaml.contains("type: Token"), "{yaml}");
        assert!(!yaml.contains("null"), "{yaml}");
        // The masked YAML reads back; its secrets are the mask.
        let back = parse(&yaml).unwrap();
        let password = back.scrape_configs[0]
            .basic_auth
            .as_ref()
            .and_then(|b| b.password.as_ref());
        assert_eq!(password.map(Secret::expose), Some("<secret>"));
    }

    #[test]
    fn serialized_configs_read_back_as_the_same_config() {
        let config = parse(
            r#"global: {scrape_interval: 15s, external_labels: {site: lab}}
scrape_configs:
  - job_name: node
    scrape_timeout: 5s
    relabel_configs:
      - {source_labels: [__address__], target_label: instance}
      - {action: labeldrop, regex: tmp_.*}
    static_configs:
      - targets: ['localhost:9100']
        labels: {team: blue}
"#,
        )
        .unwrap();
        let yaml = serde_saphyr::to_string(&config).unwrap();
        let back = parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(fingerprint(&config), fingerprint(&back), "{yaml}");
    }

    #[test]
    fn fingerprints_see_changed_secrets() {
        let config = parse(WITH_SECRETS).unwrap();
        for (from, to, job) in [
            ("basic-pass-1", "basic-pass-2", 0),
            ("auth-cred-1", "auth-cred-2", 1),
            ("bearer-token-1", "bearer-token-2", 2),
            ("tls-key-1", "tls-key-2", 2),
        ] {
            let changed = parse(&WITH_SECRETS.replace(from, to)).unwrap();
            assert_ne!(
                fingerprint(&config.scrape_configs[job]),
                fingerprint(&changed.scrape_configs[job]),
                "{from}"
            );
        }
        let changed = parse(&WITH_SECRETS.replace("remote-pass-1", "remote-pass-2")).unwrap();
        assert_ne!(
            fingerprint(&config.remote_write[0].value),
            fingerprint(&changed.remote_write[0].value)
        );
        // The same settings give the same fingerprint.
        let again = parse(WITH_SECRETS).unwrap();
        assert_eq!(fingerprint(&config), fingerprint(&again));
    }

    #[test]
    fn empty_file_is_an_empty_config() {
        assert!(parse("").unwrap().scrape_configs.is_empty());
    }
}
