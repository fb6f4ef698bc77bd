//! Rate limiting of failed logins, per client address: a bucket of
//! [`FAILURE_BURST`] attempts that refills one attempt every
//! [`REFILL_EVERY`]. Only failures drain it, so a client that knows its
//! credentials is never slowed down, while guessing costs
//! `REFILL_EVERY` per try once the burst is spent.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed attempts a client may make in a row.
pub const FAILURE_BURST: f64 = 10.0;
/// How long it takes to earn back one attempt.
pub const REFILL_EVERY: Duration = Duration::from_secs(30);
/// Clients tracked at most; the fullest buckets are forgotten first.
const MAX_CLIENTS: usize = 10_000;

struct Bucket {
    attempts: f64,
    updated: Instant,
}

/// Tracks failed logins per client address.
#[derive(Default)]
pub struct FailureLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl FailureLimiter {
    /// `Err(seconds to wait)` when `client` has no attempt left, else Ok.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = buckets.get_mut(&client) else {
            return Ok(());
        };
        refill(bucket, now);
        if bucket.attempts >= 1.0 {
            Ok(())
        } else {
            let missing = 1.0 - bucket.attempts;
            Err((missing * REFILL_EVERY.as_secs_f64()).ceil().max(1.0) as u64)
        }
    }

    /// Records one failed attempt by `client`.
    pub fn record_failure(&self, client: IpAddr, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            // Forget the clients that have the most attempts left: they matter least.
            buckets.retain(|_, b| {
                refill(b, now);
                b.attempts < FAILURE_BURST
            });
            if buckets.len() >= MAX_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            attempts: FAILURE_BURST,
            updated: now,
        });
        refill(bucket, now);
        bucket.attempts = (bucket.attempts - 1.0).max(0.0);
    }
}

fn refill(bucket: &mut Bucket, now: Instant) {
    let earned =
        now.saturating_duration_since(bucket.updated).as_secs_f64() / REFILL_EVERY.as_secs_f64();
    bucket.attempts = (bucket.attempts + earned).min(FAILURE_BURST);
    bucket.updated = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_attempt_per_refill_period() {
        let limiter = FailureLimiter::default();
        let client: IpAddr = "127.0.0.9".parse().unwrap();
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FAILURE_BURST as usize {
            assert!(limiter.check(client, t0).is_ok());
            limiter.record_failure(client, t0);
        }
        let wait = limiter.check(client, t0).unwrap_err();
        assert_eq!(wait, REFILL_EVERY.as_secs());
        assert!(
            limiter.check(other, t0).is_ok(),
            "other clients are not affected"
        );
        assert!(limiter.check(client, t0 + REFILL_EVERY).is_ok());
    }
}
