//! Rate limiting of failed authentications per source address: a token
//! bucket per IP address, spent by each failure and refilled over time.
//! While an address's bucket is empty, its calls are refused before their
//! credentials are even looked at (gRPC ResourceExhausted, HTTP 429), so a
//! guesser learns nothing faster than the refill rate. The refusals are
//! reported once per window, not once per attempt, so a flood cannot flood
//! the audit log too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may make at once.
pub const BURST: f64 = 10.0;
/// Failures an address may make per second, on average, after the burst.
pub const REFILL_PER_SECOND: f64 = 2.0;
/// Throttled calls of one address are reported once per window.
pub const REPORT_WINDOW: Duration = Duration::from_secs(10);
/// Addresses tracked at most; beyond, the ones back to a full bucket are
/// forgotten first (a spoofed-address flood cannot grow memory unbounded).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// Start of the current report window, and refusals in it.
    window: Option<(Instant, u64)>,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * REFILL_PER_SECOND).min(BURST);
        self.updated = now;
    }
}

/// An address is throttled: refuse its call.
#[derive(Debug, PartialEq, Eq)]
pub struct Throttled {
    /// Set on the first refusal of a report window: report it, with the
    /// refusals of the previous window that were not reported.
    pub report: Option<u64>,
    /// When the address may try again.
    pub retry_after: Duration,
}

/// The buckets of every address that failed lately.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AuthThrottle {
    /// Refuses a call from `address` whose bucket is empty.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Throttled> {
        let mut buckets = self.lock();
        let Some(bucket) = buckets.get_mut(&address) else {
            return Ok(());
        };
        bucket.refill(now);
        if bucket.tokens >= 1.0 {
            return Ok(());
        }
        let retry_after = Duration::from_secs_f64((1.0 - bucket.tokens) / REFILL_PER_SECOND);
        let report = match &mut bucket.window {
            Some((start, refused)) if now.saturating_duration_since(*start) < REPORT_WINDOW => {
                *refused += 1;
                None
            }
            window => {
                let unreported = window.map_or(0, |(_, refused)| refused.saturating_sub(1));
                *window = Some((now, 1));
                Some(unreported)
            }
        };
        Err(Throttled {
            report,
            retry_after,
        })
    }

    /// Spends a token of `address` for a failed authentication.
    pub fn failed(&self, address: IpAddr, now: Instant) {
        let mut buckets = self.lock();
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&address) {
            buckets.retain(|_, b| {
                b.refill(now);
                b.tokens < BURST
            });
            if buckets.len() >= MAX_ADDRESSES {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: BURST,
            updated: now,
            window: None,
        });
        bucket.refill(now);
        bucket.tokens = (bucket.tokens - 1.0).max(0.0);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_after_the_burst_and_recovers_at_the_refill_rate() {
        let throttle = AuthThrottle::default();
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(throttle.check(a, t0), Ok(()));
            throttle.failed(a, t0);
        }
        let refused = throttle.check(a, t0).expect_err("after the burst");
        assert_eq!(refused.report, Some(0), "the first refusal is reported");
        assert!(refused.retry_after <= Duration::from_millis(500));
        // Not reported again within the window.
        assert_eq!(throttle.check(a, t0).expect_err("still").report, None);
        assert_eq!(throttle.check(a, t0).expect_err("still").report, None);
        // Another address is not affected.
        assert_eq!(throttle.check(b, t0), Ok(()));
        // One token back after half a second.
        assert_eq!(throttle.check(a, t0 + Duration::from_millis(500)), Ok(()));
        throttle.failed(a, t0 + Duration::from_millis(500));
        // The next window reports what the last one did not.
        let later = t0 + Duration::from_millis(500) + REPORT_WINDOW;
        for _ in 0..25 {
            throttle.failed(a, later);
        }
        assert_eq!(throttle.check(a, later).expect_err("again").report, Some(2));
    }
}
