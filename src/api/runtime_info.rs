//! `GET /api/v1/status/runtimeinfo`'s facts about the process, under
//! Prometheus's keys. The Go runtime's keys get fleetmon's nearest truth:
//! `goroutineCount` is the process's OS threads, `GOMAXPROCS` the available
//! parallelism, `GOMEMLIMIT` Go's "no limit" (fleetmon has no soft memory
//! limit), and `GOGC`/`GODEBUG` are empty.

use std::time::Duration;

use serde_json::{json, Value};

use super::status::ServerInfo;
use super::time::rfc3339_ms;
use crate::config::{ByteSize, PromDuration};

/// The runtime information object, as of now.
pub(super) fn runtime_info(info: &ServerInfo, now_ms: i64) -> Value {
    let options = info.storage.options();
    json!({
        "startTime": rfc3339_ms(info.start_time_ms),
        "CWD": info.cwd,
        "hostname": hostname(),
        "serverTime": rfc3339_ms(now_ms),
        "reloadConfigSuccess": info.config.last_reload_successful(),
        "lastConfigTime": rfc3339_ms(info.config.last_success_ms()),
        "corruptionCount": info.storage.corrupted_blocks(),
        "goroutineCount": threads(),
        "GOMAXPROCS": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "GOMEMLIMIT": i64::MAX,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": retention(options.retention_time, options.retention_size),
    })
}

/// The process's OS threads (`Threads:` of `/proc/self/status`), 0 if unknown.
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The machine's host name, empty if unknown.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

/// Retention as Prometheus prints it: the time, the size, or both joined
/// with " or "; sizes in binary units (`512MiB`), which is what fleetmon's
/// `MB` means.
fn retention(time: Duration, size: Option<u64>) -> String {
    let mut parts = Vec::new();
    if !time.is_zero() {
        parts.push(PromDuration(time).to_string());
    }
    if let Some(size) = size.filter(|s| *s > 0) {
        let text = ByteSize(size).to_string();
        // `1500B` stays; `512MB` is `512MiB`.
        parts.push(match text.strip_suffix("B") {
            Some(number) if number.ends_with(|c: char| c.is_ascii_alphabetic()) => {
                format!("{number}iB")
            }
            _ => text,
        });
    }
    parts.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_reads_as_prometheus_prints_it() {
        let days = Duration::from_secs(15 * 86_400);
        assert_eq!(retention(days, None), "15d");
        assert_eq!(retention(days, Some(512 << 20)), "15d or 512MiB");
        assert_eq!(retention(Duration::ZERO, Some(1500)), "1500B");
        assert_eq!(retention(Duration::ZERO, None), "");
    }

    #[test]
    fn this_process_has_threads() {
        // The test harness runs this test on a thread of its own.
        assert!(threads() >= 2, "{}", threads());
    }
}
