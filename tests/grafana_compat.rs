//! Grafana's Prometheus datasource against the real binary over loopback.
//! The requests Grafana sends (`grafana-compat.md` in the shared reference,
//! §1) are replayed as its backend sends them (Go's `url.Values` encoding:
//! keys sorted, `+` for spaces) and as its browser sends resource calls,
//! and the checklist "Grafana must not notice" (§6, points 1–12) and the
//! corrections checked against Prometheus 2.42 (§7, points 1–8) are
//! asserted point by point; each block names its point.
//!
//! What the real Prometheus 2.42 answers was checked by replaying the same
//! requests against `/usr/bin/prometheus`; where fleetmon follows a newer
//! Prometheus instead (`limit`, `infos`), the comment says so.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{eventually, go_form, go_seconds, metrics_target, now_ms, start_scraping};
use common::{Client, Fleetmon};
use serde_json::{json, Value};

/// The scrape target: counters with a label value holding a space, a gauge
/// (whose `rate` is noted as "might not be a counter"), and the special
/// values NaN and ±Inf.
const METRICS: &str = "\
# HELP demo_requests_total Requests served.
# TYPE demo_requests_total counter
demo_requests_total{code=\"200\",handler=\"GET /api\"} 10
demo_requests_total{code=\"500\",handler=\"GET /api\"} 2
# HELP demo_temperature_celsius Cabin temperature.
# TYPE demo_temperature_celsius gauge
demo_temperature_celsius{sensor=\"a\"} 21.5
# TYPE demo_special gauge
demo_special{kind=\"nan\"} NaN
demo_special{kind=\"pos\"} +Inf
demo_special{kind=\"neg\"} -Inf
";

/// The demo metric names, sorted.
const DEMO_NAMES: [&str; 3] = [
    "demo_requests_total",
    "demo_special",
    "demo_temperature_celsius",
];

/// An HTTP answer: status, `Content-Type`, the body as text and as JSON
/// (Null when it is not JSON).
struct Answer {
    status: u16,
    content_type: String,
    text: String,
    json: Value,
}

impl Answer {
    fn of(status: u16, headers: &reqwest::header::HeaderMap, text: String) -> Answer {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            text,
            json,
        }
    }

    /// A 200 `success` answer; returns its `data`.
    fn data(&self, what: &str) -> &Value {
        assert_eq!(self.status, 200, "{what}: {}", self.text);
        assert_eq!(self.json["status"], "success", "{what}: {}", self.text);
        notes_are_arrays_or_absent(&self.json, what);
        &self.json["data"]
    }

    /// An error in Prometheus's shape with this HTTP status and
    /// `errorType`; returns the message.
    fn error(&self, status: u16, error_type: &str, what: &str) -> &str {
        assert_eq!(self.status, status, "{what}: {}", self.text);
        assert_eq!(self.json["status"], "error", "{what}: {}", self.text);
        assert_eq!(self.json["errorType"], error_type, "{what}: {}", self.text);
        assert!(
            self.content_type.starts_with("application/json"),
            "{what}: {}",
            self.content_type
        );
        assert!(self.json.get("data").is_none(), "{what}: {}", self.text);
        self.json["error"].as_str().expect("an error message")
    }

    /// The strings of a list answer (`labels`, `label/…/values`).
    fn strings(&self, what: &str) -> Vec<String> {
        self.data(what)
            .as_array()
            .unwrap_or_else(|| panic!("{what}: a list: {}", self.text))
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect()
    }
}

/// §7.7: `warnings` and `infos` are arrays of strings, or absent; never
/// null nor anything else (Grafana's streaming reader stops there).
fn notes_are_arrays_or_absent(body: &Value, what: &str) {
    for key in ["warnings", "infos"] {
        if let Some(notes) = body.get(key) {
            let list = notes
                .as_array()
                .unwrap_or_else(|| panic!("{what}: {key} is not an array: {body}"));
            assert!(list.iter().all(Value::is_string), "{what}: {body}");
        }
    }
}

/// fleetmon scraping [`METRICS`], and Grafana's datasource talking to it
/// with basic auth.
struct Grafana {
    _dir: tempfile::TempDir,
    server: Fleetmon,
    client: Client,
    /// A query time (Unix ms) two seconds in the past with three scrapes
    /// before it: every scrape up to it is complete, so answers at it do
    /// not change while a test runs.
    t_ms: i64,
}

impl Grafana {
    async fn start() -> Grafana {
        let (dir, server) = start_scraping(&metrics_target(METRICS).await, &[]).await;
        let client = Client::admin();
        let t_ms = eventually(Duration::from_secs(30), "three scrapes", || async {
            let t_ms = now_ms() - 2_000;
            let (_, body) = client
                .get(&server.url(&format!(
                    "/api/v1/query?query=count_over_time(up%5B1m%5D)&time={}",
                    go_seconds(t_ms)
                )))
                .await;
            let count = body["data"]["result"][0]["value"][1].as_str()?;
            (count.parse::<f64>().ok()? >= 3.0).then_some(t_ms)
        })
        .await;
        Grafana {
            _dir: dir,
            server,
            client,
            t_ms,
        }
    }

    /// The query time as Grafana sends an instant query's `time`: the
    /// unaligned `to`, in seconds with milliseconds.
    fn t(&self) -> String {
        go_seconds(self.t_ms)
    }

    /// A resource call's `start` and `end` as Grafana's browser sends them:
    /// whole seconds, snapped to the minute (cache level "Low"), the last
    /// hour.
    fn resource_range(&self) -> (String, String) {
        let end = self.t_ms.div_euclid(1000);
        let start = (end - 3600).div_euclid(60) * 60;
        let end = (end + 59).div_euclid(60) * 60;
        (start.to_string(), end.to_string())
    }

    /// GET with `params` in the query string, encoded as promlib encodes
    /// them.
    async fn get(&self, path: &str, params: &Params<'_>) -> Answer {
        self.get_raw(&format!("{path}?{}", go_form(params))).await
    }

    /// GET of a path and query string written by hand (the browser's
    /// `encodeURIComponent` pairs).
    async fn get_raw(&self, path_and_query: &str) -> Answer {
        let (status, headers, text) = self
            .client
            .get_text(&self.server.url(path_and_query), None)
            .await;
        Answer::of(status, &headers, text)
    }

    /// A form POST as promlib sends it: the parameters Go-encoded in the
    /// body, nothing in the query string.
    async fn post(&self, path: &str, params: &Params<'_>) -> Answer {
        self.post_raw(path, Some(FORM), &go_form(params)).await
    }

    /// A POST of `body` (with `content_type`, if any) to a path and query
    /// string written by hand.
    async fn post_raw(
        &self,
        path_and_query: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Answer {
        let (status, headers, text) = self
            .client
            .post_raw(&self.server.url(path_and_query), content_type, body)
            .await;
        Answer::of(status, &headers, text)
    }

    fn stop(self) {
        assert!(self.server.stop().success());
    }
}

/// Request parameters, in order.
type Params<'a> = [(&'a str, &'a str)];

/// The form content type Go's client sets.
const FORM: &str = "application/x-www-form-urlencoded";

/// The labels of each series of a `series` answer, sorted.
fn series_set(answer: &Answer, what: &str) -> BTreeSet<Vec<(String, String)>> {
    answer
        .data(what)
        .as_array()
        .unwrap_or_else(|| panic!("{what}: a list: {}", answer.text))
        .iter()
        .map(common::metric_labels)
        .collect()
}

/// `code` → value of a vector answer grouped by `code`.
fn by_code(data: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = data["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|s| {
            (
                s["metric"]["code"].as_str().unwrap_or_default().to_string(),
                s["value"][1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn grafana_requests_are_served_by_get_and_post() {
    let g = Grafana::start().await;
    let t = g.t();
    let start = go_seconds(g.t_ms - 30_000);
    let (rstart, rend) = g.resource_range();
    let selector = "{handler=\"GET /api\"}";
    let range_query = "sum by (code) (demo_requests_total)";

    // The five endpoints Grafana may POST to, each with what it sends.
    let instant: &Params = &[
        ("query", "sum by (code) (demo_requests_total)"),
        ("time", &t),
        ("timeout", "60s"),
    ];
    let range: &Params = &[
        ("query", range_query),
        ("start", &start),
        ("end", &t),
        ("step", "1"),
        ("timeout", "60s"),
    ];
    let labels: &Params = &[
        ("match[]", selector),
        ("start", &rstart),
        ("end", &rend),
        ("limit", "40000"),
    ];
    let exemplars: &Params = &[
        ("query", "demo_requests_total"),
        ("start", &start),
        ("end", &t),
    ];
    let cases = [
        ("/api/v1/query", instant),
        ("/api/v1/query_range", range),
        ("/api/v1/labels", labels),
        ("/api/v1/series", labels),
        ("/api/v1/query_exemplars", exemplars),
    ];
    // Go's encoding, as on the wire: keys sorted, `+` for a space.
    assert_eq!(
        go_form(instant),
        format!("query=sum+by+%28code%29+%28demo_requests_total%29&time={t}&timeout=60s")
    );

    // §6.1: GET and form POST on query, query_range, labels, series and
    // query_exemplars give the same answer.
    for (path, params) in cases {
        let get = g.get(path, params).await;
        let post = g.post(path, params).await;
        get.data(path);
        post.data(path);
        assert_eq!(get.json, post.json, "{path}");
    }
    let answer = g.post("/api/v1/query", instant).await;
    assert_eq!(
        by_code(answer.data("query")),
        pairs(&[("200", "10"), ("500", "2")])
    );
    let answer = g.post("/api/v1/query_range", range).await;
    let matrix = answer.data("query_range")["result"]
        .as_array()
        .expect("a matrix");
    assert_eq!(matrix.len(), 2, "{}", answer.text);
    assert!(matrix
        .iter()
        .all(|s| s["values"].as_array().is_some_and(|v| !v.is_empty())));
    // `+` in the body is a space: the selector's `GET /api` matched.
    let answer = g.post("/api/v1/labels", labels).await;
    assert_eq!(
        answer.strings("labels"),
        ["__name__", "code", "handler", "instance", "job"]
    );
    let answer = g.post("/api/v1/series", labels).await;
    assert_eq!(series_set(&answer, "series").len(), 2, "{}", answer.text);
    let answer = g.post("/api/v1/query_exemplars", exemplars).await;
    assert_eq!(answer.data("query_exemplars"), &json!([]));
    // The browser's own POST (resource calls: `URLSearchParams`) names the
    // charset.
    let browser = g
        .post_raw(
            "/api/v1/labels",
            Some("application/x-www-form-urlencoded;charset=UTF-8"),
            &go_form(labels),
        )
        .await;
    assert_eq!(browser.json, answer_of(&g, "/api/v1/labels", labels).await);

    // §6.2: GET on label values, metadata, rules, alerts and buildinfo.
    let answer = g
        .get(
            "/api/v1/label/code/values",
            &[("start", &rstart), ("end", &rend)],
        )
        .await;
    assert_eq!(answer.strings("label values"), ["200", "500"]);
    let answer = g.get("/api/v1/metadata", &[]).await;
    assert_eq!(
        answer.data("metadata")["demo_requests_total"],
        json!([{"type": "counter", "help": "Requests served.", "unit": ""}])
    );
    let answer = g.get("/api/v1/rules", &[]).await;
    assert_eq!(answer.data("rules"), &json!({"groups": []}));
    let answer = g.get("/api/v1/alerts", &[]).await;
    assert_eq!(answer.data("alerts"), &json!({"alerts": []}));
    let answer = g.get("/api/v1/status/buildinfo", &[]).await;
    assert!(answer.data("buildinfo")["version"].is_string());

    // §7.1: a POST to a GET-only endpoint (some Grafana revisions try an
    // empty POST first) is 405, as in Prometheus 2.42, never 404; the GET
    // retry is served.
    for path in [
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/status/buildinfo",
        "/api/v1/targets",
        "/api/v1/targets/metadata",
        "/api/v1/metadata",
        "/api/v1/label/code/values",
        "/api/v1/status/config",
        "/api/v1/status/flags",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/tsdb",
        "/api/v1/status/walreplay",
    ] {
        let post = g.post_raw(path, None, "").await;
        assert_eq!(post.status, 405, "POST {path}: {}", post.text);
        let post = g.post_raw(path, Some(FORM), "").await;
        assert_eq!(post.status, 405, "form POST {path}: {}", post.text);
        g.get(path, &[]).await.data(path);
    }

    // §7.2: a POST with the parameters only in the URL and an empty body
    // (promlib forwarding a browser GET), with or without a form content
    // type, answers as the GET does.
    for (path, params) in cases {
        let get = g.get(path, params).await;
        let url = format!("{path}?{}", go_form(params));
        for content_type in [None, Some(FORM)] {
            let post = g.post_raw(&url, content_type, "").await;
            post.data(path);
            assert_eq!(post.json, get.json, "{path} {content_type:?}");
        }
    }
    // Parameters split between the URL and the body are merged.
    let split = g
        .post_raw(
            &format!("/api/v1/query_range?{}", go_form(&range[..2])),
            Some(FORM),
            &go_form(&range[2..]),
        )
        .await;
    assert_eq!(
        split.json,
        answer_of(&g, "/api/v1/query_range", range).await
    );
    // A key in both is read from the body, as Go's `Request.Form` orders
    // them (Prometheus 2.42: `POST /api/v1/query?query=1` with the body
    // `query=2&time=4` answers 2).
    let both = g
        .post_raw("/api/v1/query?query=1", Some(FORM), "query=2&time=4")
        .await;
    assert_eq!(both.data("query")["result"], json!([4, "2"]));
    let both = g
        .post_raw(
            "/api/v1/labels?match%5B%5D=demo_temperature_celsius",
            Some(FORM),
            &go_form(&[("match[]", "demo_requests_total")]),
        )
        .await;
    // `match[]` repeats: both selectors count.
    assert!(both.strings("labels").contains(&"sensor".to_string()));
    assert!(both.strings("labels").contains(&"code".to_string()));

    // §6.3: 400 and 405 only when really needed (either makes Grafana
    // retry with GET). Every request above was answered 200. A POST whose
    // body is not a form (Go ignores it) is served from its URL.
    for content_type in ["application/json", "text/plain"] {
        let post = g
            .post_raw(
                &format!("/api/v1/query?{}", go_form(instant)),
                Some(content_type),
                "{}",
            )
            .await;
        assert_eq!(
            by_code(post.data(content_type)),
            pairs(&[("200", "10"), ("500", "2")])
        );
    }
    // A request Prometheus refuses is refused the same, by GET and POST:
    // no `query`, no `match[]` on series.
    for (path, params) in [
        ("/api/v1/query", &[("time", "4")][..]),
        ("/api/v1/series", &[("start", "0")][..]),
    ] {
        g.get(path, params).await.error(400, "bad_data", path);
        g.post(path, params).await.error(400, "bad_data", path);
    }
    g.stop();
}

/// The JSON of a GET with `params`, checked to be a success.
async fn answer_of(g: &Grafana, path: &str, params: &Params<'_>) -> Value {
    let answer = g.get(path, params).await;
    answer.data(path);
    answer.json
}

#[tokio::test]
async fn grafana_parameters_are_read_as_prometheus_reads_them() {
    let g = Grafana::start().await;
    let t = g.t();
    let start = go_seconds(g.t_ms - 30_000);
    let (rstart, rend) = g.resource_range();
    let query = "sum by (code) (demo_requests_total)";

    // §6.4 `timeout`: Grafana's `queryTimeout` (default `60s`) or the
    // hard-coded `2m`, on instant and range queries, by GET and POST.
    for timeout in ["60s", "2m", "1m30s", "30"] {
        let params = [("query", query), ("time", t.as_str()), ("timeout", timeout)];
        for answer in [
            g.get("/api/v1/query", &params).await,
            g.post("/api/v1/query", &params).await,
        ] {
            assert_eq!(
                by_code(answer.data(timeout)),
                pairs(&[("200", "10"), ("500", "2")])
            );
        }
        let params = [
            ("query", query),
            ("start", start.as_str()),
            ("end", t.as_str()),
            ("step", "15"),
            ("timeout", timeout),
        ];
        g.post("/api/v1/query_range", &params).await.data(timeout);
    }
    // Not a duration: 400, as in Prometheus 2.42 (its durations have no
    // `ns`: `1ns` is refused too).
    for timeout in ["soon", "1ns"] {
        g.get("/api/v1/query", &[("query", "1"), ("timeout", timeout)])
            .await
            .error(400, "bad_data", timeout);
    }

    // §6.4 `limit`: Grafana's `limit=40000` cuts nothing. (Prometheus
    // 2.42 ignores `limit`; fleetmon applies it as Prometheus 2.49+ does,
    // with the "results truncated due to limit" warning when it cuts.)
    let range = [("start", rstart.as_str()), ("end", rend.as_str())];
    let limited = [range[0], range[1], ("limit", "40000")];
    for path in ["/api/v1/labels", "/api/v1/label/__name__/values"] {
        let all = g.get(path, &range).await;
        let answer = g.get(path, &limited).await;
        assert_eq!(answer.json, all.json, "{path}");
        assert!(answer.json.get("warnings").is_none(), "{}", answer.text);
        let cut = g.get(path, &[range[0], range[1], ("limit", "1")]).await;
        assert_eq!(cut.strings(path), all.strings(path)[..1]);
        assert_eq!(
            cut.json["warnings"],
            json!(["results truncated due to limit"])
        );
    }
    let every = [("match[]", "{__name__!=\"\"}"), range[0], range[1]];
    let all = g.get("/api/v1/series", &every).await;
    let limited_series = g
        .get(
            "/api/v1/series",
            &[every[0], every[1], every[2], ("limit", "40000")],
        )
        .await;
    assert_eq!(limited_series.json, all.json);
    let all = g.get("/api/v1/metadata", &[]).await;
    let answer = g.get("/api/v1/metadata", &[("limit", "40000")]).await;
    assert_eq!(answer.json, all.json);

    // §6.4 repeated `match[]`: the union of the selectors.
    let two = [
        ("match[]", "demo_requests_total"),
        ("match[]", "demo_temperature_celsius"),
        range[0],
        range[1],
    ];
    for answer in [
        g.get("/api/v1/labels", &two).await,
        g.post("/api/v1/labels", &two).await,
    ] {
        assert_eq!(
            answer.strings("labels"),
            ["__name__", "code", "handler", "instance", "job", "sensor"]
        );
    }
    let answer = g.post("/api/v1/series", &two).await;
    assert_eq!(series_set(&answer, "series").len(), 3, "{}", answer.text);
    let answer = g.get("/api/v1/label/__name__/values", &two).await;
    assert_eq!(
        answer.strings("names"),
        ["demo_requests_total", "demo_temperature_celsius"]
    );

    // §6.4 duplicate keys: a scalar parameter is read from its first value.
    let answer = g
        .get_raw("/api/v1/query?query=1&query=2&time=4&time=5")
        .await;
    assert_eq!(answer.data("query")["result"], json!([4, "1"]));
    // promlib's GET retry adds the body's parameters to the URL's
    // (`url.Values.Add`), so each key can come twice.
    let once = [
        ("query", query),
        ("start", start.as_str()),
        ("end", t.as_str()),
        ("step", "15"),
    ];
    let twice: Vec<(&str, &str)> = once.iter().chain(once.iter()).copied().collect();
    assert_eq!(
        g.get("/api/v1/query_range", &twice).await.json,
        answer_of(&g, "/api/v1/query_range", &once).await
    );

    // §6.4 and §6.12 the exemplar probe: milliseconds read as seconds, far
    // ahead; `success` with an empty list, by GET and by POST.
    let probe = [
        ("query", "test"),
        ("start", "1700000000000"),
        ("end", "1700000600000"),
    ];
    let answer = g
        .get_raw("/api/v1/query_exemplars?query=test&start=1700000000000&end=1700000600000")
        .await;
    assert_eq!(answer.json, json!({"status": "success", "data": []}));
    let answer = g.post("/api/v1/query_exemplars", &probe).await;
    assert_eq!(answer.json, json!({"status": "success", "data": []}));
    // What Prometheus 2.42 refuses there, fleetmon refuses too: a bad time,
    // an end before the start, no query.
    for bad in [
        "query=up&start=abc",
        "query=up&start=5&end=4",
        "start=5&end=6",
        "query=sum(",
    ] {
        g.get_raw(&format!("/api/v1/query_exemplars?{bad}"))
            .await
            .error(400, "bad_data", bad);
    }

    // §6.5 unknown parameters are ignored: the alerting UI's rule filters
    // (Prometheus's, Mimir's and Grafana's own names) on rules and alerts,
    // and anything else on a query.
    let filters = [
        ("file[]", "fleet.yml"),
        ("group[]", "cars"),
        ("rule[]", "CarOffline"),
        ("rule_group[]", "cars"),
        ("rule_name[]", "CarOffline"),
        ("file", "fleet.yml"),
        ("rule_group", "cars"),
        ("rule_name", "CarOffline"),
        ("exclude_alerts", "true"),
        ("group_limit", "40"),
        ("group_next_token", "abc"),
    ];
    // (`type` is a Prometheus parameter: `alert` or `record`. Prometheus
    // 2.42 refuses any other value with 400; fleetmon ignores it.)
    for kind in ["alert", "record"] {
        let mut params = filters.to_vec();
        params.push(("type", kind));
        let answer = g.get("/api/v1/rules", &params).await;
        assert_eq!(answer.data("rules"), &json!({"groups": []}));
        let answer = g.get("/api/v1/alerts", &params).await;
        assert_eq!(answer.data("alerts"), &json!({"alerts": []}));
    }
    let plain = [("query", query), ("time", t.as_str())];
    let mut noisy = plain.to_vec();
    noisy.extend([
        ("group[]", "x"),
        ("rule[]", "y"),
        ("foo", "bar"),
        ("type", "z"),
    ]);
    assert_eq!(
        g.post("/api/v1/query", &noisy).await.json,
        answer_of(&g, "/api/v1/query", &plain).await
    );
    let mut noisy = range.to_vec();
    noisy.extend([("group_limit", "1"), ("file[]", "x")]);
    assert_eq!(
        g.get("/api/v1/labels", &noisy).await.json,
        answer_of(&g, "/api/v1/labels", &range).await
    );
    g.stop();
}

#[tokio::test]
async fn answers_have_prometheus_shapes() {
    let g = Grafana::start().await;
    let t = g.t();

    // §6.6 and §7.8: the health check, `1+1` at `time=4`, is the scalar
    // `[4,"2"]`, by GET and by POST, with or without `timeout`.
    let health = json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}});
    for params in [
        &[("query", "1+1"), ("time", "4")][..],
        &[("query", "1+1"), ("time", "4"), ("timeout", "60s")][..],
    ] {
        for answer in [
            g.get("/api/v1/query", params).await,
            g.post("/api/v1/query", params).await,
        ] {
            assert_eq!(answer.json, health, "{}", answer.text);
            // The time is the JSON number 4, not `4.0` nor `"4"`.
            assert!(
                answer.text.contains(r#""result":[4,"2"]"#),
                "{}",
                answer.text
            );
        }
    }

    // §6.7: sample values are strings, `NaN`, `+Inf` and `-Inf` included:
    // stored ones and computed ones, in vectors, matrices and scalars.
    let answer = g
        .get("/api/v1/query", &[("query", "demo_special"), ("time", &t)])
        .await;
    let mut special: Vec<(String, Value)> = answer.data("demo_special")["result"]
        .as_array()
        .expect("a vector")
        .iter()
        .map(|s| {
            (
                s["metric"]["kind"].as_str().unwrap_or_default().to_string(),
                s["value"][1].clone(),
            )
        })
        .collect();
    special.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        special,
        [
            ("nan".to_string(), json!("NaN")),
            ("neg".to_string(), json!("-Inf")),
            ("pos".to_string(), json!("+Inf")),
        ]
    );
    let answer = g
        .get(
            "/api/v1/query_range",
            &[
                ("query", "demo_special"),
                ("start", &go_seconds(g.t_ms - 1_000)),
                ("end", &t),
                ("step", "1"),
            ],
        )
        .await;
    let values: BTreeSet<&str> = answer.data("matrix")["result"]
        .as_array()
        .expect("a matrix")
        .iter()
        .flat_map(|s| s["values"].as_array().into_iter().flatten())
        .map(|p| p[1].as_str().expect("a string value"))
        .collect();
    assert_eq!(values, BTreeSet::from(["+Inf", "-Inf", "NaN"]));
    for (query, value) in [
        ("NaN", "NaN"),
        ("1/0", "+Inf"),
        ("-1/0", "-Inf"),
        ("0.1+0.2", "0.30000000000000004"),
    ] {
        let answer = g
            .get("/api/v1/query", &[("query", query), ("time", "4")])
            .await;
        assert_eq!(answer.data(query)["result"], json!([4, value]));
    }
    // Times are JSON numbers in seconds: Grafana's unaligned instant
    // `time` comes back to the millisecond, whole seconds without a
    // fraction, a 0.5 s step as halves. (Prometheus 2.42 writes vector and
    // matrix times with exactly three decimals, `.780`, and scalars in the
    // shortest form, `.78`; fleetmon writes the shortest form for both:
    // the same JSON numbers.)
    let answer = g
        .get(
            "/api/v1/query",
            &[("query", "vector(1)"), ("time", "1700000000.123")],
        )
        .await;
    assert_eq!(
        answer.data("vector")["result"],
        json!([{"metric": {}, "value": [1700000000.123, "1"]}])
    );
    assert!(
        answer.text.contains("[1700000000.123,\"1\"]"),
        "{}",
        answer.text
    );
    let answer = g
        .get(
            "/api/v1/query",
            &[("query", "demo_requests_total"), ("time", &t)],
        )
        .await;
    for sample in answer.data("vector")["result"]
        .as_array()
        .expect("a vector")
    {
        let time = sample["value"][0].as_f64().expect("a number");
        assert_eq!((time * 1000.0).round() as i64, g.t_ms, "{sample}");
    }
    let answer = g
        .get(
            "/api/v1/query_range",
            &[
                ("query", "vector(1)"),
                ("start", "1700000000"),
                ("end", "1700000001"),
                ("step", "0.5"),
            ],
        )
        .await;
    assert_eq!(
        answer.data("steps")["result"],
        json!([{"metric": {}, "values": [[1700000000, "1"], [1700000000.5, "1"], [1700000001, "1"]]}])
    );
    assert!(
        answer.text.contains("[[1700000000,\"1\"],"),
        "{}",
        answer.text
    );

    // §6.9 and §7.8: buildinfo has Prometheus's six fields and no
    // `features` (with it, Grafana's UI takes the server for a Mimir).
    let answer = g.get("/api/v1/status/buildinfo", &[]).await;
    let info = answer.data("buildinfo").as_object().expect("an object");
    let keys: BTreeSet<&str> = info.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "branch",
            "buildDate",
            "buildUser",
            "goVersion",
            "revision",
            "version"
        ])
    );
    assert!(info.values().all(Value::is_string), "{}", answer.text);
    assert!(!info["version"].as_str().unwrap_or_default().is_empty());

    // §6.12: rules answer `data.groups`, an array, whatever the filter;
    // the exemplar probe answers `success`.
    for query in ["", "?type=record", "?type=alert&exclude_alerts=true"] {
        let answer = g.get_raw(&format!("/api/v1/rules{query}")).await;
        assert!(answer.data("rules")["groups"].is_array(), "{}", answer.text);
    }
    let answer = g
        .get_raw("/api/v1/query_exemplars?query=test&start=1700000000000&end=1700000600000")
        .await;
    assert_eq!(answer.json["status"], "success");

    // §7.7: `warnings` and `infos` are arrays or absent, never null. An
    // answer with an info (`rate` over a gauge's name: Prometheus 3's
    // annotation; 2.42 had none) and answers without.
    let rate_of = |metric: &str| format!("rate({metric}[1m0s])");
    let gauge = rate_of("demo_temperature_celsius");
    let counter = rate_of("demo_requests_total");
    let info = "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"demo_temperature_celsius\"";
    for answer in [
        g.get("/api/v1/query", &[("query", &gauge), ("time", &t)])
            .await,
        g.post(
            "/api/v1/query_range",
            &[
                ("query", &gauge),
                ("start", &go_seconds(g.t_ms - 10_000)),
                ("end", &t),
                ("step", "1"),
            ],
        )
        .await,
    ] {
        answer.data(&gauge);
        let infos = answer.json["infos"].as_array().expect("infos");
        assert_eq!(infos.len(), 1, "{}", answer.text);
        assert!(
            infos[0].as_str().unwrap_or_default().starts_with(info),
            "{}",
            answer.text
        );
        assert!(answer.json.get("warnings").is_none(), "{}", answer.text);
    }
    let answer = g
        .get("/api/v1/query", &[("query", &counter), ("time", &t)])
        .await;
    assert_eq!(
        answer.data(&counter)["result"].as_array().map(Vec::len),
        Some(2),
        "{}",
        answer.text
    );
    for answer in [
        answer,
        g.get("/api/v1/labels", &[]).await,
        g.get("/api/v1/series", &[("match[]", "up")]).await,
        g.get("/api/v1/label/job/values", &[]).await,
    ] {
        answer.data("no notes");
        assert!(answer.json.get("infos").is_none(), "{}", answer.text);
        assert!(answer.json.get("warnings").is_none(), "{}", answer.text);
    }
    g.stop();
}

#[tokio::test]
async fn errors_limits_and_durations_are_prometheus_ones() {
    let g = Grafana::start().await;
    let t = g.t();

    // §6.8 and §7.4: errors are `status: "error"` with Prometheus's
    // errorType and HTTP status, in JSON (Grafana reads the body of a 400,
    // 422 and 503), by GET and by POST alike.
    let many_to_many = "demo_requests_total + on(job) demo_requests_total";
    let cases: [(&Params, u16, &str, &str); 5] = [
        // A parse error.
        (
            &[("query", "sum(")],
            400,
            "bad_data",
            "unclosed left parenthesis",
        ),
        // A bad parameter.
        (
            &[("query", "up"), ("time", "yesterday")],
            400,
            "bad_data",
            "invalid parameter \"time\"",
        ),
        (
            &[("query", "up"), ("timeout", "soon")],
            400,
            "bad_data",
            "invalid parameter \"timeout\"",
        ),
        // Two series on each side share `job`: many-to-many.
        (
            &[("query", many_to_many), ("time", &t)],
            422,
            "execution",
            "many-to-many matching not allowed",
        ),
        // Timed out. Prometheus 2.42 answers `timeout=0s` (or any timeout
        // already over when the query starts) with 503 "query timed out in
        // query queue"; fleetmon checks the deadline at every node and
        // series of the evaluation, so a zero timeout times out at the
        // first check after the clock moves, and this query has several.
        // (`1ns`, the smallest Go duration, is a 400 in both: see the
        // parameters test.)
        (
            &[
                (
                    "query",
                    "sum(rate(demo_requests_total[1m0s])) + sum(demo_requests_total)",
                ),
                ("time", &t),
                ("timeout", "0s"),
            ],
            503,
            "timeout",
            "timed out",
        ),
    ];
    for (params, status, error_type, message) in cases {
        for answer in [
            g.get("/api/v1/query", params).await,
            g.post("/api/v1/query", params).await,
        ] {
            let error = answer.error(status, error_type, message);
            assert!(error.contains(message), "{error}");
        }
    }
    let range_errors: [(&Params, &str); 3] = [
        (
            &[("query", "up"), ("start", "2"), ("end", "1"), ("step", "1")],
            "end",
        ),
        (
            &[("query", "up"), ("start", "1"), ("end", "2"), ("step", "0")],
            "step",
        ),
        (&[("query", "up"), ("start", "1"), ("end", "2")], "step"),
    ];
    for (params, name) in range_errors {
        let answer = g.post("/api/v1/query_range", params).await;
        let error = answer.error(400, "bad_data", name);
        assert!(
            error.contains(&format!("invalid parameter \"{name}\"")),
            "{error}"
        );
    }

    // §6.10 and §7.5: at most 11,000 points per series, counted as
    // Prometheus counts them, `(end - start) / step`: 11,000 steps (11,001
    // points) pass, 11,001 steps do not. Grafana's step ladder can ask for
    // more when `maxDataPoints` is above 11,000 (1 s over 12,000 s).
    let answer = ones(&g, "0", "11000", "1").await;
    let values = &answer.data("11,000 steps")["result"][0]["values"];
    assert_eq!(values.as_array().map(Vec::len), Some(11_001));
    for (start, end, step) in [
        ("0", "11001", "1"),
        ("0", "5500.5", "0.5"),
        ("1700000000", "1700012000", "1"),
    ] {
        let answer = ones(&g, start, end, step).await;
        let error = answer.error(400, "bad_data", end);
        assert_eq!(
            error,
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
        );
    }
    // Grafana's safe interval for 30 days (`range / 11000` → 5m) stays under.
    let answer = ones(&g, "1700000000", "1702592000", "300").await;
    let values = &answer.data("30 days")["result"][0]["values"];
    assert_eq!(values.as_array().map(Vec::len), Some(8_641));

    // §6.11: the compound durations Go prints for `$__rate_interval`
    // (`1m0s`, `1m15s`, `2h0m0s`, `4m0s`, `500ms`) are read in PromQL
    // ranges and subqueries as their short forms are.
    for (compound, short) in [
        (
            "rate(demo_requests_total[1m0s])",
            "rate(demo_requests_total[1m])",
        ),
        (
            "rate(demo_requests_total[1m15s])",
            "rate(demo_requests_total[75s])",
        ),
        (
            "rate(demo_requests_total[2h0m0s])",
            "rate(demo_requests_total[2h])",
        ),
        (
            "increase(demo_requests_total[4m0s])",
            "increase(demo_requests_total[240s])",
        ),
        (
            "max_over_time(demo_requests_total[5m0s:1m0s])",
            "max_over_time(demo_requests_total[5m:1m])",
        ),
    ] {
        let a = g
            .post("/api/v1/query", &[("query", compound), ("time", &t)])
            .await;
        let b = g
            .post("/api/v1/query", &[("query", short), ("time", &t)])
            .await;
        a.data(compound);
        assert_eq!(a.json, b.json, "{compound}");
    }
    let answer = g
        .post("/api/v1/query", &[("query", "up[500ms]"), ("time", &t)])
        .await;
    assert_eq!(answer.data("500ms")["resultType"], "matrix");
    let answer = g
        .post(
            "/api/v1/query",
            &[("query", "rate(demo_requests_total[1m0s])"), ("time", &t)],
        )
        .await;
    assert_eq!(
        by_code(answer.data("rate")),
        pairs(&[("200", "0"), ("500", "0")])
    );
    // … and as `step`, with the float seconds Grafana's backend sends
    // (`0.5`, `15`): the steps Prometheus 2.42 gives over one minute.
    for (step, points) in [
        ("0.5", 121),
        ("15", 5),
        ("15s", 5),
        ("1m0s", 2),
        ("60", 2),
        ("1m15s", 1),
        ("2h0m0s", 1),
        ("500ms", 121),
    ] {
        let values = one_minute_at(&g, step).await.data(step)["result"][0]["values"]
            .as_array()
            .expect("values")
            .clone();
        assert_eq!(values.len(), points, "{step}");
        if points > 1 {
            let gap = values[1][0].as_f64().unwrap_or_default()
                - values[0][0].as_f64().unwrap_or_default();
            let want = match step {
                "0.5" | "500ms" => 0.5,
                "15" | "15s" => 15.0,
                _ => 60.0,
            };
            assert_eq!(gap, want, "{step}");
        }
    }

    // §7.6: fractional Go durations (`1m0.5s`, `2.5s`) are refused with
    // 400, in PromQL and as `step`, as Prometheus 2.42 refuses them.
    for query in [
        "rate(demo_requests_total[1m0.5s])",
        "rate(demo_requests_total[2.5s])",
        "rate(demo_requests_total[1h0m0.5s])",
    ] {
        g.post("/api/v1/query", &[("query", query), ("time", &t)])
            .await
            .error(400, "bad_data", query);
    }
    for step in ["1m0.5s", "2.5s"] {
        let answer = one_minute_at(&g, step).await;
        let error = answer.error(400, "bad_data", step);
        assert!(error.contains("invalid parameter \"step\""), "{error}");
    }
    g.stop();
}

/// `vector(1)` from `start` to `end` at `step`, as a range query.
async fn ones(g: &Grafana, start: &str, end: &str, step: &str) -> Answer {
    g.post(
        "/api/v1/query_range",
        &[
            ("query", "vector(1)"),
            ("start", start),
            ("end", end),
            ("step", step),
        ],
    )
    .await
}

/// `vector(1)` over one minute at `step`, as a range query.
async fn one_minute_at(g: &Grafana, step: &str) -> Answer {
    ones(g, "1700000000", "1700000060", step).await
}

#[tokio::test]
async fn template_variable_queries_are_answered() {
    let g = Grafana::start().await;
    let (start, end) = g.resource_range();
    let range = format!("start={start}&end={end}");
    let every_name = |names: &[String]| {
        DEMO_NAMES.iter().all(|n| names.contains(&n.to_string()))
            && names.contains(&"up".to_string())
    };

    // Metric names: `/api/v1/label/__name__/values?limit=40000&start&end`,
    // as the browser's `encodeURIComponent` writes it.
    let all = g
        .get_raw(&format!(
            "/api/v1/label/__name__/values?limit=40000&{range}"
        ))
        .await;
    let names = all.strings("metric names");
    assert!(every_name(&names), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(all.json.get("warnings").is_none(), "{}", all.text);

    // `metrics(demo_.*)` with `match[]`, and (§7.3) without, filtered in
    // the browser: the same names.
    let matched = g
        .get_raw(&format!(
            "/api/v1/label/__name__/values?match%5B%5D=%7B__name__%3D~%22demo_.*%22%7D&{range}"
        ))
        .await;
    assert_eq!(matched.strings("metrics(re)"), DEMO_NAMES);
    let filtered: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("demo_"))
        .cloned()
        .collect();
    assert_eq!(filtered, DEMO_NAMES);

    // `label_names()` and `label_names(requests)` (`__name__` dropped by
    // Grafana).
    let answer = g.get_raw(&format!("/api/v1/labels?{range}")).await;
    let labels = answer.strings("label_names()");
    for label in [
        "__name__", "code", "handler", "instance", "job", "kind", "sensor",
    ] {
        assert!(labels.contains(&label.to_string()), "{labels:?}");
    }
    let answer = g
        .get_raw(&format!(
            "/api/v1/labels?match%5B%5D=%7B__name__%3D~%22.*requests.*%22%7D&{range}"
        ))
        .await;
    assert_eq!(
        answer.strings("label_names(re)"),
        ["__name__", "code", "handler", "instance", "job"]
    );

    // `label_values(code)`, and `label_values(<selector>, <label>)` with
    // `match[]` (a label value with a space as `%20`).
    let answer = g
        .get_raw(&format!("/api/v1/label/code/values?{range}"))
        .await;
    assert_eq!(answer.strings("label_values(code)"), ["200", "500"]);
    let answer = g
        .get_raw(&format!(
            "/api/v1/label/code/values?match%5B%5D=demo_requests_total%7Bhandler%3D%22GET%20%2Fapi%22%7D&limit=40000&{range}"
        ))
        .await;
    assert_eq!(answer.strings("label_values(sel, code)"), ["200", "500"]);
    let answer = g
        .get_raw(&format!(
            "/api/v1/label/kind/values?match%5B%5D=%7B__name__%3D%22demo_special%22%2Ckind!%3D%22nan%22%7D&{range}"
        ))
        .await;
    assert_eq!(answer.strings("label_values(sel, kind)"), ["neg", "pos"]);
    // Ad hoc filter values: `{job="demo"}` from the other filters.
    let answer = g
        .get_raw(&format!(
            "/api/v1/label/sensor/values?match%5B%5D=%7Bjob%3D%22demo%22%7D&{range}"
        ))
        .await;
    assert_eq!(answer.strings("ad hoc values"), ["a"]);

    // The series-endpoint forms: every series with `{__name__!=""}` and
    // `limit=40000`, label values with `{<label>!=""}`, and a series
    // variable's own selector.
    let every = g
        .get_raw(&format!(
            "/api/v1/series?match%5B%5D=%7B__name__!%3D%22%22%7D&limit=40000&{range}"
        ))
        .await;
    let every = series_set(&every, "every series");
    let regex = g
        .get_raw(&format!(
            "/api/v1/series?match%5B%5D=%7B__name__%3D~%22.%2B%22%7D&{range}"
        ))
        .await;
    assert_eq!(every, series_set(&regex, "{__name__=~\".+\"}"));
    let names: BTreeSet<&str> = every
        .iter()
        .flat_map(|labels| labels.iter())
        .filter(|(k, _)| k == "__name__")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(DEMO_NAMES.iter().all(|n| names.contains(n)), "{names:?}");
    assert!(names.contains("up"), "{names:?}");
    let answer = g
        .get_raw(&format!(
            "/api/v1/series?match%5B%5D=%7Bsensor!%3D%22%22%7D&{range}"
        ))
        .await;
    assert_eq!(series_set(&answer, "{sensor!=\"\"}").len(), 1);
    let answer = g
        .get_raw(&format!(
            "/api/v1/series?match%5B%5D=demo_requests_total%7Bcode%3D%22500%22%7D&{range}"
        ))
        .await;
    let labels: Vec<String> = series_set(&answer, "series variable")
        .into_iter()
        .flat_map(|l| l.into_iter().map(|(k, _)| k))
        .collect();
    assert_eq!(labels, ["__name__", "code", "handler", "instance", "job"]);

    // `query_result(sum(demo_requests_total))`: an instant query at
    // `ceil(to)` whole seconds.
    let time = (g.t_ms + 999).div_euclid(1000).to_string();
    let answer = g
        .get(
            "/api/v1/query",
            &[("query", "sum(demo_requests_total)"), ("time", &time)],
        )
        .await;
    assert_eq!(answer.data("query_result")["result"][0]["value"][1], "12");

    // Label names that are not legacy names: Grafana escapes them in the
    // path as `U__…` (`my.label` → `U__my_2e_label`). Prometheus 2.42 does
    // not unescape that form (it reads `U__my_2e_label` as a plain label
    // name: 200 with no values), and neither does fleetmon, so nothing is
    // asserted of it here; only Prometheus 3 unescapes it.
    g.stop();
}
