//! Remote-write ingestion, side by side: the shared workload
//! (`benches/common/workload.rs`) sent by remote write (5,000 samples per
//! request, 3 concurrent senders) to fleetmon, then to the real Prometheus
//! (`--web.enable-remote-write-receiver`) and the real VictoriaMetrics when
//! they are installed, one after another, each on a fresh directory.
//!
//! `cargo bench --bench ingest -- [--series 100000] [--minutes 120] [--only NAME]`
//! (`FLEETMON_BIN=path` runs another fleetmon build, to compare two builds
//! in interleaved runs on a noisy machine).
//!
//! For each server: samples/s, server CPU seconds per million samples (from
//! `/proc/<pid>/stat`) while requests are answered, and again counted to
//! [`SETTLE`] after the last answer (background merges, flushes and block
//! writes included), peak and settled RSS per active series (the peak read
//! after [`SETTLE`]), and bytes on disk per sample after a clean stop —
//! with ratios to fleetmon; then the bytes on disk per sample while
//! running, how long the clean stop took, and how long a restart on the
//! same directory takes to be ready (`/-/ready`, VictoriaMetrics's
//! `/health`). Requests are encoded ahead of sending, a slice of the run
//! at a time, so that the senders' own CPU is mostly the HTTP client's.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use common::workload::{Workload, INTERVAL_MS};
use common::{arg, cpu_seconds, dir_bytes, free_port, status_bytes};
use fleetmon::remote::wire::encode_request;

const SAMPLES_PER_REQUEST: usize = 5_000;
const SENDERS: usize = 3;
/// Scrapes encoded at a time.
const SLICE_STEPS: i64 = 40;
const PASSWORD: &str = "bench-admin-password";
/// Time left to a server after the last answer before its memory and disk
/// are read: a minute of compaction checks (fleetmon's and Prometheus's
/// period) and then some, so that the block fleetmon writes from the
/// workload's older window (see [`workload_end`]) counts in its peak.
const SETTLE: Duration = Duration::from_secs(70);
const HOUR_MS: i64 = 3_600_000;

/// When the workload's samples end: now, or earlier so that the end falls
/// 70 minutes or more into a 2-hour block window. A run of 2 hours then
/// leaves fleetmon's head half a window past the end of the older window,
/// which makes that window due as a block, whatever the time of day.
fn workload_end(now_ms: i64) -> i64 {
    let into_window = now_ms.rem_euclid(2 * HOUR_MS);
    let least = 70 * 60_000;
    if into_window >= least {
        now_ms
    } else {
        now_ms - into_window - (2 * HOUR_MS - least)
    }
}

/// A server under test: how to start it and where it listens.
struct Target {
    child: Child,
    url: String,
    basic_auth: Option<(&'static str, &'static str)>,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(name: &'static str, dir: &Path) -> Option<Target> {
    let port = free_port();
    let fleetmon =
        std::env::var("FLEETMON_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_fleetmon").into());
    let (program, args, path, auth): (&str, Vec<String>, &str, _) = match name {
        "fleetmon" => (
            &fleetmon,
            vec![
                format!("--web.listen-address=127.0.0.1:{port}"),
                format!("--storage.path={}", dir.display()),
                // No scrape jobs: only the remote-written workload is measured.
                format!("--config.file={}", empty_config(dir).display()),
                "--log.level=warn".into(),
            ],
            "/api/v1/write",
            Some(("admin", PASSWORD)),
        ),
        "prometheus" => (
            "/usr/bin/prometheus",
            vec![
                format!("--web.listen-address=127.0.0.1:{port}"),
                format!("--storage.tsdb.path={}", dir.display()),
                "--web.enable-remote-write-receiver".into(),
                format!("--config.file={}", empty_config(dir).display()),
                "--log.level=warn".into(),
            ],
            "/api/v1/write",
            None,
        ),
        "victoria-metrics" => (
            "/usr/bin/victoria-metrics",
            vec![
                format!("-httpListenAddr=127.0.0.1:{port}"),
                format!("-storageDataPath={}", dir.display()),
                "-loggerLevel=ERROR".into(),
            ],
            "/api/v1/write",
            None,
        ),
        _ => return None,
    };
    if !Path::new(program).exists() {
        println!("{name}: not installed ({program}); skipped");
        return None;
    }
    let child = Command::new(program)
        .args(&args)
        .env("FLEETMON_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let target = Target {
        child,
        url: format!("http://127.0.0.1:{port}{path}"),
        basic_auth: auth,
    };
    let ready = if name == "victoria-metrics" {
        "/health"
    } else {
        "/-/ready"
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    while !answers_ok(port, ready) {
        assert!(Instant::now() < deadline, "{name} did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(target)
}

/// Whether `GET path` on the port answers 200.
fn answers_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut status = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut status).is_ok()
        && status.ends_with(b" 200")
}

fn empty_config(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, "global: {}\n").expect("config");
    path
}

struct Figures {
    rate: f64,
    cpu_per_million: f64,
    /// Counted to [`SETTLE`] after the last answer, gaps between slices included.
    cpu_with_background_per_million: f64,
    peak_rss_per_series: f64,
    settled_rss_per_series: f64,
    disk_per_sample: f64,
    running_disk_per_sample: f64,
    stop: Duration,
    restart: Duration,
}

fn run(name: &'static str, series: usize, steps: i64) -> Option<Figures> {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = start(name, dir.path())?;
    let pid = target.child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SENDERS)
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::new();
    let mut workload = Workload::new(series, 42);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let t0 = (workload_end(now_ms) - steps * INTERVAL_MS) / INTERVAL_MS * INTERVAL_MS;
    let (mut sent, mut busy, mut cpu) = (0u64, Duration::ZERO, 0.0);
    // CPU from the first request on, gaps between slices included, to
    // SETTLE after the last answer: background work the ingest causes
    // (merges, flushes, blocks) is charged to it, wherever a server
    // schedules it.
    let mut cpu_at_first_send = None;
    let mut step = 0;
    while step < steps {
        let n = SLICE_STEPS.min(steps - step);
        let requests: Vec<(Bytes, u64)> = workload
            .batches(t0 + step * INTERVAL_MS, n, 1, SAMPLES_PER_REQUEST)
            .into_iter()
            .map(|batch| {
                let samples = batch.iter().map(|s| s.samples.len() as u64).sum();
                let series: Vec<_> = batch.into_iter().map(|s| (s.labels, s.samples)).collect();
                (
                    Bytes::from(encode_request(&series).expect("encode")),
                    samples,
                )
            })
            .collect();
        // Each sender owns a fixed share of the series, as remote-write shards
        // do, and sends its requests in time order.
        let per_step = workload.len().div_ceil(SAMPLES_PER_REQUEST);
        let requests = Arc::new(requests);
        let cpu_before = cpu_seconds(pid);
        cpu_at_first_send.get_or_insert(cpu_before);
        let start = Instant::now();
        runtime.block_on(async {
            let senders: Vec<_> = (0..SENDERS)
                .map(|sender| {
                    let (http, requests) = (http.clone(), requests.clone());
                    let url = target.url.clone();
                    let auth = target.basic_auth;
                    tokio::spawn(async move {
                        let mine =
                            (0..requests.len()).filter(|i| (i % per_step) % SENDERS == sender);
                        for i in mine {
                            let Some((body, _)) = requests.get(i) else {
                                break;
                            };
                            let mut request = http
                                .post(&url)
                                .header("content-type", "application/x-protobuf")
                                .header("content-encoding", "snappy")
                                .header("x-prometheus-remote-write-version", "0.1.0")
                                .body(body.clone());
                            if let Some((user, password)) = auth {
                                request = request.basic_auth(user, Some(password));
                            }
                            let response = request.send().await.expect("send");
                            let status = response.status();
                            assert!(
                                status.is_success(),
                                "{status}: {}",
                                response.text().await.unwrap_or_default()
                            );
                        }
                    })
                })
                .collect();
            for sender in senders {
                sender.await.expect("sender");
            }
        });
        busy += start.elapsed();
        cpu += cpu_seconds(pid) - cpu_before;
        sent += requests.iter().map(|(_, n)| n).sum::<u64>();
        step += n;
    }
    std::thread::sleep(SETTLE);
    // Read after the settling time: work the ingest leaves behind (a block
    // written, a merge) peaks then, and counts as much as the sends.
    let peak = status_bytes(&pid.to_string(), "VmHWM:");
    let settled = status_bytes(&pid.to_string(), "VmRSS:");
    let cpu_with_background = cpu_seconds(pid) - cpu_at_first_send.unwrap_or_default();
    let running_disk = dir_bytes(dir.path());
    let mut target = target;
    let stopping = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = target.child.wait();
    let stop = stopping.elapsed();
    let disk = dir_bytes(dir.path());
    let restarting = Instant::now();
    let restarted = start(name, dir.path());
    let restart = restarting.elapsed();
    drop(restarted);
    Some(Figures {
        rate: sent as f64 / busy.as_secs_f64(),
        cpu_per_million: cpu / (sent as f64 / 1e6),
        cpu_with_background_per_million: cpu_with_background / (sent as f64 / 1e6),
        peak_rss_per_series: peak as f64 / series as f64,
        settled_rss_per_series: settled as f64 / series as f64,
        disk_per_sample: disk as f64 / sent as f64,
        running_disk_per_sample: running_disk as f64 / sent as f64,
        stop,
        restart,
    })
}

fn main() {
    let series = arg("--series", 100_000);
    let minutes = arg("--minutes", 120) as i64;
    let steps = minutes * 60_000 / INTERVAL_MS;
    println!("# remote-write ingestion: {series} series × {minutes} min at 15 s ({} samples), {SAMPLES_PER_REQUEST} samples/request, {SENDERS} senders", series as i64 * steps);
    println!("# command: cargo bench --bench ingest -- --series {series} --minutes {minutes}");
    println!(
        "{:<17} {:>12} {:>14} {:>16} {:>18} {:>14}",
        "server",
        "samples/s",
        "CPU s/million",
        "peak RSS/series",
        "settled RSS/series",
        "disk B/sample"
    );
    let mut baseline: Option<Figures> = None;
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1));
    let mut measured = Vec::new();
    for name in ["fleetmon", "prometheus", "victoria-metrics"] {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        let Some(f) = run(name, series, steps) else {
            continue;
        };
        let ratio = ratio_to(name);
        let b = baseline.as_ref().unwrap_or(&f);
        println!(
            "{:<17} {:>12.0}{} {:>9.2}{} {:>11.0}{} {:>13.0}{} {:>9.3}{}",
            name,
            f.rate,
            ratio(b.rate, f.rate),
            f.cpu_per_million,
            ratio(b.cpu_per_million, f.cpu_per_million),
            f.peak_rss_per_series,
            ratio(b.peak_rss_per_series, f.peak_rss_per_series),
            f.settled_rss_per_series,
            ratio(b.settled_rss_per_series, f.settled_rss_per_series),
            f.disk_per_sample,
            ratio(b.disk_per_sample, f.disk_per_sample),
        );
        measured.push((
            name,
            f.cpu_with_background_per_million,
            f.running_disk_per_sample,
            f.stop,
            f.restart,
        ));
        if baseline.is_none() {
            baseline = Some(f);
        }
    }
    println!(
        "{:<17} {:>22} {:>22} {:>14} {:>14}",
        "server", "CPU s/M + background", "disk B/sample running", "stop s", "restart s"
    );
    if let Some(b) = &baseline {
        for (name, cpu_with_background, running, stop, restart) in measured {
            let ratio = ratio_to(name);
            println!(
                "{:<17} {:>14.2}{} {:>14.3}{} {:>6.1}{} {:>6.1}{}",
                name,
                cpu_with_background,
                ratio(b.cpu_with_background_per_million, cpu_with_background),
                running,
                ratio(b.running_disk_per_sample, running),
                stop.as_secs_f64(),
                ratio(b.stop.as_secs_f64(), stop.as_secs_f64()),
                restart.as_secs_f64(),
                ratio(b.restart.as_secs_f64(), restart.as_secs_f64()),
            );
        }
    }
    println!("# ratios are fleetmon / that server (below 1: fleetmon is lower)");
}

/// Formats fleetmon's figure over `name`'s, blank for fleetmon itself.
fn ratio_to(name: &'static str) -> impl Fn(f64, f64) -> String {
    move |fleetmon, this| {
        if name == "fleetmon" {
            String::new()
        } else {
            format!(" ({:.2}×)", fleetmon / this)
        }
    }
}
