//! The one error type of the fleet API: an HTTP status plus Tesla's error body
//! `{"response": null, "error": …, "error_description": …}`. Both upstreams, the
//! command parser and the HTTP handlers produce it, so every failure reaches the
//! client in the shape Tesla's own clients already parse.

use std::fmt;

/// A fleet API failure as Tesla reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetError {
    /// HTTP status code, as Tesla uses it (400, 401, 403, 404, 408, 429, 5xx…).
    pub status: u16,
    /// Tesla's short error key (`not_found`, `invalid_command`, `invalid_field`…).
    pub error: String,
    /// A sentence naming the problem for the person reading the response.
    pub description: String,
    /// Seconds the client should wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl FleetError {
    /// An error with the given status, key and description.
    pub fn new(status: u16, error: impl Into<String>, description: impl Into<String>) -> Self {
        FleetError {
            status,
            error: error.into(),
            description: description.into(),
            retry_after: None,
        }
    }

    /// 404: no vehicle answers to this id or VIN.
    pub fn vehicle_not_found(tag: &str) -> Self {
        Self::new(
            404,
            "not_found",
            format!("no vehicle with id or VIN '{tag}' in this fleet"),
        )
    }

    /// 408: the vehicle is asleep or offline; Tesla's exact error text.
    pub fn vehicle_unavailable() -> Self {
        Self::new(
            408,
            "vehicle unavailable: vehicle is offline or asleep",
            "wake the vehicle with POST /api/1/vehicles/{vehicle_tag}/wake_up and retry once its state is online",
        )
    }

    /// 400: the command name is not one this fleet knows.
    pub fn invalid_command(name: &str, known: &[&str]) -> Self {
        Self::new(
            400,
            "invalid_command",
            format!(
                "unknown command '{name}'; known commands: {}",
                known.join(", ")
            ),
        )
    }

    /// 400: a parameter is missing or has the wrong type or range.
    pub fn invalid_field(field: &str, why: impl fmt::Display) -> Self {
        Self::new(400, "invalid_field", format!("{field}: {why}"))
    }

    /// 400: the request as a whole cannot be read (bad JSON, bad query string).
    pub fn invalid_request(why: impl fmt::Display) -> Self {
        Self::new(400, "invalid_request", why.to_string())
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.description)
    }
}

impl std::error::Error for FleetError {}
