//! Request instrumentation with the monitoring guide's metric names and
//! labels: `http_requests_total{method,endpoint,status_code}`,
//! `http_request_duration_seconds{method,endpoint}`,
//! `http_requests_in_progress{method,endpoint}`,
//! `http_request_size_bytes{method,endpoint}` and
//! `http_response_size_bytes{method,endpoint}`. `endpoint` is the route
//! template (`/api/1/vehicles/{tag}`); paths no route matches share the value
//! `none` and unusual methods the value `other`, so cardinality stays bounded.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use http_body::Body as _;

use crate::metrics::{CounterVec, GaugeVec, HistogramVec, Registry, SummaryVec, DEFAULT_BUCKETS};

/// The HTTP metric families.
pub struct HttpMetrics {
    requests: CounterVec,
    duration: HistogramVec,
    in_progress: GaugeVec,
    request_size: SummaryVec,
    response_size: SummaryVec,
}

impl HttpMetrics {
    /// Registers the families in `registry`.
    pub fn new(registry: &Registry) -> HttpMetrics {
        let labels = &["method", "endpoint"];
        HttpMetrics {
            requests: registry.counter(
                "http_requests",
                "Total number of HTTP requests by method, endpoint and status code.",
                &["method", "endpoint", "status_code"],
            ),
            duration: registry.histogram(
                "http_request_duration_seconds",
                "Time from receiving an HTTP request to sending its response headers, in seconds.",
                labels,
                &DEFAULT_BUCKETS,
            ),
            in_progress: registry.gauge(
                "http_requests_in_progress",
                "HTTP requests being served.",
                labels,
            ),
            request_size: registry.summary(
                "http_request_size_bytes",
                "Size of HTTP request bodies, in bytes (Content-Length, 0 when absent).",
                labels,
            ),
            response_size: registry.summary(
                "http_response_size_bytes",
                "Size of HTTP response bodies, in bytes (0 when streamed without a known length).",
                labels,
            ),
        }
    }
}

/// Decrements the in-progress gauge even when the request is cancelled.
struct InProgress(crate::metrics::Gauge);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware recording every request.
pub async fn instrument(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "none".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    let labels = [method, endpoint.as_str()];
    let gauge = metrics.in_progress.with(&labels);
    gauge.inc();
    let _in_progress = InProgress(gauge);
    metrics
        .request_size
        .with(&labels)
        .observe(content_length(request.headers()).unwrap_or(0) as f64);

    let response = next.run(request).await;

    let status = response.status().as_u16().to_string();
    metrics.requests.with(&[method, &endpoint, &status]).inc();
    metrics
        .duration
        .with(&labels)
        .observe(start.elapsed().as_secs_f64());
    let size = content_length(response.headers()).or_else(|| response.body().size_hint().exact());
    metrics
        .response_size
        .with(&labels)
        .observe(size.unwrap_or(0) as f64);
    response
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
