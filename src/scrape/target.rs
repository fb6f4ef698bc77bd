//! Scrape targets: from a discovered group's labels to the labels a target's
//! series carry and the URL it is scraped at, the way Prometheus builds them.
//!
//! Discovered labels are the group's labels, `__address__`, `job`,
//! `__scheme__`, `__metrics_path__`, `__scrape_interval__`,
//! `__scrape_timeout__` and `__param_<name>`. `relabel_configs` run on them; a
//! target they drop is kept aside as dropped. Then `instance` defaults to
//! `__address__`, the URL and the interval and timeout are read from the
//! reserved labels, and every label starting with `__` is removed. As in
//! Prometheus 3, no default port is added to an address that has none.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::relabel;
use crate::config::{Global, PromDuration, ScrapeConfig};
use crate::scrape::discovery::TargetGroup;

/// A target, ready to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The labels before relabeling, for `/api/v1/targets`.
    pub discovered_labels: BTreeMap<String, String>,
    /// The labels every series of the target gets, sorted, none reserved.
    pub labels: Vec<(String, String)>,
    /// The URL scraped.
    pub url: String,
    /// Time between scrapes.
    pub interval: Duration,
    /// Time a scrape may take.
    pub timeout: Duration,
}

impl Target {
    /// A hash of the labels and URL, the target's identity across reloads
    /// and the source of its offset within the interval.
    pub fn hash(&self) -> u64 {
        crate::storage::labels::stable_hash(
            self.labels
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .chain(std::iter::once(("__url__", self.url.as_str()))),
        )
    }

    /// The value of the target label `name`, if set.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The targets of a job: those to scrape and those relabeling dropped
/// (their discovered labels).
#[derive(Debug, Default)]
pub struct JobTargets {
    /// Targets to scrape, deduplicated by hash.
    pub active: Vec<Target>,
    /// Discovered labels of targets that relabeling dropped.
    pub dropped: Vec<BTreeMap<String, String>>,
    /// Targets that could not be built, with why (logged and counted).
    pub invalid: Vec<String>,
}

/// Builds the targets of `job` from its discovered `groups`.
pub fn targets_of<'a>(
    job: &ScrapeConfig,
    global: &Global,
    groups: impl Iterator<Item = &'a TargetGroup>,
) -> JobTargets {
    let mut out = JobTargets::default();
    let interval = job.interval(global);
    let timeout = job
        .scrape_timeout
        .as_ref()
        .map(|t| t.value)
        .unwrap_or(global.scrape_timeout);
    let mut base = BTreeMap::new();
    base.insert("job".to_string(), job.job_name.value.clone());
    base.insert(
        "__scheme__".to_string(),
        match job.scheme {
            crate::config::Scheme::Http => "http".to_string(),
            crate::config::Scheme::Https => "https".to_string(),
        },
    );
    base.insert("__metrics_path__".to_string(), job.metrics_path.clone());
    base.insert("__scrape_interval__".to_string(), interval.to_string());
    base.insert("__scrape_timeout__".to_string(), timeout.to_string());
    for (name, values) in &job.params {
        if let Some(first) = values.first() {
            base.insert(format!("__param_{name}"), first.clone());
        }
    }
    for group in groups {
        for address in &group.targets {
            let mut discovered = base.clone();
            discovered.extend(group.labels.clone());
            discovered.insert("__address__".to_string(), address.clone());
            match build(job, discovered) {
                Ok(Built::Active(target)) => {
                    let hash = target.hash();
                    if !out.active.iter().any(|t| t.hash() == hash) {
                        out.active.push(target);
                    }
                }
                Ok(Built::Dropped(labels)) => out.dropped.push(labels),
                Err(e) => out.invalid.push(format!("{}: {e}", group.source)),
            }
        }
    }
    out
}

enum Built {
    Active(Target),
    Dropped(BTreeMap<String, String>),
}

fn build(job: &ScrapeConfig, discovered: BTreeMap<String, String>) -> Result<Built, String> {
    let mut labels: Vec<(String, String)> = discovered
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    if !relabel::relabel(&mut labels, &job.relabel_configs) {
        return Ok(Built::Dropped(discovered));
    }
    let get = |name: &str| {
        labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let address = get("__address__")
        .filter(|a| !a.is_empty())
        .ok_or("no address")?;
    if address.contains('/') {
        return Err(format!(
            "\"{address}\" is not a valid address: write host:port"
        ));
    }
    let scheme = get("__scheme__").unwrap_or_else(|| "http".to_string());
    if scheme != "http" && scheme != "https" {
        return Err(format!("invalid scheme \"{scheme}\""));
    }
    let path = get("__metrics_path__").unwrap_or_default();
    let duration = |name: &str| -> Result<Duration, String> {
        let text = get(name).unwrap_or_default();
        text.parse::<PromDuration>()
            .map(|d| d.0)
            .map_err(|e| format!("{name}: {e}"))
    };
    let interval = duration("__scrape_interval__")?;
    let timeout = duration("__scrape_timeout__")?;
    if interval.is_zero() || timeout.is_zero() {
        return Err("scrape interval and timeout must be above zero".into());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout {} greater than scrape interval {}",
            PromDuration(timeout),
            PromDuration(interval)
        ));
    }
    // URL parameters: the job's, a `__param_*` label replacing the first
    // value of its name; encoded sorted by name, as Go's `url.Values` is.
    let mut params: BTreeMap<String, Vec<String>> = job.params.clone();
    for (name, value) in &labels {
        if let Some(param) = name.strip_prefix("__param_") {
            match params.get_mut(param).and_then(|values| values.first_mut()) {
                Some(first) => *first = value.clone(),
                None => {
                    params.insert(param.to_string(), vec![value.clone()]);
                }
            }
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    let query: Vec<String> = params
        .iter()
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |v| format!("{}={}", query_escape(name), query_escape(v)))
        })
        .collect();
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    if get("instance").is_none_or(|i| i.is_empty()) {
        labels.push(("instance".to_string(), address.clone()));
    }
    labels.retain(|(name, value)| !name.starts_with("__") && !value.is_empty());
    labels.sort();
    Ok(Built::Active(Target {
        discovered_labels: discovered,
        labels,
        url,
        interval,
        timeout,
    }))
}

/// Percent-encodes a query component as Go's `url.QueryEscape` does.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn job_targets(yaml: &str) -> JobTargets {
        let config = Config::parse(yaml, Path::new("t.yml")).unwrap();
        let job = &config.scrape_configs[0];
        let groups = crate::scrape::discovery::static_groups(&job.static_configs);
        targets_of(job, &config.global, groups.iter())
    }

    #[test]
    fn instance_job_and_url_follow_prometheus() {
        let t = job_targets(
            "scrape_configs:\n  - job_name: node\n    scrape_interval: 5s\n    scrape_timeout: 2s\n    params: {module: [a, b]}\n    static_configs:\n      - targets: ['h1:9100']\n        labels: {env: prod}\n",
        );
        let target = &t.active[0];
        assert_eq!(
            target.labels,
            [("env", "prod"), ("instance", "h1:9100"), ("job", "node")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert_eq!(target.url, "http://h1:9100/metrics?module=a&module=b");
        assert_eq!(target.interval, Duration::from_secs(5));
        assert_eq!(target.timeout, Duration::from_secs(2));
        assert_eq!(target.discovered_labels["__address__"], "h1:9100");
        assert_eq!(target.discovered_labels["__scrape_interval__"], "5s");
    }

    #[test]
    fn relabeling_rewrites_address_and_params_and_drops_targets() {
        let t = job_targets(
            r#"scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:9115
      - source_labels: [instance]
        regex: drop\.me
        action: drop
    static_configs:
      - targets: ['example.org', 'drop.me']
"#,
        );
        assert_eq!(t.active.len(), 1);
        assert_eq!(t.dropped.len(), 1);
        assert_eq!(t.dropped[0]["__address__"], "drop.me");
        let target = &t.active[0];
        assert_eq!(target.url, "http://127.0.0.1:9115/probe?target=example.org");
        assert_eq!(target.label("instance"), Some("example.org"));
    }

    #[test]
    fn duplicate_targets_are_scraped_once() {
        let t = job_targets(
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['h:1', 'h:1']\n",
        );
        assert_eq!(t.active.len(), 1);
    }

    #[test]
    fn query_escape_matches_go() {
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
