//! `POST /api/v1/write`: the Prometheus Remote-Write 1.0 receiver, for the
//! editor role. Answers as Prometheus's receiver does: 204 once every stored
//! sample is durable in the WAL; 415 for a content type or encoding other
//! than Remote-Write 1.0's (both may be absent); 400 with the reason, as
//! plain text, for a body that does not decode and for samples the store
//! refused (out of order, duplicate timestamp with another value, out of
//! bounds, invalid labels) — the other samples of the request are stored,
//! and a 4xx tells the sender not to retry; 500 when the store fails, which
//! a sender retries.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{middleware, Router};

use super::error::reject;
use crate::auth::http::{gate, Gate};
use crate::auth::{Auth, Role};
use crate::clock::now_ms;
use crate::remote::wire::{self, Limits};
use crate::storage::{OfferedSeries, Storage};

/// Largest request body accepted (compressed), in bytes. Prometheus sends at
/// most `max_samples_per_send` (2,000 by default) samples per request, well
/// under 1 MiB; this leaves room for large batches from other senders.
pub const MAX_WRITE_BODY: usize = 16 * 1024 * 1024;
/// Largest decompressed request, in bytes: bounds the memory one request takes.
pub const MAX_WRITE_DECOMPRESSED: usize = 128 * 1024 * 1024;
/// Samples further in the future than this are refused as out of bounds,
/// as Prometheus's receiver refuses them.
const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;

/// Decompression buffers kept for later requests, at most this many...
const POOLED_BUFFERS: usize = 4;
/// ...and none larger than this, so that one huge request does not keep
/// its memory.
const POOLED_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// What the receiver keeps between requests.
struct Receiver {
    storage: Arc<Storage>,
    /// Buffers for decompressed requests: a fresh one of a few MiB is fresh
    /// memory from the kernel, whose pages cost more to fault in and zero
    /// than decompressing into a reused one (see `wire::decompress_into`).
    buffers: Mutex<Vec<Vec<u8>>>,
}

impl Receiver {
    fn take_buffer(&self) -> Vec<u8> {
        lock(&self.buffers).pop().unwrap_or_default()
    }

    fn give_back(&self, buffer: Vec<u8>) {
        let mut buffers = lock(&self.buffers);
        if buffers.len() < POOLED_BUFFERS && buffer.capacity() <= POOLED_BUFFER_BYTES {
            buffers.push(buffer);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn routes(auth: Arc<Auth>, storage: Arc<Storage>) -> Router {
    Router::new()
        .route("/api/v1/write", post(write))
        .route_layer(middleware::from_fn_with_state(
            Gate::new(auth, Role::Editor, reject),
            gate,
        ))
        .layer(DefaultBodyLimit::max(MAX_WRITE_BODY))
        .with_state(Arc::new(Receiver {
            storage,
            buffers: Mutex::new(Vec::new()),
        }))
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into() + "\n").into_response()
}

/// Refuses what is not a Remote-Write 1.0 request; absent headers are
/// accepted, as Prometheus accepts them from older senders.
fn check_headers(headers: &HeaderMap) -> Result<(), String> {
    if let Some(value) = headers.get(header::CONTENT_TYPE) {
        let value = value.to_str().unwrap_or_default();
        let mut parts = value.split(';').map(str::trim);
        if parts.next() != Some("application/x-protobuf") {
            return Err(format!(
                "expected application/x-protobuf as the first (media) part, got {value} content-type"
            ));
        }
        for parameter in parts {
            match parameter.split_once('=') {
                Some(("proto", "prometheus.WriteRequest")) => {}
                Some(("proto", other)) => {
                    return Err(format!(
                        "{other} protobuf message is not accepted by this server; accepted [prometheus.WriteRequest]"
                    ))
                }
                _ => {}
            }
        }
    }
    if let Some(value) = headers.get(header::CONTENT_ENCODING) {
        let value = value.to_str().unwrap_or_default();
        if !value.eq_ignore_ascii_case("snappy") {
            return Err(format!(
                "{value} encoding (compression) is not accepted by this server; only snappy is acceptable"
            ));
        }
    }
    Ok(())
}

/// A decoded series offered to the store as it is: labels stay in the
/// request, and are read from it only if the store asks for them (it finds
/// a known series by their encoded bytes).
impl OfferedSeries for wire::SeriesRef<'_> {
    fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        wire::SeriesRef::labels(self).into_iter()
    }

    fn samples(&self) -> &[(i64, f64)] {
        self.samples
    }

    fn encoded_labels(&self) -> Option<&[u8]> {
        self.encoded_labels
    }
}

async fn write(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut proto = receiver.take_buffer();
    let response = receive(&receiver.storage, &headers, &body, &mut proto).await;
    receiver.give_back(proto);
    response
}

/// Answers one request, decompressing it into `proto`.
async fn receive(
    storage: &Storage,
    headers: &HeaderMap,
    body: &[u8],
    proto: &mut Vec<u8>,
) -> Response {
    if let Err(why) = check_headers(headers) {
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, why);
    }
    let limits = Limits {
        max_compressed_bytes: MAX_WRITE_BODY,
        max_decompressed_bytes: MAX_WRITE_DECOMPRESSED,
    };
    // Decoded in place: label strings stay borrowed from the request, and only
    // the series the store creates copy theirs.
    if let Err(e) = wire::decompress_into(body, &limits, proto) {
        return text(StatusCode::BAD_REQUEST, e.to_string());
    }
    let mut decoded = match wire::decode_protobuf(proto) {
        Ok(decoded) => decoded,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let max_t = now_ms().saturating_add(MAX_AHEAD_MS);
    let ahead_example = decoded
        .series()
        .find(|s| s.samples.iter().any(|(t, _)| *t > max_t))
        .map(|s| format!("{:?}", s.labels()));
    let ahead = match ahead_example {
        Some(_) => decoded.retain_samples(|(t, _)| *t <= max_t) as u64,
        None => 0,
    };
    let batch: Vec<wire::SeriesRef<'_>> = decoded.series().collect();
    let report = match storage.append(&batch).await {
        Ok(report) => report,
        Err(e) => {
            tracing::error!(error = %e, "remote write: the store failed");
            return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    let mut problems: Vec<String> = report
        .rejected
        .iter()
        .map(|(why, n)| format!("{n} × {}", why.reason()))
        .collect();
    problems.sort();
    if ahead > 0 {
        problems.push(format!(
            "{ahead} × out of bounds (more than 10m in the future)"
        ));
    }
    if decoded.histograms > 0 {
        problems.push(format!(
            "{} × native histogram samples are not supported",
            decoded.histograms
        ));
    }
    if problems.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let examples: Vec<String> = report.examples.into_iter().chain(ahead_example).collect();
    let message = format!(
        "{} samples stored; refused: {}; for example: {}",
        report.stored,
        problems.join(", "),
        examples.join("; ")
    );
    tracing::warn!(refused = %message, "remote write: samples refused");
    text(StatusCode::BAD_REQUEST, message)
}
