//! Shared by the integration tests: start the real `fleetmon` binary on an
//! ephemeral loopback port with its own store, talk to it over HTTP, and stop
//! it with SIGTERM as an operator would.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN_PASSWORD: &str = "test-admin-password-1";

/// A running fleetmon process.
pub struct Fleetmon {
    child: Child,
    pub base: String,
    pub storage: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Fleetmon {
    /// Starts fleetmon on `storage` with the simulator (seed 7 unless `extra` sets one, 1 s wake-up) and `extra` flags.
    pub fn start(storage: &Path, extra: &[&str]) -> Fleetmon {
        Self::try_start(storage, extra, &[])
            .unwrap_or_else(|log| panic!("fleetmon did not start:\n{log}"))
    }

    /// Starts fleetmon; on failure returns its log.
    pub fn try_start(
        storage: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Fleetmon, String> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fleetmon"));
        command
            .args([
                "--web.listen-address",
                "127.0.0.1:0",
                "--log.format",
                "json",
            ])
            .args(["--fleet.simulator.wake-delay", "1s"])
            .arg("--storage.path")
            .arg(storage)
            .args(extra)
            .args(if extra.contains(&"--fleet.simulator.seed") {
                &[][..]
            } else {
                &["--fleet.simulator.seed", "7"][..]
            })
            .env("FLEETMON_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("FLEETMON_CONFIG_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn fleetmon");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["message"] == "listening" {
                            let _ = tx.send(v["address"].as_str().unwrap_or_default().to_string());
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(address) => Ok(Fleetmon {
                child,
                base: format!("http://{address}"),
                storage: storage.to_path_buf(),
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                Err(log.lock().unwrap().join("\n"))
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The process id, to send it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "fleetmon did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Fleetmon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client with a fixed `Authorization`.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    auth: Option<String>,
}

pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Client {
    pub fn anonymous() -> Client {
        Client {
            http: reqwest::Client::new(),
            auth: None,
        }
    }
    pub fn admin() -> Client {
        Client {
            http: reqwest::Client::new(),
            auth: Some(basic("admin", ADMIN_PASSWORD)),
        }
    }
    pub fn bearer(token: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            auth: Some(format!("Bearer {token}")),
        }
    }

    fn send(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(auth) => request.header("authorization", auth),
            None => request,
        }
    }

    /// GET; returns status and JSON body (Null when not JSON).
    pub async fn get(&self, url: &str) -> (u16, Value) {
        let response = self.send(self.http.get(url)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POST with a JSON body (or none); returns status and JSON body.
    pub async fn post(&self, url: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.send(self.http.post(url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POST a form; returns status and JSON body.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .send(self.http.post(url))
            .form(form)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POST `body` byte for byte, with `content_type` if given (Grafana's
    /// own encodings: see [`go_form`]); returns status, headers and text.
    pub async fn post_raw(
        &self,
        url: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self.send(self.http.post(url)).body(body.to_string());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        status_headers_text(request, "POST").await
    }

    /// GET returning status, headers and text.
    pub async fn get_text(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self.send(self.http.get(url));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        status_headers_text(request, "GET").await
    }
}

/// Sends `request` (`what` names it if it cannot be sent): status, headers
/// and text of the answer.
async fn status_headers_text(
    request: reqwest::RequestBuilder,
    what: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.expect(what);
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

/// `params` form-encoded as Go's `url.Values.Encode()` writes them, which
/// is how Grafana's backend builds a POST body and a GET query string: keys
/// sorted (a repeated key keeps its values in order), spaces as `+`, other
/// bytes percent-escaped (`~` and `*` aside, which no parameter here holds).
pub fn go_form(params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort_by_key(|(k, _)| *k); // stable: a repeated key keeps its order
    serde_urlencoded::to_string(&sorted).unwrap_or_default()
}

/// A time in Unix ms as Grafana's backend writes a time parameter: Go's
/// `strconv.FormatFloat(seconds, 'f', -1, 64)` (`1700000000`,
/// `1700000000.5`, `1700000000.123`).
pub fn go_seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let text = format!("{sign}{}.{:03}", abs / 1000, abs % 1000);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The wall clock in Unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Serves `body` as a scrape target's `/metrics` on a loopback port, on
/// the calling test's runtime; returns its `host:port`.
pub async fn metrics_target(body: &'static str) -> String {
    let router =
        axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a scrape target");
    let address = listener.local_addr().expect("its address").to_string();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// Starts fleetmon scraping `target` every second as job `demo`, with
/// `extra` flags, and waits until the first scrape is queryable (`up` has
/// its series). The directory holds the config and the store.
pub async fn start_scraping(target: &str, extra: &[&str]) -> (tempfile::TempDir, Fleetmon) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("fleetmon.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .expect("write the config");
    let mut flags = vec!["--config.file", config.to_str().expect("a UTF-8 path")];
    flags.extend_from_slice(extra);
    let server = Fleetmon::start(&dir.path().join("store"), &flags);
    eventually(Duration::from_secs(30), "a scrape", || async {
        let (_, body) = Client::admin()
            .get(&server.url("/api/v1/query?query=up"))
            .await;
        (body["data"]["result"].as_array()?.len() == 1).then_some(())
    })
    .await;
    (dir, server)
}

/// Creates a token through the API as admin; returns the token string.
pub async fn create_token(server: &Fleetmon, name: &str, role: &str) -> String {
    let (status, body) = Client::admin()
        .post_form(
            &server.url("/api/v1/admin/tokens"),
            &[("name", name), ("role", role)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["token"].as_str().expect("token").to_string()
}

/// Polls `check` every 100 ms until it returns Some, at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Is a real program available? Under CI=true a missing one fails the test;
/// locally the test prints SKIP and returns false.
pub fn have_program(path: &str) -> bool {
    if Path::new(path).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{path} is missing; .ci/run installs it"
    );
    eprintln!("SKIP: {path} not installed");
    false
}

/// The command names of a command-log page, newest first.
pub fn logged_commands(page: &Value) -> Vec<String> {
    page["response"]
        .as_array()
        .expect("a command-log page")
        .iter()
        .map(|r| r["command"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The real Prometheus, from Debian's package.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A real program started by a test; killed when dropped.
pub struct Program(pub Child);

impl Program {
    /// Starts the real Prometheus with `config`, its TSDB in `data`, on
    /// `127.0.0.1:port`, plus `extra` flags.
    pub fn prometheus(config: &Path, data: &Path, port: u16, extra: &[&str]) -> Program {
        Program(
            Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start prometheus"),
        )
    }

    /// SIGTERM, then waits (at most 60 s) for the exit.
    pub fn terminate(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the program did not stop");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Parses a Prometheus API value (`"NaN"`, `"+Inf"`, decimals).
pub fn prom_value(text: &str) -> f64 {
    match text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().expect("a float"),
    }
}

/// A stored series: its sorted labels and samples.
pub type StoredSeries = (Vec<(String, String)>, Vec<(i64, f64)>);

/// Every series matching `matchers` in a stopped fleetmon's store.
pub fn read_store(
    storage_dir: &Path,
    matchers: &[fleetmon::storage::Matcher],
) -> Vec<StoredSeries> {
    use fleetmon::storage::{Kv, Storage, StorageOptions};
    let kv = Kv::open(storage_dir).expect("open kv");
    let (storage, _) = Storage::open(&kv, storage_dir, StorageOptions::default()).expect("open");
    storage
        .select(matchers, i64::MIN, i64::MAX)
        .expect("select")
        .into_iter()
        .map(|series| {
            let samples = series.samples().expect("samples");
            (series.labels.pairs().to_vec(), samples)
        })
        .collect()
}

/// A sample as compared across stores: sorted labels, timestamp (ms) and
/// value bits, every NaN made the same NaN (Prometheus's API prints them
/// all as `NaN`, so their payloads cannot be compared through it).
pub type ComparableSample = (Vec<(String, String)>, i64, u64);

/// The value bits a sample is compared by (see [`ComparableSample`]).
pub fn comparable_bits(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

/// The labels of a Prometheus API result's `metric` object, sorted.
pub fn metric_labels(metric: &Value) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = metric
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    labels.sort();
    labels
}

/// Asks the Prometheus on `port` an instant `query` (at `time`, seconds, if
/// given); `None` while it does not answer.
pub async fn prometheus_query(port: u16, query: &str, time: Option<f64>) -> Option<Value> {
    let mut params = vec![("query", query.to_string())];
    if let Some(time) = time {
        params.push(("time", time.to_string()));
    }
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&params)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// Waits (at most a minute) until the Prometheus on `port` answers `query`
/// with a first value of at least `n`.
pub async fn prometheus_reaches(port: u16, query: &str, n: f64) {
    eventually(Duration::from_secs(60), query, || async {
        let body = prometheus_query(port, query, None).await?;
        let value = prom_value(body["data"]["result"][0]["value"][1].as_str()?);
        (value >= n).then_some(())
    })
    .await;
}

/// The samples of a range-vector answer (`resultType: matrix`).
pub fn matrix_samples(body: &Value) -> BTreeSet<ComparableSample> {
    let mut out = BTreeSet::new();
    for series in body["data"]["result"].as_array().into_iter().flatten() {
        let labels = metric_labels(&series["metric"]);
        for point in series["values"].as_array().into_iter().flatten() {
            let t = (point[0].as_f64().unwrap_or_default() * 1000.0).round() as i64;
            let v = prom_value(point[1].as_str().unwrap_or("NaN"));
            out.insert((labels.clone(), t, comparable_bits(v)));
        }
    }
    out
}

/// The real promtool, from Debian's `prometheus` package.
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// Backfills the OpenMetrics `file` into Prometheus blocks under `blocks`
/// with `promtool tsdb create-blocks-from openmetrics`.
pub fn promtool_backfill(file: &Path, blocks: &Path) {
    let out = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(file)
        .arg(blocks)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
