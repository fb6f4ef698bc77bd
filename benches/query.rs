//! PromQL range queries, side by side: the same data in fleetmon, the real
//! Prometheus and, when installed, the real VictoriaMetrics, and the same
//! queries sent to each as Grafana sends a panel's query (`POST
//! /api/v1/query_range`, over the whole data span at one step).
//!
//! `cargo bench --bench query -- [--series 10000] [--hours 2] [--step 60] [--runs 5] [--only NAME,…] [--keep DIR]`
//!
//! The data: the shared workload (`benches/common/workload.rs`, seed 42) for
//! `--hours` ending now, one sample per series every 15 s, written as one
//! OpenMetrics file (second timestamps, `# EOF`), one scrape after another
//! and without `# TYPE` lines (so metric families interleave, as the three
//! importers accept; the file then streams from the generator).
//! It goes into fleetmon with `fleetmon import FILE --storage.path DIR`
//! (offline), into Prometheus with `promtool tsdb create-blocks-from
//! openmetrics FILE DIR`, and into VictoriaMetrics through
//! `/api/v1/import/prometheus` (the same lines with millisecond timestamps),
//! then `/internal/force_flush` and a restart; VictoriaMetrics runs with
//! `-search.disableCache -search.latencyOffset=0s`, so that no result cache
//! answers. Each server is loaded in turn, on a fresh temporary directory
//! and a loopback port, with no scrape jobs, and left running; before the
//! queries every one is left to finish its background work (under 2 % of a
//! core for 2 s; with more than 2 h of data, Prometheus is first given the
//! minute after which it compacts promtool's 2 h blocks). The servers then
//! take turns: each run of a query goes to each server in order, so that
//! the machine's drifts fall on all of them alike; only one server works at
//! a time.
//!
//! The queries are the six of the monitoring guide's "Requêtes PromQL
//! utiles" (`/work/shared/seed/monitoring-guide.fr.md`) and the ones the
//! issue measured, over the workload's metric names:
//!
//! - `requests_rate`: `rate(http_requests_total[5m])` (guide; issue)
//! - `fast_share`: `rate(http_request_duration_seconds_bucket{le="0.25"}[5m])
//!   / ignoring(le) rate(http_request_duration_seconds_bucket{le="+Inf"}[5m])`
//!   (the guide's mean duration, `rate(…_sum[5m]) / rate(…_count[5m])`: the
//!   workload has no `_sum`/`_count`, so the same shape, one rate divided by
//!   another matched series by series, over two buckets)
//! - `error_rate`: `rate(http_requests_total{status_code=~"5.."}[5m])` (guide)
//! - `rate_by_endpoint`: `sum(rate(http_requests_total[5m])) by (endpoint)` (guide)
//! - `p95`: `histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))` (guide)
//! - `p99`: `histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))` (guide)
//! - `p95_by_le`: `histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))` (issue)
//! - `cpu_by_instance`: `sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))` (issue)
//!
//! For each server and query: the median of `--runs` wall-clock latencies
//! (sending the request and reading the whole body), and the server's peak
//! RSS while answering it (VmHWM, reset through `/proc/<pid>/clear_refs`
//! before the query's first run), then the peak over all queries — with the
//! ratios fleetmon / Prometheus and fleetmon / VictoriaMetrics (below 1:
//! fleetmon is faster or smaller). A warning line names each query for which
//! fleetmon and Prometheus answer with different numbers of series, or one
//! of them fails. `--only` names the servers to run, comma separated
//! (`fleetmon`, `prometheus`, `victoria-metrics`). `--keep DIR` keeps each server's loaded data in `DIR` (and the
//! data's time range in `DIR/range`), and a later run with the same
//! `--series` and `--hours` queries it again instead of loading anew.

mod common;

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::workload::{Workload, INTERVAL_MS};
use common::{arg, cpu_seconds, free_port, status_bytes};

const SERVERS: [&str; 3] = ["fleetmon", "prometheus", "victoria-metrics"];
const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const VICTORIA_METRICS: &str = "/usr/bin/victoria-metrics";
const PASSWORD: &str = "bench-admin-password";
const SEED: u64 = 42;
/// Scrapes generated at a time while writing the file.
const SLICE_STEPS: i64 = 40;
/// Bytes of text per VictoriaMetrics import request.
const IMPORT_REQUEST_BYTES: usize = 16 << 20;

/// Name (for the table) and expression of each query.
const QUERIES: [(&str, &str); 8] = [
    ("requests_rate", "rate(http_requests_total[5m])"),
    (
        "fast_share",
        r#"rate(http_request_duration_seconds_bucket{le="0.25"}[5m]) / ignoring(le) rate(http_request_duration_seconds_bucket{le="+Inf"}[5m])"#,
    ),
    (
        "error_rate",
        r#"rate(http_requests_total{status_code=~"5.."}[5m])"#,
    ),
    (
        "rate_by_endpoint",
        "sum(rate(http_requests_total[5m])) by (endpoint)",
    ),
    (
        "p95",
        "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))",
    ),
    (
        "p99",
        "histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))",
    ),
    (
        "p95_by_le",
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "cpu_by_instance",
        r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#,
    ),
];

/// What the benchmark was asked for.
struct Setup {
    series: usize,
    hours: usize,
    step_s: i64,
    runs: usize,
    /// First and last sample, ms.
    first_ms: i64,
    last_ms: i64,
}

impl Setup {
    /// `start` and `end` of every range query, s: the data span on the step
    /// grid, as Grafana aligns them.
    fn range(&self) -> (i64, i64) {
        let first = self.first_ms.div_euclid(1000);
        let start = (first + self.step_s - 1).div_euclid(self.step_s) * self.step_s;
        let end = self.last_ms.div_euclid(1000).div_euclid(self.step_s) * self.step_s;
        (start, end)
    }
}

/// One query's figures on one server.
struct Measured {
    median_ms: f64,
    peak_rss: u64,
    /// Series in the answer, or why there is none.
    series: Result<usize, String>,
}

/// A server's figures: per query, and the peak RSS over the query phase.
struct ServerRun {
    queries: Vec<Measured>,
    peak_rss: u64,
    /// Whether per-query peaks are exact (VmHWM could be reset).
    exact_peaks: bool,
}

// ---------------------------------------------------------------- data

/// Writes the workload for `steps` scrapes from `t0` ms as OpenMetrics,
/// one scrape after another; returns the file's size in bytes.
fn write_openmetrics(path: &Path, series: usize, t0: i64, steps: i64) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut workload = Workload::new(series, SEED);
    // `name{labels}` of each series, in the workload's (stable) order.
    let mut names: Vec<String> = Vec::new();
    let mut step = 0;
    while step < steps {
        let n = SLICE_STEPS.min(steps - step);
        let slice: Vec<_> = workload
            .batches(t0 + step * INTERVAL_MS, n, n, usize::MAX)
            .into_iter()
            .flatten()
            .collect();
        if names.is_empty() {
            names = slice.iter().map(|s| series_name(&s.labels)).collect();
        }
        for k in 0..n as usize {
            for (name, s) in names.iter().zip(&slice) {
                let (t, v) = s.samples[k];
                writeln!(out, "{name} {v} {}", t / 1000)?;
            }
        }
        step += n;
    }
    out.write_all(b"# EOF\n")?;
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// `name{label="value",…}` in exposition syntax.
fn series_name(labels: &[(String, String)]) -> String {
    let name = labels
        .iter()
        .find(|(n, _)| n == "__name__")
        .map_or("", |(_, v)| v.as_str());
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(n, _)| n != "__name__")
        .map(|(n, v)| {
            let v = v
                .replace('\\', r"\\")
                .replace('"', r#"\""#)
                .replace('\n', r"\n");
            format!("{n}=\"{v}\"")
        })
        .collect();
    format!("{name}{{{}}}", pairs.join(","))
}

/// Runs a command to completion; its standard output, or why it failed.
fn run_command(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{command:?} failed ({}): {stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Sends the OpenMetrics file to VictoriaMetrics's text import, its
/// timestamps turned into milliseconds.
async fn import_victoria_metrics(
    http: &reqwest::Client,
    base: &str,
    file: &Path,
) -> Result<(), String> {
    let mut reader = BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(file).map_err(|e| e.to_string())?,
    );
    let mut line = Vec::new();
    let mut body = Vec::with_capacity(IMPORT_REQUEST_BYTES + 4096);
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if read > 0 && !line.starts_with(b"#") {
            // "name{…} value seconds\n" → "name{…} value seconds000\n"
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            body.extend_from_slice(text);
            body.extend_from_slice(b"000\n");
        }
        if body.len() >= IMPORT_REQUEST_BYTES || (read == 0 && !body.is_empty()) {
            let response = http
                .post(format!("{base}/api/v1/import/prometheus"))
                .body(std::mem::take(&mut body))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!(
                    "import: {}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                ));
            }
            body.reserve(IMPORT_REQUEST_BYTES + 4096);
        }
        if read == 0 {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------- servers

/// A running server; killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    base: String,
    auth: Option<(&'static str, &'static str)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `name` on `dir` and waits until it answers its readiness path.
    async fn start(
        name: &'static str,
        dir: &Path,
        http: &reqwest::Client,
    ) -> Result<Server, String> {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let config = dir.with_extension("yml");
        std::fs::write(&config, "global: {}\n").map_err(|e| e.to_string())?;
        let (program, args, ready, auth): (_, Vec<String>, _, _) = match name {
            "fleetmon" => (
                env!("CARGO_BIN_EXE_fleetmon"),
                vec![
                    format!("--web.listen-address={listen}"),
                    format!("--storage.path={}", dir.display()),
                    format!("--config.file={}", config.display()),
                    "--log.level=warn".into(),
                ],
                "/-/ready",
                Some(("admin", PASSWORD)),
            ),
            "prometheus" => (
                PROMETHEUS,
                vec![
                    format!("--web.listen-address={listen}"),
                    format!("--storage.tsdb.path={}", dir.display()),
                    format!("--config.file={}", config.display()),
                    "--log.level=warn".into(),
                ],
                "/-/ready",
                None,
            ),
            _ => (
                VICTORIA_METRICS,
                vec![
                    format!("-httpListenAddr={listen}"),
                    format!("-storageDataPath={}", dir.display()),
                    "-search.disableCache".into(),
                    "-search.latencyOffset=0s".into(),
                    "-loggerLevel=ERROR".into(),
                ],
                "/health",
                None,
            ),
        };
        let mut command = Command::new(program);
        command
            .args(&args)
            .env("FLEETMON_ADMIN_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: prctl is async-signal-safe; the server dies with the bench
        // even when the bench is killed and no Drop runs.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let log = dir.with_extension("log");
        command.stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let mut server = Server {
            name,
            child,
            base: format!("http://{listen}"),
            auth,
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let ready = server
                .request(http.get(format!("{}{ready}", server.base)))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if Instant::now() > deadline || matches!(server.child.try_wait(), Ok(Some(_))) {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("{name} did not become ready; its log:\n{log}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn request(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Stops the server as an operator would (SIGTERM), killing it after a
    /// minute.
    fn stop(mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{}: did not stop within a minute; killed", self.name);
    }

    /// Waits until the server has used no more than 2 % of a core for 2 s
    /// (at most 10 minutes): whatever it does after starting is done.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut before = cpu_seconds(self.pid());
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = cpu_seconds(self.pid());
            if now - before <= 0.04 {
                return;
            }
            before = now;
        }
    }

    /// Answers a range query: the wall-clock time to the end of the body,
    /// and the body.
    async fn query_range(
        &self,
        http: &reqwest::Client,
        query: &str,
        (start, end): (i64, i64),
        step: i64,
    ) -> Result<(Duration, Vec<u8>), String> {
        let form = [
            ("query", query.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", step.to_string()),
        ];
        let began = Instant::now();
        let response = self
            .request(http.post(format!("{}/api/v1/query_range", self.base)))
            .form(&form)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        let elapsed = began.elapsed();
        if !status.is_success() {
            return Err(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ));
        }
        Ok((elapsed, body.to_vec()))
    }

    /// The value of an instant query that answers one number, or the
    /// answer that is not one.
    async fn instant_value(
        &self,
        http: &reqwest::Client,
        query: &str,
        at: i64,
    ) -> Result<f64, String> {
        let body = self
            .request(http.post(format!("{}/api/v1/query", self.base)))
            .form(&[("query", query.to_string()), ("time", at.to_string())])
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["data"]["result"][0]["value"][1].as_str()?.parse().ok())
            .ok_or_else(|| body.chars().take(300).collect())
    }
}

/// Resets the peak RSS (VmHWM) of `pid` to its current RSS; false where
/// the kernel does not allow it.
fn reset_peak_rss(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Series in a `query_range` answer, or its error.
fn answer_series(body: &[u8]) -> Result<usize, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        status: String,
        data: Option<Data>,
        error: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        result: Vec<serde::de::IgnoredAny>,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    match (answer.status.as_str(), answer.data) {
        ("success", Some(data)) => Ok(data.result.len()),
        _ => Err(answer.error.unwrap_or(answer.status)),
    }
}

/// The last sample time kept in `dir` for data of `shape` (`series hours`).
fn kept_range(dir: &Path, shape: &str) -> Option<i64> {
    let text = std::fs::read_to_string(dir.join("range")).ok()?;
    let (kept_shape, last) = text.trim().rsplit_once(' ')?;
    (kept_shape == shape).then(|| last.parse().ok()).flatten()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

// ---------------------------------------------------------------- phases

/// Loads the file into `name` under `dir` and starts it for querying.
async fn load(
    name: &'static str,
    dir: &Path,
    file: &Path,
    setup: &Setup,
    http: &reqwest::Client,
) -> Result<Server, String> {
    let began = Instant::now();
    match name {
        "fleetmon" => {
            let printed = run_command(
                Command::new(env!("CARGO_BIN_EXE_fleetmon"))
                    .arg("import")
                    .arg(file)
                    .arg("--storage.path")
                    .arg(dir),
            )?;
            for line in printed.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("  fleetmon import: {line}");
            }
        }
        "prometheus" => {
            run_command(
                Command::new(PROMTOOL)
                    .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
                    .arg(file)
                    .arg(dir),
            )?;
        }
        _ => {
            let server = Server::start(name, dir, http).await?;
            import_victoria_metrics(http, &server.base, file).await?;
            let flushed = http
                .get(format!("{}/internal/force_flush", server.base))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !flushed.status().is_success() {
                return Err(format!("force_flush: {}", flushed.status()));
            }
            // A fresh process for the queries: nothing left of the import.
            server.stop();
        }
    }
    eprintln!("{name}: loaded in {:.1} s", began.elapsed().as_secs_f64());
    start_loaded(name, dir, setup, http).await
}

/// Starts `name` on the data loaded under `dir`, and waits until it is
/// idle and answers for every series.
async fn start_loaded(
    name: &'static str,
    dir: &Path,
    setup: &Setup,
    http: &reqwest::Client,
) -> Result<Server, String> {
    let server = Server::start(name, dir, http).await?;
    if name == "prometheus" && setup.hours > 2 {
        // Possibly three or more 2 h blocks: Prometheus compacts them a
        // minute after it starts; queries are measured on the result.
        tokio::time::sleep(Duration::from_secs(70)).await;
    }
    server.settle().await;
    // Every series is there at the end of the data.
    let count = server
        .instant_value(
            http,
            r#"count({job="fleet"})"#,
            setup.last_ms.div_euclid(1000),
        )
        .await;
    match count {
        Ok(n) if n == setup.series as f64 => {}
        Ok(n) => println!(
            "warning: {name} holds {n} series at the end of the data, not {}",
            setup.series
        ),
        Err(e) => println!("warning: {name}: counting the series failed: {e}"),
    }
    server.settle().await;
    Ok(server)
}

/// Runs every query `setup.runs` times on each server, the servers taking
/// turns run by run: whatever else the machine does meanwhile (other load,
/// clock changes) falls on all of them alike, which keeps the ratios
/// steady where separate phases drift by tens of percent.
async fn measure(servers: &[Server], setup: &Setup, http: &reqwest::Client) -> Vec<ServerRun> {
    let mut runs: Vec<ServerRun> = servers
        .iter()
        .map(|server| {
            let pid = server.pid();
            eprintln!(
                "  {}: RSS before the queries {:.0} MiB",
                server.name,
                status_bytes(&pid, "VmRSS:") as f64 / 1048576.0
            );
            ServerRun {
                queries: Vec::new(),
                peak_rss: 0,
                exact_peaks: reset_peak_rss(&pid),
            }
        })
        .collect();
    for (name, query) in QUERIES {
        for server in servers {
            reset_peak_rss(&server.pid());
        }
        let mut latencies = vec![Vec::new(); servers.len()];
        let mut answers: Vec<Result<usize, String>> =
            vec![Err("no answer".to_string()); servers.len()];
        for run in 0..setup.runs {
            for (i, server) in servers.iter().enumerate() {
                if run > 0 && answers[i].is_err() {
                    continue;
                }
                match server
                    .query_range(http, query, setup.range(), setup.step_s)
                    .await
                {
                    Ok((elapsed, body)) => {
                        latencies[i].push(elapsed.as_secs_f64() * 1000.0);
                        if run == 0 {
                            answers[i] = answer_series(&body);
                        }
                    }
                    Err(e) => answers[i] = Err(e),
                }
            }
        }
        for (i, server) in servers.iter().enumerate() {
            let peak = status_bytes(&server.pid(), "VmHWM:");
            let run = &mut runs[i];
            run.peak_rss = run.peak_rss.max(peak);
            let series = std::mem::replace(&mut answers[i], Err(String::new()));
            let median_ms = if series.is_ok() {
                median(std::mem::take(&mut latencies[i]))
            } else {
                f64::NAN
            };
            eprintln!(
                "  {}: {name}: {median_ms:.1} ms, {} series, peak RSS {:.0} MiB",
                server.name,
                series
                    .as_ref()
                    .map_or_else(|e| e.clone(), |n| n.to_string()),
                peak as f64 / 1048576.0
            );
            run.queries.push(Measured {
                median_ms,
                peak_rss: peak,
                series,
            });
        }
    }
    runs
}

// ---------------------------------------------------------------- report

fn ratio(fleetmon: f64, other: f64) -> String {
    if fleetmon.is_finite() && other.is_finite() && other > 0.0 && fleetmon > 0.0 {
        format!("{:.2}×", fleetmon / other)
    } else {
        "–".into()
    }
}

fn cell(value: f64, decimals: usize) -> String {
    if value.is_finite() && value > 0.0 {
        format!("{value:.decimals$}")
    } else {
        "–".into()
    }
}

fn report(runs: &[Option<ServerRun>; 3]) {
    let ms = |s: usize, q: usize| {
        runs[s]
            .as_ref()
            .map_or(f64::NAN, |r| r.queries[q].median_ms)
    };
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    let rss = |s: usize, q: usize| {
        runs[s]
            .as_ref()
            .map_or(f64::NAN, |r| mib(r.queries[q].peak_rss))
    };
    let header = |unit: &str| {
        println!(
            "{:<17} {:>8} {:>12} {:>14} {:>19} {:>9} {:>9}",
            "query",
            "series",
            format!("fleetmon {unit}"),
            format!("Prometheus {unit}"),
            format!("VictoriaMetrics {unit}"),
            "fm/Prom",
            "fm/VM"
        );
    };
    println!("\n## median latency");
    header("ms");
    for (q, (name, _)) in QUERIES.iter().enumerate() {
        let series = runs
            .iter()
            .flatten()
            .find_map(|r| r.queries[q].series.as_ref().ok())
            .map_or("–".to_string(), |n| n.to_string());
        println!(
            "{:<17} {:>8} {:>12} {:>14} {:>19} {:>9} {:>9}",
            name,
            series,
            cell(ms(0, q), 1),
            cell(ms(1, q), 1),
            cell(ms(2, q), 1),
            ratio(ms(0, q), ms(1, q)),
            ratio(ms(0, q), ms(2, q)),
        );
    }
    println!("\n## peak RSS, MiB");
    header("MiB");
    for (q, (name, _)) in QUERIES.iter().enumerate() {
        println!(
            "{:<17} {:>8} {:>12} {:>14} {:>19} {:>9} {:>9}",
            name,
            "",
            cell(rss(0, q), 0),
            cell(rss(1, q), 0),
            cell(rss(2, q), 0),
            ratio(rss(0, q), rss(1, q)),
            ratio(rss(0, q), rss(2, q)),
        );
    }
    let all = |s: usize| runs[s].as_ref().map_or(f64::NAN, |r| mib(r.peak_rss));
    println!(
        "{:<17} {:>8} {:>12} {:>14} {:>19} {:>9} {:>9}",
        "all queries",
        "",
        cell(all(0), 0),
        cell(all(1), 0),
        cell(all(2), 0),
        ratio(all(0), all(1)),
        ratio(all(0), all(2)),
    );
    if runs.iter().flatten().any(|r| !r.exact_peaks) {
        println!("# VmHWM could not be reset: per-query peaks include everything before them");
    }
    println!("# ratios are fleetmon / that server (below 1: fleetmon is faster or smaller)");
    // The same number of series from fleetmon and Prometheus.
    if let (Some(fleetmon), Some(prometheus)) = (&runs[0], &runs[1]) {
        for (q, (name, _)) in QUERIES.iter().enumerate() {
            match (&fleetmon.queries[q].series, &prometheus.queries[q].series) {
                (Ok(f), Ok(p)) if f == p => {}
                (Ok(f), Ok(p)) => {
                    println!("warning: {name}: fleetmon answers {f} series, Prometheus {p}")
                }
                (Err(e), _) => println!("warning: {name}: fleetmon failed: {e}"),
                (_, Err(e)) => println!("warning: {name}: Prometheus failed: {e}"),
            }
        }
    }
}

fn main() {
    let series = arg("--series", 10_000);
    let hours = arg("--hours", 2).max(1);
    let step_s = arg("--step", 60).max(1) as i64;
    let runs = arg("--runs", 5).max(1);
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    // `--only a,b`: those servers.
    let chosen = |name: &str| {
        only.as_ref()
            .is_none_or(|list| list.split(',').any(|o| o == name))
    };

    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);

    let steps = hours as i64 * 3_600_000 / INTERVAL_MS;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    // The last sample a scrape interval ago, on the 15 s grid.
    let mut last_ms = (now_ms - INTERVAL_MS).div_euclid(INTERVAL_MS) * INTERVAL_MS;
    let shape = format!("{series} {hours}");
    if let Some(kept) = keep.as_ref().and_then(|dir| kept_range(dir, &shape)) {
        last_ms = kept;
    }
    let setup = Setup {
        series,
        hours,
        step_s,
        runs,
        first_ms: last_ms - (steps - 1) * INTERVAL_MS,
        last_ms,
    };
    let (start, end) = setup.range();
    println!(
        "# PromQL range queries: {series} series × {hours} h at 15 s ({} samples), [{start}, {end}] at step {step_s} s, median of {runs}",
        series as i64 * steps
    );
    println!(
        "# command: cargo bench --bench query -- --series {series} --hours {hours} --step {step_s} --runs {runs}{}",
        only.as_ref().map_or(String::new(), |o| format!(" --only {o}"))
    );
    for (name, query) in QUERIES {
        println!("# {name:<17} {query}");
    }

    let temporary = tempfile::tempdir().expect("tempdir");
    let dir = match &keep {
        Some(kept) => {
            if kept_range(kept, &shape) != Some(last_ms) {
                // Another shape, or nothing kept yet: start over.
                let _ = std::fs::remove_dir_all(kept);
                std::fs::create_dir_all(kept).expect("create the --keep directory");
                std::fs::write(kept.join("range"), format!("{shape} {last_ms}"))
                    .expect("write the kept range");
            }
            kept.clone()
        }
        None => temporary.path().to_path_buf(),
    };
    let file = dir.join("workload.om.txt");
    let needs_file = SERVERS
        .iter()
        .any(|name| chosen(name) && !dir.join(name).exists());
    if needs_file {
        let began = Instant::now();
        let bytes =
            write_openmetrics(&file, series, setup.first_ms, steps).expect("write the data");
        eprintln!(
            "data: {:.0} MiB of OpenMetrics in {:.1} s",
            bytes as f64 / 1048576.0,
            began.elapsed().as_secs_f64()
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client");
    // Every server is loaded and left running, then they are measured
    // together (see `measure`).
    let mut running: Vec<(usize, Server)> = Vec::new();
    for (i, name) in SERVERS.into_iter().enumerate() {
        if !chosen(name) {
            continue;
        }
        let needed: &[&str] = match name {
            "fleetmon" => &[],
            "prometheus" => &[PROMETHEUS, PROMTOOL],
            _ => &[VICTORIA_METRICS],
        };
        if let Some(missing) = needed.iter().find(|p| !Path::new(p).exists()) {
            println!("# {name}: not installed ({missing}); skipped");
            continue;
        }
        let store: PathBuf = dir.join(name);
        let loaded = if keep.is_some() && store.exists() {
            runtime.block_on(start_loaded(name, &store, &setup, &http))
        } else {
            runtime.block_on(load(name, &store, &file, &setup, &http))
        };
        let server = match loaded {
            Ok(server) => server,
            Err(e) => {
                println!("warning: {name}: loading the data failed: {e}");
                continue;
            }
        };
        running.push((i, server));
    }
    // The servers' stores are what a later run reuses.
    let _ = std::fs::remove_file(&file);
    for (_, server) in &running {
        runtime.block_on(server.settle());
    }
    let (indexes, servers): (Vec<usize>, Vec<Server>) = running.into_iter().unzip();
    let mut measured: [Option<ServerRun>; 3] = [None, None, None];
    for (i, run) in indexes
        .into_iter()
        .zip(runtime.block_on(measure(&servers, &setup, &http)))
    {
        measured[i] = Some(run);
    }
    for server in servers {
        server.stop();
    }
    report(&measured);
}
