//! The one retry backoff of the system: exponential growth from `initial`
//! up to a cap, with optional jitter, and a reset after success. The
//! workflow controller's task retry delays (`retries.backoff` of a task)
//! are computed by it too, with the task's own growth factor.
//!
//! [`Backoff`] is the policy (a pure function from the number of failures
//! so far to a delay); [`Retries`] counts the failures of one retry loop.
//! Each retry site keeps its own figures: the watcher 200ms..10s with 50%
//! jitter, the controller runtime 1s..5min with 20%, the agent's calls
//! 100ms..5s without jitter, and so on.

use std::time::Duration;

/// Delays of `initial`, doubling (or growing by `factor`) with each
/// consecutive failure up to `max`, each stretched by a random factor in `[1, 1 + jitter)` so that
/// clients failing together (the server was down) do not retry in
/// lockstep. The longest delay is thus `max * (1 + jitter)`. With
/// [`full_jitter`](Self::full_jitter) the delay is instead drawn from
/// `[0, nominal]`, which spreads racing writers the most.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest nominal delay (before jitter).
    pub max: Duration,
    /// A fraction in `[0, 1]`; values outside are clamped.
    pub jitter: f64,
    /// Draw each delay from `[0, nominal]` instead (ignores `jitter`).
    pub full_jitter: bool,
    /// The growth per failure: 2 doubles; values below 1 (or not finite)
    /// count as 2.
    pub factor: f64,
}

impl Default for Backoff {
    /// The controller runtime's per-object error backoff: 1s, 2s, 4s, ...
    /// up to 5 minutes, with up to 20% jitter.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
            full_jitter: false,
            factor: 2.0,
        }
    }
}

impl Backoff {
    /// `initial` doubling up to `max`, with the default 20% jitter.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: 0.2,
            full_jitter: false,
            factor: 2.0,
        }
    }

    /// `initial` doubling up to `max`, without jitter.
    pub const fn fixed(initial: Duration, max: Duration) -> Self {
        Self::new(initial, max).with_jitter(0.0)
    }

    /// The same policy with `jitter` (a fraction in `[0, 1]`) instead.
    pub const fn with_jitter(self, jitter: f64) -> Self {
        Self { jitter, ..self }
    }

    /// The same policy growing by `factor` per failure instead of doubling.
    pub const fn with_factor(self, factor: f64) -> Self {
        Self { factor, ..self }
    }

    /// Each delay drawn from `[0, nominal]`.
    pub const fn with_full_jitter(self) -> Self {
        Self {
            full_jitter: true,
            ..self
        }
    }

    /// The delay before the next attempt after `failures` failures in a row
    /// before this one (0 on the first failure).
    pub fn delay(&self, failures: u32) -> Duration {
        let nominal = self.nominal(failures);
        if self.full_jitter {
            let nanos = u64::try_from(nominal.as_nanos()).unwrap_or(u64::MAX);
            return Duration::from_nanos(fastrand::u64(0..=nanos));
        }
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        if jitter == 0.0 {
            return nominal;
        }
        let factor = 1.0 + jitter * fastrand::f64();
        // A huge `max` could overflow when stretched; then skip the jitter.
        Duration::try_from_secs_f64(nominal.as_secs_f64() * factor).unwrap_or(nominal)
    }

    /// The delay without jitter: `initial * factor^failures`, at most `max`.
    pub fn nominal(&self, failures: u32) -> Duration {
        if self.factor == 2.0 || !self.factor.is_finite() || self.factor < 1.0 {
            // Doubling stays in integer nanoseconds: exact delays.
            let growth = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
            return self.initial.saturating_mul(growth).min(self.max);
        }
        let exponent = i32::try_from(failures).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.factor.powi(exponent);
        Duration::try_from_secs_f64(secs).map_or(self.max, |d| d.min(self.max))
    }

    /// A counter of consecutive failures following this policy.
    pub const fn retries(self) -> Retries {
        Retries {
            backoff: self,
            failures: 0,
        }
    }
}

/// The state of one retry loop: how many attempts failed in a row.
#[derive(Clone, Debug)]
pub struct Retries {
    backoff: Backoff,
    failures: u32,
}

impl Retries {
    /// The delay before the next attempt; counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.backoff.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Sleeps [`next_delay`](Self::next_delay).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(SEC, 10 * SEC);
        let nominal: Vec<_> = (0..6).map(|n| b.nominal(n)).collect();
        assert_eq!(
            nominal,
            [SEC, 2 * SEC, 4 * SEC, 8 * SEC, 10 * SEC, 10 * SEC]
        );
        assert_eq!(b.nominal(u32::MAX), 10 * SEC);
    }

    #[test]
    fn grows_by_its_factor_up_to_the_cap() {
        let b = Backoff::fixed(SEC, 30 * SEC).with_factor(3.0);
        let nominal: Vec<_> = (0..5).map(|n| b.nominal(n)).collect();
        assert_eq!(nominal, [SEC, 3 * SEC, 9 * SEC, 27 * SEC, 30 * SEC]);
        assert_eq!(b.nominal(u32::MAX), 30 * SEC);
        let flat = Backoff::fixed(SEC, 30 * SEC).with_factor(1.0);
        assert_eq!(flat.nominal(10), SEC);
        // A factor below 1 would shrink the delays: it doubles instead.
        assert_eq!(
            Backoff::fixed(SEC, 30 * SEC).with_factor(0.5).nominal(2),
            4 * SEC
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let b = Backoff::new(SEC, 60 * SEC).with_jitter(0.5);
        for failures in 0..8 {
            let nominal = b.nominal(failures);
            let delays: Vec<_> = (0..50).map(|_| b.delay(failures)).collect();
            for d in &delays {
                assert!(
                    *d >= nominal && *d < nominal.mul_f64(1.5),
                    "{d:?} vs {nominal:?}"
                );
            }
            // 50 equal draws from a continuous range would mean no jitter.
            assert!(delays.iter().any(|d| *d != delays[0]));
        }
    }

    #[test]
    fn full_jitter_stays_under_the_nominal_delay_and_varies() {
        let b =
            Backoff::fixed(Duration::from_millis(1), Duration::from_millis(64)).with_full_jitter();
        for failures in 0..10 {
            let nominal = b.nominal(failures);
            let delays: Vec<_> = (0..50).map(|_| b.delay(failures)).collect();
            assert!(delays.iter().all(|d| *d <= nominal), "{delays:?}");
            assert!(delays.iter().any(|d| *d != delays[0]));
        }
        assert_eq!(b.nominal(9), Duration::from_millis(64));
    }

    #[test]
    fn without_jitter_the_delays_are_exact() {
        let mut r = Backoff::fixed(Duration::from_millis(100), 5 * SEC).retries();
        let delays: Vec<_> = (0..8).map(|_| r.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn retries_grow_to_the_cap_and_reset() {
        let mut r = Backoff::new(Duration::from_millis(200), 10 * SEC)
            .with_jitter(0.5)
            .retries();
        let first = r.next_delay();
        assert!(first >= Duration::from_millis(200) && first < Duration::from_millis(300));
        for _ in 0..20 {
            assert!(r.next_delay() < (10 * SEC).mul_f64(1.5));
        }
        assert!(r.next_delay() >= 10 * SEC, "capped, not reset");
        r.reset();
        assert!(r.next_delay() < Duration::from_millis(300));
    }

    #[test]
    fn odd_settings_do_not_panic() {
        let huge = Backoff::new(Duration::MAX, Duration::MAX).with_jitter(1.0);
        assert_eq!(huge.delay(40), Duration::MAX);
        let bad_jitter = Backoff::new(SEC, SEC).with_jitter(f64::NAN);
        assert_eq!(bad_jitter.delay(3), SEC);
        let negative = Backoff::new(SEC, SEC).with_jitter(-4.0);
        assert_eq!(negative.delay(0), SEC);
        let mut many = Backoff::fixed(SEC, 2 * SEC).retries();
        many.failures = u32::MAX;
        assert_eq!(many.next_delay(), 2 * SEC);
    }
}
