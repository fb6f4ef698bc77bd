//! Standard `process_*` metrics of the running process, read from
//! `/proc/self` the way Python's `prometheus_client` does.

use super::{Collector, FamilySnapshot};

/// Collects `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_start_time_seconds`,
/// `process_open_fds` and `process_max_fds` from `/proc/self` (Linux):
///
/// - RSS = `/proc/self/stat` field 24 × page size; virtual memory = field 23;
/// - CPU = (utime + stime) / `CLK_TCK`;
/// - start = starttime / `CLK_TCK` + `btime` from `/proc/stat`;
/// - max fds = soft "Max open files" from `/proc/self/limits` (omitted when
///   `unlimited`);
/// - open fds = entries of `/proc/self/fd`.
///
/// A value that cannot be read is omitted (its family is left out); collecting
/// never panics. On other systems no families are produced.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessCollector;

impl ProcessCollector {
    /// Creates the collector; register it with
    /// [`Registry::register_collector`](super::Registry::register_collector).
    pub fn new() -> Self {
        ProcessCollector
    }
}

impl Collector for ProcessCollector {
    fn collect(&self) -> Vec<FamilySnapshot> {
        #[cfg(target_os = "linux")]
        {
            linux::collect()
        }
        #[cfg(not(target_os = "linux"))]
        {
            Vec::new()
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;

    use super::super::{FamilySnapshot, Kind, SampleSnapshot};

    /// The `/proc/self/stat` fields used, already converted to `f64`.
    #[derive(Debug, Default, PartialEq)]
    pub(super) struct Stat {
        pub(super) utime: Option<f64>,
        pub(super) stime: Option<f64>,
        pub(super) starttime: Option<f64>,
        pub(super) vsize: Option<f64>,
        pub(super) rss: Option<f64>,
    }

    pub(super) fn collect() -> Vec<FamilySnapshot> {
        let ticks = sysconf(libc::_SC_CLK_TCK);
        let page_size = sysconf(libc::_SC_PAGESIZE);
        let stat = fs::read_to_string("/proc/self/stat")
            .ok()
            .map(|s| parse_stat(&s))
            .unwrap_or_default();
        let btime = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| parse_btime(&s));

        let mut out = Vec::new();
        let mut family = |name: &str, help: &str, kind: Kind, value: Option<f64>| {
            if let Some(value) = value {
                out.push(FamilySnapshot {
                    name: name.to_string(),
                    help: help.to_string(),
                    kind,
                    samples: vec![SampleSnapshot {
                        suffix: if kind == Kind::Counter { "_total" } else { "" },
                        labels: Vec::new(),
                        value,
                    }],
                });
            }
        };
        family(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Kind::Gauge,
            stat.vsize,
        );
        family(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Kind::Gauge,
            stat.rss.zip(page_size).map(|(rss, page)| rss * page),
        );
        family(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Kind::Gauge,
            stat.starttime
                .zip(ticks)
                .zip(btime)
                .map(|((start, ticks), btime)| start / ticks + btime),
        );
        family(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            Kind::Counter,
            stat.utime
                .zip(stat.stime)
                .zip(ticks)
                .map(|((utime, stime), ticks)| (utime + stime) / ticks),
        );
        family(
            "process_open_fds",
            "Number of open file descriptors.",
            Kind::Gauge,
            fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as f64),
        );
        family(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            Kind::Gauge,
            fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|s| parse_max_fds(&s)),
        );
        out
    }

    /// A positive `sysconf` value.
    fn sysconf(name: libc::c_int) -> Option<f64> {
        // SAFETY: sysconf has no memory-safety preconditions; it only reads
        // system configuration and returns -1 for unknown names.
        let value = unsafe { libc::sysconf(name) };
        (value > 0).then_some(value as f64)
    }

    /// Parses `/proc/self/stat`. Fields are counted from 1 (pid); the command
    /// (field 2) is parenthesised and may contain spaces or `)`, so counting
    /// starts after the last `)`, where field 3 begins.
    pub(super) fn parse_stat(stat: &str) -> Stat {
        let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
        Stat {
            utime: field(14),
            stime: field(15),
            starttime: field(22),
            vsize: field(23),
            rss: field(24),
        }
    }

    /// `btime` (boot time, seconds since the epoch) from `/proc/stat`.
    pub(super) fn parse_btime(proc_stat: &str) -> Option<f64> {
        proc_stat
            .lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Soft limit of "Max open files" from `/proc/self/limits`.
    pub(super) fn parse_max_fds(limits: &str) -> Option<f64> {
        limits
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|soft| soft.parse().ok())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::super::Kind;
    use super::linux::{parse_btime, parse_max_fds, parse_stat, Stat};
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_name() {
        let stat = "4242 (we ird) (x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 130 0 0 20 0 8 0 123456 104857600 2560 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Stat {
                utime: Some(250.0),
                stime: Some(130.0),
                starttime: Some(123456.0),
                vsize: Some(104857600.0),
                rss: Some(2560.0),
            }
        );
        assert_eq!(parse_stat("garbage"), Stat::default());
    }

    #[test]
    fn parses_btime_and_limits() {
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000.0)
        );
        assert_eq!(parse_btime("cpu 1\n"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63704                63704                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_fds(unlimited), None);
    }

    #[test]
    fn collects_live_process_metrics() {
        let families = ProcessCollector::new().collect();
        assert!(!families.is_empty());
        let value = |name: &str| {
            families
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.samples.first())
                .map(|s| s.value)
        };
        assert!(value("process_resident_memory_bytes").is_some_and(|v| v > 0.0));
        assert!(value("process_virtual_memory_bytes").is_some_and(|v| v > 0.0));
        // After 2001-09-09 and not in the future.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        assert!(value("process_start_time_seconds").is_some_and(|v| v > 1e9 && v <= now + 1.0));
        assert!(value("process_cpu_seconds").is_some_and(|v| v >= 0.0));
        assert!(value("process_open_fds").is_some_and(|v| v >= 3.0));
        assert!(value("process_max_fds").is_some_and(|v| v >= 1.0));
        let cpu = families.iter().find(|f| f.name == "process_cpu_seconds");
        assert!(cpu.is_some_and(|f| f.kind == Kind::Counter && f.samples[0].suffix == "_total"));
    }
}
