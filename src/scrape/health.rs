//! What `/api/v1/targets` and the UI show of a target: its health, when it
//! was last scraped, how long that took and the last error. Written by the
//! target's loop after every scrape, read by the API.

use std::time::Duration;

/// A target's health, as Prometheus names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// The last scrape succeeded.
    Up,
    /// The last scrape failed.
    Down,
}

impl Health {
    /// `up` when there is no error, `down` otherwise.
    pub fn from_error(error: Option<&str>) -> Health {
        match error {
            None => Health::Up,
            Some(_) => Health::Down,
        }
    }

    /// `"up"`, `"down"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The outcome of a target's last scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetHealth {
    /// Up, down or unknown.
    pub health: Health,
    /// When the last scrape was stamped, ms since the epoch (0: never).
    pub last_scrape_ms: i64,
    /// How long it took.
    pub last_duration: Duration,
    /// Why it failed; empty when it did not.
    pub last_error: String,
}

impl TargetHealth {
    /// Records a scrape.
    pub fn record(
        &mut self,
        health: Health,
        timestamp_ms: i64,
        duration: Duration,
        error: Option<String>,
    ) {
        self.health = health;
        self.last_scrape_ms = timestamp_ms;
        self.last_duration = duration;
        self.last_error = error.unwrap_or_default();
    }
}
