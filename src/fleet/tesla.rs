//! The Tesla upstream: forwards fleet calls to the real Fleet API (or a
//! `tesla-http-proxy` in front of it) with fleetmon's OAuth access token,
//! with a timeout per attempt and retries with exponential backoff on 429 and
//! 5xx that honour `Retry-After`. Upstream failures come back as
//! [`FleetError`]s in Tesla's shape; a token Tesla rejects is fleetmon's
//! problem, not the caller's, so it becomes a 502 rather than a 401.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::command::{Command, CommandOutcome, DataEndpoint};
use super::error::FleetError;
use super::Pagination;

/// The environment variable holding the Fleet API access token.
pub const ACCESS_TOKEN_ENV: &str = "FLEETMON_TESLA_ACCESS_TOKEN";
/// Attempts per call (the first try plus retries).
const ATTEMPTS: u32 = 4;
/// First backoff; doubled after each failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest `Retry-After` waited for inside one call; longer waits are
/// returned to the caller as a 429 with that `Retry-After`.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Settings of the Tesla upstream.
#[derive(Debug, Clone)]
pub struct TeslaConfig {
    /// Fleet API base URL, e.g. `https://fleet-api.prd.eu.vn.cloud.tesla.com`.
    pub base_url: String,
    /// OAuth access token sent as `Authorization: Bearer`.
    pub access_token: String,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

/// A client of the real Fleet API.
pub struct TeslaFleet {
    client: reqwest::Client,
    config: TeslaConfig,
    /// id → VIN, learnt from vehicle lists, so commands sent by id are logged with a VIN.
    vins: Mutex<HashMap<String, String>>,
}

impl TeslaFleet {
    /// A client for `config`.
    pub fn new(config: TeslaConfig) -> Result<TeslaFleet, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("fleetmon/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(TeslaFleet {
            client,
            config,
            vins: Mutex::new(HashMap::new()),
        })
    }

    /// One page of the vehicle list, Tesla's envelope passed through.
    pub async fn list(&self, page: Pagination) -> Result<Value, FleetError> {
        let query = [
            ("page", page.page.to_string()),
            ("per_page", page.per_page.to_string()),
        ];
        let body = self
            .call(Method::GET, "/api/1/vehicles", &query, None)
            .await?;
        if let Some(vehicles) = body.get("response").and_then(Value::as_array) {
            let mut vins = self.vins.lock().unwrap_or_else(|e| e.into_inner());
            for v in vehicles {
                if let (Some(id), Some(vin)) = (id_of(v), v.get("vin").and_then(Value::as_str)) {
                    vins.insert(id, vin.to_string());
                }
            }
        }
        Ok(body)
    }

    /// The vehicle object of `tag`.
    pub async fn vehicle(&self, tag: &str) -> Result<Value, FleetError> {
        let path = format!("/api/1/vehicles/{}", escape(tag));
        response_of(self.call(Method::GET, &path, &[], None).await?)
    }

    /// vehicle_data of `tag` for `endpoints`.
    pub async fn vehicle_data(
        &self,
        tag: &str,
        endpoints: &[DataEndpoint],
    ) -> Result<Value, FleetError> {
        let path = format!("/api/1/vehicles/{}/vehicle_data", escape(tag));
        let list: Vec<&str> = endpoints.iter().map(|e| e.name()).collect();
        let query = [("endpoints", list.join(";"))];
        response_of(self.call(Method::GET, &path, &query, None).await?)
    }

    /// Wakes `tag`.
    pub async fn wake_up(&self, tag: &str) -> Result<Value, FleetError> {
        let path = format!("/api/1/vehicles/{}/wake_up", escape(tag));
        response_of(
            self.call(
                Method::POST,
                &path,
                &[],
                Some(Value::Object(Default::default())),
            )
            .await?,
        )
    }

    /// Sends `command` to `tag`.
    pub async fn command(
        &self,
        tag: &str,
        command: &Command,
    ) -> Result<CommandOutcome, FleetError> {
        let path = format!("/api/1/vehicles/{}/command/{}", escape(tag), command.name());
        let response = response_of(
            self.call(Method::POST, &path, &[], Some(command.body()))
                .await?,
        )?;
        let result = response
            .get("result")
            .and_then(Value::as_bool)
            .ok_or_else(|| {
                FleetError::new(
                    502,
                    "upstream_invalid_response",
                    "the Fleet API answered a command without a boolean 'result'",
                )
            })?;
        let reason = response
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Ok(if result {
            CommandOutcome::done()
        } else {
            CommandOutcome::declined(reason)
        })
    }

    /// The VIN of `tag`: itself when it is a VIN, else learnt from earlier lists.
    pub fn vin(&self, tag: &str) -> Option<String> {
        if tag.len() == 17 {
            return Some(tag.to_string());
        }
        self.vins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tag)
            .cloned()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value, FleetError> {
        let url = format!("{}{}", self.config.base_url.trim_end_matches('/'), path);
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let mut request = self
                .client
                .request(method.clone(), &url)
                .bearer_auth(&self.config.access_token)
                .query(query);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    let bytes = response.bytes().await.unwrap_or_default();
                    if status.is_success() {
                        return serde_json::from_slice(&bytes).map_err(|e| {
                            FleetError::new(
                                502,
                                "upstream_invalid_response",
                                format!("the Fleet API answered {path} with invalid JSON: {e}"),
                            )
                        });
                    }
                    let error = upstream_error(status, &bytes, retry_after);
                    let retryable =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !retryable {
                        return Err(error);
                    }
                    error
                }
                Err(e) if e.is_timeout() => FleetError::new(
                    504,
                    "upstream_timeout",
                    format!(
                        "the Fleet API did not answer {path} within {:?}",
                        self.config.timeout
                    ),
                ),
                Err(e) => FleetError::new(
                    502,
                    "upstream_unreachable",
                    format!(
                        "could not reach the Fleet API at {}: {}",
                        self.config.base_url,
                        error_chain(&e)
                    ),
                ),
            };
            let wait = failure.retry_after.map_or(backoff, Duration::from_secs);
            if attempt == ATTEMPTS || wait > MAX_WAIT {
                return Err(failure);
            }
            tracing::warn!(
                path,
                attempt,
                status = failure.status,
                wait_ms = wait.as_millis() as u64,
                "Fleet API call failed; retrying"
            );
            tokio::time::sleep(wait).await;
            backoff *= 2;
        }
        Err(FleetError::new(
            502,
            "upstream_unreachable",
            "no attempt was made",
        ))
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Tesla).
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()
}

/// Maps a non-2xx Fleet API answer to the error fleetmon returns.
fn upstream_error(status: StatusCode, body: &[u8], retry_after: Option<u64>) -> FleetError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let text = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(200)
        .collect::<String>();
    let error = field("error").unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("upstream error")
            .to_lowercase()
            .replace(' ', "_")
    });
    let description = field("error_description").unwrap_or(text);
    let mut out = if status == StatusCode::UNAUTHORIZED {
        FleetError::new(
            502,
            "upstream_auth_failed",
            format!("the Fleet API rejected fleetmon's access token ({ACCESS_TOKEN_ENV}): {error} {description}"),
        )
    } else {
        FleetError::new(status.as_u16(), error, description)
    };
    out.retry_after = retry_after;
    out
}

fn response_of(body: Value) -> Result<Value, FleetError> {
    match body {
        Value::Object(mut map) => Ok(map.remove("response").unwrap_or(Value::Null)),
        _ => Err(FleetError::new(
            502,
            "upstream_invalid_response",
            "the Fleet API answered without a JSON object",
        )),
    }
}

fn id_of(vehicle: &Value) -> Option<String> {
    match vehicle.get("id_s").or_else(|| vehicle.get("id"))? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Percent-encodes a path segment (a tag is an id or a VIN, but a caller may send anything).
fn escape(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
